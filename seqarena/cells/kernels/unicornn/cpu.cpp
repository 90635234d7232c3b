// UnICORNN recurrence of one layer on the CPU: the time loop and its reversible backward.
//
// Rusch & Mishra (2021), "UnICORNN: A recurrent model for learning very long time dependencies",
// ICML, PMLR 139:9168-9178, Sec. 2 (symplectic Euler) and Sec. 3 (memory-free backward). Per unit,
// with the projected input x_n = V u_n + b and the effective step delta = dt * sigmoid(c):
//
//   forward   z_n     = z_{n-1} - delta * (tanh(w * y_{n-1} + x_n) + alpha * y_{n-1})
//             y_n     = y_{n-1} + delta * z_n
//   inverse   y_{n-1} = y_n - delta * z_n
//             z_{n-1} = z_n + delta * (tanh(w * y_{n-1} + x_n) + alpha * y_{n-1})
//
// Layout: sequences are [B, T, H] with contiguous [T, H] rows (a slice along T is accepted: the
// batch stride is read from the tensor); w, delta: [H]; states: [B, H] contiguous, updated in
// place so that a sequence can be processed in chunks of time steps. Units and batch rows are
// independent chains: at::parallel_for runs blocks of kBlock units of one batch row, each over all
// steps of the chunk; the loops over a block's units are written to vectorise (with -O3 and
// -ffast-math, GCC calls glibc's vector tanh).
//
// Two sources of x_n: a projected sequence x [B, K, H] (`forward`, `backward`: the caller applies V
// and b, chunk by chunk), or, for a layer with few input features, the input u [B, K, d] itself
// (`forward_small`, `backward_small`): each step computes x_n = V u_n + b for its block of units,
// and the backward pass accumulates dL/dV, dL/db and dL/du directly, so neither x nor dL/dx is
// ever materialised (for d = 1 that is 2 x 32 MB of memory traffic less per sequence at B = 64,
// T = 1000, H = 128).
#include <torch/extension.h>

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>

namespace {

constexpr int64_t kBlock = 64;  // units per parallel task

// Pointers and sizes of one (batch row, block of units) task.
template <typename T>
struct Chain {
  const T* w;      // [n] recurrent weights of the block
  const T* delta;  // [n] effective time steps of the block
  T alpha;
  T* y;            // [n] state y, in place
  T* z;            // [n] state z, in place
  int64_t n;       // units in the block (<= kBlock)
};

// Runs fn(b, h0, n) for every batch row b and block [h0, h0 + n) of units, in parallel.
template <typename Fn>
void for_each_block(int64_t batch, int64_t hidden, const Fn& fn) {
  const int64_t blocks = (hidden + kBlock - 1) / kBlock;
  at::parallel_for(0, batch * blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t b = i / blocks;
      const int64_t h0 = (i % blocks) * kBlock;
      fn(b, h0, std::min(kBlock, hidden - h0));
    }
  });
}

// A chain's projected input read from a sequence x [.., H] (x_n at x + n * step), and its
// gradient dL/dx_n written to gx (at gx + n * hidden).
template <typename T>
struct DenseInput {
  const T* x;
  int64_t step;
  T* gx;
  int64_t hidden;

  const T* at(int64_t t) const { return x + t * step; }
  void take(int64_t t, const T* __restrict ga, int64_t n) const { std::copy(ga, ga + n, gx + t * hidden); }
};

// A chain's projected input computed from the layer's input u [.., d] (u_n at u + n * step):
// x_n = b + V u_n with vt = V^T [d, H] (offset to the block's first unit). The backward pass
// accumulates dL/dV^T into gvt [d, H] and dL/db into gb (the block's columns of its batch row's
// partial sums) and writes this block's share of dL/du_n into gu (at gu + n * d).
template <typename T>
struct SmallInput {
  const T* u;
  int64_t step, features, hidden;
  const T* vt;
  const T* bias;
  T* gvt;
  T* gb;
  T* gu;
  int64_t n;
  mutable T x[kBlock];

  const T* at(int64_t t) const {
    const T* un = u + t * step;
    T* __restrict out = x;
    const T* __restrict b = bias;
    for (int64_t i = 0; i < n; ++i) out[i] = b[i];
    for (int64_t k = 0; k < features; ++k) {
      const T uk = un[k];
      const T* __restrict v = vt + k * hidden;
      for (int64_t i = 0; i < n; ++i) out[i] += v[i] * uk;
    }
    return x;
  }

