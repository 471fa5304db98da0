// Multi-scale deformable attention on the CPU: forward and backward.
//
// The Python surface is the one of the MultiScaleDeformableAttention op that envbuild's
// `msdeformattn` sanity kind calls:
//   ms_deform_attn_forward(value, spatial_shapes, level_start_index, sampling_loc,
//                          attn_weight, im2col_step) -> (N, Q, M * D)
//   ms_deform_attn_backward(value, spatial_shapes, level_start_index, sampling_loc,
//                           attn_weight, grad_output, im2col_step)
//       -> [grad_value, grad_sampling_loc, grad_attn_weight]
// with value (N, S, M, D), spatial_shapes (L, 2) int64 rows (H, W), level_start_index (L),
// sampling_loc (N, Q, M, L, P, 2) as (x, y) in [0, 1], attn_weight (N, Q, M, L, P).
//
// A location (x, y) of level l is the pixel position (x * W - 0.5, y * H - 0.5); the value
// there is the bilinear mix of the four neighbouring pixels, zero outside the map.

#include <torch/extension.h>

#include <cmath>
#include <vector>

namespace {

struct Corners {
  int64_t row[4];
  int64_t col[4];
  double weight[4];        // bilinear weight of each corner
  double d_weight_dh[4];   // d weight / d (pixel row)
  double d_weight_dw[4];   // d weight / d (pixel column)
  bool inside[4];
};

// The four neighbours of pixel position (h, w) in an H x W map.
Corners corners_of(double h, double w, int64_t height, int64_t width) {
  Corners c;
  const double top = std::floor(h);
  const double left = std::floor(w);
  const double dy = h - top;
  const double dx = w - left;
  const int64_t r0 = static_cast<int64_t>(top);
  const int64_t c0 = static_cast<int64_t>(left);
  const int64_t rows[4] = {r0, r0, r0 + 1, r0 + 1};
  const int64_t cols[4] = {c0, c0 + 1, c0, c0 + 1};
  const double wy[4] = {1 - dy, 1 - dy, dy, dy};
  const double wx[4] = {1 - dx, dx, 1 - dx, dx};
  const double sy[4] = {-1, -1, 1, 1};
  const double sx[4] = {-1, 1, -1, 1};
  for (int k = 0; k < 4; ++k) {
    c.row[k] = rows[k];
    c.col[k] = cols[k];
    c.weight[k] = wy[k] * wx[k];
    c.d_weight_dh[k] = sy[k] * wx[k];
    c.d_weight_dw[k] = wy[k] * sx[k];
    c.inside[k] = rows[k] >= 0 && rows[k] < height && cols[k] >= 0 && cols[k] < width;
  }
  return c;
}

void check_inputs(const at::Tensor& value, const at::Tensor& shapes, const at::Tensor& starts,
                  const at::Tensor& loc, const at::Tensor& attn, int64_t im2col_step) {
  for (const at::Tensor* t : {&value, &shapes, &starts, &loc, &attn}) {
    TORCH_CHECK(t->device().is_cpu(), "this build of MultiScaleDeformableAttention is CPU-only");
  }
  TORCH_CHECK(value.dim() == 4, "value must be (N, S, M, D)");
  TORCH_CHECK(shapes.dim() == 2 && shapes.size(1) == 2, "spatial_shapes must be (L, 2)");
  TORCH_CHECK(starts.dim() == 1 && starts.size(0) == shapes.size(0),
              "level_start_index must be (L)");
  TORCH_CHECK(loc.dim() == 6 && loc.size(5) == 2, "sampling_loc must be (N, Q, M, L, P, 2)");
  TORCH_CHECK(attn.dim() == 5, "attn_weight must be (N, Q, M, L, P)");
  TORCH_CHECK(loc.size(0) == value.size(0) && loc.size(2) == value.size(2) &&
                  loc.size(3) == shapes.size(0),
              "sampling_loc does not match value and spatial_shapes");
  for (int d = 0; d < 5; ++d) {
    TORCH_CHECK(attn.size(d) == loc.size(d), "attn_weight does not match sampling_loc");
  }
  TORCH_CHECK(value.scalar_type() == loc.scalar_type() &&
                  value.scalar_type() == attn.scalar_type(),
              "value, sampling_loc and attn_weight must have one dtype");
  TORCH_CHECK(im2col_step > 0, "im2col_step must be positive");
}

template <typename scalar_t>
void forward_kernel(const at::Tensor& value, const at::Tensor& shapes, const at::Tensor& starts,
                    const at::Tensor& loc, const at::Tensor& attn, at::Tensor& out) {
  const auto v = value.accessor<scalar_t, 4>();
  const auto s = shapes.accessor<int64_t, 2>();
  const auto st = starts.accessor<int64_t, 1>();
  const auto l = loc.accessor<scalar_t, 6>();
  const auto a = attn.accessor<scalar_t, 5>();
  auto o = out.accessor<scalar_t, 4>();  // (N, Q, M, D)
  const int64_t batch = loc.size(0), queries = loc.size(1), heads = loc.size(2);
  const int64_t levels = loc.size(3), points = loc.size(4), channels = value.size(3);
  at::parallel_for(0, batch * queries, 1, [&](int64_t begin, int64_t end) {
    for (int64_t nq = begin; nq < end; ++nq) {
      const int64_t n = nq / queries, q = nq % queries;
      for (int64_t m = 0; m < heads; ++m) {
        for (int64_t lv = 0; lv < levels; ++lv) {
          const int64_t height = s[lv][0], width = s[lv][1], base = st[lv];
          for (int64_t p = 0; p < points; ++p) {
            const double h = static_cast<double>(l[n][q][m][lv][p][1]) * height - 0.5;
            const double w = static_cast<double>(l[n][q][m][lv][p][0]) * width - 0.5;
            const Corners c = corners_of(h, w, height, width);
            const double weight = a[n][q][m][lv][p];
            for (int k = 0; k < 4; ++k) {
              if (!c.inside[k]) continue;
              const int64_t pixel = base + c.row[k] * width + c.col[k];
              const double f = weight * c.weight[k];
              for (int64_t d = 0; d < channels; ++d) {
                o[n][q][m][d] += static_cast<scalar_t>(f * v[n][pixel][m][d]);
              }
            }
          }
        }
      }
    }
  });
}

template <typename scalar_t>
void backward_kernel(const at::Tensor& value, const at::Tensor& shapes,
                     const at::Tensor& starts, const at::Tensor& loc, const at::Tensor& attn,
                     const at::Tensor& grad, at::Tensor& g_value, at::Tensor& g_loc,
                     at::Tensor& g_attn) {
  const auto v = value.accessor<scalar_t, 4>();
  const auto s = shapes.accessor<int64_t, 2>();
  const auto st = starts.accessor<int64_t, 1>();
  const auto l = loc.accessor<scalar_t, 6>();
  const auto a = attn.accessor<scalar_t, 5>();
  const auto g = grad.accessor<scalar_t, 4>();  // (N, Q, M, D)
  auto gv = g_value.accessor<scalar_t, 4>();
  auto gl = g_loc.accessor<scalar_t, 6>();
  auto ga = g_attn.accessor<scalar_t, 5>();
  const int64_t batch = loc.size(0), queries = loc.size(1), heads = loc.size(2);
  const int64_t levels = loc.size(3), points = loc.size(4), channels = value.size(3);
  // serial: several queries scatter into the same value pixels
  for (int64_t n = 0; n < batch; ++n) {
    for (int64_t q = 0; q < queries; ++q) {
      for (int64_t m = 0; m < heads; ++m) {
        for (int64_t lv = 0; lv < levels; ++lv) {
          const int64_t height = s[lv][0], width = s[lv][1], base = st[lv];
          for (int64_t p = 0; p < points; ++p) {
            const double h = static_cast<double>(l[n][q][m][lv][p][1]) * height - 0.5;
            const double w = static_cast<double>(l[n][q][m][lv][p][0]) * width - 0.5;
            const Corners c = corners_of(h, w, height, width);
            const double weight = a[n][q][m][lv][p];
            double d_attn = 0, d_h = 0, d_w = 0;
            for (int k = 0; k < 4; ++k) {
              if (!c.inside[k]) continue;
              const int64_t pixel = base + c.row[k] * width + c.col[k];
              double dot = 0;  // grad . value at this corner
              for (int64_t d = 0; d < channels; ++d) {
                const double gd = g[n][q][m][d];
                dot += gd * v[n][pixel][m][d];
                gv[n][pixel][m][d] += static_cast<scalar_t>(weight * c.weight[k] * gd);
              }
              d_attn += c.weight[k] * dot;
              d_h += c.d_weight_dh[k] * dot;
              d_w += c.d_weight_dw[k] * dot;
            }
            ga[n][q][m][lv][p] = static_cast<scalar_t>(d_attn);
            gl[n][q][m][lv][p][0] = static_cast<scalar_t>(weight * d_w * width);
            gl[n][q][m][lv][p][1] = static_cast<scalar_t>(weight * d_h * height);
          }
        }
      }
    }
  }
}

}  // namespace

