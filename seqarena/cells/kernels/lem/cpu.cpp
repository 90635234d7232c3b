// LEM recurrence of one layer on the CPU: the time loop and its backward (BPTT).
//
// Rusch, Mishra, Erichson & Mahoney (2022), "Long Expressive Memory for sequence modeling", ICLR,
// eq. (3), in the layout of the official code (tk-rusch/LEM, src/adding/network.py, class LEMCell).
// The projected input x_n = inp2hid(u_n) [4H] (bias included) holds the paper's input terms in the
// code's chunk order (dt1, dt2, z, y): V_2 u_n + b_2 (y's step), V_1 u_n + b_1 (z's step), V_y u_n + b_y
// (into y), V_z u_n + b_z (into z). hid2hid = (Wh [3H, H], bh) holds [W_2; W_1; W_z] in the chunks
// (dt1, dt2, y), and transform_z = (Wy [H, H], by) is the paper's W_y. Per step:
//
//   [h_ystep, h_zstep, h_z] = Wh y_{n-1} + bh
//   sy = sigmoid(x_ystep + h_ystep)        (y's step dt * sy: the paper's dt-bar_n)
//   sz = sigmoid(x_zstep + h_zstep)        (z's step dt * sz: the paper's dt_n)
//   zh = tanh(x_z + h_z)
//   z_n = (1 - dt sz) z_{n-1} + dt sz zh
//   yh  = tanh(Wy z_n + by + x_y)
//   y_n = (1 - dt sy) y_{n-1} + dt sy yh
//
// The backward pass (equations in seqarena/cells/kernels/lem/__init__.py) walks the steps last first,
// reading the states and sy, sz, zh, yh as the forward pass saved them.
//
// Layout: time-major. The buffers this file allocates are contiguous [T, B, .]: the states
// y_0..y_T and z_0..z_T [T + 1, B, H] (y_1..y_T are the features), the saved activations and
// dL/dx [T, B, 4H], so each step reads and writes contiguous [B, .] blocks and the matrix
// products read the states in place. x and dL/dys may have any strides whose last one is 1 (the
// caller passes [B, T, .] tensors transposed to [T, B, .]). Per step: two at::addmm_out into
// preallocated buffers (z_n needs Wh y_{n-1}, y_n needs Wy z_n), each followed by a loop over
// B x H (parallel over batch rows; -ffast-math lets GCC vectorise exp and tanh with libmvec).
// The weight gradients are matrix products over all T x B rows at the end.
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

// Pointers of one batch row at one step: the state before and after it, and the saved activations.
template <typename T>
struct Row {
  T* y_prev;  // y_{n-1}
  T* z_prev;  // z_{n-1}
  T* y;       // y_n
  T* z;       // z_n
  T* sy;      // sigmoid of y's step gate (y's step = dt * sy)
  T* sz;      // sigmoid of z's step gate (z's step = dt * sz)
  T* zh;      // the z candidate tanh(x_z + h_z)
  T* yh;      // the y candidate tanh(Wy z_n + by + x_y)
};

// The saved buffers: states [T + 1, B, H] and activations [T, B, H].
struct Buffers {
  at::Tensor ys, zs, sy, sz, zh, yh;
};

// Their data pointers, read once per pass.
template <typename T>
struct Bases {
  T *ys, *zs, *sy, *sz, *zh, *yh;
  int64_t batch, hidden;

  explicit Bases(const Buffers& buf)
      : ys(buf.ys.data_ptr<T>()), zs(buf.zs.data_ptr<T>()), sy(buf.sy.data_ptr<T>()), sz(buf.sz.data_ptr<T>()),
        zh(buf.zh.data_ptr<T>()), yh(buf.yh.data_ptr<T>()), batch(buf.sy.size(1)), hidden(buf.sy.size(2)) {}

  Row<T> at(int64_t t, int64_t b) const {
    const int64_t prev = (t * batch + b) * hidden, next = prev + batch * hidden;
    return {ys + prev, zs + prev, ys + next, zs + next, sy + prev, sz + prev, zh + prev, yh + prev};
  }
};

