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
#include <cmath>
#include <cstdint>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace {

// Ask the kernel for transparent huge pages on a fresh output buffer before its first write. A [B, T, N]
// output of a long scan is hundreds of MB, written once: with 4 KiB pages its first-touch page faults cost
// more than the scan itself (measured: 457k minor faults and 0.93 s for a 2000-step LRU-shaped scan's
// forward and backward, 0.41 s with huge pages). Only the 2 MiB-aligned interior is advised; a hint, so a
// kernel without THP (or with THP "never") simply ignores it.
void advise_huge_pages(const at::Tensor& t) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr uintptr_t huge = uintptr_t(2) << 20;
  if (t.nbytes() < 2 * huge) return;
  const auto begin = reinterpret_cast<uintptr_t>(t.data_ptr());
  const uintptr_t lo = (begin + huge - 1) & ~(huge - 1), hi = (begin + t.nbytes()) & ~(huge - 1);
  if (hi > lo) madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_HUGEPAGE);
#endif
}

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
  advise_huge_pages(lam);
  if (per_step) advise_huge_pages(ga);
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
  advise_huge_pages(h);
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

// The selective scan of Mamba (S6) fused with its read-out, one (batch, inner channel) row at a time:
//
//   h_t[n] = exp(d_t A[n]) h_{t-1}[n] + d_t B_t[n] x_t,      y_t = sum_n C_t[n] h_t[n]      (h_0 = 0)
//
// with d = delta, x [B, E, T] (time contiguous), A [E, N], B and C [B, T, N]. h [N] lives in a row-local
// buffer: the [B, T, E, N] states (and exp(d A), d B x) are never written to memory. The forward keeps h
// at the end of every `chunk` steps (`ckpt` [B, E, ceil(T / chunk), N]); the backward walks the chunks
// last first, recomputes each chunk's states from its checkpoint into a [chunk + 1, N] buffer and runs the
// reversed recurrence through it (lam_t = g_t C_t + a_{t+1} lam_{t+1}, a_t = exp(d_t A)), accumulating
//   dC_t += g_t h_t,  dB_t += lam_t d_t x_t,  dx_t = d_t sum_n lam_t B_t,
//   dd_t = sum_n lam_t (a_t h_{t-1} A + B_t x_t),  dA += lam_t a_t h_{t-1} d_t.
// Rows run in parallel over the batch in the backward (a batch row's dB, dC sum over its channels; dA is
// returned per batch row, [B, E, N], and summed by the caller), over batch x channels in the forward.
namespace {

template <typename T>
void selective_row(const T* __restrict x, const T* __restrict d, const T* __restrict A, const T* __restrict Bm,
                   const T* __restrict Cm, T* __restrict y, T* __restrict ckpt, T* __restrict h, int64_t steps,
                   int64_t width, int64_t chunk) {
  for (int64_t n = 0; n < width; ++n) h[n] = T(0);
  for (int64_t t = 0; t < steps; ++t) {
    const T dt = d[t], dx = d[t] * x[t];
    const T* __restrict bt = Bm + t * width;
    const T* __restrict ct = Cm + t * width;
    T acc = T(0);
    for (int64_t n = 0; n < width; ++n) {
      h[n] = std::exp(dt * A[n]) * h[n] + dx * bt[n];
      acc += ct[n] * h[n];
    }
    y[t] = acc;
    if ((t + 1) % chunk == 0 || t == steps - 1) {
      T* __restrict kept = ckpt + (t / chunk) * width;
      for (int64_t n = 0; n < width; ++n) kept[n] = h[n];
    }
  }
}

// One (batch, channel) row of the backward. `hs` holds chunk + 1 states (h before the chunk, then each
// step's), `as` chunk factors a_t; `lam` and `a_next` carry lam_{t+1} and a_{t+1} across chunks.
template <typename T>
void selective_row_backward(const T* __restrict x, const T* __restrict d, const T* __restrict A,
                            const T* __restrict Bm, const T* __restrict Cm, const T* __restrict g,
                            const T* __restrict ckpt, T* __restrict dx, T* __restrict dd, T* __restrict dA,
                            T* __restrict dB, T* __restrict dC, T* __restrict hs, T* __restrict as,
                            T* __restrict lam, T* __restrict a_next, int64_t steps, int64_t width, int64_t chunk) {
  for (int64_t n = 0; n < width; ++n) lam[n] = a_next[n] = T(0);
  const int64_t chunks = (steps + chunk - 1) / chunk;
  for (int64_t c = chunks - 1; c >= 0; --c) {
    const int64_t t0 = c * chunk, t1 = std::min(steps, t0 + chunk);
    for (int64_t n = 0; n < width; ++n) hs[n] = c == 0 ? T(0) : ckpt[(c - 1) * width + n];
    for (int64_t t = t0; t < t1; ++t) {
      const T dt = d[t], dxt = d[t] * x[t];
      const T* __restrict bt = Bm + t * width;
      const T* __restrict prev = hs + (t - t0) * width;
      T* __restrict cur = hs + (t - t0 + 1) * width;
      T* __restrict at = as + (t - t0) * width;
      for (int64_t n = 0; n < width; ++n) {
        at[n] = std::exp(dt * A[n]);
        cur[n] = at[n] * prev[n] + dxt * bt[n];
      }
    }
    for (int64_t t = t1 - 1; t >= t0; --t) {
      const T gt = g[t], dt = d[t], xt = x[t];
      const T* __restrict bt = Bm + t * width;
      const T* __restrict ct = Cm + t * width;
      const T* __restrict prev = hs + (t - t0) * width;
      const T* __restrict cur = hs + (t - t0 + 1) * width;
      const T* __restrict at = as + (t - t0) * width;
      T* __restrict dbt = dB + t * width;
      T* __restrict dct = dC + t * width;
      T sum_dd = T(0), sum_dx = T(0);
      for (int64_t n = 0; n < width; ++n) {
        const T l = gt * ct[n] + a_next[n] * lam[n];
        const T la = l * at[n] * prev[n];
        lam[n] = l;
        a_next[n] = at[n];
        dct[n] += gt * cur[n];
        dbt[n] += l * dt * xt;
        dA[n] += la * dt;
        sum_dd += la * A[n] + l * bt[n] * xt;
        sum_dx += l * bt[n];
      }
      dd[t] = sum_dd;
      dx[t] = sum_dx * dt;
    }
  }
}

void check_selective(const at::Tensor& x, const at::Tensor& delta, const at::Tensor& A, const at::Tensor& Bm,
                     const at::Tensor& Cm) {
  TORCH_CHECK(x.device().is_cpu() && x.dim() == 3 && x.is_contiguous() && delta.sizes() == x.sizes() &&
                  delta.is_contiguous(),
              "selective_scan: x and delta must be contiguous CPU [B, E, T] of one shape");
  const int64_t batch = x.size(0), inner = x.size(1), steps = x.size(2);
  TORCH_CHECK(A.dim() == 2 && A.size(0) == inner && A.is_contiguous(), "selective_scan: A must be contiguous [E, N]");
  const int64_t width = A.size(1);
  TORCH_CHECK(Bm.sizes() == at::IntArrayRef({batch, steps, width}) && Cm.sizes() == Bm.sizes() &&
                  Bm.is_contiguous() && Cm.is_contiguous(),
              "selective_scan: B and C must be contiguous [B, T, N]");
  for (const auto* t : {&delta, &A, &Bm, &Cm}) {
    TORCH_CHECK(t->scalar_type() == x.scalar_type(), "selective_scan: dtypes differ");
  }
}

}  // namespace

