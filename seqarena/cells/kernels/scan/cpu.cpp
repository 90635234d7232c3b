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
#include <optional>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif
#if defined(__SSE__)
#include <xmmintrin.h>
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

// Flush denormals to zero (FTZ and DAZ) in this thread while one kernel runs, restoring the caller's mode
// after. A gradient that enters at the last step only (a loss on the final output) decays through the
// reversed recurrence, lam_t = a lam_{t+1} with |a| < 1, into float32 denormals within a few dozen steps;
// each denormal operand costs the x86 FPU a microcode assist of ~100 cycles: Mamba's fused backward took
// 8.4 s instead of 1.3 s at B = 64, T = 1000, E = 256, N = 16. Values below 1.2e-38 (2.2e-308 in float64)
// become zero, as on a GPU with fast math; nothing else changes.
class FlushDenormals {
 public:
#if defined(__SSE__)
  FlushDenormals() : saved_(_mm_getcsr()) { _mm_setcsr(saved_ | 0x8040); }
  ~FlushDenormals() { _mm_setcsr(saved_); }

 private:
  unsigned int saved_;
#endif
};

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
      if (san == 1) {  // contiguous channels (the usual case): a loop GCC vectorises
        for (int64_t n = 0; n < width; ++n) lt[n] = gt[n] + conj_of(an[n]) * later[n];
      } else {
        for (int64_t n = 0; n < width; ++n) lt[n] = gt[n] + conj_of(an[n * san]) * later[n];
      }
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

// The same for complex tensors, in real arithmetic on the interleaved (re, im) pairs, with a's step copied into
// split local rows (`ar`, `ai`, once when a is constant over time) and dL/da summed in split local rows: the
// loops then vectorise (c10::complex products with a strided a did not: 0.185 s for a [16, 10^4, 256]
// complex64 backward whose forward takes 0.045 s).
template <typename R>
void backward_row(const c10::complex<R>* a, int64_t sat, int64_t san, const c10::complex<R>* g,
                  const c10::complex<R>* h, c10::complex<R>* lam, c10::complex<R>* ga, bool per_step, int64_t steps,
                  int64_t width) {
  std::vector<R> buf(4 * width, R(0));
  R* __restrict ar = buf.data();
  R* __restrict ai = ar + width;
  R* __restrict sr = ai + width;  // sum over t of Re(lam_t conj(h_{t-1})) (a constant over time)
  R* __restrict si = sr + width;
  const R* __restrict ap = reinterpret_cast<const R*>(a);
  const R* __restrict gp = reinterpret_cast<const R*>(g);
  const R* __restrict hp = reinterpret_cast<const R*>(h);
  R* __restrict lp = reinterpret_cast<R*>(lam);
  R* __restrict gap = reinterpret_cast<R*>(ga);
  auto load_a = [&](int64_t t) {
    const R* __restrict at = ap + 2 * t * sat;
    for (int64_t n = 0; n < width; ++n) {
      ar[n] = at[2 * n * san];
      ai[n] = at[2 * n * san + 1];
    }
  };
  if (sat == 0) load_a(0);
  // The channel loops run from the last channel down, so that memory is walked in one descending direction
  // (time and channels alike); ascending channels within descending steps cost ~40 % more (the backward of a
  // [16, 10^4, 256] complex64 scan with a constant a, one thread, min of 5: 130 ms against 93 ms, this row's
  // code compiled alone; why the direction matters this much on this AMD EPYC was not pinned down).
  for (int64_t t = steps - 1; t >= 0; --t) {
    const R* __restrict gt = gp + 2 * t * width;
    R* __restrict lt = lp + 2 * t * width;
    if (t == steps - 1) {
      for (int64_t i = 2 * width - 1; i >= 0; --i) lt[i] = gt[i];
    } else {
      if (sat != 0) load_a(t + 1);
      const R* __restrict later = lt + 2 * width;
      for (int64_t n = width - 1; n >= 0; --n) {  // lam_t = g_t + conj(a_{t+1}) lam_{t+1}
        const R lr = later[2 * n], li = later[2 * n + 1];
        lt[2 * n] = gt[2 * n] + ar[n] * lr + ai[n] * li;
        lt[2 * n + 1] = gt[2 * n + 1] + ar[n] * li - ai[n] * lr;
      }
    }
    if (!per_step) continue;  // dL/da summed over time below, in a pass of its own
    R* __restrict gat = gap + 2 * t * width;
    if (t == 0) {
      for (int64_t i = 0; i < 2 * width; ++i) gat[i] = R(0);
      continue;
    }
    const R* __restrict before = hp + 2 * (t - 1) * width;
    for (int64_t n = width - 1; n >= 0; --n) {  // lam_t conj(h_{t-1})
      const R lr = lt[2 * n], li = lt[2 * n + 1], hr = before[2 * n], hi = before[2 * n + 1];
      gat[2 * n] = lr * hr + li * hi;
      gat[2 * n + 1] = li * hr - lr * hi;
    }
  }
  if (per_step) return;
  // dL/da = sum_t lam_t conj(h_{t-1}) for an a constant over time, as a second pass over lam and h in ascending
  // order: reading them again costs less than accumulating inside the descending pass (78 ms against 93 ms for
  // the backward above; through the extension 134 ms before both changes, 98 ms after).
  for (int64_t t = 1; t < steps; ++t) {
    const R* __restrict lt = lp + 2 * t * width;
    const R* __restrict before = hp + 2 * (t - 1) * width;
    for (int64_t n = 0; n < width; ++n) {
      const R lr = lt[2 * n], li = lt[2 * n + 1], hr = before[2 * n], hi = before[2 * n + 1];
      sr[n] += lr * hr + li * hi;
      si[n] += li * hr - lr * hi;
    }
  }
  for (int64_t n = 0; n < width; ++n) {
    gap[2 * n] = sr[n];
    gap[2 * n + 1] = si[n];
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
      FlushDenormals flush;
      for (int64_t r = begin; r < end; ++r) {
        backward_row(ap + r * sab, sat, san, gp + r * steps * width, hp + r * steps * width,
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
      FlushDenormals flush;
      for (int64_t r = begin; r < end; ++r) {
        scan_row<scalar_t>(ap + r * sab, sat, san, bp + r * steps * width, hp + r * steps * width, steps, width,
                           reverse);
      }
    });
  });
  return h;
}