// First half of a step: h = Wh y_{n-1} + bh (3H), x = x_n (4H) -> z_n, sy, sz, zh.
template <typename T>
void forward_z(T dt, const T* __restrict h, const T* __restrict x, const Row<T>& r, int64_t hidden) {
  const T* __restrict zp = r.z_prev;
  T* __restrict z = r.z;
  T* __restrict sy = r.sy;
  T* __restrict sz = r.sz;
  T* __restrict zh = r.zh;
  for (int64_t i = 0; i < hidden; ++i) {
    const T a = T(1) / (T(1) + std::exp(-(x[i] + h[i])));
    const T c = T(1) / (T(1) + std::exp(-(x[hidden + i] + h[hidden + i])));
    const T k = std::tanh(x[3 * hidden + i] + h[2 * hidden + i]);
    const T dz = dt * c;
    z[i] = (T(1) - dz) * zp[i] + dz * k;
    sy[i] = a, sz[i] = c, zh[i] = k;
  }
}

// Second half: q = Wy z_n + by (H), x = x_n (4H) -> y_n, yh.
template <typename T>
void forward_y(T dt, const T* __restrict q, const T* __restrict x, const Row<T>& r, int64_t hidden) {
  const T* __restrict yp = r.y_prev;
  const T* __restrict sy = r.sy;
  T* __restrict y = r.y;
  T* __restrict yh = r.yh;
  for (int64_t i = 0; i < hidden; ++i) {
    const T k = std::tanh(q[i] + x[2 * hidden + i]);
    const T dy = dt * sy[i];
    y[i] = (T(1) - dy) * yp[i] + dy * k;
    yh[i] = k;
  }
}

// Backward, y half of step n: gy holds dL/dy_n through the direct path of step n + 1, rec =
// Wh^T g_h(n + 1) the path through its hid2hid input. Writes the y-step and y chunks of gx and
// leaves in gy the direct-path gradient of y_{n-1}.
template <typename T>
void backward_y(T dt, const T* __restrict rec, const T* __restrict gys, const Row<T>& r, T* __restrict gy,
                T* __restrict gx, int64_t hidden) {
  const T* __restrict yp = r.y_prev;
  const T* __restrict sy = r.sy;
  const T* __restrict yh = r.yh;
  for (int64_t i = 0; i < hidden; ++i) {
    const T g = gy[i] + rec[i] + gys[i];  // dL/dy_n
    const T a = sy[i], k = yh[i], dy = dt * a;
    gx[i] = g * (k - yp[i]) * dt * a * (T(1) - a);
    gx[2 * hidden + i] = g * dy * (T(1) - k * k);
    gy[i] = g * (T(1) - dy);
  }
}

// Backward, z half of step n: gz holds dL/dz_n through the direct path of step n + 1, rz =
// Wy^T (y chunk of gx) the path through y_n. Writes the z-step and z chunks of gx and leaves in gz
// the direct-path gradient of z_{n-1}.
template <typename T>
void backward_z(T dt, const T* __restrict rz, const Row<T>& r, T* __restrict gz, T* __restrict gx, int64_t hidden) {
  const T* __restrict zp = r.z_prev;
  const T* __restrict sz = r.sz;
  const T* __restrict zh = r.zh;
  for (int64_t i = 0; i < hidden; ++i) {
    const T g = gz[i] + rz[i];  // dL/dz_n
    const T c = sz[i], k = zh[i], dz = dt * c;
    gx[hidden + i] = g * (k - zp[i]) * dt * c * (T(1) - c);
    gx[3 * hidden + i] = g * dz * (T(1) - k * k);
    gz[i] = g * (T(1) - dz);
  }
}

template <typename T>
void forward_loop(T dt, const at::Tensor& x, const at::Tensor& wht, const at::Tensor& bh, const at::Tensor& wyt,
                  const at::Tensor& by, const Buffers& buf) {
  const int64_t steps = x.size(0), batch = x.size(1), hidden = x.size(2) / 4;
  at::Tensor h = at::empty({batch, 3 * hidden}, x.options());
  at::Tensor q = at::empty({batch, hidden}, x.options());
  const T *hp = h.data_ptr<T>(), *qp = q.data_ptr<T>(), *xp = x.data_ptr<T>();
  const int64_t x_t = x.stride(0), x_b = x.stride(1);
  const Bases<T> rows(buf);
  for (int64_t t = 0; t < steps; ++t) {
    at::addmm_out(h, bh, buf.ys.select(0, t), wht);
    for_rows(batch, hidden, [&](int64_t b) {
      forward_z(dt, hp + b * 3 * hidden, xp + t * x_t + b * x_b, rows.at(t, b), hidden);
    });
    at::addmm_out(q, by, buf.zs.select(0, t + 1), wyt);
    for_rows(batch, hidden, [&](int64_t b) {
      forward_y(dt, qp + b * hidden, xp + t * x_t + b * x_b, rows.at(t, b), hidden);
    });
  }
}