  void take(int64_t t, const T* __restrict ga, int64_t) const {
    const T* un = u + t * step;
    T* __restrict g_b = gb;
    for (int64_t i = 0; i < n; ++i) g_b[i] += ga[i];
    for (int64_t k = 0; k < features; ++k) {
      const T uk = un[k];
      const T* __restrict v = vt + k * hidden;
      T* __restrict gv = gvt + k * hidden;
      T acc = 0;
      for (int64_t i = 0; i < n; ++i) {
        acc += v[i] * ga[i];
        gv[i] += ga[i] * uk;
      }
      gu[t * features + k] = acc;
    }
  }
};

// Forward over `steps` steps of one chain; `input.at(t)` is x_t of the chain's units, ys advances
// by `hidden` per step.
template <typename T, typename Input>
void forward_chain(const Chain<T>& c, const Input& input, T* __restrict ys, int64_t steps, int64_t hidden) {
  T y[kBlock], z[kBlock], s[kBlock];
  std::copy(c.y, c.y + c.n, y);
  std::copy(c.z, c.z + c.n, z);
  const T* __restrict w = c.w;
  const T* __restrict delta = c.delta;
  for (int64_t t = 0; t < steps; ++t, ys += hidden) {
    const T* __restrict x = input.at(t);
    for (int64_t i = 0; i < c.n; ++i) s[i] = std::tanh(w[i] * y[i] + x[i]);
    for (int64_t i = 0; i < c.n; ++i) {
      z[i] -= delta[i] * (s[i] + c.alpha * y[i]);
      y[i] += delta[i] * z[i];
      ys[i] = y[i];
    }
  }
  std::copy(y, y + c.n, c.y);
  std::copy(z, z + c.n, c.z);
}

// Gradient carries and accumulators of one chain during the backward pass.
template <typename T>
struct Grads {
  T* gy;      // [n] dL/dy_n from steps after n (the step's own output gradient excluded), in place
  T* gz;      // [n] dL/dz_n, in place
  T* gw;      // [n] accumulated dL/dw of this batch row
  T* gdelta;  // [n] accumulated dL/ddelta of this batch row
};

// Per-chain working copy of the state and gradient buffers: local arrays do not alias the
// sequences, so the unit loops vectorise.
template <typename T>
struct Local {
  T y[kBlock], z[kBlock], gy[kBlock], gz[kBlock], gw[kBlock], gdelta[kBlock];

  void load(const Chain<T>& c, const Grads<T>& g) {
    std::copy(c.y, c.y + c.n, y), std::copy(c.z, c.z + c.n, z), std::copy(g.gy, g.gy + c.n, gy);
    std::copy(g.gz, g.gz + c.n, gz), std::copy(g.gw, g.gw + c.n, gw), std::copy(g.gdelta, g.gdelta + c.n, gdelta);
  }

  void store(const Chain<T>& c, const Grads<T>& g) const {
    std::copy(y, y + c.n, c.y), std::copy(z, z + c.n, c.z), std::copy(gy, gy + c.n, g.gy);
    std::copy(gz, gz + c.n, g.gz), std::copy(gw, gw + c.n, g.gw), std::copy(gdelta, gdelta + c.n, g.gdelta);
  }
};

// The chain of batch row b, units [h0, h0 + n): parameters and the states (y, z) [B, H] in place.
template <typename T>
Chain<T> chain_at(const at::Tensor& w, const at::Tensor& delta, double alpha, at::Tensor& y, at::Tensor& z,
                  int64_t hidden, int64_t b, int64_t h0, int64_t n) {
  const int64_t row = b * hidden + h0;
  return {w.data_ptr<T>() + h0, delta.data_ptr<T>() + h0, static_cast<T>(alpha), y.data_ptr<T>() + row,
          z.data_ptr<T>() + row, n};
}

// The same chain's gradient carries and accumulators ([B, H] each).
template <typename T>
Grads<T> grads_at(at::Tensor& gy, at::Tensor& gz, at::Tensor& gw, at::Tensor& gdelta, int64_t hidden, int64_t b,
                  int64_t h0) {
  const int64_t row = b * hidden + h0;
  return {gy.data_ptr<T>() + row, gz.data_ptr<T>() + row, gw.data_ptr<T>() + row, gdelta.data_ptr<T>() + row};
}

