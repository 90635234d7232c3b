// coRNN recurrence of one layer on the CPU: the time loop and its backward (BPTT).
//
// Rusch & Mishra (2021), "Coupled Oscillatory Recurrent Neural Network (coRNN)", ICLR, eq. (3)
// as in the official code. Per step, with the projected input x_n = V u_n + b and the recurrent
// block R = [𝒲 | W] [H, 2H] acting on the state s_{n-1} = [z_{n-1}, y_{n-1}]:
//
//   a_n = tanh(x_n + R s_{n-1})
//   z_n = z_{n-1} + dt * (a_n - gamma * y_{n-1} - epsilon * z_{n-1})
//   y_n = y_{n-1} + dt * z_n
//
// The backward pass (equations in seqarena/cells/kernels/cornn/__init__.py) walks the steps last first,
// reading the states s_{n-1} and the activations a_n the forward pass saved.
//
// Layout: time-major. The buffers this file allocates are contiguous [T, B, .] (states
// [T + 1, B, 2H], z then y, with s_0 first), so each step reads and writes contiguous [B, .]
// blocks and the matrix products read the states in place. x and dL/dys may have any strides
// whose last one is 1 (the caller passes [B, T, .] tensors transposed to [T, B, .]). Per step:
// one at::addmm_out into a preallocated [B, H] buffer, then one loop over B x H (parallel over
// batch rows; -ffast-math lets GCC vectorise tanh with glibc's libmvec). The gradient of R is
// one matrix product over all T x B rows at the end.
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

template <typename T>
struct Hyper {
  T dt, gamma, epsilon;
};

// One step of one batch row: pre = x_n + R s_{n-1} (H), s = s_{n-1} (2H) -> next = s_n (2H).
template <typename T>
void forward_row(const Hyper<T>& p, const T* __restrict pre, const T* __restrict s, T* __restrict next,
                 T* __restrict act, T* __restrict y_out, int64_t hidden) {
  const T* __restrict z = s;
  const T* __restrict y = s + hidden;
  for (int64_t i = 0; i < hidden; ++i) {
    const T a = std::tanh(pre[i]);
    const T zn = z[i] + p.dt * (a - p.gamma * y[i] - p.epsilon * z[i]);
    const T yn = y[i] + p.dt * zn;
    act[i] = a;
    next[i] = zn;
    next[hidden + i] = yn;
    y_out[i] = yn;
  }
}

// One backward step of one batch row. On entry (gz, gy) hold dL/d(z_n, y_n) through the direct
// paths of step n + 1, and rec = [R_z^T g_{n+1}, R_y^T g_{n+1}] (2H) the path through its
// pre-activation; on return (gz, gy) are the direct-path gradients of (z_{n-1}, y_{n-1}) and g,
// the gradient of the pre-activation of step n, is in gx.
template <typename T>
void backward_row(const Hyper<T>& p, const T* __restrict rec, const T* __restrict gys, const T* __restrict act,
                  T* __restrict gz, T* __restrict gy, T* __restrict gx, int64_t hidden) {
  const T z_keep = T(1) - p.dt * p.epsilon;
  for (int64_t i = 0; i < hidden; ++i) {
    const T gyn = gy[i] + rec[hidden + i] + gys[i];  // dL/dy_n
    const T gzn = gz[i] + rec[i] + p.dt * gyn;       // dL/dz_n (y_n reads the new z_n)
    const T a = act[i];
    gx[i] = p.dt * gzn * (T(1) - a * a);
    gz[i] = gzn * z_keep;
    gy[i] = gyn - p.dt * p.gamma * gzn;
  }
}

template <typename T>
void forward_loop(const Hyper<T>& p, const at::Tensor& x, const at::Tensor& rt, at::Tensor& states, at::Tensor& ys,
                  at::Tensor& acts) {
  const int64_t steps = x.size(0), batch = x.size(1), hidden = x.size(2);
  at::Tensor pre = at::empty({batch, hidden}, x.options());
  const T* prep = pre.data_ptr<T>();
  T *sp = states.data_ptr<T>(), *ysp = ys.data_ptr<T>(), *actsp = acts.data_ptr<T>();
  for (int64_t t = 0; t < steps; ++t) {
    at::addmm_out(pre, x.select(0, t), states.select(0, t), rt);
    T* s = sp + t * batch * 2 * hidden;
    const int64_t block = t * batch * hidden;
    for_rows(batch, hidden, [&](int64_t b) {
      const int64_t row = b * hidden;
      forward_row(p, prep + row, s + 2 * row, s + (batch + b) * 2 * hidden, actsp + block + row, ysp + block + row,
                  hidden);
    });
  }
}

