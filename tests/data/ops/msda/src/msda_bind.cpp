// Python bindings and argument checks for the test MSDeformAttn op.
#include <torch/extension.h>
#include <vector>

torch::Tensor msda_cuda_forward(const torch::Tensor& value, const torch::Tensor& shapes,
                                const torch::Tensor& level_start, const torch::Tensor& loc,
                                const torch::Tensor& attn);
std::vector<torch::Tensor> msda_cuda_backward(const torch::Tensor& value, const torch::Tensor& shapes,
                                              const torch::Tensor& level_start, const torch::Tensor& loc,
                                              const torch::Tensor& attn, const torch::Tensor& grad_out);

static void check_inputs(const torch::Tensor& value, const torch::Tensor& shapes,
                         const torch::Tensor& level_start, const torch::Tensor& loc,
                         const torch::Tensor& attn, int64_t im2col_step) {
  for (const auto* t : {&value, &shapes, &level_start, &loc, &attn}) {
    TORCH_CHECK(t->is_cuda(), "ms_deform_attn: every input must be a CUDA tensor");
    TORCH_CHECK(t->is_contiguous(), "ms_deform_attn: every input must be contiguous");
  }
  TORCH_CHECK(value.dim() == 4, "value must be (N, S, heads, channels)");
  TORCH_CHECK(loc.dim() == 6 && loc.size(5) == 2, "sampling_loc must be (N, Q, heads, L, P, 2)");
  TORCH_CHECK(attn.dim() == 5, "attn_weight must be (N, Q, heads, L, P)");
  TORCH_CHECK(loc.scalar_type() == value.scalar_type() && attn.scalar_type() == value.scalar_type(),
              "value, sampling_loc and attn_weight must share a dtype");
  TORCH_CHECK(shapes.scalar_type() == torch::kLong && level_start.scalar_type() == torch::kLong,
              "spatial_shapes and level_start_index must be int64");
  const int64_t batch = value.size(0);
  const int64_t step = std::min(batch, im2col_step);
  TORCH_CHECK(step > 0 && batch % step == 0, "batch ", batch, " must be divisible by im2col_step ", step);
}

torch::Tensor ms_deform_attn_forward(const torch::Tensor& value, const torch::Tensor& spatial_shapes,
                                     const torch::Tensor& level_start_index,
                                     const torch::Tensor& sampling_loc, const torch::Tensor& attn_weight,
                                     int64_t im2col_step) {
  check_inputs(value, spatial_shapes, level_start_index, sampling_loc, attn_weight, im2col_step);
  return msda_cuda_forward(value, spatial_shapes, level_start_index, sampling_loc, attn_weight);
}

std::vector<torch::Tensor> ms_deform_attn_backward(
    const torch::Tensor& value, const torch::Tensor& spatial_shapes, const torch::Tensor& level_start_index,
    const torch::Tensor& sampling_loc, const torch::Tensor& attn_weight, const torch::Tensor& grad_output,
    int64_t im2col_step) {
  check_inputs(value, spatial_shapes, level_start_index, sampling_loc, attn_weight, im2col_step);
  TORCH_CHECK(grad_output.is_cuda(), "grad_output must be a CUDA tensor");
  return msda_cuda_backward(value, spatial_shapes, level_start_index, sampling_loc, attn_weight,
                            grad_output.contiguous());
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("ms_deform_attn_forward", &ms_deform_attn_forward, "multi-scale deformable attention forward");
  m.def("ms_deform_attn_backward", &ms_deform_attn_backward, "multi-scale deformable attention backward");
}
