// JANET recurrence of one layer on the CPU: the time loop and its backward (BPTT).
//
// van der Westhuizen & Lasenby (2018), "The unreasonable effectiveness of the forget gate",
// arXiv:1804.04849, eq. (8)-(11). Per step, with the projected input x_n = W u_n + b = [x^s_n, x^c_n]
// and the recurrent weight U = [U_f; U_c] [2H, H]:
//
//   [s_n, k_n] = x_n + U c_{n-1}
//   f_n = sigmoid(s_n),  g_n = sigmoid(s_n - beta),  h_n = tanh(k_n)
//   c_n = f_n * c_{n-1} + (1 - g_n) * h_n
//
// The backward pass (equations in seqarena/cells/kernels/janet/__init__.py) walks the steps last first,
// reading c_{n-1}, f_n, g_n and h_n as the forward pass saved them.
//
// Layout: time-major. The buffers this file allocates are contiguous [T, B, .]: the states c_0..c_T
// [T + 1, B, H] (c_1..c_T are the features), the gates and dL/dx [T, B, 2H] (forget chunk, then
// candidate chunk), so each step reads and writes contiguous [B, .] blocks and the matrix products
// read the states in place. x and dL/dys may have any strides whose last one is 1 (the caller
// passes [B, T, .] tensors transposed to [T, B, .]). Per step: one at::addmm_out into a
// preallocated [B, 2H] buffer, then one loop over B x H (parallel over batch rows; -ffast-math
// lets GCC vectorise exp and tanh with glibc's libmvec). The gradient of U is one matrix product
// over all T x B rows at the end.
#include <torch/extension.h>

#include <ATen/Dispatch.h>

#include <cmath>
#include <vector>

#include "../cpp_common.h"

namespace {

using seqarena::check;
using seqarena::check_rows;
using seqarena::for_rows;
using seqarena::sequence_buffer;

// One step of one batch row: pre = x_n + U c_{n-1} = [s_n, k_n] (2H), c = c_{n-1} -> next = c_n (H);
// f, g, h receive f_n, g_n, h_n for the backward pass.
template <typename T>
void forward_row(T beta, const T* __restrict pre, const T* __restrict c, T* __restrict next, T* __restrict f,
                 T* __restrict g, T* __restrict h, int64_t hidden) {
  for (int64_t i = 0; i < hidden; ++i) {
    const T fi = T(1) / (T(1) + std::exp(-pre[i]));
    const T gi = T(1) / (T(1) + std::exp(beta - pre[i]));
    const T hi = std::tanh(pre[hidden + i]);
    next[i] = fi * c[i] + (T(1) - gi) * hi;
    f[i] = fi, g[i] = gi, h[i] = hi;
  }
}

// One backward step of one batch row. On entry gc holds dL/dc_n through the direct path of step
// n + 1 and rec = U^T g_{n+1} (H) the path through its pre-activation; on return gc is the
// direct-path gradient of c_{n-1} and gx = dL/d[s_n, k_n] (2H).
template <typename T>
void backward_row(const T* __restrict rec, const T* __restrict gys, const T* __restrict c, const T* __restrict f,
                  const T* __restrict g, const T* __restrict h, T* __restrict gc, T* __restrict gx, int64_t hidden) {
  for (int64_t i = 0; i < hidden; ++i) {
    const T gcn = gc[i] + rec[i] + gys[i];  // dL/dc_n
    const T fi = f[i], gi = g[i], hi = h[i];
    gx[i] = gcn * (c[i] * fi * (T(1) - fi) - hi * gi * (T(1) - gi));
    gx[hidden + i] = gcn * (T(1) - gi) * (T(1) - hi * hi);
    gc[i] = gcn * fi;
  }
}

// The saved [T, B, H] buffers f_n, g_n, h_n.
struct Gates {
  at::Tensor f, g, h;
};

template <typename T>
void forward_loop(T beta, const at::Tensor& x, const at::Tensor& ut, at::Tensor& cs, const Gates& gates) {
  const int64_t steps = x.size(0), batch = x.size(1), hidden = x.size(2) / 2;
  at::Tensor pre = at::empty({batch, 2 * hidden}, x.options());
  const T* prep = pre.data_ptr<T>();
  T *csp = cs.data_ptr<T>(), *fp = gates.f.data_ptr<T>(), *gp = gates.g.data_ptr<T>(), *hp = gates.h.data_ptr<T>();
  for (int64_t t = 0; t < steps; ++t) {
    at::addmm_out(pre, x.select(0, t), cs.select(0, t), ut);
    const int64_t block = t * batch * hidden;
    for_rows(batch, hidden, [&](int64_t b) {
      const int64_t row = block + b * hidden;
      forward_row(beta, prep + 2 * b * hidden, csp + row, csp + batch * hidden + row, fp + row, gp + row, hp + row,
                  hidden);
    });
  }
}

// Runs the layer over x [T, B, 2H] from c0 [B, H] with U [2H, H]. Returns the states c_0..c_T
// [T + 1, B, H] (the features are c_1..c_T) and f_n, g_n, h_n [T, B, H] for the backward pass.
std::vector<at::Tensor> forward(const at::Tensor& x, const at::Tensor& u, const at::Tensor& c0, double beta) {
  check_rows(x, "x");
  TORCH_CHECK(x.size(2) % 2 == 0, "x must be [T, B, 2H], got ", x.sizes());
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble, "x must be float32 or float64");
  const int64_t steps = x.size(0), batch = x.size(1), hidden = x.size(2) / 2;
  check(u, "U", x, {2 * hidden, hidden});
  check(c0, "c0", x, {batch, hidden});
  at::Tensor ut = u.t().contiguous();  // [H, 2H], transposed once
  at::Tensor cs = sequence_buffer({steps + 1, batch, hidden}, x.options());
  cs.select(0, 0).copy_(c0);
  const Gates gates{sequence_buffer({steps, batch, hidden}, x.options()),
                    sequence_buffer({steps, batch, hidden}, x.options()),
                    sequence_buffer({steps, batch, hidden}, x.options())};
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "janet_forward",
                             [&] { forward_loop(static_cast<scalar_t>(beta), x, ut, cs, gates); });
  return {cs, gates.f, gates.g, gates.h};
}

