// Launchers of the gated test op (no torch headers: keeps nvcc fast).
#pragma once
#include <cstdint>

template <typename T>
void envbuild_gated_scale_cpu(T* data, int64_t n, T factor);

#ifdef WITH_CUDA
template <typename T>
int envbuild_gated_scale_cuda(T* data, int64_t n, T factor);
#endif
