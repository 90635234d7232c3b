"""Each model's update against hand-computed values (docs/reference/models.md).

Weights are set by hand under `torch.no_grad()`; the expected numbers are the reference sheet's,
computed from its equations, not from running the code.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from seqarena import cells
from seqarena.cells.base import RecurrentCell, State, unroll
from seqarena.cells.cornn import CoRNNCell
from seqarena.cells.janet import JANETCell
from seqarena.cells.lem import LEMCell
from seqarena.cells.tcn import receptive_field
from seqarena.cells.transformer import sinusoidal_encoding
from seqarena.cells.unicornn import UnICORNNCell

ATOL = 1e-6
TANH1 = math.tanh(1.0)


pytestmark = pytest.mark.usefixtures("one_thread")


def zero_(module: nn.Module) -> None:
    with torch.no_grad():
        for param in module.parameters():
            param.zero_()


def trajectory(cell: RecurrentCell, u: Tensor) -> list[State]:
    """The states after each step of `cell` over `u: [B, T, d]`, from the zero state."""
    projected = cell.project_inputs(u)
    state = cell.init_state(u.shape[0], projected)
    states = []
    for x_t in projected.unbind(1):
        state = cell.step(x_t, state)
        states.append(state)
    return states


def close(value: Tensor, expected: float, atol: float = ATOL) -> bool:
    return torch.allclose(value, torch.full_like(value, expected), rtol=0.0, atol=atol)


def assert_spread(values: Tensor, low: float, high: float, fill: float = 0.9) -> None:
    """All of `values` lie in [low, high] and they fill most of it (an init, not a constant)."""
    assert values.min() >= low and values.max() <= high
    span = high - low
    assert values.min() <= low + (1 - fill) * span and values.max() >= high - (1 - fill) * span


# coRNN (models.md §5) ---------------------------------------------------------------------------


def test_cornn_hand_computed_steps() -> None:
    cell = CoRNNCell(2, 3, dt=0.1, gamma=1.0, epsilon=1.0)
    zero_(cell)
    with torch.no_grad():
        cell.bias.fill_(1.0)
        (y1, z1), (y2, z2) = trajectory(cell, torch.randn(2, 2, 2))
    assert close(z1, 0.0761594) and close(y1, 0.0076159)
    assert close(z2, 0.1439413) and close(y2, 0.0220101)


def test_cornn_all_zero_stays_zero() -> None:
    cell = CoRNNCell(2, 3, dt=0.5, gamma=3.0, epsilon=2.0)
    zero_(cell)
    with torch.no_grad():
        out, (_, z) = unroll(cell, torch.randn(2, 20, 2))
    assert torch.equal(out, torch.zeros_like(out))
    assert torch.equal(z, torch.zeros_like(z))


def test_cornn_y_moves_by_dt_times_new_z() -> None:
    torch.manual_seed(0)
    dt = 0.07
    cell = CoRNNCell(3, 5, dt=dt, gamma=2.0, epsilon=3.0).double()
    with torch.no_grad():
        cell.weight.uniform_(-1.0, 1.0)
        states = trajectory(cell, torch.randn(2, 30, 3, dtype=torch.float64))
    ys = torch.stack([torch.zeros_like(states[0][0])] + [y for y, _ in states])
    zs = torch.stack([z for _, z in states])
    assert zs.abs().max() > 1e-2
    assert torch.allclose(ys[1:] - ys[:-1], dt * zs, rtol=0.0, atol=1e-14)


@pytest.mark.parametrize("block", ["z", "y"])
def test_cornn_weight_is_one_linear_over_input_z_y(block: str) -> None:
    d, m = 2, 3
    cell = CoRNNCell(d, m, dt=0.1, gamma=1.0, epsilon=1.0)
    assert cell.weight.shape == (m, d + 2 * m)
    bound = 1.0 / math.sqrt(d + 2 * m)
    assert cell.weight.abs().max() <= bound and cell.bias.abs().max() <= bound
    # Weight layout [V | 𝒲 | W] over [u, z, y]: set one recurrent block to I, bias 1; step 2 then
    # sees tanh(1 + z_1) (𝒲 = I) or tanh(1 + y_1) (W = I).
    z1, y1 = 0.1 * TANH1, 0.01 * TANH1
    start = d if block == "z" else d + m
    zero_(cell)
    with torch.no_grad():
        cell.bias.fill_(1.0)
        cell.weight[:, start:start + m] = torch.eye(m)
        (_, z_1), (_, z_2) = trajectory(cell, torch.zeros(1, 2, d))
    fed_back = z1 if block == "z" else y1
    assert close(z_1, z1)
    assert close(z_2, z1 + 0.1 * (math.tanh(1.0 + fed_back) - y1 - z1))


# UnICORNN (models.md §6) ------------------------------------------------------------------------


def unicornn_constant_drive(alpha: float) -> list[State]:
    """w = 0, c = 0, Δt = 0.1 and a projected input x_n = 1 (V = 0, b = 1)."""
    cell = UnICORNNCell(2, 4, dt=0.1, alpha=alpha)
    zero_(cell)
    with torch.no_grad():
        cell.V.bias.fill_(1.0)
        return trajectory(cell, torch.randn(3, 2, 2))


def test_unicornn_hand_computed_steps() -> None:
    (y1, z1), (y2, z2) = unicornn_constant_drive(alpha=0.0)
    assert close(z1, -0.0380797) and close(y1, -0.0019040)
    assert close(z2, -0.0761594) and close(y2, -0.0057120)


def test_unicornn_hand_computed_steps_with_alpha() -> None:
    (y1, z1), (y2, z2) = unicornn_constant_drive(alpha=1.0)
    assert close(z1, -0.0380797) and close(y1, -0.0019040)
    assert close(z2, -0.0760642) and close(y2, -0.0057072)


def test_unicornn_all_zero_stays_zero() -> None:
    cell = UnICORNNCell(2, 4, dt=0.3, alpha=5.0)
    zero_(cell)
    with torch.no_grad():
        out, _ = unroll(cell, torch.randn(2, 20, 2))
    assert torch.equal(out, torch.zeros_like(out))


def test_unicornn_step_is_exactly_reversible() -> None:
    torch.manual_seed(0)
    cell = UnICORNNCell(3, 16, dt=0.19, alpha=30.65).double()
    with torch.no_grad():
        cell.V.bias.uniform_(-1.0, 1.0)
        x = cell.project_inputs(torch.randn(2, 1000, 3, dtype=torch.float64)).unbind(1)
        state = cell.init_state(2, x[0])
        for x_t in x:
            state = cell.step(x_t, state)
        assert state[0].abs().max() > 1e-2 and state[1].abs().max() > 1e-2
        for x_t in reversed(x):
            state = cell.inverse_step(x_t, state)
    assert state[0].abs().max() < 1e-10
    assert state[1].abs().max() < 1e-10


def test_unicornn_initialisation() -> None:
    torch.manual_seed(0)
    fan_in, m = 50, 2000
    cell = UnICORNNCell(fan_in, m, dt=0.19, alpha=30.65)
    bound = math.sqrt(6.0 / (65.0 * fan_in))  # kaiming_uniform_(a=8): gain sqrt(2/65)
    assert math.isclose(bound * math.sqrt(fan_in), 0.30382, abs_tol=1e-5)
    assert_spread(cell.w.detach(), 0.0, 1.0)
    assert_spread(cell.c.detach(), -0.1, 0.1)
    assert_spread(cell.V.weight.detach(), -bound, bound)
    assert torch.equal(cell.V.bias, torch.zeros(m))


# LEM (models.md §7) -----------------------------------------------------------------------------


@pytest.mark.parametrize(("dt", "z1", "y1"), [(1.0, 0.3807971, 0.1816997), (0.5, 0.1903985, 0.0470327)])
def test_lem_hand_computed_step(dt: float, z1: float, y1: float) -> None:
    m = 3
    cell = LEMCell(2, m, dt=dt)
    zero_(cell)
    with torch.no_grad():
        cell.transform_z.weight.copy_(torch.eye(m))  # W_y = I
        cell.inp2hid.bias[3 * m:] = 1.0  # the chunk feeding tanh(i_y + h_y), the z update
        ((y, z),) = trajectory(cell, torch.randn(2, 1, 2))
    assert close(z, z1) and close(y, y1)  # y_1 = 0 would mean the step used z_{n-1}


def lem_z_driven(m: int) -> LEMCell:
    """Δt = 1, W_y = I, z-branch pre-activation 1, everything else zero."""
    cell = LEMCell(2, m, dt=1.0)
    zero_(cell)
    with torch.no_grad():
        cell.transform_z.weight.copy_(torch.eye(m))
        cell.inp2hid.bias[3 * m:] = 1.0
    return cell


@pytest.mark.parametrize(("chunk", "z1", "y1"), [
    (0, 0.3807971, 0.2725496),  # dt1 drives y: Δt̄ = σ(ln 3) = 3/4, y_1 = 0.75·tanh(z_1)
    (1, 0.5711956, 0.2581184),  # dt2 drives z: Δt = 3/4, z_1 = 0.75·tanh(1), y_1 = 0.5·tanh(z_1)
])
def test_lem_time_step_chunks(chunk: int, z1: float, y1: float) -> None:
    m = 3
    cell = lem_z_driven(m)
    with torch.no_grad():
        cell.inp2hid.bias[chunk * m:(chunk + 1) * m] = math.log(3.0)
        ((y, z),) = trajectory(cell, torch.randn(2, 1, 2))
    assert close(z, z1) and close(y, y1)


def test_lem_recurrent_chunk_feeds_z_update() -> None:
    m = 3
    cell = lem_z_driven(m)
    with torch.no_grad():
        cell.hid2hid.weight[2 * m:] = torch.eye(m)  # h_y = y_{n-1}, added to the z branch
        (y1, z1), (y2, z2) = trajectory(cell, torch.randn(2, 2, 2))
    assert close(z1, 0.3807971) and close(y1, 0.1816997)
    # z_2 = 0.5·z_1 + 0.5·tanh(1 + y_1), y_2 = 0.5·y_1 + 0.5·tanh(z_2)
    assert close(z2, 0.6043920) and close(y2, 0.3609336)


def test_lem_all_zero_stays_zero() -> None:
    cell = LEMCell(2, 3, dt=0.7)
    zero_(cell)
    with torch.no_grad():
        out, _ = unroll(cell, torch.randn(2, 20, 2))
    assert torch.equal(out, torch.zeros_like(out))


@pytest.mark.parametrize("dt", [1.0, 0.3])
def test_lem_states_stay_inside_unit_interval(dt: float) -> None:
    torch.manual_seed(0)
    cell = LEMCell(4, 16, dt=dt).double()
    with torch.no_grad():
        for param in cell.parameters():
            param.uniform_(-0.5, 0.5)
        states = trajectory(cell, torch.randn(2, 2000, 4, dtype=torch.float64))
    ys = torch.stack([y for y, _ in states])
    zs = torch.stack([z for _, z in states])
    assert ys.abs().max() < 1.0 and zs.abs().max() < 1.0
    assert ys.abs().max() > 0.3 and zs.abs().max() > 0.3  # the bound is approached, not trivial


def test_lem_initialisation() -> None:
    torch.manual_seed(0)
    m = 64
    cell = LEMCell(40, m, dt=0.21)
    bound = 1.0 / math.sqrt(m)
    for name, param in cell.named_parameters():
        assert param.abs().max() <= bound, name
        assert param.abs().max() >= 0.8 * bound, f"{name} is not spread over ±1/sqrt(m)"


# JANET (models.md §4) ---------------------------------------------------------------------------


def test_janet_hand_computed_steps() -> None:
    m = 4
    cell = JANETCell(2, m, chrono=False)
    zero_(cell)
    with torch.no_grad():
        cell.b[m:] = 1.0  # b_c = 1, b_f = 0
        ((c1,), (c2,)) = trajectory(cell, torch.randn(3, 2, 2))
    assert close(c1, 0.5567699)  # σ(1)·tanh(1)
    assert close(c2, 0.5 * 0.5567699 + 0.5567699)  # σ(0)·c_1 + σ(1)·tanh(1)


def test_janet_zero_candidate_keeps_state_zero() -> None:
    m = 4
    cell = JANETCell(2, m, chrono=False)
    zero_(cell)
    with torch.no_grad():
        cell.b[:m] = torch.tensor([-3.0, 0.0, 2.0, 7.0])  # any b_f
        out, _ = unroll(cell, torch.randn(3, 15, 2))
    assert torch.equal(out, torch.zeros_like(out))


def chrono_mean(t_max: int) -> float:
    """Mean of log(U[1, t_max − 1])."""
    n = t_max - 1
    return (n * math.log(n) - n + 1) / (n - 1)


@pytest.mark.parametrize(("t_max", "high", "mean"), [(784, math.log(783), 5.6717), (1000, 6.9068, 5.9137)])
def test_janet_chrono_forget_bias(t_max: int, high: float, mean: float) -> None:
    assert math.isclose(chrono_mean(t_max), mean, abs_tol=1e-4)
    torch.manual_seed(0)
    m = 2000
    cell = cells.build("janet", 1, m, seq_len=t_max).layers[0]
    b_f, b_c = cell.b[:m].detach(), cell.b[m:].detach()
    assert b_f.min() >= 0.0 and b_f.max() <= high + 1e-4
    assert b_f.max() >= high - 0.05
    assert abs(b_f.mean().item() - mean) <= 0.03 * mean
    assert torch.equal(b_c, torch.zeros(m))


def test_janet_without_chrono_sets_forget_bias_one() -> None:
    m = 8
    cell = cells.build("janet", 1, m, chrono=False).layers[0]
    assert torch.equal(cell.b[:m], torch.ones(m))
    assert torch.equal(cell.b[m:], torch.zeros(m))


def test_janet_default_t_max_is_784() -> None:
    torch.manual_seed(0)
    m = 2000
    b_f = cells.build("janet", 1, m).layers[0].b[:m].detach()
    assert b_f.max() <= math.log(783) + 1e-4 and b_f.max() >= math.log(783) - 0.05


# LSTM, GRU, Elman on torch's own modules (models.md §1-3) --------------------------------------


def test_lstm_hand_computed_step() -> None:
    m = 4
    model = cells.build("lstm", 1, m)
    zero_(model)
    x = torch.zeros(2, 1, 1)
    with torch.no_grad():
        assert torch.equal(model(x), torch.zeros(2, 1, m))
        model.rnn.bias_ih_l0[2 * m:3 * m] = 1.0  # the g gate
        h, (_, c_n) = model.rnn(x)
        features = model(x)
    assert close(c_n, 0.3807971)
    assert close(h, 0.1816997)
    assert torch.equal(features, h)


def test_gru_hand_computed_steps() -> None:
    m = 4
    model = cells.build("gru", 1, m)
    zero_(model)
    x = torch.randn(2, 2, 1)
    with torch.no_grad():
        assert torch.equal(model(x), torch.zeros(2, 2, m))  # forward starts from h_0 = 0
        h, _ = model.rnn(x, torch.ones(1, 2, m))  # h_0 = 1 through torch's module
        assert close(h[:, 0], 0.5) and close(h[:, 1], 0.25)
        # r multiplies W_hn h + b_hn including its bias (torch/cuDNN variant):
        # b_hn = 1, h_0 = 0 -> r = z = 1/2, n = tanh(1/2), h_1 = tanh(1/2)/2.
        model.rnn.bias_hh_l0[2 * m:] = 1.0
        h1 = model(x)[:, 0]
    assert close(h1, 0.5 * math.tanh(0.5))


def test_rnn_hand_computed_step() -> None:
    m = 4
    model = cells.build("rnn", 1, m)
    zero_(model)
    x = torch.randn(2, 3, 1)
    with torch.no_grad():
        assert torch.equal(model(x), torch.zeros(2, 3, m))
        model.rnn.bias_ih_l0.fill_(1.0)
        h = model(x)
    assert close(h[:, 0], TANH1)
    assert close(h[:, 1], TANH1)  # W_hh = 0: every step is tanh(1)


PARAM_COUNTS = {
    "rnn": lambda d, m: m * (d + m) + 2 * m,
    "lstm": lambda d, m: 4 * m * (d + m) + 8 * m,
    "gru": lambda d, m: 3 * m * (d + m) + 6 * m,
    "janet": lambda d, m: 2 * m * (d + m) + 2 * m,
    "cornn": lambda d, m: m * (d + 2 * m) + m,
    "lem": lambda d, m: 4 * m * (d + m) + 8 * m,
    "unicornn": lambda d, m: d * m + m + 2 * m,
}


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize(("d", "m"), [(3, 8), (1, 16)])
@pytest.mark.parametrize("name", sorted(PARAM_COUNTS))
def test_parameter_count(name: str, d: int, m: int) -> None:
    assert n_params(cells.build(name, d, m)) == PARAM_COUNTS[name](d, m)


@pytest.mark.parametrize(("name", "m", "expected"), [("cornn", 256, 134_154), ("lem", 128, 68_362)])
def test_published_parameter_counts_with_readout(name: str, m: int, expected: int) -> None:
    assert n_params(cells.build(name, 1, m)) + n_params(nn.Linear(m, 10)) == expected


@pytest.mark.parametrize("num_layers", [1, 2])
def test_lstm_chrono_biases(num_layers: int) -> None:
    torch.manual_seed(0)
    m, t_max = 500, 100
    model = cells.build("lstm", 2, m, num_layers, chrono=True, seq_len=t_max)
    for layer in range(num_layers):
        bias = (getattr(model.rnn, f"bias_ih_l{layer}") + getattr(model.rnn, f"bias_hh_l{layer}")).detach()
        b_i, b_f, b_g, b_o = bias.chunk(4)
        assert b_f.min() >= 0.0 and b_f.max() <= math.log(t_max - 1) + 1e-5
        assert b_f.max() >= math.log(t_max - 1) - 0.1
        assert abs(b_f.mean().item() - chrono_mean(t_max)) <= 0.05 * chrono_mean(t_max)
        assert torch.equal(b_i, -b_f)
        assert torch.equal(b_g, torch.zeros(m)) and torch.equal(b_o, torch.zeros(m))


def test_lstm_default_init_is_not_chrono() -> None:
    torch.manual_seed(0)
    m = 64
    model = cells.build("lstm", 2, m)
    bound = 1.0 / math.sqrt(m)
    b_g = model.rnn.bias_ih_l0.detach().chunk(4)[2]
    assert b_g.abs().max() <= bound and b_g.abs().max() > 0.5 * bound


# TCN (models.md §8) -----------------------------------------------------------------------------


@pytest.mark.parametrize(("k", "levels", "expected"),
                         [(7, 8, 3061), (8, 8, 3571), (6, 8, 2551), (3, 3, 29), (2, 8, 511)])
def test_tcn_receptive_field(k: int, levels: int, expected: int) -> None:
    assert receptive_field(k, levels) == expected


def test_tcn_reports_receptive_field() -> None:
    model = cells.build("tcn", 1, 4, 3, kernel_size=3)
    assert model.extra_info()["receptive_field"] == 29


def test_tcn_receptive_field_edge() -> None:
    torch.manual_seed(0)
    k, levels, length, t = 3, 3, 40, 35
    r = receptive_field(k, levels)
    model = cells.build("tcn", 3, 8, levels, kernel_size=k, dropout=0.0).eval()
    x = torch.randn(2, length, 3)
    with torch.no_grad():
        reference = model(x)[:, t]

        def output_at_t_with_step_changed(step: int) -> Tensor:
            changed = x.clone()
            changed[:, step] += 3.0 * torch.randn(2, 3)
            return model(changed)[:, t]

        assert not torch.equal(output_at_t_with_step_changed(t - r + 1), reference)
        assert torch.equal(output_at_t_with_step_changed(t - r), reference)
        assert torch.equal(output_at_t_with_step_changed(t + 1), reference)


# Transformer (models.md §9) ---------------------------------------------------------------------


@pytest.mark.parametrize("d_model", [16, 7])
def test_sinusoidal_encoding_entries(d_model: int) -> None:
    pe = sinusoidal_encoding(50, d_model, torch.zeros(1, dtype=torch.float64))
    assert pe.shape == (50, d_model)
    for t in (0, 1, 13, 49):
        for i in range(0, d_model, 2):
            angle = t / 10000 ** (i / d_model)  # i = 2·(pair index)
            assert math.isclose(pe[t, i].item(), math.sin(angle), abs_tol=1e-12)
            if i + 1 < d_model:
                assert math.isclose(pe[t, i + 1].item(), math.cos(angle), abs_tol=1e-12)


def test_transformer_nhead_must_divide_hidden_size() -> None:
    with pytest.raises(ValueError, match="nhead"):
        cells.build("transformer", 3, 8, nhead=3)


def test_transformer_zero_query_key_attends_uniformly() -> None:
    torch.manual_seed(0)
    e, length, batch = 8, 6, 2
    model = cells.build("transformer", 3, e, 1, nhead=2, dropout=0.0).eval()
    attn = model.encoder.layers[0].self_attn
    with torch.no_grad():
        attn.in_proj_weight[: 2 * e] = 0.0  # W_Q = W_K = 0
        attn.in_proj_bias[: 2 * e] = 0.0
        h = torch.randn(batch, length, e)
        mask = nn.Transformer.generate_square_subsequent_mask(length)
        out, weights = attn(h, h, h, attn_mask=mask, need_weights=True, average_attn_weights=False)
        steps = torch.arange(1, length + 1, dtype=torch.float32)
        uniform = torch.tril(torch.ones(length, length)) / steps[:, None]  # A[t, s] = 1/(t+1), s <= t
        values = nn.functional.linear(h, attn.in_proj_weight[2 * e:], attn.in_proj_bias[2 * e:])
        running_mean = values.cumsum(dim=1) / steps[None, :, None]
        expected = attn.out_proj(running_mean)
    assert weights.shape == (batch, 2, length, length)
    assert torch.allclose(weights, uniform.expand_as(weights), rtol=0.0, atol=ATOL)
    assert torch.allclose(out, expected, rtol=0.0, atol=1e-5)


def test_janet_weights_are_glorot_uniform_over_each_whole_matrix() -> None:
    d, m = 3, 200
    cell = JANETCell(d, m, chrono=True, t_max=100)
    assert_spread(cell.W, -math.sqrt(6 / (d + 2 * m)), math.sqrt(6 / (d + 2 * m)), fill=0.98)
    assert_spread(cell.U, -math.sqrt(6 / (m + 2 * m)), math.sqrt(6 / (m + 2 * m)), fill=0.98)
