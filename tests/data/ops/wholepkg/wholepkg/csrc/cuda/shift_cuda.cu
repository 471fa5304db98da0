// CUDA path of the wholepkg test op: add a constant in place.
#include <cuda_runtime.h>
#include "../shift.h"

template <typename T>
__global__ void wholepkg_shift_kernel(T* data, int64_t n, T value) {
  int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) data[i] += value;
}

template <typename T>
int wholepkg_shift_cuda(T* data, int64_t n, T value) {
  const int threads = 128;
  const int64_t blocks = (n + threads - 1) / threads;
  if (n > 0) wholepkg_shift_kernel<T><<<static_cast<unsigned>(blocks), threads>>>(data, n, value);
  return static_cast<int>(cudaGetLastError());
}

template int wholepkg_shift_cuda<float>(float*, int64_t, float);
template int wholepkg_shift_cuda<double>(double*, int64_t, double);