// The selective scan of Mamba (S6) fused with what surrounds it in the block, one batch row at a time:
//
//   d_t = softplus(dt_t)  (or dt_t itself),   h_t[n, e] = exp(d_t[e] A[e, n]) h_{t-1}[n, e] + d_t[e] B_t[n] x_t[e],
//   y_t[e] = sum_n C_t[n] h_t[n, e],          out_t[e] = (y_t[e] + D[e] x_t[e]) * silu(z_t[e])     (h_0 = 0)
//
// D and z are optional (without them out = y + D x or out = y). x, dt, z are [B, T, E] with the channels
// contiguous (any batch and time strides: z is the second half of Mamba's in_proj output); B, C [B, T, N]
// likewise (slices of x_proj's output); A arrives transposed, At [N, E]. Per batch row the states h [N, E]
// live in a row-local buffer and every loop runs over the E contiguous channels, so it vectorises without
// horizontal sums (the [B, T, E, N] states, exp(d A) and d B x are never written to memory, and nothing is
// transposed). exp(d A) is computed as exp2(d A log2 e) with A log2 e formed once per call (`exp2_of`: for
// float an inline polynomial that GCC vectorises, so the loop has no libm call in it). The forward keeps h at
// the end of every `chunk` steps (`ckpt` [B, ceil(T / chunk), N, E]); the backward walks the chunks last
// first and recomputes each chunk from its checkpoint into row-local buffers: the states ([chunk + 1, N, E]),
// the decays a = exp(d A) ([chunk + 1, N, E]: one exp per state and step in the backward, not two), and per
// step d, d x and y + D x ([chunk, E]), then runs the reversed recurrence through them, with gy = dL/dy:
//   gy_t = g_t silu(z_t),  dz_t = g_t (y_t + D x_t) silu'(z_t),  dD += gy_t x_t,
//   lam_t = gy_t C_t + a_{t+1} lam_{t+1}   (a_t = exp(d_t A)),
//   dC_t = sum_e gy_t h_t,  dB_t = sum_e lam_t d_t x_t,  dx_t = D gy_t + d_t sum_n lam_t B_t,
//   dd_t = sum_n lam_t (a_t h_{t-1} A + B_t x_t),  ddt_t = dd_t softplus'(dt_t),  dA += lam_t a_t h_{t-1} d_t.
// Batch rows run in parallel; dA [B, N, E] and dD [B, E] are per batch row and summed by the caller.
namespace {

// torch's softplus (beta 1, threshold 20) and its derivative.
template <typename T>
inline T softplus_of(T v) {
  return v > T(20) ? v : std::log1p(std::exp(v));
}

template <typename T>
inline T softplus_grad(T v) {
  return v > T(20) ? T(1) : T(1) / (T(1) + std::exp(-v));
}

// 2^v. double: libm's exp2 (libmvec's vector form under -ffast-math).
template <typename T>
inline T exp2_of(T v) {
  return std::exp2(v);
}

// float: 2^v = 2^k 2^r with k = round(v) and r = v - k in [-1/2, 1/2]; 2^r by Cephes' exp2f polynomial
// (degree 6, relative error about 2e-7, that of libm's expf to within a few ulp), 2^k written into the
// exponent bits. v is clamped to [-127, 127]: below -126 the result is 0 (a denormal flushed, as the
// kernels flush denormals anyway), above 127 it saturates at 2^127 instead of inf. Plain scalar code with
// no call, so GCC vectorises the loops around it (libm's expf would be a call per 16 lanes).
template <>
inline float exp2_of<float>(float v) {
  v = std::fmin(std::fmax(v, -127.0f), 127.0f);
  const float k = std::nearbyint(v);
  const float r = v - k;
  float p = 1.535336188319500e-4f;
  p = p * r + 1.339887440266574e-3f;
  p = p * r + 9.618437357674640e-3f;
  p = p * r + 5.550332471162809e-2f;
  p = p * r + 2.402264791363012e-1f;
  p = p * r + 6.931472028550421e-1f;
  p = p * r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(k) + 127) * (int32_t(1) << 23);  // k = -127: 0.0f
  return p * __builtin_bit_cast(float, bits);
}

constexpr double kLog2e = 1.4426950408889634;  // log2(e): exp(d A) = exp2(d A log2 e)

struct Rows {  // where one batch row's tensors start and their time strides
  int64_t x, dt, z, bm, cm;
};

// One batch row of the forward. `A2` is At log2 e; `h` [N, E], `delta`, `bx`, `y` [E] are scratch.
template <typename T>
void selective_forward_row(const T* __restrict x, const T* __restrict dt, const T* __restrict A2,
                           const T* __restrict Bm, const T* __restrict Cm, const T* __restrict D,
                           const T* __restrict z, const Rows& st, T* __restrict out, T* __restrict ckpt,
                           T* __restrict h, T* __restrict delta, T* __restrict bx, T* __restrict y, int64_t steps,
                           int64_t inner, int64_t width, int64_t chunk, bool softplus) {
  for (int64_t i = 0; i < width * inner; ++i) h[i] = T(0);
  for (int64_t t = 0; t < steps; ++t) {
    const T* __restrict xt = x + t * st.x;
    const T* __restrict dtt = dt + t * st.dt;
    const T* __restrict bt = Bm + t * st.bm;
    const T* __restrict ct = Cm + t * st.cm;
    for (int64_t e = 0; e < inner; ++e) {
      const T d = softplus ? softplus_of(dtt[e]) : dtt[e];
      delta[e] = d;
      bx[e] = d * xt[e];
      y[e] = D != nullptr ? D[e] * xt[e] : T(0);
    }
    for (int64_t n = 0; n < width; ++n) {
      const T bn = bt[n], cn = ct[n];
      const T* __restrict an = A2 + n * inner;
      T* __restrict hn = h + n * inner;
      for (int64_t e = 0; e < inner; ++e) {
        const T hv = exp2_of(delta[e] * an[e]) * hn[e] + bx[e] * bn;
        hn[e] = hv;
        y[e] += cn * hv;
      }
    }
    T* __restrict ot = out + t * inner;
    if (z != nullptr) {
      const T* __restrict zt = z + t * st.z;
      for (int64_t e = 0; e < inner; ++e) ot[e] = y[e] * zt[e] / (T(1) + std::exp(-zt[e]));
    } else {
      for (int64_t e = 0; e < inner; ++e) ot[e] = y[e];
    }
    if ((t + 1) % chunk == 0 || t == steps - 1) {
      T* __restrict kept = ckpt + (t / chunk) * width * inner;
      for (int64_t i = 0; i < width * inner; ++i) kept[i] = h[i];
    }
  }
}

// Row-local buffers of the backward (comment above `softplus_of`): `hs` the states h_{t0-1} .. h_{t1-1} of one
// chunk, `as` the decays a_{t0} .. a_{t1-1} and then a_{t1} (the first of the later chunk; zero after the last
// step), both [chunk + 1, N, E]; `lam` [N, E] carries lam_{t+1}; `delta`, `dx`, `yd` [chunk, E] hold d, d x and
// y + D x per step; `gy`, `dxa`, `dda` [E] are scratch rows.
template <typename T>
struct BackwardBuffers {
  T *hs, *as, *lam, *delta, *dx, *yd, *gy, *dxa, *dda;
};

