// Multi-scale deformable attention (Deformable DETR, eq. 3), written from the formula:
//   out[n,q,m,:] = sum_l sum_p A[n,q,m,l,p] * bilinear(V_l[n,:,m,:], loc[n,q,m,l,p] * (W_l, H_l) - 0.5)
// Bilinear sampling uses zero padding outside the map (grid_sample, align_corners=False).
// One thread per output element (n, q, m, d); the backward pass scatters with atomicAdd.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <vector>

namespace {

struct Dims {
  int64_t N, S, M, D, Q, L, P;
};

template <typename T>
struct Corners {
  int64_t h0, w0;
  T lh, lw;
  bool ok[4];
  T v[4];
};

// Gathers the four neighbours of (h, w) for channel d of head m; missing ones are zero.
template <typename T>
__device__ Corners<T> gather(const T* base, int64_t H, int64_t W, T h, T w, int64_t stride) {
  Corners<T> c;
  c.h0 = static_cast<int64_t>(floor(h));
  c.w0 = static_cast<int64_t>(floor(w));
  c.lh = h - static_cast<T>(c.h0);
  c.lw = w - static_cast<T>(c.w0);
  const int64_t hs[4] = {c.h0, c.h0, c.h0 + 1, c.h0 + 1};
  const int64_t ws[4] = {c.w0, c.w0 + 1, c.w0, c.w0 + 1};
  for (int k = 0; k < 4; ++k) {
    c.ok[k] = hs[k] >= 0 && hs[k] < H && ws[k] >= 0 && ws[k] < W;
    c.v[k] = c.ok[k] ? base[(hs[k] * W + ws[k]) * stride] : static_cast<T>(0);
  }
  return c;
}

template <typename T>
__device__ void corner_weights(const Corners<T>& c, T wts[4]) {
  const T hh = 1 - c.lh, hw = 1 - c.lw;
  wts[0] = hh * hw;
  wts[1] = hh * c.lw;
  wts[2] = c.lh * hw;
  wts[3] = c.lh * c.lw;
}

template <typename T>
__global__ void forward_kernel(const T* value, const int64_t* shapes, const int64_t* starts, const T* loc,
                               const T* attn, T* out, Dims dm) {
  const int64_t total = dm.N * dm.Q * dm.M * dm.D;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total;
       i += (int64_t)blockDim.x * gridDim.x) {
    const int64_t d = i % dm.D, m = (i / dm.D) % dm.M, q = (i / (dm.D * dm.M)) % dm.Q;
    const int64_t n = i / (dm.D * dm.M * dm.Q);
    T acc = 0;
    for (int64_t l = 0; l < dm.L; ++l) {
      const int64_t H = shapes[2 * l], W = shapes[2 * l + 1];
      const T* base = value + ((n * dm.S + starts[l]) * dm.M + m) * dm.D + d;
      for (int64_t p = 0; p < dm.P; ++p) {
        const int64_t s = (((n * dm.Q + q) * dm.M + m) * dm.L + l) * dm.P + p;
        const T h = loc[2 * s + 1] * H - T(0.5), w = loc[2 * s] * W - T(0.5);
        if (!(h > -1 && w > -1 && h < H && w < W)) continue;
        Corners<T> c = gather(base, H, W, h, w, dm.M * dm.D);
        T wts[4];
        corner_weights(c, wts);
        acc += attn[s] * (wts[0] * c.v[0] + wts[1] * c.v[1] + wts[2] * c.v[2] + wts[3] * c.v[3]);
      }
    }
    out[i] = acc;
  }
}

