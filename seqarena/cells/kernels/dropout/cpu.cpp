// Dropout on the CPU with a mask that is recomputed instead of stored: element i of a contiguous tensor is kept
// when u_i >= p, u_i = hash(seed, i) / 2^24 uniform on [0, 1) (24 bits, the resolution of a float32 uniform), and
// scaled by 1 / (1 - p): out_i = x_i * keep_i * scale. The backward multiplies dL/dout by the same keep_i * scale,
// hashed again from the seed (dropout/__init__.py). The hash is two rounds of a 32-bit integer mixer (C. Wellons'
// "lowbias32", full avalanche) over the index and the 64-bit seed; every loop vectorises and rows of elements
// run in parallel. float32 and float64.
#include <torch/extension.h>

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <algorithm>
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

// out[k] = x[k] * keep * scale for the elements begin + k of [begin, end), keep = 1 when element i's 24-bit
// uniform is at least `threshold` = round(p * 2^24), its hash mix32(mix32(lo(i) * 0x9e3779b9 + s0) ^ (hi(i) + s1))
// of the index's 32-bit words lo and hi. hi is constant over runs of 2^32 elements, so it is hoisted out of the
// loop, which then runs on 32-bit lanes only (the loop with the 64-bit index in it did not vectorise: the forward
// took 5x a multiplication's time, 7.4 ms for 8.2 M floats on two threads).
template <typename scalar_t>
void masked_run(const scalar_t* __restrict xp, scalar_t* __restrict op, int64_t begin, int64_t end, uint32_t s0,
                uint32_t s1, uint32_t threshold, scalar_t scale) {
  while (begin < end) {
    const auto first = static_cast<uint64_t>(begin);
    const int64_t stop = std::min<int64_t>(end, static_cast<int64_t>(((first >> 32) + 1) << 32));
    const uint32_t high = static_cast<uint32_t>(first >> 32) + s1, low = static_cast<uint32_t>(first);
    const scalar_t* __restrict xs = xp + begin;
    scalar_t* __restrict os = op + begin;
    const int64_t count = stop - begin;
    for (int64_t k = 0; k < count; ++k) {
      const uint32_t h = mix32(mix32((low + static_cast<uint32_t>(k)) * 0x9e3779b9U + s0) ^ high);
      os[k] = xs[k] * ((h >> 8) >= threshold ? scale : static_cast<scalar_t>(0));
    }
    begin = stop;
  }
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
    const scalar_t* xp = x.data_ptr<scalar_t>();
    scalar_t* op = out.data_ptr<scalar_t>();
    const auto scale = static_cast<scalar_t>(1.0 / (1.0 - p));
    at::parallel_for(0, x.numel(), 1 << 16, [&](int64_t begin, int64_t end) {
      masked_run(xp, op, begin, end, s0, s1, threshold, scale);
    });
  });
  return out;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("masked", &masked, "x * keep * scale with keep hashed from (seed, index): dropout and its backward");
}