// Runs the layer over x [T, B, 4H] from (y0, z0) [B, H]. Returns the states y_0..y_T and z_0..z_T
// [T + 1, B, H] (the features are y_1..y_T) and sy, sz, zh, yh [T, B, H] for the backward pass.
std::vector<at::Tensor> forward(const at::Tensor& x, const at::Tensor& wh, const at::Tensor& bh, const at::Tensor& wy,
                                const at::Tensor& by, const at::Tensor& y0, const at::Tensor& z0, double dt) {
  check_rows(x, "x");
  TORCH_CHECK(x.size(2) % 4 == 0, "x must be [T, B, 4H], got ", x.sizes());
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble, "x must be float32 or float64");
  const int64_t steps = x.size(0), batch = x.size(1), hidden = x.size(2) / 4;
  check(wh, "Wh", x, {3 * hidden, hidden});
  check(bh, "bh", x, {3 * hidden});
  check(wy, "Wy", x, {hidden, hidden});
  check(by, "by", x, {hidden});
  check(y0, "y0", x, {batch, hidden});
  check(z0, "z0", x, {batch, hidden});
  const auto opts = x.options();
  const std::vector<int64_t> states{steps + 1, batch, hidden}, values{steps, batch, hidden};
  const Buffers buf{sequence_buffer(states, opts), sequence_buffer(states, opts), sequence_buffer(values, opts),
                    sequence_buffer(values, opts), sequence_buffer(values, opts), sequence_buffer(values, opts)};
  buf.ys.select(0, 0).copy_(y0);
  buf.zs.select(0, 0).copy_(z0);
  const at::Tensor wht = wh.t().contiguous(), wyt = wy.t().contiguous();  // transposed once
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "lem_forward", [&] {
    forward_loop(static_cast<scalar_t>(dt), x, wht, bh.contiguous(), wyt, by.contiguous(), buf);
  });
  return {buf.ys, buf.zs, buf.sy, buf.sz, buf.zh, buf.yh};
}

// rec = Wh^T [g_ystep, g_zstep, g_z] for one step's gradient block g [B, 4H] (chunks y step, z step, y, z).
void hid2hid_back(at::Tensor& rec, const at::Tensor& g, const at::Tensor& wh, int64_t hidden) {
  at::mm_out(rec, g.narrow(1, 0, 2 * hidden), wh.narrow(0, 0, 2 * hidden));
  rec.addmm_(g.narrow(1, 3 * hidden, hidden), wh.narrow(0, 2 * hidden, hidden));
}

template <typename T>
void backward_loop(T dt, const at::Tensor& gys, const at::Tensor& wh, const at::Tensor& wy, const Buffers& buf,
                   at::Tensor& gy, at::Tensor& gz, at::Tensor& gx) {
  const int64_t steps = gys.size(0), batch = gys.size(1), hidden = gys.size(2);
  at::Tensor rec = at::zeros({batch, hidden}, gys.options());
  at::Tensor rz = at::empty({batch, hidden}, gys.options());
  const T *gysp = gys.data_ptr<T>(), *recp = rec.data_ptr<T>(), *rzp = rz.data_ptr<T>();
  T *gyp = gy.data_ptr<T>(), *gzp = gz.data_ptr<T>(), *gxp = gx.data_ptr<T>();
  const int64_t gys_t = gys.stride(0), gys_b = gys.stride(1);
  const Bases<T> rows(buf);
  for (int64_t t = steps - 1; t >= 0; --t) {
    T* gxt = gxp + t * batch * 4 * hidden;
    for_rows(batch, hidden, [&](int64_t b) {
      backward_y(dt, recp + b * hidden, gysp + t * gys_t + b * gys_b, rows.at(t, b),
                 gyp + b * hidden, gxt + b * 4 * hidden, hidden);
    });
    const at::Tensor g = gx.select(0, t);
    at::mm_out(rz, g.narrow(1, 2 * hidden, hidden), wy);  // Wy^T dL/dq_n: the path from y_n to z_n
    for_rows(batch, hidden, [&](int64_t b) {
      backward_z(dt, rzp + b * hidden, rows.at(t, b), gzp + b * hidden, gxt + b * 4 * hidden,
                 hidden);
    });
    hid2hid_back(rec, g, wh, hidden);  // Wh^T g_h(n): the path into y_{n-1}
  }
  gy.add_(rec);
}

