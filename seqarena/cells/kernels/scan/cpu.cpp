// The diagonal linear recurrence h_t = a_t * h_{t-1} + b_t on the CPU: one sequential loop over time.
//
// Equations, backward and the choice of source: seqarena/cells/kernels/scan/__init__.py. The loop is
// the definition itself (work O(B T N), no extra memory): per batch row, one pass over the steps, and
// per step one pass over the N channels, which GCC vectorises (the channels of b and h are contiguous).
// Batch rows run in parallel. `reverse` walks the steps last first (h_t = a_t * h_{t+1} + b_t), the
// form the backward pass needs. a may have any strides (a constant [N] recurrence arrives expanded to
// [B, T, N] with zero strides); b is contiguous [B, T, N]. Real (float32/float64) and complex
// (complex64/complex128) tensors.
#include <torch/extension.h>

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <algorithm>

namespace {

template <typename T>
void scan_row(const T* __restrict a, int64_t sat, int64_t san, const T* __restrict b, T* __restrict h, int64_t steps,
              int64_t width, bool reverse) {
  for (int64_t i = 0; i < steps; ++i) {
    const int64_t t = reverse ? steps - 1 - i : i;
    const T* __restrict at = a + t * sat;
    const T* __restrict bt = b + t * width;
    T* __restrict ht = h + t * width;
    if (i == 0) {
      for (int64_t n = 0; n < width; ++n) ht[n] = bt[n];
      continue;
    }
    const T* __restrict prev = reverse ? ht + width : ht - width;
    if (san == 1) {
      for (int64_t n = 0; n < width; ++n) ht[n] = at[n] * prev[n] + bt[n];
    } else {
      for (int64_t n = 0; n < width; ++n) ht[n] = at[n * san] * prev[n] + bt[n];
    }
  }
}

}  // namespace

at::Tensor scan(const at::Tensor& a, const at::Tensor& b, bool reverse) {
  TORCH_CHECK(b.device().is_cpu() && b.dim() == 3 && b.is_contiguous(), "scan: b must be a contiguous CPU [B, T, N]");
  TORCH_CHECK(a.sizes() == b.sizes(), "scan: a must be expanded to b's shape ", b.sizes(), ", got ", a.sizes());
  TORCH_CHECK(a.scalar_type() == b.scalar_type(), "scan: a has dtype ", a.scalar_type(), ", b ", b.scalar_type());
  const int64_t batch = b.size(0), steps = b.size(1), width = b.size(2);
  at::Tensor h = at::empty_like(b);
  if (b.numel() == 0) return h;
  const int64_t grain = std::max<int64_t>(1, 4096 / std::max<int64_t>(1, steps * width));
  AT_DISPATCH_FLOATING_AND_COMPLEX_TYPES(b.scalar_type(), "seqarena_scan", [&] {
    const scalar_t* ap = a.data_ptr<scalar_t>();
    const scalar_t* bp = b.data_ptr<scalar_t>();
    scalar_t* hp = h.data_ptr<scalar_t>();
    const int64_t sab = a.stride(0), sat = a.stride(1), san = a.stride(2);
    at::parallel_for(0, batch, grain, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        scan_row<scalar_t>(ap + r * sab, sat, san, bp + r * steps * width, hp + r * steps * width, steps, width,
                           reverse);
      }
    });
  });
  return h;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("scan", &scan, "h_t = a_t * h_{t-1} + b_t over [B, T, N] (reverse: from the last step)");
}