// Recomputes steps t0 .. t0 + len - 1 from h_{t0-1} (already in hs[0]) into the buffers.
template <typename T>
void recompute_chunk(const T* __restrict x, const T* __restrict dt, const T* __restrict A2, const T* __restrict Bm,
                     const T* __restrict Cm, const T* __restrict D, const Rows& st, const BackwardBuffers<T>& buf,
                     int64_t t0, int64_t len, int64_t inner, int64_t width, bool softplus) {
  const int64_t plane = width * inner;
  for (int64_t i = 0; i < len; ++i) {
    const int64_t t = t0 + i;
    const T* __restrict xt = x + t * st.x;
    const T* __restrict dtt = dt + t * st.dt;
    const T* __restrict bt = Bm + t * st.bm;
    const T* __restrict ct = Cm + t * st.cm;
    T* __restrict di = buf.delta + i * inner;
    T* __restrict dxi = buf.dx + i * inner;
    T* __restrict yi = buf.yd + i * inner;
    #pragma GCC ivdep
    for (int64_t e = 0; e < inner; ++e) {
      const T d = softplus ? softplus_of(dtt[e]) : dtt[e];
      di[e] = d;
      dxi[e] = d * xt[e];
      yi[e] = D != nullptr ? D[e] * xt[e] : T(0);
    }
    const T* __restrict prev = buf.hs + i * plane;
    T* __restrict cur = buf.hs + (i + 1) * plane;
    T* __restrict ai = buf.as + i * plane;
    for (int64_t n = 0; n < width; ++n) {
      const T bn = bt[n], cn = ct[n];
      const T* __restrict an = A2 + n * inner;
      const T* __restrict pn = prev + n * inner;
      T* __restrict hn = cur + n * inner;
      T* __restrict aa = ai + n * inner;
      #pragma GCC ivdep  // the row-local buffers do not overlap (GCC cannot see it through `buf`)
      for (int64_t e = 0; e < inner; ++e) {
        const T a = exp2_of(di[e] * an[e]);
        const T hv = a * pn[e] + dxi[e] * bn;
        aa[e] = a;
        hn[e] = hv;
        yi[e] += cn * hv;
      }
    }
  }
}

// One batch row of the backward (comment above `softplus_of`).
template <typename T>
void selective_backward_row(const T* __restrict x, const T* __restrict dt, const T* __restrict At,
                            const T* __restrict A2, const T* __restrict Bm, const T* __restrict Cm,
                            const T* __restrict D, const T* __restrict z, const Rows& st, const T* __restrict g,
                            const T* __restrict ckpt, T* __restrict dx, T* __restrict ddt, T* __restrict dA,
                            T* __restrict dB, T* __restrict dC, T* __restrict dD, T* __restrict dz,
                            const BackwardBuffers<T>& buf, int64_t steps, int64_t inner, int64_t width, int64_t chunk,
                            bool softplus) {
  const int64_t plane = width * inner;
  const int64_t chunks = (steps + chunk - 1) / chunk;
  const int64_t last = steps - (chunks - 1) * chunk;  // steps in the last chunk
  for (int64_t i = 0; i < plane; ++i) buf.lam[i] = buf.as[last * plane + i] = T(0);
  T* __restrict gy = buf.gy;
  T* __restrict dxa = buf.dxa;
  T* __restrict dda = buf.dda;
  for (int64_t c = chunks - 1; c >= 0; --c) {
    const int64_t t0 = c * chunk, len = c == chunks - 1 ? last : chunk;
    if (c < chunks - 1) {  // a_{t1}: the first decay of the chunk just done
      for (int64_t i = 0; i < plane; ++i) buf.as[len * plane + i] = buf.as[i];
    }
    for (int64_t i = 0; i < plane; ++i) buf.hs[i] = c == 0 ? T(0) : ckpt[(c - 1) * plane + i];
    recompute_chunk(x, dt, A2, Bm, Cm, D, st, buf, t0, len, inner, width, softplus);
    for (int64_t i = len - 1; i >= 0; --i) {
      const int64_t t = t0 + i;
      const T* __restrict xt = x + t * st.x;
      const T* __restrict bt = Bm + t * st.bm;
      const T* __restrict ct = Cm + t * st.cm;
      const T* __restrict gt = g + t * inner;
      const T* __restrict di = buf.delta + i * inner;
      const T* __restrict dxi = buf.dx + i * inner;
      if (z != nullptr) {  // the gate: y_t + D x_t from the recomputation
        const T* __restrict yi = buf.yd + i * inner;
        const T* __restrict zt = z + t * st.z;
        T* __restrict dzt = dz + t * inner;
        #pragma GCC ivdep
        for (int64_t e = 0; e < inner; ++e) {
          const T s = T(1) / (T(1) + std::exp(-zt[e]));
          gy[e] = gt[e] * zt[e] * s;
          dzt[e] = gt[e] * yi[e] * s * (T(1) + zt[e] * (T(1) - s));
        }
      } else {
        #pragma GCC ivdep
        for (int64_t e = 0; e < inner; ++e) gy[e] = gt[e];
      }
      if (D != nullptr) {
        #pragma GCC ivdep
        for (int64_t e = 0; e < inner; ++e) {
          dD[e] += gy[e] * xt[e];
          dxa[e] = gy[e] * D[e];
        }
      } else {
        #pragma GCC ivdep
        for (int64_t e = 0; e < inner; ++e) dxa[e] = T(0);
      }
      #pragma GCC ivdep
      for (int64_t e = 0; e < inner; ++e) dda[e] = T(0);
      const T* __restrict prev = buf.hs + i * plane;
      const T* __restrict cur = buf.hs + (i + 1) * plane;
      const T* __restrict ai = buf.as + i * plane;
      const T* __restrict anext = buf.as + (i + 1) * plane;
      T* __restrict dbt = dB + t * width;
      T* __restrict dct = dC + t * width;
      for (int64_t n = 0; n < width; ++n) {
        const T bn = bt[n], cn = ct[n];
        const T* __restrict an = At + n * inner;
        const T* __restrict pn = prev + n * inner;
        const T* __restrict hn = cur + n * inner;
        const T* __restrict aa = ai + n * inner;
        const T* __restrict nx = anext + n * inner;
        T* __restrict ln = buf.lam + n * inner;
        T* __restrict dan = dA + n * inner;
        T sum_c = T(0), sum_b = T(0);
        #pragma GCC ivdep  // the row-local buffers do not overlap (GCC cannot see it through `buf`)
        for (int64_t e = 0; e < inner; ++e) {
          const T l = gy[e] * cn + nx[e] * ln[e];
          const T la = l * aa[e] * pn[e];
          ln[e] = l;
          sum_c += gy[e] * hn[e];
          sum_b += l * dxi[e];
          dan[e] += la * di[e];
          dda[e] += la * an[e] + l * bn * xt[e];
          dxa[e] += l * bn * di[e];
        }
        dct[n] = sum_c;
        dbt[n] = sum_b;
      }
      T* __restrict dxt = dx + t * inner;
      T* __restrict ddtt = ddt + t * inner;
      const T* __restrict dtt = dt + t * st.dt;
      #pragma GCC ivdep
      for (int64_t e = 0; e < inner; ++e) {
        dxt[e] = dxa[e];
        ddtt[e] = softplus ? dda[e] * softplus_grad(dtt[e]) : dda[e];
      }
    }
  }
}