template <typename T>
__global__ void backward_kernel(const T* value, const int64_t* shapes, const int64_t* starts, const T* loc,
                                const T* attn, const T* grad_out, T* g_value, T* g_loc, T* g_attn, Dims dm) {
  const int64_t total = dm.N * dm.Q * dm.M * dm.D;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total;
       i += (int64_t)blockDim.x * gridDim.x) {
    const int64_t d = i % dm.D, m = (i / dm.D) % dm.M, q = (i / (dm.D * dm.M)) % dm.Q;
    const int64_t n = i / (dm.D * dm.M * dm.Q);
    const T g = grad_out[i];
    const int64_t stride = dm.M * dm.D;
    for (int64_t l = 0; l < dm.L; ++l) {
      const int64_t H = shapes[2 * l], W = shapes[2 * l + 1];
      const int64_t off = ((n * dm.S + starts[l]) * dm.M + m) * dm.D + d;
      for (int64_t p = 0; p < dm.P; ++p) {
        const int64_t s = (((n * dm.Q + q) * dm.M + m) * dm.L + l) * dm.P + p;
        const T h = loc[2 * s + 1] * H - T(0.5), w = loc[2 * s] * W - T(0.5);
        if (!(h > -1 && w > -1 && h < H && w < W)) continue;
        Corners<T> c = gather(value + off, H, W, h, w, stride);
        T wts[4];
        corner_weights(c, wts);
        const T sampled = wts[0] * c.v[0] + wts[1] * c.v[1] + wts[2] * c.v[2] + wts[3] * c.v[3];
        const T ga = g * attn[s];
        atomicAdd(g_attn + s, g * sampled);
        const int64_t hs[4] = {c.h0, c.h0, c.h0 + 1, c.h0 + 1};
        const int64_t ws[4] = {c.w0, c.w0 + 1, c.w0, c.w0 + 1};
        for (int k = 0; k < 4; ++k)
          if (c.ok[k]) atomicAdd(g_value + off + (hs[k] * W + ws[k]) * stride, ga * wts[k]);
        const T dh = (1 - c.lw) * (c.v[2] - c.v[0]) + c.lw * (c.v[3] - c.v[1]);
        const T dw = (1 - c.lh) * (c.v[1] - c.v[0]) + c.lh * (c.v[3] - c.v[2]);
        atomicAdd(g_loc + 2 * s, ga * dw * static_cast<T>(W));
        atomicAdd(g_loc + 2 * s + 1, ga * dh * static_cast<T>(H));
      }
    }
  }
}

Dims dims_of(const at::Tensor& value, const at::Tensor& loc) {
  return Dims{value.size(0), value.size(1), value.size(2), value.size(3), loc.size(1), loc.size(3), loc.size(4)};
}

unsigned blocks_for(int64_t total) {
  const int64_t b = (total + 255) / 256;
  return static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>(b, 65535)));
}

}  // namespace

at::Tensor msda_cuda_forward(const at::Tensor& value, const at::Tensor& shapes, const at::Tensor& level_start,
                             const at::Tensor& loc, const at::Tensor& attn) {
  const Dims dm = dims_of(value, loc);
  auto out = at::zeros({dm.N, dm.Q, dm.M * dm.D}, value.options());
  const int64_t total = dm.N * dm.Q * dm.M * dm.D;
  if (total == 0) return out;
  auto stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(value.scalar_type(), "msda_cuda_forward", ([&] {
    forward_kernel<scalar_t><<<blocks_for(total), 256, 0, stream>>>(
        value.data_ptr<scalar_t>(), shapes.data_ptr<int64_t>(), level_start.data_ptr<int64_t>(),
        loc.data_ptr<scalar_t>(), attn.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), dm);
  }));
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

std::vector<at::Tensor> msda_cuda_backward(const at::Tensor& value, const at::Tensor& shapes,
                                           const at::Tensor& level_start, const at::Tensor& loc,
                                           const at::Tensor& attn, const at::Tensor& grad_out) {
  const Dims dm = dims_of(value, loc);
  auto g_value = at::zeros_like(value);
  auto g_loc = at::zeros_like(loc);
  auto g_attn = at::zeros_like(attn);
  const int64_t total = dm.N * dm.Q * dm.M * dm.D;
  if (total == 0) return {g_value, g_loc, g_attn};
  auto stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(value.scalar_type(), "msda_cuda_backward", ([&] {
    backward_kernel<scalar_t><<<blocks_for(total), 256, 0, stream>>>(
        value.data_ptr<scalar_t>(), shapes.data_ptr<int64_t>(), level_start.data_ptr<int64_t>(),
        loc.data_ptr<scalar_t>(), attn.data_ptr<scalar_t>(), grad_out.data_ptr<scalar_t>(),
        g_value.data_ptr<scalar_t>(), g_loc.data_ptr<scalar_t>(), g_attn.data_ptr<scalar_t>(), dm);
  }));
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {g_value, g_loc, g_attn};
}
