// CUDA path of the gated test op: multiply in place, one thread per element.
#include <cuda_runtime.h>
#include "scale.h"

template <typename T>
__global__ void envbuild_gated_scale_kernel(T* data, int64_t n, T factor) {
  int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) data[i] *= factor;
}

template <typename T>
int envbuild_gated_scale_cuda(T* data, int64_t n, T factor) {
  const int threads = 128;
  const int64_t blocks = (n + threads - 1) / threads;
  if (n > 0) {
    envbuild_gated_scale_kernel<T><<<static_cast<unsigned>(blocks), threads>>>(data, n, factor);
  }
  return static_cast<int>(cudaGetLastError());
}

template int envbuild_gated_scale_cuda<float>(float*, int64_t, float);
template int envbuild_gated_scale_cuda<double>(double*, int64_t, double);
