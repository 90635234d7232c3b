// Helpers shared by the C++ sources of the BPTT kernels (cornn/cpu.cpp, janet/cpu.cpp, lem/cpu.cpp): argument
// checks, the parallel grain over batch rows, and the allocation of the large per-sequence buffers.
// cpp_build.py hashes this header into the cache key of every source that includes it.
#pragma once

#include <torch/extension.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace seqarena {

// Batch rows per parallel task: about 4096 units, so that small problems run inline.
inline int64_t row_grain(int64_t hidden) { return std::max<int64_t>(1, 4096 / std::max<int64_t>(1, hidden)); }

// Runs fn(b) for every batch row, in parallel blocks of rows.
template <typename Fn>
void for_rows(int64_t batch, int64_t hidden, const Fn& fn) {
  at::parallel_for(0, batch, row_grain(hidden), [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) fn(b);
  });
}

inline void check(const at::Tensor& t, const char* name, const at::Tensor& like, at::IntArrayRef sizes) {
  TORCH_CHECK(t.device().is_cpu(), name, " must be a CPU tensor, got ", t.device());
  TORCH_CHECK(t.scalar_type() == like.scalar_type(), name, " has dtype ", t.scalar_type(), ", expected ",
              like.scalar_type());
  TORCH_CHECK(t.sizes() == sizes, name, " must have shape ", sizes, ", got ", t.sizes());
}

// A time-major sequence [T, B, K] whose rows (the last dimension) are contiguous.
inline void check_rows(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.dim() == 3 && t.stride(2) == 1, name, " must be a [T, B, .] tensor with contiguous rows, got sizes ",
              t.sizes(), " and strides ", t.strides());
}

// An uninitialised buffer for per-step values of a whole sequence (tens of MB at T = 1000). Fresh
// memory of that size is faulted in page by page on first write; on Linux the buffer is advised
// to use transparent huge pages (where the system allows them), which makes those faults 512
// times fewer. The advice changes nothing but the page size.
inline at::Tensor sequence_buffer(at::IntArrayRef sizes, const at::TensorOptions& options) {
  at::Tensor buffer = at::empty(sizes, options);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr uintptr_t kHuge = uintptr_t(1) << 21;  // 2 MiB
  const auto begin = reinterpret_cast<uintptr_t>(buffer.data_ptr());
  const uintptr_t first = (begin + kHuge - 1) & ~(kHuge - 1);
  const uintptr_t last = (begin + buffer.nbytes()) & ~(kHuge - 1);
  if (last > first) madvise(reinterpret_cast<void*>(first), last - first, MADV_HUGEPAGE);
#endif
  return buffer;
}

}  // namespace seqarena
