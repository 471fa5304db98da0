// Binding of wholepkg._C: shift_(tensor, value) in place, and has_cuda().
#include <torch/extension.h>
#include "shift.h"

torch::Tensor shift_(torch::Tensor x, double value) {
  TORCH_CHECK(x.is_contiguous(), "shift_ needs a contiguous tensor");
  AT_DISPATCH_FLOATING_TYPES(x.type(), "shift_", ([&] {
    scalar_t v = static_cast<scalar_t>(value);
    if (x.type().is_cuda()) {
#ifdef WITH_CUDA
      TORCH_CHECK(wholepkg_shift_cuda<scalar_t>(x.data_ptr<scalar_t>(), x.numel(), v) == 0,
                  "kernel launch failed");
#else
      TORCH_CHECK(false, "built without CUDA");
#endif
    } else {
      scalar_t* p = x.data_ptr<scalar_t>();
      for (int64_t i = 0; i < x.numel(); ++i) p[i] += v;
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
  m.def("shift_", &shift_, "add a constant in place (CPU or CUDA, float32/float64)");
  m.def("has_cuda", &has_cuda, "true when the CUDA sources were compiled in");
}