// Backward over `steps` steps of one chain, last step first: rebuilds (y_{n-1}, z_{n-1}) from
// (y_n, z_n) with the inverse step and hands dL/dx_n to `input.take`. gys advances by `hidden` per step.
template <typename T, typename Input>
void backward_chain(const Chain<T>& c, const Grads<T>& g, const Input& input, const T* __restrict gys,
                    int64_t steps, int64_t hidden) {
  Local<T> a;
  a.load(c, g);
  const T* __restrict w = c.w;
  const T* __restrict delta = c.delta;
  T prev[kBlock];
  T s[kBlock];
  T gx[kBlock];
  gys += (steps - 1) * hidden;
  for (int64_t t = steps - 1; t >= 0; --t, gys -= hidden) {
    const T* __restrict x = input.at(t);
    for (int64_t i = 0; i < c.n; ++i) {
      prev[i] = a.y[i] - delta[i] * a.z[i];
      s[i] = std::tanh(w[i] * prev[i] + x[i]);
    }
    for (int64_t i = 0; i < c.n; ++i) {
      const T f = s[i] + c.alpha * prev[i];
      const T gyn = a.gy[i] + gys[i];            // dL/dy_n
      const T gzn = a.gz[i] + delta[i] * gyn;    // dL/dz_n (y_n reads the new z_n)
      const T ga = -delta[i] * gzn * (T(1) - s[i] * s[i]);  // dL/d(w y_{n-1} + x_n)
      a.gdelta[i] += gyn * a.z[i] - gzn * f;
      a.gw[i] += ga * prev[i];
      gx[i] = ga;
      a.gy[i] = gyn + ga * w[i] - delta[i] * gzn * c.alpha;
      a.gz[i] = gzn;
      a.z[i] += delta[i] * f;
      a.y[i] = prev[i];
    }
    input.take(t, gx, c.n);
  }
  a.store(c, g);
}

void check_sequence(const at::Tensor& t, const char* name, const at::Tensor& like) {
  TORCH_CHECK(t.device().is_cpu(), name, " must be a CPU tensor, got ", t.device());
  TORCH_CHECK(t.scalar_type() == like.scalar_type(), name, " has dtype ", t.scalar_type(), ", expected ",
              like.scalar_type());
  TORCH_CHECK(t.dim() == 3 && t.sizes() == like.sizes(), name, " must have shape ", like.sizes(), ", got ",
              t.sizes());
  TORCH_CHECK(t.stride(2) == 1 && (t.size(1) == 1 || t.stride(1) == t.size(2)), name,
              " must have contiguous [T, H] rows; call .contiguous()");
}

void check_vector(const at::Tensor& t, const char* name, const at::Tensor& like, int64_t size) {
  TORCH_CHECK(t.scalar_type() == like.scalar_type() && t.is_contiguous() && t.numel() == size && t.device().is_cpu(),
              name, " must be a contiguous CPU tensor of ", size, " elements and dtype ", like.scalar_type());
}

void check_layer(const at::Tensor& x, const at::Tensor& w, const at::Tensor& delta, const at::Tensor& y,
                 const at::Tensor& z) {
  TORCH_CHECK(x.dim() == 3, "x must be [B, T, H], got ", x.sizes());
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble, "x must be float32 or float64");
  check_sequence(x, "x", x);
  const int64_t hidden = x.size(2);
  check_vector(w, "w", x, hidden);
  check_vector(delta, "delta", x, hidden);
  check_vector(y, "y", x, x.size(0) * hidden);
  check_vector(z, "z", x, x.size(0) * hidden);
}

// Runs the recurrence over x [B, K, H] from the states (y, z) [B, H], which end as the last
// step's; writes y_1..y_K into ys [B, K, H] (may be a time slice of a longer sequence).
void forward(const at::Tensor& x, const at::Tensor& w, const at::Tensor& delta, double alpha, at::Tensor& y,
             at::Tensor& z, at::Tensor& ys) {
  check_layer(x, w, delta, y, z);
  check_sequence(ys, "ys", x);
  const int64_t batch = x.size(0), steps = x.size(1), hidden = x.size(2);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "unicornn_forward", [&] {
    const scalar_t* xp = x.data_ptr<scalar_t>();
    scalar_t* ysp = ys.data_ptr<scalar_t>();
    const int64_t xb = x.stride(0), yb = ys.stride(0);
    for_each_block(batch, hidden, [&](int64_t b, int64_t h0, int64_t n) {
      const Chain<scalar_t> c = chain_at<scalar_t>(w, delta, alpha, y, z, hidden, b, h0, n);
      const DenseInput<scalar_t> input{xp + b * xb + h0, hidden, nullptr, hidden};
      forward_chain(c, input, ysp + b * yb + h0, steps, hidden);
    });
  });
}