// (y [B, E, T], ckpt [B, E, ceil(T / chunk), N]) of the selective scan (comment above `selective_row`).
std::vector<at::Tensor> selective_scan(const at::Tensor& x, const at::Tensor& delta, const at::Tensor& A,
                                       const at::Tensor& Bm, const at::Tensor& Cm, int64_t chunk) {
  check_selective(x, delta, A, Bm, Cm);
  TORCH_CHECK(chunk >= 1, "selective_scan: chunk must be >= 1");
  const int64_t batch = x.size(0), inner = x.size(1), steps = x.size(2), width = A.size(1);
  const int64_t chunks = (steps + chunk - 1) / chunk;
  at::Tensor y = at::empty_like(x);
  at::Tensor ckpt = at::empty({batch, inner, chunks, width}, x.options());
  if (x.numel() == 0 || width == 0) return {y.zero_(), ckpt};
  advise_huge_pages(y);
  advise_huge_pages(ckpt);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "seqarena_selective_scan", [&] {
    const scalar_t *xp = x.data_ptr<scalar_t>(), *dp = delta.data_ptr<scalar_t>(), *ap = A.data_ptr<scalar_t>();
    const scalar_t *bp = Bm.data_ptr<scalar_t>(), *cp = Cm.data_ptr<scalar_t>();
    scalar_t *yp = y.data_ptr<scalar_t>(), *kp = ckpt.data_ptr<scalar_t>();
    at::parallel_for(0, batch * inner, 1, [&](int64_t begin, int64_t end) {
      std::vector<scalar_t> h(width);
      for (int64_t r = begin; r < end; ++r) {
        const int64_t b = r / inner, e = r % inner;
        selective_row<scalar_t>(xp + r * steps, dp + r * steps, ap + e * width, bp + b * steps * width,
                                cp + b * steps * width, yp + r * steps, kp + r * chunks * width, h.data(), steps,
                                width, chunk);
      }
    });
  });
  return {y, ckpt};
}