template <typename T>
void backward_loop(const at::Tensor& gys, const at::Tensor& u, const at::Tensor& cs, const Gates& gates,
                   at::Tensor& gc, at::Tensor& gx, at::Tensor& rec) {
  const int64_t steps = gys.size(0), batch = gys.size(1), hidden = gys.size(2);
  const int64_t gys_t = gys.stride(0), gys_b = gys.stride(1);
  const T *gysp = gys.data_ptr<T>(), *recp = rec.data_ptr<T>(), *csp = cs.data_ptr<T>();
  const T *fp = gates.f.data_ptr<T>(), *gp = gates.g.data_ptr<T>(), *hp = gates.h.data_ptr<T>();
  T *gcp = gc.data_ptr<T>(), *gxp = gx.data_ptr<T>();
  for (int64_t t = steps - 1; t >= 0; --t) {
    const int64_t block = t * batch * hidden;
    for_rows(batch, hidden, [&](int64_t b) {
      const int64_t row = block + b * hidden;
      backward_row(recp + b * hidden, gysp + t * gys_t + b * gys_b, csp + row, fp + row, gp + row, hp + row,
                   gcp + b * hidden, gxp + 2 * row, hidden);
    });
    at::mm_out(rec, gx.select(0, t), u);  // U^T g_n for step n - 1
  }
}

// The backward pass: from dL/dc_1..dL/dc_T [T, B, H] (the features) and dL/dc_T [B, H] (the final
// state), returns dL/dx [T, B, 2H], dL/dU [2H, H] and dL/dc0 [B, H].
std::vector<at::Tensor> backward(const at::Tensor& gys, const at::Tensor& gc_last, const at::Tensor& u,
                                 const at::Tensor& cs, const at::Tensor& f, const at::Tensor& g, const at::Tensor& h) {
  check_rows(gys, "gys");
  const int64_t steps = gys.size(0), batch = gys.size(1), hidden = gys.size(2);
  check(gc_last, "gc_last", gys, {batch, hidden});
  check(u, "U", gys, {2 * hidden, hidden});
  check(cs, "cs", gys, {steps + 1, batch, hidden});
  const Gates gates{f, g, h};
  for (const at::Tensor* t : {&cs, &f, &g, &h}) {
    TORCH_CHECK(t->is_contiguous() && t->scalar_type() == gys.scalar_type(), "the saved buffers must be contiguous");
  }
  for (const at::Tensor* t : {&f, &g, &h}) check(*t, "a saved gate", gys, {steps, batch, hidden});
  at::Tensor uc = u.contiguous();
  at::Tensor gc = gc_last.contiguous().clone();
  at::Tensor rec = at::zeros({batch, hidden}, gys.options());
  at::Tensor gx = sequence_buffer({steps, batch, 2 * hidden}, gys.options());
  AT_DISPATCH_FLOATING_TYPES(gys.scalar_type(), "janet_backward",
                             [&] { backward_loop<scalar_t>(gys, uc, cs, gates, gc, gx, rec); });
  const at::Tensor before = cs.narrow(0, 0, steps).view({steps * batch, hidden});
  at::Tensor g_u = at::mm(gx.view({steps * batch, 2 * hidden}).t(), before);
  return {gx, g_u, gc + rec};
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "JANET recurrence (van der Westhuizen & Lasenby 2018): forward and backward (BPTT) on the CPU";
  m.def("forward", &forward, "run the layer over x [T, B, 2H]; returns the states c_0..c_T and the gates");
  m.def("backward", &backward, "BPTT over the saved buffers; returns dL/dx, dL/dU, dL/dc0");
}