// The backward pass over x [B, K, H], last step first. On entry (y, z) are the states after step
// K and (gy, gz) the gradients flowing into them from later steps; on return, the states before
// step 1 and the gradients with respect to them. gys [B, K, H] is dL/dy_n of the outputs; gw and
// gdelta [B, H] accumulate per batch row. Returns dL/dx [B, K, H].
at::Tensor backward(const at::Tensor& x, const at::Tensor& gys, const at::Tensor& w, const at::Tensor& delta,
                    double alpha, at::Tensor& y, at::Tensor& z, at::Tensor& gy, at::Tensor& gz, at::Tensor& gw,
                    at::Tensor& gdelta) {
  check_layer(x, w, delta, y, z);
  check_sequence(gys, "gys", x);
  const int64_t batch = x.size(0), steps = x.size(1), hidden = x.size(2);
  for (const at::Tensor* t : {&gy, &gz, &gw, &gdelta}) check_vector(*t, "a gradient buffer", x, batch * hidden);
  at::Tensor gx = at::empty({batch, steps, hidden}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "unicornn_backward", [&] {
    const int64_t xb = x.stride(0), gb = gys.stride(0);
    for_each_block(batch, hidden, [&](int64_t b, int64_t h0, int64_t n) {
      const Chain<scalar_t> c = chain_at<scalar_t>(w, delta, alpha, y, z, hidden, b, h0, n);
      const Grads<scalar_t> g = grads_at<scalar_t>(gy, gz, gw, gdelta, hidden, b, h0);
      const DenseInput<scalar_t> input{x.data_ptr<scalar_t>() + b * xb + h0, hidden,
                                       gx.data_ptr<scalar_t>() + b * steps * hidden + h0, hidden};
      backward_chain(c, g, input, gys.data_ptr<scalar_t>() + b * gb + h0, steps, hidden);
    });
  });
  return gx;
}

// The small-input layer's arguments: u [B, K, d] contiguous, vt = V^T [d, H] and bias [H] contiguous,
// the rest as for `forward`.
void check_small(const at::Tensor& u, const at::Tensor& vt, const at::Tensor& bias, const at::Tensor& w,
                 const at::Tensor& delta, const at::Tensor& y, const at::Tensor& z) {
  TORCH_CHECK(u.dim() == 3 && u.is_contiguous() && u.device().is_cpu(), "u must be a contiguous CPU [B, K, d] tensor");
  TORCH_CHECK(u.scalar_type() == at::kFloat || u.scalar_type() == at::kDouble, "u must be float32 or float64");
  TORCH_CHECK(vt.dim() == 2 && vt.size(0) == u.size(2), "vt must be V^T [d, H], got ", vt.sizes());
  const int64_t hidden = vt.size(1);
  check_vector(vt, "vt", u, u.size(2) * hidden);
  check_vector(bias, "bias", u, hidden);
  check_vector(w, "w", u, hidden);
  check_vector(delta, "delta", u, hidden);
  check_vector(y, "y", u, u.size(0) * hidden);
  check_vector(z, "z", u, u.size(0) * hidden);
}

