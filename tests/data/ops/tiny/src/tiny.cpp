// Python binding of the tiny test kernel: add_scalar_(tensor, value) works in place on CUDA floats.
#include <torch/extension.h>
#include <cuda_runtime.h>

int envbuild_tiny_add_scalar(float* data, int64_t n, float value, cudaStream_t stream);

torch::Tensor add_scalar_(torch::Tensor t, double value) {
  TORCH_CHECK(t.is_cuda(), "add_scalar_ needs a CUDA tensor");
  TORCH_CHECK(t.scalar_type() == torch::kFloat, "add_scalar_ needs float32");
  TORCH_CHECK(t.is_contiguous(), "add_scalar_ needs a contiguous tensor");
  int rc = envbuild_tiny_add_scalar(t.data_ptr<float>(), t.numel(), static_cast<float>(value), 0);
  TORCH_CHECK(rc == 0, "kernel launch failed: ", cudaGetErrorString(static_cast<cudaError_t>(rc)));
  return t;
}

int cuda_runtime_version() {
  int v = 0;
  cudaRuntimeGetVersion(&v);
  return v;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("add_scalar_", &add_scalar_, "add a constant in place (CUDA, float32)");
  m.def("cuda_runtime_version", &cuda_runtime_version, "CUDA runtime version compiled against");
}
