// Launchers of the wholepkg test op (no torch headers, so nvcc stays fast).
#pragma once
#include <cstdint>

#ifdef WITH_CUDA
template <typename T>
int wholepkg_shift_cuda(T* data, int64_t n, T value);
#endif