// The channels of a [B, T, K] tensor must be contiguous; batch and time may have any strides.
void check_rows(const at::Tensor& t, const at::Tensor& x, int64_t channels, const char* name) {
  TORCH_CHECK(t.device().is_cpu() && t.dim() == 3 && t.size(0) == x.size(0) && t.size(1) == x.size(1) &&
                  t.size(2) == channels && (t.stride(2) == 1 || channels <= 1),
              "selective_scan: ", name, " must be a CPU [B, T, ", channels, "] tensor with contiguous channels");
  TORCH_CHECK(t.scalar_type() == x.scalar_type(), "selective_scan: ", name, " has another dtype than x");
}

void check_selective(const at::Tensor& x, const at::Tensor& dt, const at::Tensor& At, const at::Tensor& Bm,
                     const at::Tensor& Cm, const std::optional<at::Tensor>& D, const std::optional<at::Tensor>& z) {
  TORCH_CHECK(x.dim() == 3, "selective_scan: x must be [B, T, E]");
  const int64_t inner = x.size(2);
  TORCH_CHECK(At.dim() == 2 && At.size(1) == inner && At.is_contiguous() && At.scalar_type() == x.scalar_type(),
              "selective_scan: At must be contiguous [N, E] of x's dtype");
  const int64_t width = At.size(0);
  check_rows(x, x, inner, "x");
  check_rows(dt, x, inner, "dt");
  check_rows(Bm, x, width, "B");
  check_rows(Cm, x, width, "C");
  if (z) check_rows(*z, x, inner, "z");
  if (D) {
    TORCH_CHECK(D->dim() == 1 && D->size(0) == inner && D->is_contiguous() && D->scalar_type() == x.scalar_type(),
                "selective_scan: D must be contiguous [E] of x's dtype");
  }
}

Rows rows_of(const at::Tensor& x, const at::Tensor& dt, const at::Tensor& Bm, const at::Tensor& Cm,
             const std::optional<at::Tensor>& z) {
  return Rows{x.stride(1), dt.stride(1), z ? z->stride(1) : 0, Bm.stride(1), Cm.stride(1)};
}

}  // namespace

// (out [B, T, E], ckpt [B, ceil(T / chunk), N, E]) of the fused selective scan (comment above `softplus_of`).
std::vector<at::Tensor> selective_scan(const at::Tensor& x, const at::Tensor& dt, const at::Tensor& At,
                                       const at::Tensor& Bm, const at::Tensor& Cm, const std::optional<at::Tensor>& D,
                                       const std::optional<at::Tensor>& z, bool softplus, int64_t chunk) {
  check_selective(x, dt, At, Bm, Cm, D, z);
  TORCH_CHECK(chunk >= 1, "selective_scan: chunk must be >= 1");
  const int64_t batch = x.size(0), steps = x.size(1), inner = x.size(2), width = At.size(0);
  const int64_t chunks = (steps + chunk - 1) / chunk;
  at::Tensor out = at::empty({batch, steps, inner}, x.options());
  at::Tensor ckpt = at::empty({batch, chunks, width, inner}, x.options());
  if (x.numel() == 0) return {out, ckpt};
  advise_huge_pages(out);
  advise_huge_pages(ckpt);
  const Rows st = rows_of(x, dt, Bm, Cm, z);
  const at::Tensor A2 = At * kLog2e;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "seqarena_selective_scan", [&] {
    const scalar_t *xp = x.data_ptr<scalar_t>(), *dp = dt.data_ptr<scalar_t>(), *ap = A2.data_ptr<scalar_t>();
    const scalar_t *bp = Bm.data_ptr<scalar_t>(), *cp = Cm.data_ptr<scalar_t>();
    const scalar_t* Dp = D ? D->data_ptr<scalar_t>() : nullptr;
    const scalar_t* zp = z ? z->data_ptr<scalar_t>() : nullptr;
    scalar_t *op = out.data_ptr<scalar_t>(), *kp = ckpt.data_ptr<scalar_t>();
    at::parallel_for(0, batch, 1, [&](int64_t begin, int64_t end) {
      FlushDenormals flush;
      std::vector<scalar_t> h(width * inner), delta(inner), bx(inner), y(inner);
      for (int64_t b = begin; b < end; ++b) {
        selective_forward_row<scalar_t>(xp + b * x.stride(0), dp + b * dt.stride(0), ap, bp + b * Bm.stride(0),
                                        cp + b * Cm.stride(0), Dp, zp ? zp + b * z->stride(0) : nullptr, st,
                                        op + b * steps * inner, kp + b * chunks * width * inner, h.data(),
                                        delta.data(), bx.data(), y.data(), steps, inner, width, chunk, softplus);
      }
    });
  });
  return {out, ckpt};
}