// The backward pass: from dL/dy_1..dL/dy_T [T, B, H] and dL/d(y_T, z_T) [B, H], returns dL/dx
// [T, B, 4H], dL/dWh [3H, H], dL/dbh [3H], dL/dWy [H, H], dL/dby [H], dL/dy0 and dL/dz0 [B, H].
std::vector<at::Tensor> backward(const at::Tensor& gys, const at::Tensor& gy_last, const at::Tensor& gz_last,
                                 const at::Tensor& wh, const at::Tensor& wy, const at::Tensor& ys,
                                 const at::Tensor& zs, const at::Tensor& sy, const at::Tensor& sz,
                                 const at::Tensor& zh, const at::Tensor& yh, double dt) {
  check_rows(gys, "gys");
  const int64_t steps = gys.size(0), batch = gys.size(1), hidden = gys.size(2);
  check(gy_last, "gy_last", gys, {batch, hidden});
  check(gz_last, "gz_last", gys, {batch, hidden});
  check(wh, "Wh", gys, {3 * hidden, hidden});
  check(wy, "Wy", gys, {hidden, hidden});
  const Buffers buf{ys, zs, sy, sz, zh, yh};
  for (const at::Tensor* t : {&ys, &zs}) check(*t, "a saved state", gys, {steps + 1, batch, hidden});
  for (const at::Tensor* t : {&sy, &sz, &zh, &yh}) check(*t, "a saved activation", gys, {steps, batch, hidden});
  for (const at::Tensor* t : {&ys, &zs, &sy, &sz, &zh, &yh}) {
    TORCH_CHECK(t->is_contiguous(), "the saved buffers must be contiguous");
  }
  const at::Tensor whc = wh.contiguous(), wyc = wy.contiguous();
  at::Tensor gy = gy_last.contiguous().clone(), gz = gz_last.contiguous().clone();
  at::Tensor gx = sequence_buffer({steps, batch, 4 * hidden}, gys.options());
  AT_DISPATCH_FLOATING_TYPES(gys.scalar_type(), "lem_backward", [&] {
    backward_loop<scalar_t>(static_cast<scalar_t>(dt), gys, whc, wyc, buf, gy, gz, gx);
  });
  const at::Tensor g = gx.view({steps * batch, 4 * hidden});
  const at::Tensor y_before = ys.narrow(0, 0, steps).view({steps * batch, hidden});
  const at::Tensor z_after = zs.narrow(0, 1, steps).view({steps * batch, hidden});
  const at::Tensor g_wh = at::cat({at::mm(g.narrow(1, 0, 2 * hidden).t(), y_before),
                                   at::mm(g.narrow(1, 3 * hidden, hidden).t(), y_before)});
  const at::Tensor g_sum = g.sum(0);
  const at::Tensor g_bh = at::cat({g_sum.narrow(0, 0, 2 * hidden), g_sum.narrow(0, 3 * hidden, hidden)});
  const at::Tensor g_wz = at::mm(g.narrow(1, 2 * hidden, hidden).t(), z_after);
  return {gx, g_wh, g_bh, g_wz, g_sum.narrow(0, 2 * hidden, hidden).contiguous(), gy, gz};
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "LEM recurrence (Rusch, Mishra, Erichson & Mahoney 2022): forward and backward (BPTT) on the CPU";
  m.def("forward", &forward, "run the layer over x [T, B, 4H]; returns the states and the saved activations");
  m.def("backward", &backward, "BPTT over the saved buffers; returns dL/dx and the weight and state gradients");
}
