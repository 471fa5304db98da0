// Scales a vector in place; anonymous-namespace code gives nvcc's per-file module id a
// reason to appear in the symbol table (it must not vary between builds of one key).
namespace {
__device__ float twice(float x) { return 2.0f * x; }
}

__global__ void needsdep_scale(float* data, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) data[i] = twice(data[i]);
}

extern "C" int envbuild_needsdep_scale(float* data, int n) {
  needsdep_scale<<<(n + 127) / 128, 128>>>(data, n);
  return 0;
}