// (dx, ddt [B, T, E], dA per batch row [B, N, E], dB, dC [B, T, N], dD per batch row [B, E] (empty without D),
// dz [B, T, E] (empty without z)) from dL/dout = g [B, T, E] (contiguous).
std::vector<at::Tensor> selective_scan_backward(const at::Tensor& x, const at::Tensor& dt, const at::Tensor& At,
                                                const at::Tensor& Bm, const at::Tensor& Cm,
                                                const std::optional<at::Tensor>& D, const std::optional<at::Tensor>& z,
                                                bool softplus, const at::Tensor& g, const at::Tensor& ckpt,
                                                int64_t chunk) {
  check_selective(x, dt, At, Bm, Cm, D, z);
  TORCH_CHECK(g.sizes() == x.sizes() && g.is_contiguous() && g.scalar_type() == x.scalar_type(),
              "selective_scan_backward: g must be contiguous [B, T, E] of x's dtype");
  const int64_t batch = x.size(0), steps = x.size(1), inner = x.size(2), width = At.size(0);
  const int64_t chunks = (steps + chunk - 1) / chunk;
  TORCH_CHECK(chunk >= 1 && ckpt.sizes() == at::IntArrayRef({batch, chunks, width, inner}) && ckpt.is_contiguous(),
              "selective_scan_backward: checkpoints of another shape");
  auto opts = x.options();
  at::Tensor dx = at::empty({batch, steps, inner}, opts), ddt = at::empty({batch, steps, inner}, opts);
  at::Tensor dA = at::zeros({batch, width, inner}, opts);
  at::Tensor dB = at::empty({batch, steps, width}, opts), dC = at::empty({batch, steps, width}, opts);
  at::Tensor dD = D ? at::zeros({batch, inner}, opts) : at::empty({0}, opts);
  at::Tensor dz = z ? at::empty({batch, steps, inner}, opts) : at::empty({0}, opts);
  if (x.numel() == 0) return {dx, ddt, dA, dB.zero_(), dC.zero_(), dD, dz};
  for (auto* t : {&dx, &ddt, &dz}) advise_huge_pages(*t);
  const Rows st = rows_of(x, dt, Bm, Cm, z);
  const at::Tensor A2 = At * kLog2e;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "seqarena_selective_scan_backward", [&] {
    const scalar_t *xp = x.data_ptr<scalar_t>(), *dp = dt.data_ptr<scalar_t>(), *ap = At.data_ptr<scalar_t>();
    const scalar_t* a2p = A2.data_ptr<scalar_t>();
    const scalar_t *bp = Bm.data_ptr<scalar_t>(), *cp = Cm.data_ptr<scalar_t>(), *gp = g.data_ptr<scalar_t>();
    const scalar_t* Dp = D ? D->data_ptr<scalar_t>() : nullptr;
    const scalar_t* zp = z ? z->data_ptr<scalar_t>() : nullptr;
    const scalar_t* kp = ckpt.data_ptr<scalar_t>();
    scalar_t *dxp = dx.data_ptr<scalar_t>(), *ddp = ddt.data_ptr<scalar_t>(), *dap = dA.data_ptr<scalar_t>();
    scalar_t *dbp = dB.data_ptr<scalar_t>(), *dcp = dC.data_ptr<scalar_t>();
    scalar_t* dDp = D ? dD.data_ptr<scalar_t>() : nullptr;
    scalar_t* dzp = z ? dz.data_ptr<scalar_t>() : nullptr;
    const int64_t plane = width * inner;
    at::parallel_for(0, batch, 1, [&](int64_t begin, int64_t end) {
      FlushDenormals flush;
      std::vector<scalar_t> space(2 * (chunk + 1) * plane + plane + 3 * chunk * inner + 3 * inner);
      scalar_t* s = space.data();
      BackwardBuffers<scalar_t> buf;
      for (scalar_t** p : {&buf.hs, &buf.as}) *p = s, s += (chunk + 1) * plane;
      buf.lam = s, s += plane;
      for (scalar_t** p : {&buf.delta, &buf.dx, &buf.yd}) *p = s, s += chunk * inner;
      for (scalar_t** p : {&buf.gy, &buf.dxa, &buf.dda}) *p = s, s += inner;
      for (int64_t b = begin; b < end; ++b) {
        const int64_t row = b * steps * inner;
        selective_backward_row<scalar_t>(
            xp + b * x.stride(0), dp + b * dt.stride(0), ap, a2p, bp + b * Bm.stride(0), cp + b * Cm.stride(0), Dp,
            zp ? zp + b * z->stride(0) : nullptr, st, gp + row, kp + b * chunks * plane, dxp + row, ddp + row,
            dap + b * plane, dbp + b * steps * width, dcp + b * steps * width, dDp ? dDp + b * inner : nullptr,
            dzp ? dzp + row : nullptr, buf, steps, inner, width, chunk, softplus);
      }
    });
  });
  return {dx, ddt, dA, dB, dC, dD, dz};
}

