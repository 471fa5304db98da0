// Written for envbuild's tests: the shape of pre-2.6 dispatch code.
#include <ATen/ATen.h>

at::Tensor scale(const at::Tensor& value, const at::Tensor& other) {
  AT_ASSERTM(value.type().is_cuda(), "value must be a CUDA tensor");
  auto out = at::empty_like(value);
  AT_DISPATCH_FLOATING_TYPES(value.scalar_type(), "scale_cuda", ([&] {
    launch_scale<scalar_t>(value.data<scalar_t>(), out.data<scalar_t>());
  }));
  AT_DISPATCH_FLOATING_TYPES_AND_HALF(
      other.scalar_type(), "scale_half", ([&] { launch_other<scalar_t>(other.type()); }));
  return out;
}