at::Tensor ms_deform_attn_forward(const at::Tensor& value, const at::Tensor& spatial_shapes,
                                  const at::Tensor& level_start_index,
                                  const at::Tensor& sampling_loc, const at::Tensor& attn_weight,
                                  int64_t im2col_step) {
  check_inputs(value, spatial_shapes, level_start_index, sampling_loc, attn_weight, im2col_step);
  const auto v = value.contiguous();
  const auto shapes = spatial_shapes.to(at::kLong).contiguous();
  const auto starts = level_start_index.to(at::kLong).contiguous();
  const auto loc = sampling_loc.contiguous();
  const auto attn = attn_weight.contiguous();
  auto out = at::zeros({loc.size(0), loc.size(1), loc.size(2), v.size(3)}, v.options());
  AT_DISPATCH_FLOATING_TYPES(v.scalar_type(), "ms_deform_attn_forward_cpu", [&] {
    forward_kernel<scalar_t>(v, shapes, starts, loc, attn, out);
  });
  return out.view({loc.size(0), loc.size(1), loc.size(2) * v.size(3)});
}

std::vector<at::Tensor> ms_deform_attn_backward(
    const at::Tensor& value, const at::Tensor& spatial_shapes,
    const at::Tensor& level_start_index, const at::Tensor& sampling_loc,
    const at::Tensor& attn_weight, const at::Tensor& grad_output, int64_t im2col_step) {
  check_inputs(value, spatial_shapes, level_start_index, sampling_loc, attn_weight, im2col_step);
  const auto v = value.contiguous();
  const auto shapes = spatial_shapes.to(at::kLong).contiguous();
  const auto starts = level_start_index.to(at::kLong).contiguous();
  const auto loc = sampling_loc.contiguous();
  const auto attn = attn_weight.contiguous();
  TORCH_CHECK(grad_output.numel() == loc.size(0) * loc.size(1) * loc.size(2) * v.size(3),
              "grad_output must be (N, Q, M * D)");
  const auto grad = grad_output.contiguous().view({loc.size(0), loc.size(1), loc.size(2),
                                                   v.size(3)}).to(v.scalar_type());
  auto g_value = at::zeros_like(v);
  auto g_loc = at::zeros_like(loc);
  auto g_attn = at::zeros_like(attn);
  AT_DISPATCH_FLOATING_TYPES(v.scalar_type(), "ms_deform_attn_backward_cpu", [&] {
    backward_kernel<scalar_t>(v, shapes, starts, loc, attn, grad, g_value, g_loc, g_attn);
  });
  return {g_value, g_loc, g_attn};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("ms_deform_attn_forward", &ms_deform_attn_forward,
        "multi-scale deformable attention, forward (CPU)");
  m.def("ms_deform_attn_backward", &ms_deform_attn_backward,
        "multi-scale deformable attention, backward (CPU)");
}
