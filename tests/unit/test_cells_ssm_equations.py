"""The state-space models' layers against hand-computed steps (the equations of each module's docstring).

Weights are set by hand under `torch.no_grad()` (one channel, one state where possible); the expected
numbers follow from the equations by hand (written out in each test), not from running the code.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from seqarena.cells.dlinoss import DLinOSSLayer
from seqarena.cells.linoss import LinOSSLayer
from seqarena.cells.lru import LRULayer
from seqarena.cells.mamba import MambaMixer
from seqarena.cells.mingru import MinGRULayer, MinLSTMLayer
from seqarena.cells.s4d import S4DLayer, imaginary_init

pytestmark = pytest.mark.usefixtures("one_thread")

ATOL = 1e-6
SIG_M1 = 1 / (1 + math.e)  # σ(−1)


def impulse(*values: float) -> Tensor:
    return torch.tensor(values, dtype=torch.float64).reshape(1, -1, 1)


def set_(param: Tensor, value: float | list) -> None:
    with torch.no_grad():
        param.copy_(torch.tensor(value, dtype=param.dtype).reshape(param.shape))


def unit_oscillator(layer: nn.Module) -> nn.Module:
    """One oscillator, one channel: B = C = 1, D = 0, Δt = σ(0) = 0.5."""
    layer = layer.double()
    set_(layer.B, [1.0, 0.0])
    set_(layer.C, [1.0, 0.0])
    set_(layer.D, 0.0)
    set_(layer.dt, 0.0)
    return layer


@pytest.mark.parametrize(("variant", "A", "expected"), [
    # IM, S = 1/(1 + Δt² A) = 0.8: x_1 = [Δt S, Δt² S] = [0.4, 0.2]; z_2 = S z_1 − Δt A S y_1 = 0.24,
    # y_2 = Δt S z_1 + S y_1 = 0.32; z_3 = 0.192 − 0.128 = 0.064, y_3 = 0.096 + 0.256 = 0.352.
    ("im", 1.0, [0.2, 0.32, 0.352]),
    # IMEX: z_1 = Δt = 0.5, y_1 = Δt² = 0.25; z_2 = 0.5 − 0.5·0.25 = 0.375, y_2 = 0.25 + 0.1875 = 0.4375;
    # z_3 = 0.375 − 0.21875 = 0.15625, y_3 = 0.4375 + 0.078125 = 0.515625.
    ("imex", 1.0, [0.25, 0.4375, 0.515625]),
    # IM with A = 0 (a Jordan block: z stays Δt = 0.5, y grows by Δt z = 0.25 per step), held at MIN_SPLIT.
    ("im", 0.0, [0.25, 0.5, 0.75]),
])
def test_linoss_hand_computed_steps(variant: str, A: float, expected: list[float]) -> None:
    layer = unit_oscillator(LinOSSLayer(1, 1, variant))
    set_(layer.A_diag, A)
    with torch.no_grad():
        out = layer(impulse(1.0, 0.0, 0.0)).flatten()
    assert torch.allclose(out, torch.tensor(expected, dtype=torch.float64), atol=1e-5 if A == 0 else ATOL)


def test_linoss_output_adds_D_u_and_reads_the_real_part_of_C_y() -> None:
    """C = i: Re(i y) = 0 for real y; D = 2 adds 2 u."""
    layer = unit_oscillator(LinOSSLayer(1, 1, "im"))
    set_(layer.A_diag, 1.0)
    set_(layer.C, [0.0, 1.0])
    set_(layer.D, 2.0)
    with torch.no_grad():
        out = layer(impulse(1.0, 0.0, 3.0)).flatten()
    assert torch.allclose(out, torch.tensor([2.0, 0.0, 6.0], dtype=torch.float64), atol=ATOL)


def test_dlinoss_hand_computed_steps() -> None:
    """Δt = 0.5, G = 1 (S = 1.5), A = 1: z_1 = Δt/S = 1/3, y_1 = Δt²/S = 1/6; z_2 = (1/3 − 0.5/6)/1.5 = 1/6,
    y_2 = 1/6 + 1/12 = 0.25; z_3 = (1/6 − 0.125)/1.5 = 1/36, y_3 = 0.25 + 1/72."""
    layer = unit_oscillator(DLinOSSLayer(1, 1, 0.9, 1.0, math.pi))
    set_(layer.A_diag, 1.0)
    set_(layer.G_diag, 1.0)
    with torch.no_grad():
        out = layer(impulse(1.0, 0.0, 0.0)).flatten()
    assert torch.allclose(out, torch.tensor([1 / 6, 0.25, 0.25 + 1 / 72], dtype=torch.float64), atol=ATOL)


def test_dlinoss_projection_clips_A_into_the_complex_pair_interval() -> None:
    """Δt = 0.5, G = 1: A_low, A_high = (2.5 ∓ 2√1.5)/0.25; G = relu(−3) = 0."""
    layer = DLinOSSLayer(1, 3, 0.9, 1.0, math.pi).double()
    set_(layer.dt, [0.0, 0.0, 0.0])
    set_(layer.G_diag, [1.0, 1.0, -3.0])
    set_(layer.A_diag, [100.0, -5.0, 1.0])
    A, G, _ = layer.projected()
    low, high = (2.5 - 2 * math.sqrt(1.5)) / 0.25, (2.5 + 2 * math.sqrt(1.5)) / 0.25
    assert torch.allclose(A[:2], torch.tensor([high, low], dtype=torch.float64))
    assert G.tolist() == [1.0, 1.0, 0.0]


def test_dlinoss_ring_init_places_the_eigenvalues_on_the_ring() -> None:
    """The eigenvalues of each block M (computed by torch.linalg, not the closed form) have modulus in
    [r_min, r_max] and phase in [0, θ_max]."""
    torch.manual_seed(0)
    layer = DLinOSSLayer(2, 500, 0.6, 0.95, math.pi / 3).double()
    m11, m12, m21, m22, _, _ = layer.transition()
    blocks = torch.stack((torch.stack((m11, m12), -1), torch.stack((m21, m22), -1)), -2)
    eig = torch.linalg.eigvals(blocks)
    assert eig.abs().min() >= 0.6 - 1e-6 and eig.abs().max() <= 0.95 + 1e-6
    assert eig.angle().abs().max() <= math.pi / 3 + 1e-6
    assert eig.abs().min() < 0.65 and eig.abs().max() > 0.9


def test_lru_hand_computed_steps() -> None:
    """Λ = exp(−ln 2 + iπ/2) = 0.5i, γ = 1, B = 1: h = 1, 0.5i, −0.25; Re(C h) with C = 1, then C = −i."""
    layer = LRULayer(1, 1, 0.0, 1.0, 6.28).double()
    set_(layer.nu_log, math.log(math.log(2)))
    set_(layer.theta_log, math.log(math.pi / 2))
    set_(layer.gamma_log, 0.0)
    for p, v in ((layer.B_re, 1.0), (layer.B_im, 0.0), (layer.C_re, 1.0), (layer.C_im, 0.0), (layer.D, 0.0)):
        set_(p, v)
    assert torch.allclose(layer.Lambda(), torch.tensor([0.5j], dtype=torch.complex128), atol=1e-12)
    with torch.no_grad():
        real = layer(impulse(1.0, 0.0, 0.0)).flatten()
        set_(layer.C_re, 0.0)
        set_(layer.C_im, -1.0)
        imag = layer(impulse(1.0, 0.0, 0.0)).flatten()
    assert torch.allclose(real, torch.tensor([1.0, 0.0, -0.25], dtype=torch.float64), atol=ATOL)
    assert torch.allclose(imag, torch.tensor([0.0, 0.5, 0.0], dtype=torch.float64), atol=ATOL)


def test_lru_ring_init_and_gamma_normalisation() -> None:
    torch.manual_seed(0)
    layer = LRULayer(4, 2000, 0.4, 0.9, math.pi / 4)
    modulus = layer.Lambda().abs()
    assert modulus.min() >= 0.4 - 1e-6 and modulus.max() <= 0.9 + 1e-6
    assert layer.Lambda().angle().min() >= 0 and layer.Lambda().angle().max() <= math.pi / 4 + 1e-6
    assert torch.allclose(torch.exp(layer.gamma_log), torch.sqrt(1 - modulus**2), atol=1e-6)


def test_s4d_hand_computed_steps() -> None:
    """A = −½, Δ = 2 ln 2: Ā = e^{ΔA} = ½, B̄ = (½ − 1)/(−½) = 1; u = 1, 1, 0: x = 1, 1.5, 0.75; y = 2 Re(x)."""
    layer = S4DLayer(1, 2, 0.001, 0.1, "lin").double()
    set_(layer.log_A_real, math.log(0.5))
    set_(layer.A_imag, 0.0)
    set_(layer.log_dt, math.log(2 * math.log(2)))
    set_(layer.C, [1.0, 0.0])
    set_(layer.D, 0.0)
    A_bar, B_bar = layer.discrete()
    assert torch.allclose(A_bar, torch.tensor([[0.5 + 0j]], dtype=torch.complex128))
    assert torch.allclose(B_bar, torch.tensor([[1.0 + 0j]], dtype=torch.complex128))
    with torch.no_grad():
        out = layer(impulse(1.0, 1.0, 0.0)).flatten()
    assert torch.allclose(out, torch.tensor([2.0, 3.0, 1.5], dtype=torch.float64), atol=ATOL)


def test_s4d_lin_and_inv_initialisations() -> None:
    """Lin: Im A_n = π n; Inv (N = 8): (8/π)(8/(2n + 1) − 1) = (8/π)·7, (8/π)(5/3), (8/π)(3/5), (8/π)(1/7)."""
    assert torch.allclose(imaginary_init(4, "lin"), math.pi * torch.arange(4.0))
    expected = torch.tensor([7.0, 5 / 3, 3 / 5, 1 / 7]) * 8 / math.pi
    assert torch.allclose(imaginary_init(4, "inv"), expected)


def test_mamba_hand_computed_selective_steps() -> None:
    """H = E = N = 1, k = 1: x = z = u → x = SiLU(u); B_t = C_t = x_t; Δ = softplus(ln(e − 1)) = 1; A = −1;
    h_t = e^{−1} h_{t−1} + x_t², y_t = x_t h_t + x_t (D = 1), out_t = y_t SiLU(u_t)."""
    mixer = MambaMixer(1, 1, 1, 1, 0.001, 0.1).double()
    set_(mixer.in_proj.weight, [1.0, 1.0])
    set_(mixer.conv1d.weight, 1.0)
    set_(mixer.conv1d.bias, 0.0)
    set_(mixer.x_proj.weight, [0.0, 1.0, 1.0])
    set_(mixer.dt_proj.weight, 0.0)
    set_(mixer.dt_proj.bias, math.log(math.e - 1))
    set_(mixer.A_log, 0.0)
    set_(mixer.out_proj.weight, 1.0)
    silu = [1 / (1 + math.exp(-1)), 2 / (1 + math.exp(-2))]
    h1 = silu[0] ** 2
    h2 = math.exp(-1) * h1 + silu[1] ** 2
    expected = [(silu[0] * h1 + silu[0]) * silu[0], (silu[1] * h2 + silu[1]) * silu[1]]
    with torch.no_grad():
        out = mixer(impulse(1.0, 2.0)).flatten()
    assert torch.allclose(out, torch.tensor(expected, dtype=torch.float64), atol=ATOL)


def test_mamba_initialisation_follows_the_code() -> None:
    """A_log = log(1..N) per channel, D = 1, softplus(dt bias) in [dt_min, dt_max]."""
    torch.manual_seed(0)
    mixer = MambaMixer(32, 16, 4, 2, 0.001, 0.1)
    assert torch.allclose(mixer.A_log, torch.log(torch.arange(1, 17.0)).expand(64, 16))
    assert torch.equal(mixer.D, torch.ones(64))
    dt = nn.functional.softplus(mixer.dt_proj.bias)
    assert dt.min() >= 0.001 - 1e-6 and dt.max() <= 0.1 + 1e-6


def test_mingru_hand_computed_steps() -> None:
    """z = σ(0) = ½, h̃ = g(x): h_0 = g(0) = ½; x = 1: h_1 = ¼ + ½·1.5 = 1; x = −1: h_2 = ½ + ½ σ(−1)."""
    layer = MinGRULayer(1, 1).double()
    set_(layer.linear.weight, [0.0, 1.0])
    set_(layer.linear.bias, [0.0, 0.0])
    with torch.no_grad():
        out = layer(impulse(1.0, -1.0)).flatten()
    assert torch.allclose(out, torch.tensor([1.0, 0.5 + 0.5 * SIG_M1], dtype=torch.float64), atol=ATOL)


def test_minlstm_hand_computed_steps() -> None:
    """f = σ(ln 3) = ¾, i = ½: f' = 0.6, i' = 0.4; h_1 = 0.3 + 0.4·1.5 = 0.9; h_2 = 0.54 + 0.4 σ(−1)."""
    layer = MinLSTMLayer(1, 1).double()
    set_(layer.linear.weight, [0.0, 0.0, 1.0])
    set_(layer.linear.bias, [math.log(3), 0.0, 0.0])
    with torch.no_grad():
        out = layer(impulse(1.0, -1.0)).flatten()
    assert torch.allclose(out, torch.tensor([0.9, 0.54 + 0.4 * SIG_M1], dtype=torch.float64), atol=ATOL)
