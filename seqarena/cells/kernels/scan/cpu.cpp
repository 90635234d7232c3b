// The diagonal linear recurrence h_t = a_t * h_{t-1} + b_t on the CPU: one sequential loop over time.
//
// Equations, backward and the choice of source: seqarena/cells/kernels/scan/__init__.py. `scan_backward`
// fuses the backward (the reversed scan with conj(a_{t+1}) and dL/da = lam_t conj(h_{t-1})) into one pass per
// batch row, reading a in place: no shifted copy of a, no h_{t-1} copy, no product tensor. The loop is
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
#include <vector>

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

template <typename T>
inline T conj_of(T x) {
  return x;
}

template <typename T>
inline c10::complex<T> conj_of(c10::complex<T> x) {
  return c10::complex<T>(x.real(), -x.imag());
}

// The backward of one batch row, last step first: lam_t = g_t + conj(a_{t+1}) lam_{t+1}, and
// dL/da_t = lam_t conj(h_{t-1}) (zero at t = 0: the scan starts from zero), written per step (`ga`
// [T, N]) or, for an `a` constant over time, summed over the steps into `ga` [N].
template <typename T>
void backward_row(const T* __restrict a, int64_t sat, int64_t san, const T* __restrict g, const T* __restrict h,
                  T* __restrict lam, T* __restrict ga, bool per_step, int64_t steps, int64_t width) {
  for (int64_t t = steps - 1; t >= 0; --t) {
    const T* __restrict gt = g + t * width;
    T* __restrict lt = lam + t * width;
    if (t == steps - 1) {
      for (int64_t n = 0; n < width; ++n) lt[n] = gt[n];
    } else {
      const T* __restrict an = a + (t + 1) * sat;
      const T* __restrict later = lt + width;
      for (int64_t n = 0; n < width; ++n) lt[n] = gt[n] + conj_of(an[n * san]) * later[n];
    }
    T* __restrict gat = per_step ? ga + t * width : ga;
    if (t == 0) {
      if (per_step) for (int64_t n = 0; n < width; ++n) gat[n] = T(0);
      continue;
    }
    const T* __restrict before = h + (t - 1) * width;
    if (per_step) {
      for (int64_t n = 0; n < width; ++n) gat[n] = lt[n] * conj_of(before[n]);
    } else {
      for (int64_t n = 0; n < width; ++n) gat[n] += lt[n] * conj_of(before[n]);
    }
  }
}

}  // namespace

// The fused backward: (lam [B, T, N], dL/da) from a (expanded to [B, T, N], any strides), dL/dh = g and h
// (contiguous [B, T, N]). `per_step`: dL/da is [B, T, N]; otherwise (a constant over time) [B, N].
std::vector<at::Tensor> scan_backward(const at::Tensor& a, const at::Tensor& g, const at::Tensor& h, bool per_step) {
  TORCH_CHECK(g.is_contiguous() && h.is_contiguous() && g.sizes() == h.sizes() && a.sizes() == h.sizes(),
              "scan_backward: g and h must be contiguous [B, T, N] and a expanded to their shape");
  TORCH_CHECK(a.scalar_type() == h.scalar_type() && g.scalar_type() == h.scalar_type(), "scan_backward: dtypes differ");
  const int64_t batch = h.size(0), steps = h.size(1), width = h.size(2);
  at::Tensor lam = at::empty_like(h);
  at::Tensor ga = per_step ? at::empty_like(h) : at::zeros({batch, width}, h.options());
  if (h.numel() == 0) return {lam, ga};
  const int64_t grain = std::max<int64_t>(1, 4096 / std::max<int64_t>(1, steps * width));
  AT_DISPATCH_FLOATING_AND_COMPLEX_TYPES(h.scalar_type(), "seqarena_scan_backward", [&] {
    const scalar_t* ap = a.data_ptr<scalar_t>();
    const scalar_t* gp = g.data_ptr<scalar_t>();
    const scalar_t* hp = h.data_ptr<scalar_t>();
    scalar_t* lp = lam.data_ptr<scalar_t>();
    scalar_t* gap = ga.data_ptr<scalar_t>();
    const int64_t sab = a.stride(0), sat = a.stride(1), san = a.stride(2);
    const int64_t row_ga = per_step ? steps * width : width;
    at::parallel_for(0, batch, grain, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        backward_row<scalar_t>(ap + r * sab, sat, san, gp + r * steps * width, hp + r * steps * width,
                               lp + r * steps * width, gap + r * row_ga, per_step, steps, width);
      }
    });
  });
  return {lam, ga};
}

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
  m.def("scan_backward", &scan_backward, "the reversed scan and dL/da of one scan, fused");
}
