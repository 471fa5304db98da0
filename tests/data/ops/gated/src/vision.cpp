// Binding of the gated test op: scale_(tensor, factor) in place; has_cuda() says whether
// the CUDA sources were compiled in (the branch setup.py takes when it sees a GPU).
#include <torch/extension.h>
#include "scale.h"

torch::Tensor scale_(torch::Tensor x, double factor) {
  TORCH_CHECK(x.is_contiguous(), "scale_ needs a contiguous tensor");
  AT_DISPATCH_FLOATING_TYPES(x.type(), "scale_", ([&] {
    scalar_t f = static_cast<scalar_t>(factor);
    if (x.is_cuda()) {
#ifdef WITH_CUDA
      int rc = envbuild_gated_scale_cuda<scalar_t>(x.data_ptr<scalar_t>(), x.numel(), f);
      TORCH_CHECK(rc == 0, "kernel launch failed: ", rc);
#else
      TORCH_CHECK(false, "built without CUDA");
#endif
    } else {
      envbuild_gated_scale_cpu<scalar_t>(x.data_ptr<scalar_t>(), x.numel(), f);
    }
  }));
  return x;
}

bool has_cuda() {
#ifdef WITH_CUDA
  return true;
#else
  return false;
#endif
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("scale_", &scale_, "multiply in place (CPU or CUDA, float32/float64)");
  m.def("has_cuda", &has_cuda, "true when the CUDA sources were compiled in");
}