// The modal scan of the time-invariant models (LRU, LinOSS, D-LinOSS), in split-complex layout, fused with
// the input scaling and the sum over modes (scan/__init__.py `modal_scan`):
//
//   h^m_t = lam_m h^m_{t-1} + k_m v_t,      y_t = sum_m h^m_t        (complex, per channel n; h_0 = 0)
//
// v and y are real [B, T, 2N] holding the real parts in [0, N) and the imaginary parts in [N, 2N) (the layout
// of one real matmul by [W_re; W_im], so no complex tensor is formed around the scan); lam and k are [M, 2N] in
// the same layout. v's channels are contiguous (any batch and time strides). Every loop runs over N
// contiguous channels in real arithmetic. With M > 1 the forward also keeps every mode's states (`hs`
// [B, T, M, 2N]): the backward needs h^m_{t-1}, and y - h^{other} would cancel catastrophically where two modes
// nearly coincide (LinOSS's k± ~ 1/(2d)). The backward, last step first, with g = dL/dy and mu^m the total
// gradient of h^m (real calculus on the split parts; in complex form PyTorch's convention):
//   mu^m_t = g_t + conj(lam_m) mu^m_{t+1},   dv_t = sum_m conj(k_m) mu^m_t,
//   dk_m = sum_t mu^m_t conj(v_t),           dlam_m = sum_t mu^m_t conj(h^m_{t-1})
// with dk and dlam per batch row (summed by the caller). Batch rows run in parallel.
namespace {

template <typename T>
void modal_forward_row(const T* __restrict lam, const T* __restrict k, const T* __restrict v, int64_t svt,
                       T* __restrict y, T* __restrict hs, T* __restrict h, int64_t steps, int64_t modes,
                       int64_t width) {
  const int64_t plane = 2 * width;
  for (int64_t i = 0; i < modes * plane; ++i) h[i] = T(0);
  for (int64_t t = 0; t < steps; ++t) {
    const T* __restrict vr = v + t * svt;
    const T* __restrict vi = vr + width;
    T* __restrict yr = y + t * plane;
    T* __restrict yi = yr + width;
    for (int64_t n = 0; n < plane; ++n) yr[n] = T(0);
    for (int64_t m = 0; m < modes; ++m) {
      const T* __restrict lr = lam + m * plane;
      const T* __restrict li = lr + width;
      const T* __restrict kr = k + m * plane;
      const T* __restrict ki = kr + width;
      T* __restrict hr = h + m * plane;
      T* __restrict hi = hr + width;
      for (int64_t n = 0; n < width; ++n) {
        const T xr = kr[n] * vr[n] - ki[n] * vi[n], xi = kr[n] * vi[n] + ki[n] * vr[n];
        const T nr = lr[n] * hr[n] - li[n] * hi[n] + xr, ni = lr[n] * hi[n] + li[n] * hr[n] + xi;
        hr[n] = nr;
        hi[n] = ni;
        yr[n] += nr;
        yi[n] += ni;
      }
    }
    if (hs != nullptr) {
      T* __restrict kept = hs + t * modes * plane;
      for (int64_t i = 0; i < modes * plane; ++i) kept[i] = h[i];
    }
  }
}

// `states` holds h^m_t at (t * modes + m) * 2N (the kept states, or y itself when modes == 1).
template <typename T>
void modal_backward_row(const T* __restrict lam, const T* __restrict k, const T* __restrict v, int64_t svt,
                        const T* __restrict states, const T* __restrict g, T* __restrict dv, T* __restrict dlam,
                        T* __restrict dk, T* __restrict mu, int64_t steps, int64_t modes, int64_t width) {
  const int64_t plane = 2 * width;
  for (int64_t i = 0; i < modes * plane; ++i) mu[i] = dlam[i] = dk[i] = T(0);
  for (int64_t t = steps - 1; t >= 0; --t) {
    const T* __restrict gr = g + t * plane;
    const T* __restrict gi = gr + width;
    const T* __restrict vr = v + t * svt;
    const T* __restrict vi = vr + width;
    T* __restrict dvr = dv + t * plane;
    T* __restrict dvi = dvr + width;
    for (int64_t n = 0; n < plane; ++n) dvr[n] = T(0);
    for (int64_t m = 0; m < modes; ++m) {
      const T* __restrict lr = lam + m * plane;
      const T* __restrict li = lr + width;
      const T* __restrict kr = k + m * plane;
      const T* __restrict ki = kr + width;
      T* __restrict mr = mu + m * plane;
      T* __restrict mi = mr + width;
      T* __restrict dkr = dk + m * plane;
      T* __restrict dki = dkr + width;
      for (int64_t n = 0; n < width; ++n) {  // mu_t = g_t + conj(lam) mu_{t+1} (mu_T = 0)
        const T nr = gr[n] + lr[n] * mr[n] + li[n] * mi[n], ni = gi[n] + lr[n] * mi[n] - li[n] * mr[n];
        mr[n] = nr;
        mi[n] = ni;
        dvr[n] += kr[n] * nr + ki[n] * ni;
        dvi[n] += kr[n] * ni - ki[n] * nr;
        dkr[n] += nr * vr[n] + ni * vi[n];
        dki[n] += ni * vr[n] - nr * vi[n];
      }
      if (t == 0) continue;
      const T* __restrict hr = states + ((t - 1) * modes + m) * plane;
      const T* __restrict hi = hr + width;
      T* __restrict dlr = dlam + m * plane;
      T* __restrict dli = dlr + width;
      for (int64_t n = 0; n < width; ++n) {
        dlr[n] += mr[n] * hr[n] + mi[n] * hi[n];
        dli[n] += mi[n] * hr[n] - mr[n] * hi[n];
      }
    }
  }
}

void check_modal(const at::Tensor& lam, const at::Tensor& k, const at::Tensor& v) {
  TORCH_CHECK(v.device().is_cpu() && v.dim() == 3 && v.size(2) % 2 == 0 && (v.stride(2) == 1 || v.size(2) <= 1),
              "modal_scan: v must be a CPU [B, T, 2N] tensor with contiguous channels, got ", v.sizes());
  TORCH_CHECK(lam.dim() == 2 && lam.size(1) == v.size(2) && lam.is_contiguous() && k.sizes() == lam.sizes() &&
                  k.is_contiguous(),
              "modal_scan: lam and k must be contiguous [M, 2N] with v [B, T, 2N], got ", lam.sizes(), ", ",
              k.sizes(), ", ", v.sizes());
  TORCH_CHECK(lam.scalar_type() == v.scalar_type() && k.scalar_type() == v.scalar_type(), "modal_scan: dtypes differ");
}

}  // namespace

// (y [B, T, 2N], hs [B, T, M, 2N] when keep_states, else empty) of the modal scan (comment above).
std::vector<at::Tensor> modal_scan(const at::Tensor& lam, const at::Tensor& k, const at::Tensor& v, bool keep_states) {
  check_modal(lam, k, v);
  const int64_t batch = v.size(0), steps = v.size(1), width = v.size(2) / 2, modes = lam.size(0);
  at::Tensor y = at::empty({batch, steps, 2 * width}, v.options());
  at::Tensor hs = keep_states ? at::empty({batch, steps, modes, 2 * width}, v.options()) : at::empty({0}, v.options());
  if (y.numel() == 0) return {y, hs};
  advise_huge_pages(y);
  if (keep_states) advise_huge_pages(hs);
  AT_DISPATCH_FLOATING_TYPES(v.scalar_type(), "seqarena_modal_scan", [&] {
    const scalar_t *lp = lam.data_ptr<scalar_t>(), *kp = k.data_ptr<scalar_t>(), *vp = v.data_ptr<scalar_t>();
    scalar_t* yp = y.data_ptr<scalar_t>();
    scalar_t* hp = keep_states ? hs.data_ptr<scalar_t>() : nullptr;
    at::parallel_for(0, batch, 1, [&](int64_t begin, int64_t end) {
      FlushDenormals flush;
      std::vector<scalar_t> h(modes * 2 * width);
      for (int64_t b = begin; b < end; ++b) {
        modal_forward_row<scalar_t>(lp, kp, vp + b * v.stride(0), v.stride(1), yp + b * steps * 2 * width,
                                    hp ? hp + b * steps * modes * 2 * width : nullptr, h.data(), steps, modes, width);
      }
    });
  });
  return {y, hs};
}

// (dv [B, T, 2N], dlam [B, M, 2N], dk [B, M, 2N]) from g = dL/dy (contiguous [B, T, 2N]) and `states`: the kept
// hs [B, T, M, 2N], or y when M == 1.
std::vector<at::Tensor> modal_scan_backward(const at::Tensor& lam, const at::Tensor& k, const at::Tensor& v,
                                            const at::Tensor& states, const at::Tensor& g) {
  check_modal(lam, k, v);
  const int64_t batch = v.size(0), steps = v.size(1), width = v.size(2) / 2, modes = lam.size(0);
  TORCH_CHECK(g.sizes() == v.sizes() && g.is_contiguous() && g.scalar_type() == v.scalar_type(),
              "modal_scan_backward: g must be contiguous like v");
  TORCH_CHECK(states.is_contiguous() && states.numel() == batch * steps * modes * 2 * width &&
                  states.scalar_type() == v.scalar_type(),
              "modal_scan_backward: states must be the forward's contiguous [B, T, M, 2N]");
  at::Tensor dv = at::empty({batch, steps, 2 * width}, v.options());
  at::Tensor dlam = at::empty({batch, modes, 2 * width}, v.options()), dk = at::empty_like(dlam);
  if (dv.numel() == 0) return {dv, dlam.zero_(), dk.zero_()};
  advise_huge_pages(dv);
  AT_DISPATCH_FLOATING_TYPES(v.scalar_type(), "seqarena_modal_scan_backward", [&] {
    const scalar_t *lp = lam.data_ptr<scalar_t>(), *kp = k.data_ptr<scalar_t>(), *vp = v.data_ptr<scalar_t>();
    const scalar_t *sp = states.data_ptr<scalar_t>(), *gp = g.data_ptr<scalar_t>();
    scalar_t *dvp = dv.data_ptr<scalar_t>(), *dlp = dlam.data_ptr<scalar_t>(), *dkp = dk.data_ptr<scalar_t>();
    const int64_t row = steps * 2 * width, plane = modes * 2 * width;
    at::parallel_for(0, batch, 1, [&](int64_t begin, int64_t end) {
      FlushDenormals flush;
      std::vector<scalar_t> mu(plane);
      for (int64_t b = begin; b < end; ++b) {
        modal_backward_row<scalar_t>(lp, kp, vp + b * v.stride(0), v.stride(1), sp + b * steps * plane, gp + b * row,
                                     dvp + b * row, dlp + b * plane, dkp + b * plane, mu.data(), steps, modes, width);
      }
    });
  });
  return {dv, dlam, dk};
}

