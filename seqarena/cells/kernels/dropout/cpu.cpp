// Dropout on the CPU with a mask that is recomputed instead of stored: element i of a contiguous tensor is kept
// when u_i >= p, u_i = hash(seed, i) / 2^24 uniform on [0, 1) (24 bits, the resolution of a float32 uniform), and
// scaled by 1 / (1 - p): out_i = x_i * keep_i * scale. The backward multiplies dL/dout by the same keep_i * scale,
// hashed again from the seed (dropout/__init__.py). The hash is two rounds of a 32-bit integer mixer (C. Wellons'
// "lowbias32", full avalanche) over the index and the 64-bit seed; every loop vectorises and rows of elements
// run in parallel. float32 and float64.
#include <torch/extension.h>

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <cstdint>

namespace {

inline uint32_t mix32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352dU;
  x ^= x >> 15;
  x *= 0x846ca68bU;
  x ^= x >> 16;
  return x;
}

// 1 when element `i` is kept (its 24-bit uniform is at least `threshold` = round(p * 2^24)).
inline uint32_t kept(uint64_t i, uint32_t s0, uint32_t s1, uint32_t threshold) {
  const uint32_t h = mix32(mix32(static_cast<uint32_t>(i) * 0x9e3779b9U + s0) ^ (static_cast<uint32_t>(i >> 32) + s1));
  return (h >> 8) >= threshold ? 1U : 0U;
}

// out = x * keep * scale over a contiguous tensor (the forward: x the input; the backward: x = dL/dout).
at::Tensor masked(const at::Tensor& x, int64_t seed, double p) {
  TORCH_CHECK(x.device().is_cpu() && x.is_contiguous(), "dropout: x must be a contiguous CPU tensor");
  TORCH_CHECK(p >= 0.0 && p < 1.0, "dropout: p must be in [0, 1), got ", p);
  at::Tensor out = at::empty_like(x);
  const auto bits = static_cast<uint64_t>(seed);
  const uint32_t s0 = static_cast<uint32_t>(bits), s1 = static_cast<uint32_t>(bits >> 32);
  const auto threshold = static_cast<uint32_t>(p * 16777216.0 + 0.5);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "seqarena_dropout", [&] {
    const scalar_t* __restrict xp = x.data_ptr<scalar_t>();
    scalar_t* __restrict op = out.data_ptr<scalar_t>();
    const auto scale = static_cast<scalar_t>(1.0 / (1.0 - p));
    at::parallel_for(0, x.numel(), 1 << 16, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        op[i] = xp[i] * (static_cast<scalar_t>(kept(static_cast<uint64_t>(i), s0, s1, threshold)) * scale);
      }
    });
  });
  return out;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("masked", &masked, "x * keep * scale with keep hashed from (seed, index): dropout and its backward");
}
