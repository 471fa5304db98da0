// CPU path of the gated test op: multiply in place.
#include "scale.h"

template <typename T>
void envbuild_gated_scale_cpu(T* data, int64_t n, T factor) {
  for (int64_t i = 0; i < n; ++i) data[i] *= factor;
}

template void envbuild_gated_scale_cpu<float>(float*, int64_t, float);
template void envbuild_gated_scale_cpu<double>(double*, int64_t, double);