// Mamba's short causal depthwise convolution and its SiLU, fused (mamba.py `causal_conv_silu`):
//
//   p_t[e] = bias[e] + sum_j w[j, e] u_{t-k+1+j}[e]   (u_s = 0 for s < 0),   x_t = p_t * sigmoid(p_t)
//
// u [B, T, E] with contiguous channels (any batch and time strides: the first half of in_proj's output),
// w transposed to [k, E]. One pass writes x; the backward recomputes p (nothing but x is kept) and gives
// du_s = sum_j w[j] gp_{s+k-1-j}, dw[j] = sum_t gp_t u_{t-k+1+j}, dbias = sum_t gp_t, gp = gx silu'(p), with
// dw and dbias per batch row (summed by the caller). Loops run over the E contiguous channels.
namespace {

template <typename T>
void conv_pre(const T* __restrict u, int64_t sut, const T* __restrict wt, const T* __restrict bias, int64_t t,
              int64_t kernel, int64_t inner, T* __restrict p) {
  for (int64_t e = 0; e < inner; ++e) p[e] = bias[e];
  for (int64_t j = 0; j < kernel; ++j) {
    const int64_t s = t - kernel + 1 + j;
    if (s < 0) continue;
    const T* __restrict us = u + s * sut;
    const T* __restrict wj = wt + j * inner;
    for (int64_t e = 0; e < inner; ++e) p[e] += wj[e] * us[e];
  }
}

}  // namespace

at::Tensor conv_silu(const at::Tensor& u, const at::Tensor& wt, const at::Tensor& bias) {
  TORCH_CHECK(u.device().is_cpu() && u.dim() == 3 && (u.stride(2) == 1 || u.size(2) <= 1),
              "conv_silu: u must be a CPU [B, T, E] tensor with contiguous channels");
  const int64_t batch = u.size(0), steps = u.size(1), inner = u.size(2);
  TORCH_CHECK(wt.dim() == 2 && wt.size(1) == inner && wt.is_contiguous() && bias.sizes() == at::IntArrayRef({inner}) &&
                  bias.is_contiguous() && wt.scalar_type() == u.scalar_type() && bias.scalar_type() == u.scalar_type(),
              "conv_silu: wt must be contiguous [k, E] and bias [E], of u's dtype");
  const int64_t kernel = wt.size(0);
  at::Tensor x = at::empty({batch, steps, inner}, u.options());
  if (x.numel() == 0) return x;
  advise_huge_pages(x);
  AT_DISPATCH_FLOATING_TYPES(u.scalar_type(), "seqarena_conv_silu", [&] {
    const scalar_t *up = u.data_ptr<scalar_t>(), *wp = wt.data_ptr<scalar_t>(), *bp = bias.data_ptr<scalar_t>();
    scalar_t* xp = x.data_ptr<scalar_t>();
    const int64_t sub = u.stride(0), sut = u.stride(1);
    at::parallel_for(0, batch, 1, [&](int64_t begin, int64_t end) {
      FlushDenormals flush;
      std::vector<scalar_t> p(inner);
      for (int64_t b = begin; b < end; ++b) {
        for (int64_t t = 0; t < steps; ++t) {
          conv_pre<scalar_t>(up + b * sub, sut, wp, bp, t, kernel, inner, p.data());
          scalar_t* __restrict xt = xp + (b * steps + t) * inner;
          for (int64_t e = 0; e < inner; ++e) xt[e] = p[e] / (scalar_t(1) + std::exp(-p[e]));
        }
      }
    });
  });
  return x;
}

// (du [B, T, E], dw per batch row [B, k, E], dbias per batch row [B, E]) from dL/dx = g (contiguous [B, T, E]).
std::vector<at::Tensor> conv_silu_backward(const at::Tensor& u, const at::Tensor& wt, const at::Tensor& bias,
                                           const at::Tensor& g) {
  const int64_t batch = u.size(0), steps = u.size(1), inner = u.size(2), kernel = wt.size(0);
  TORCH_CHECK(g.sizes() == u.sizes() && g.is_contiguous() && g.scalar_type() == u.scalar_type() &&
                  (u.stride(2) == 1 || inner <= 1),
              "conv_silu_backward: g must be contiguous like u");
  at::Tensor du = at::empty({batch, steps, inner}, u.options());
  at::Tensor dw = at::zeros({batch, kernel, inner}, u.options()), db = at::zeros({batch, inner}, u.options());
  if (du.numel() == 0) return {du, dw, db};
  advise_huge_pages(du);
  AT_DISPATCH_FLOATING_TYPES(u.scalar_type(), "seqarena_conv_silu_backward", [&] {
    const scalar_t *up = u.data_ptr<scalar_t>(), *wp = wt.data_ptr<scalar_t>(), *bp = bias.data_ptr<scalar_t>();
    const scalar_t* gp = g.data_ptr<scalar_t>();
    scalar_t *dup = du.data_ptr<scalar_t>(), *dwp = dw.data_ptr<scalar_t>(), *dbp = db.data_ptr<scalar_t>();
    const int64_t sub = u.stride(0), sut = u.stride(1);
    at::parallel_for(0, batch, 1, [&](int64_t begin, int64_t end) {
      FlushDenormals flush;
      std::vector<scalar_t> p(inner), gpre(steps * inner);
      for (int64_t b = begin; b < end; ++b) {
        const scalar_t* __restrict ub = up + b * sub;
        scalar_t* __restrict dwb = dwp + b * kernel * inner;
        scalar_t* __restrict dbb = dbp + b * inner;
        for (int64_t t = 0; t < steps; ++t) {
          conv_pre<scalar_t>(ub, sut, wp, bp, t, kernel, inner, p.data());
          const scalar_t* __restrict gt = gp + (b * steps + t) * inner;
          scalar_t* __restrict gq = gpre.data() + t * inner;
          for (int64_t e = 0; e < inner; ++e) {
            const scalar_t s = scalar_t(1) / (scalar_t(1) + std::exp(-p[e]));
            gq[e] = gt[e] * s * (scalar_t(1) + p[e] * (scalar_t(1) - s));
            dbb[e] += gq[e];
          }
          for (int64_t j = 0; j < kernel; ++j) {
            const int64_t src = t - kernel + 1 + j;
            if (src < 0) continue;
            const scalar_t* __restrict us = ub + src * sut;
            scalar_t* __restrict dwj = dwb + j * inner;
            for (int64_t e = 0; e < inner; ++e) dwj[e] += gq[e] * us[e];
          }
        }
        for (int64_t s = 0; s < steps; ++s) {
          scalar_t* __restrict ds = dup + (b * steps + s) * inner;
          for (int64_t e = 0; e < inner; ++e) ds[e] = scalar_t(0);
          for (int64_t j = 0; j < kernel; ++j) {
            const int64_t t = s + kernel - 1 - j;
            if (t >= steps) continue;
            const scalar_t* __restrict gq = gpre.data() + t * inner;
            const scalar_t* __restrict wj = wp + j * inner;
            for (int64_t e = 0; e < inner; ++e) ds[e] += wj[e] * gq[e];
          }
        }
      }
    });
  });
  return {du, dw, db};
}