// Runs the recurrence over u [B, K, d], computing x_n = V u_n + b per step (vt = V^T [d, H]), from
// the states (y, z) [B, H], which end as the last step's; writes y_1..y_K into ys [B, K, H].
void forward_small(const at::Tensor& u, const at::Tensor& vt, const at::Tensor& bias, const at::Tensor& w,
                   const at::Tensor& delta, double alpha, at::Tensor& y, at::Tensor& z, at::Tensor& ys) {
  check_small(u, vt, bias, w, delta, y, z);
  const int64_t batch = u.size(0), steps = u.size(1), features = u.size(2), hidden = vt.size(1);
  TORCH_CHECK(ys.sizes() == at::IntArrayRef({batch, steps, hidden}) && ys.is_contiguous() &&
              ys.scalar_type() == u.scalar_type(), "ys must be a contiguous [B, K, H] tensor of u's dtype");
  AT_DISPATCH_FLOATING_TYPES(u.scalar_type(), "unicornn_forward_small", [&] {
    for_each_block(batch, hidden, [&](int64_t b, int64_t h0, int64_t n) {
      const Chain<scalar_t> c = chain_at<scalar_t>(w, delta, alpha, y, z, hidden, b, h0, n);
      const SmallInput<scalar_t> input{u.data_ptr<scalar_t>() + b * steps * features, features, features, hidden,
                                       vt.data_ptr<scalar_t>() + h0, bias.data_ptr<scalar_t>() + h0,
                                       nullptr, nullptr, nullptr, n, {}};
      forward_chain(c, input, ys.data_ptr<scalar_t>() + b * steps * hidden + h0, steps, hidden);
    });
  });
}

// The backward pass of `forward_small`, last step first (states and carries as in `backward`).
// gvt [B, d, H] and gb [B, H] accumulate dL/dV^T and dL/db per batch row; returns the blocks'
// shares of dL/du, [B, blocks, K, d] (their sum over dimension 1 is dL/du).
at::Tensor backward_small(const at::Tensor& u, const at::Tensor& gys, const at::Tensor& vt, const at::Tensor& bias,
                          const at::Tensor& w, const at::Tensor& delta, double alpha, at::Tensor& y, at::Tensor& z,
                          at::Tensor& gy, at::Tensor& gz, at::Tensor& gw, at::Tensor& gdelta, at::Tensor& gvt,
                          at::Tensor& gb) {
  check_small(u, vt, bias, w, delta, y, z);
  const int64_t batch = u.size(0), steps = u.size(1), features = u.size(2), hidden = vt.size(1);
  TORCH_CHECK(gys.dim() == 3 && gys.size(0) == batch && gys.size(1) == steps && gys.size(2) == hidden &&
              gys.stride(2) == 1 && (steps == 1 || gys.stride(1) == hidden) && gys.scalar_type() == u.scalar_type(),
              "gys must be [B, K, H] with contiguous [K, H] rows and u's dtype");
  for (const at::Tensor* t : {&gy, &gz, &gw, &gdelta, &gb}) check_vector(*t, "a gradient buffer", u, batch * hidden);
  check_vector(gvt, "gvt", u, batch * features * hidden);
  const int64_t blocks = (hidden + kBlock - 1) / kBlock;
  at::Tensor gu = at::empty({batch, blocks, steps, features}, u.options());
  AT_DISPATCH_FLOATING_TYPES(u.scalar_type(), "unicornn_backward_small", [&] {
    const int64_t gys_b = gys.stride(0);
    for_each_block(batch, hidden, [&](int64_t b, int64_t h0, int64_t n) {
      const Chain<scalar_t> c = chain_at<scalar_t>(w, delta, alpha, y, z, hidden, b, h0, n);
      const Grads<scalar_t> g = grads_at<scalar_t>(gy, gz, gw, gdelta, hidden, b, h0);
      const SmallInput<scalar_t> input{u.data_ptr<scalar_t>() + b * steps * features, features, features, hidden,
                                       vt.data_ptr<scalar_t>() + h0, bias.data_ptr<scalar_t>() + h0,
                                       gvt.data_ptr<scalar_t>() + b * features * hidden + h0,
                                       gb.data_ptr<scalar_t>() + b * hidden + h0,
                                       gu.data_ptr<scalar_t>() + (b * blocks + h0 / kBlock) * steps * features, n, {}};
      backward_chain(c, g, input, gys.data_ptr<scalar_t>() + b * gys_b + h0, steps, hidden);
    });
  });
  return gu;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "UnICORNN recurrence (Rusch & Mishra 2021): forward and reversible backward on the CPU";
  m.def("forward", &forward, "run the recurrence over x [B, K, H]; states in place, outputs into ys");
  m.def("backward", &backward, "reversible backward over x [B, K, H]; returns dL/dx, carries in place");
  m.def("forward_small", &forward_small, "the recurrence over u [B, K, d] with x = V u + b computed per step");
  m.def("backward_small", &backward_small, "reversible backward of forward_small; returns the blocks' dL/du");
}