// Runs the layer over x [T, B, H] from (y0, z0) [B, H] with recurrent = [𝒲 | W] [H, 2H].
// Returns ys [T, B, H], y_T, z_T, and what the backward pass reads: the states s_0..s_T
// [T + 1, B, 2H] and the activations a_n [T, B, H].
std::vector<at::Tensor> forward(const at::Tensor& x, const at::Tensor& recurrent, const at::Tensor& y0,
                                const at::Tensor& z0, double dt, double gamma, double epsilon) {
  check_rows(x, "x");
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble, "x must be float32 or float64");
  const int64_t steps = x.size(0), batch = x.size(1), hidden = x.size(2);
  check(x, "x", x, {steps, batch, hidden});
  check(recurrent, "recurrent", x, {hidden, 2 * hidden});
  check(y0, "y0", x, {batch, hidden});
  check(z0, "z0", x, {batch, hidden});
  at::Tensor rt = recurrent.t().contiguous();  // [2H, H], transposed once
  at::Tensor states = sequence_buffer({steps + 1, batch, 2 * hidden}, x.options());
  states.select(0, 0).copy_(at::cat({z0, y0}, 1));
  at::Tensor ys = sequence_buffer({steps, batch, hidden}, x.options());
  at::Tensor acts = sequence_buffer({steps, batch, hidden}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "cornn_forward", [&] {
    const Hyper<scalar_t> p{static_cast<scalar_t>(dt), static_cast<scalar_t>(gamma), static_cast<scalar_t>(epsilon)};
    forward_loop(p, x, rt, states, ys, acts);
  });
  const at::Tensor last = states.select(0, steps);
  return {ys, last.narrow(1, hidden, hidden).contiguous(), last.narrow(1, 0, hidden).contiguous(), states, acts};
}

template <typename T>
void backward_loop(const Hyper<T>& p, const at::Tensor& gys, const at::Tensor& r, const at::Tensor& acts,
                   at::Tensor& gy, at::Tensor& gz, at::Tensor& gx, at::Tensor& rec) {
  const int64_t steps = gys.size(0), batch = gys.size(1), hidden = gys.size(2);
  const int64_t gys_t = gys.stride(0), gys_b = gys.stride(1);
  const T *gysp = gys.data_ptr<T>(), *actsp = acts.data_ptr<T>(), *recp = rec.data_ptr<T>();
  T *gyp = gy.data_ptr<T>(), *gzp = gz.data_ptr<T>(), *gxp = gx.data_ptr<T>();
  for (int64_t t = steps - 1; t >= 0; --t) {
    const int64_t block = t * batch * hidden;
    for_rows(batch, hidden, [&](int64_t b) {
      const int64_t row = b * hidden;
      backward_row(p, recp + 2 * row, gysp + t * gys_t + b * gys_b, actsp + block + row, gzp + row, gyp + row,
                   gxp + block + row, hidden);
    });
    at::mm_out(rec, gx.select(0, t), r);  // [R_z^T g_n, R_y^T g_n] for step n - 1
  }
}

// The backward pass: from dL/dys [T, B, H] and dL/d(y_T, z_T) [B, H], returns dL/dx [T, B, H],
// dL/drecurrent [H, 2H], dL/dy0 and dL/dz0 [B, H].
std::vector<at::Tensor> backward(const at::Tensor& gys, const at::Tensor& gy_last, const at::Tensor& gz_last,
                                 const at::Tensor& recurrent, const at::Tensor& states, const at::Tensor& acts,
                                 double dt, double gamma, double epsilon) {
  check_rows(gys, "gys");
  const int64_t steps = gys.size(0), batch = gys.size(1), hidden = gys.size(2);
  check(gy_last, "gy_last", gys, {batch, hidden});
  check(gz_last, "gz_last", gys, {batch, hidden});
  check(recurrent, "recurrent", gys, {hidden, 2 * hidden});
  check(states, "states", gys, {steps + 1, batch, 2 * hidden});
  check(acts, "acts", gys, {steps, batch, hidden});
  TORCH_CHECK(states.is_contiguous() && acts.is_contiguous(), "the saved buffers must be contiguous");
  at::Tensor r = recurrent.contiguous();
  at::Tensor gy = gy_last.contiguous().clone(), gz = gz_last.contiguous().clone();
  at::Tensor rec = at::zeros({batch, 2 * hidden}, gys.options());
  at::Tensor gx = sequence_buffer({steps, batch, hidden}, gys.options());
  AT_DISPATCH_FLOATING_TYPES(gys.scalar_type(), "cornn_backward", [&] {
    const Hyper<scalar_t> p{static_cast<scalar_t>(dt), static_cast<scalar_t>(gamma), static_cast<scalar_t>(epsilon)};
    backward_loop(p, gys, r, acts, gy, gz, gx, rec);
  });
  const at::Tensor before = states.narrow(0, 0, steps).view({steps * batch, 2 * hidden});
  at::Tensor g_recurrent = at::mm(gx.view({steps * batch, hidden}).t(), before);
  return {gx, g_recurrent, gy + rec.narrow(1, hidden, hidden), gz + rec.narrow(1, 0, hidden)};
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "coRNN recurrence (Rusch & Mishra 2021): forward and backward (BPTT) on the CPU";
  m.def("forward", &forward, "run the layer over x [T, B, H]; returns ys, y_T, z_T and the saved buffers");
  m.def("backward", &backward, "BPTT over the saved buffers; returns dL/dx, dL/drecurrent, dL/dy0, dL/dz0");
}
