// Adds a constant to every element; plain CUDA runtime, no torch headers (keeps nvcc fast).
#include <cuda_runtime.h>
#include <cstdint>

__global__ void add_scalar_kernel(float* data, int64_t n, float value) {
  int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) data[i] += value;
}

int envbuild_tiny_add_scalar(float* data, int64_t n, float value, cudaStream_t stream) {
  const int threads = 256;
  const int64_t blocks = (n + threads - 1) / threads;
  if (n > 0) add_scalar_kernel<<<static_cast<unsigned>(blocks), threads, 0, stream>>>(data, n, value);
  return static_cast<int>(cudaGetLastError());
}