// Mamba's RMSNorm (mamba.py `rms_norm`; Zhang & Sennrich 2019, torch's nn.RMSNorm), fused: per row r of
// x [R, H] (contiguous),
//   s_r = 1 / sqrt(mean_h x_rh^2 + eps),   y_rh = x_rh s_r w_h,
// one pass forward (keeping s [R]) and one backward, with u = g w:
//   dx_rh = s_r (u_rh - x_rh s_r^2 mean_h(u_rh x_rh)),   dw_h = sum_r g_rh x_rh s_r
// (dw per block of rows [blocks, H], summed by the caller). torch's composite backward makes about ten
// [R, H] temporaries instead (185 ms single-thread at R = 64,000, H = 128; this pass a few ms).
std::vector<at::Tensor> rms_norm(const at::Tensor& x, const at::Tensor& w, double eps) {
  TORCH_CHECK(x.device().is_cpu() && x.dim() == 2 && x.is_contiguous() && w.dim() == 1 && w.size(0) == x.size(1) &&
                  w.is_contiguous() && w.scalar_type() == x.scalar_type(),
              "rms_norm: x must be a contiguous CPU [R, H] tensor and w [H] of its dtype");
  const int64_t rows = x.size(0), width = x.size(1);
  at::Tensor y = at::empty_like(x), rstd = at::empty({rows}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "seqarena_rms_norm", [&] {
    const scalar_t *xp = x.data_ptr<scalar_t>(), *wp = w.data_ptr<scalar_t>();
    scalar_t *yp = y.data_ptr<scalar_t>(), *sp = rstd.data_ptr<scalar_t>();
    at::parallel_for(0, rows, 64, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        const scalar_t* __restrict xr = xp + r * width;
        scalar_t* __restrict yr = yp + r * width;
        scalar_t squares = 0;
        for (int64_t h = 0; h < width; ++h) squares += xr[h] * xr[h];
        const scalar_t s = scalar_t(1) / std::sqrt(squares / scalar_t(width) + scalar_t(eps));
        sp[r] = s;
        for (int64_t h = 0; h < width; ++h) yr[h] = xr[h] * s * wp[h];
      }
    });
  });
  return {y, rstd};
}

// (dx [R, H], dw per block of rows [blocks, H]) from dL/dy = g (contiguous [R, H]) and the forward's s.
std::vector<at::Tensor> rms_norm_backward(const at::Tensor& x, const at::Tensor& w, const at::Tensor& rstd,
                                          const at::Tensor& g) {
  TORCH_CHECK(g.sizes() == x.sizes() && g.is_contiguous() && g.scalar_type() == x.scalar_type() && x.is_contiguous() &&
                  rstd.sizes() == at::IntArrayRef({x.size(0)}) && rstd.is_contiguous(),
              "rms_norm_backward: g must be contiguous like x, and rstd [R]");
  const int64_t rows = x.size(0), width = x.size(1);
  const int64_t blocks = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), rows));
  at::Tensor dx = at::empty_like(x), dw = at::zeros({blocks, width}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "seqarena_rms_norm_backward", [&] {
    const scalar_t *xp = x.data_ptr<scalar_t>(), *wp = w.data_ptr<scalar_t>(), *sp = rstd.data_ptr<scalar_t>();
    const scalar_t* gp = g.data_ptr<scalar_t>();
    scalar_t *dxp = dx.data_ptr<scalar_t>(), *dwp = dw.data_ptr<scalar_t>();
    at::parallel_for(0, blocks, 1, [&](int64_t first, int64_t last) {
      for (int64_t block = first; block < last; ++block) {
        scalar_t* __restrict dwb = dwp + block * width;
        for (int64_t r = block * rows / blocks; r < (block + 1) * rows / blocks; ++r) {
          const scalar_t* __restrict xr = xp + r * width;
          const scalar_t* __restrict gr = gp + r * width;
          scalar_t* __restrict dxr = dxp + r * width;
          const scalar_t s = sp[r];
          scalar_t dot = 0;
          for (int64_t h = 0; h < width; ++h) dot += gr[h] * wp[h] * xr[h];
          const scalar_t c = dot * s * s / scalar_t(width);
          for (int64_t h = 0; h < width; ++h) {
            dxr[h] = s * (gr[h] * wp[h] - xr[h] * c);
            dwb[h] += gr[h] * xr[h] * s;
          }
        }
      }
    });
  });
  return {dx, dw};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("scan", &scan, "h_t = a_t * h_{t-1} + b_t over [B, T, N] (reverse: from the last step)");
  m.def("scan_backward", &scan_backward, "the reversed scan and dL/da of one scan, fused");
  m.def("modal_scan", &modal_scan, "the split-complex modal scan of LRU and LinOSS, with k v and the sum over modes");
  m.def("modal_scan_backward", &modal_scan_backward, "its backward, one reversed pass");
  m.def("selective_scan", &selective_scan,
        "Mamba's selective scan fused with softplus(dt), its read-out, the D skip and the silu(z) gate");
  m.def("conv_silu", &conv_silu, "Mamba's causal depthwise convolution and SiLU, fused");
  m.def("conv_silu_backward", &conv_silu_backward, "its backward, recomputing the pre-activation");
  m.def("selective_scan_backward", &selective_scan_backward, "its backward, recomputing h chunk by chunk");
  m.def("rms_norm", &rms_norm, "Mamba's RMSNorm over the last dimension of [R, H], with 1/rms per row");
  m.def("rms_norm_backward", &rms_norm_backward, "its backward, one pass");
}