// (dx, ddelta [B, E, T], dA per batch row [B, E, N], dB, dC [B, T, N]) from dL/dy = g [B, E, T].
std::vector<at::Tensor> selective_scan_backward(const at::Tensor& x, const at::Tensor& delta, const at::Tensor& A,
                                                const at::Tensor& Bm, const at::Tensor& Cm, const at::Tensor& g,
                                                const at::Tensor& ckpt, int64_t chunk) {
  check_selective(x, delta, A, Bm, Cm);
  TORCH_CHECK(g.sizes() == x.sizes() && g.is_contiguous() && g.scalar_type() == x.scalar_type(),
              "selective_scan_backward: g must be contiguous like x");
  const int64_t batch = x.size(0), inner = x.size(1), steps = x.size(2), width = A.size(1);
  const int64_t chunks = (steps + chunk - 1) / chunk;
  TORCH_CHECK(ckpt.sizes() == at::IntArrayRef({batch, inner, chunks, width}) && ckpt.is_contiguous(),
              "selective_scan_backward: checkpoints of another shape");
  at::Tensor dx = at::empty_like(x), dd = at::empty_like(x);
  at::Tensor dA = at::zeros({batch, inner, width}, x.options());
  at::Tensor dB = at::zeros_like(Bm), dC = at::zeros_like(Cm);
  if (x.numel() == 0 || width == 0) return {dx.zero_(), dd.zero_(), dA, dB, dC};
  advise_huge_pages(dx);
  advise_huge_pages(dd);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "seqarena_selective_scan_backward", [&] {
    const scalar_t *xp = x.data_ptr<scalar_t>(), *dp = delta.data_ptr<scalar_t>(), *ap = A.data_ptr<scalar_t>();
    const scalar_t *bp = Bm.data_ptr<scalar_t>(), *cp = Cm.data_ptr<scalar_t>(), *gp = g.data_ptr<scalar_t>();
    const scalar_t* kp = ckpt.data_ptr<scalar_t>();
    scalar_t *dxp = dx.data_ptr<scalar_t>(), *ddp = dd.data_ptr<scalar_t>(), *dap = dA.data_ptr<scalar_t>();
    scalar_t *dbp = dB.data_ptr<scalar_t>(), *dcp = dC.data_ptr<scalar_t>();
    at::parallel_for(0, batch, 1, [&](int64_t begin, int64_t end) {
      std::vector<scalar_t> hs((chunk + 1) * width), as(chunk * width), lam(width), a_next(width);
      for (int64_t b = begin; b < end; ++b) {
        for (int64_t e = 0; e < inner; ++e) {
          const int64_t r = b * inner + e;
          selective_row_backward<scalar_t>(xp + r * steps, dp + r * steps, ap + e * width, bp + b * steps * width,
                                           cp + b * steps * width, gp + r * steps, kp + r * chunks * width,
                                           dxp + r * steps, ddp + r * steps, dap + r * width,
                                           dbp + b * steps * width, dcp + b * steps * width, hs.data(), as.data(),
                                           lam.data(), a_next.data(), steps, width, chunk);
        }
      }
    });
  });
  return {dx, dd, dA, dB, dC};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("scan", &scan, "h_t = a_t * h_{t-1} + b_t over [B, T, N] (reverse: from the last step)");
  m.def("scan_backward", &scan_backward, "the reversed scan and dL/da of one scan, fused");
  m.def("selective_scan", &selective_scan, "Mamba's selective scan with its read-out y_t = C_t h_t, fused");
  m.def("selective_scan_backward", &selective_scan_backward, "its backward, recomputing h chunk by chunk");
}
