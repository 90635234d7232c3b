"""S4D's two views of one map (seqarena/cells/s4d.py): the convolution y = K ∗ u + D u by FFTs, the default and
the authors' training path, against the recurrent view on the diagonal scan, in float64 (values and gradients);
the kernel and the causal convolution against hand-computed numbers; and the memory the convolution saves.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import torch
from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode

from seqarena import cells
from seqarena.cells import s4d
from seqarena.cells.base import probing
from seqarena.cells.s4d import CausalConv, S4DLayer

pytestmark = pytest.mark.usefixtures("one_thread")


def both_views(layer: S4DLayer, u: Tensor) -> list[tuple[Tensor, list[Tensor]]]:
    """For each view: the output and the gradients of a nonlinear loss w.r.t. the input and every parameter."""
    results = []
    for mode in ("conv", "recurrent"):
        layer.mode = mode
        y = layer(u)
        loss = (torch.sin(y) * torch.linspace(0.5, 1.5, y.shape[1], dtype=y.dtype)[:, None]).sum()
        results.append((y, list(torch.autograd.grad(loss, [u, *layer.parameters()]))))
    return results


@pytest.mark.parametrize("init", ["lin", "inv"])
@pytest.mark.parametrize("steps", [1, 2, 7, 64, 100, 257])
def test_convolution_and_recurrent_views_agree_in_values_and_gradients(init: str, steps: int) -> None:
    torch.manual_seed(steps)
    layer = S4DLayer(3, 8, 0.01, 0.5, init).double()
    u = torch.randn(2, steps, 3, dtype=torch.float64, requires_grad=True)
    (y_conv, g_conv), (y_rec, g_rec) = both_views(layer, u)
    assert y_conv.abs().max() > 0.1  # a real signal, not zeros on both sides
    torch.testing.assert_close(y_conv, y_rec, rtol=1e-10, atol=1e-10)
    for name, a, b in zip(["u", *(n for n, _ in layer.named_parameters())], g_conv, g_rec, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10, msg=f"gradient of {name}")


def test_views_agree_with_a_long_memory() -> None:
    """Δ small (Ā close to 1): the kernel still carries weight at lag T − 1, so a wrapped-around or truncated
    convolution would show."""
    torch.manual_seed(0)
    layer = S4DLayer(2, 4, 1e-3, 2e-3, "lin").double()
    u = torch.randn(1, 300, 2, dtype=torch.float64, requires_grad=True)
    assert layer.kernel(300)[:, -1].abs().min() > 1e-4
    (y_conv, g_conv), (y_rec, g_rec) = both_views(layer, u)
    torch.testing.assert_close(y_conv, y_rec, rtol=1e-10, atol=1e-10)
    for a, b in zip(g_conv, g_rec, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)


def test_kernel_by_hand() -> None:
    """A = −½, Δ = 2 ln 2: Ā = ½, B̄ = (½ − 1)/(−½) = 1; C = 1: K_l = 2 Re(C B̄ Ā^l) = 2·2^{−l} = 2, 1, ½, ¼, ⅛."""
    layer = S4DLayer(1, 2, 0.001, 0.1, "lin").double()
    with torch.no_grad():
        layer.log_A_real.fill_(math.log(0.5))
        layer.A_imag.fill_(0.0)
        layer.log_dt.fill_(math.log(2 * math.log(2)))
        layer.C.copy_(torch.tensor([[[1.0, 0.0]]]))
        kernel = layer.kernel(5)
    torch.testing.assert_close(kernel, torch.tensor([[2.0, 1.0, 0.5, 0.25, 0.125]], dtype=torch.float64))


def test_kernel_of_an_oscillating_mode_by_hand() -> None:
    """A = −½ + iπ/2, Δ = 1: Ā = e^{−½} i; C = 1, B̄ = (Ā − 1)/A. K_l = 2 Re(B̄ Ā^l) for l = 0..3, Ā^l cycling
    through 1, i, −1, −i times e^{−l/2}: K = 2 Re(B̄), −2 e^{−½} Im(B̄), −2 e^{−1} Re(B̄), 2 e^{−3/2} Im(B̄)."""
    layer = S4DLayer(1, 2, 0.001, 0.1, "lin").double()
    with torch.no_grad():
        layer.log_A_real.fill_(math.log(0.5))
        layer.A_imag.fill_(math.pi / 2)
        layer.log_dt.fill_(0.0)
        layer.C.copy_(torch.tensor([[[1.0, 0.0]]]))
        kernel = layer.kernel(4).flatten()
    A = complex(-0.5, math.pi / 2)
    B_bar = (math.exp(-0.5) * 1j - 1) / A
    expected = [2 * B_bar.real, -2 * math.exp(-0.5) * B_bar.imag, -2 * math.exp(-1) * B_bar.real,
                2 * math.exp(-1.5) * B_bar.imag]
    torch.testing.assert_close(kernel, torch.tensor(expected, dtype=torch.float64))


def test_causal_convolution_by_hand() -> None:
    """K = 1, 2, 3: an impulse at t = 0 gives K back; u = 0, 1, 1 gives y = 0, 1, 1 + 2 = 3 (nothing wraps round)."""
    kernel = torch.tensor([[1.0, 2.0, 3.0]], dtype=torch.float64)
    u = torch.tensor([[[1.0], [0.0], [0.0]], [[0.0], [1.0], [1.0]]], dtype=torch.float64)
    y = CausalConv.apply(u, kernel)
    torch.testing.assert_close(y.flatten(), torch.tensor([1.0, 2.0, 3.0, 0.0, 1.0, 3.0], dtype=torch.float64))


@pytest.mark.parametrize("one_row_a_chunk", [False, True])
@pytest.mark.parametrize("steps", [1, 5, 6])
def test_causal_convolution_backward_passes_gradcheck(steps: int, one_row_a_chunk: bool,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    if one_row_a_chunk:
        monkeypatch.setattr(s4d, "CONV_CHUNK", 1)
    torch.manual_seed(steps)
    u = torch.randn(3, steps, 2, dtype=torch.float64, requires_grad=True)
    kernel = torch.randn(2, steps, dtype=torch.float64, requires_grad=True)
    assert len(s4d.row_chunks(3, 2, steps)) == (3 if one_row_a_chunk else 1)
    assert torch.autograd.gradcheck(CausalConv.apply, (u, kernel))


class LargestTensor(TorchDispatchMode):
    """Records the largest tensor (in bytes) any operation returns while active."""

    def __init__(self) -> None:
        super().__init__()
        self.bytes = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for value in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(value, Tensor):
                self.bytes = max(self.bytes, value.numel() * value.element_size())
        return out


@contextmanager
def largest_tensor() -> Iterator[LargestTensor]:
    with LargestTensor() as mode:
        yield mode


def test_recurrent_view_forms_the_state_tensor_that_the_convolution_avoids() -> None:
    """The measurement can fail: the recurrent view forms x `[B, T, H·N/2]` complex (8 bytes an entry in float32)."""
    batch, steps, width, state = 4, 50, 3, 16
    model = cells.build("s4d", 1, width, 1, state_size=state, mode="recurrent").eval()
    with torch.no_grad(), largest_tensor() as seen:
        model(torch.randn(batch, steps, 1))
    assert seen.bytes >= 8 * batch * steps * width * state // 2


def test_evaluation_at_batch_1000_and_t_500_forms_nothing_larger_than_the_activations() -> None:
    """The default evaluation batch (1 000) at T = 500, H = 32, N = 64: the recurrent view's states would take
    1000·500·32·32·8 B ≈ 4.1 GB, the whole batch's spectra 8·B·(T + 1)·H ≈ 128 MB; in chunks of the batch
    (`CONV_CHUNK`) the largest tensor is about one activation `[B, T, H]`, 4·B·T·H = 64 MB."""
    batch, steps, width, state = 1000, 500, 32, 64
    torch.manual_seed(0)
    model = cells.build("s4d", 1, width, 1, state_size=state).eval()
    x = torch.randn(batch, steps, 1)
    with torch.no_grad(), largest_tensor() as seen:
        out = model(x)
    assert out.shape == (batch, steps, width) and torch.isfinite(out).all()
    activation = 4 * batch * steps * width
    assert seen.bytes <= 1.1 * activation
    assert model.implementation == "fft-conv"
    with torch.no_grad():
        torch.testing.assert_close(model(x[:3]), out[:3], rtol=1e-5, atol=1e-5)  # chunked or not, one map


def test_the_trace_reads_the_recurrent_states_and_the_same_output() -> None:
    """Under `probing()` the layer runs the recurrent view (the states are what the trace page shows)."""
    torch.manual_seed(0)
    model = cells.build("s4d", 1, 3, 2, state_size=4).double().eval()
    x = torch.randn(2, 6, 1, dtype=torch.float64)
    with torch.no_grad():
        plain = model(x)
    with probing() as probe:
        traced = model(x)
    assert [len(layer) for layer in probe.states] == [6, 6]
    assert probe.states[0][0][0].shape == (2, 3 * 2 * 2)  # H · N/2 complex states, real and imaginary parts
    assert model.implementation.startswith("scan-")
    torch.testing.assert_close(traced, plain, rtol=1e-10, atol=1e-10)


def test_unknown_mode_is_one_clear_line() -> None:
    with pytest.raises(ValueError, match="s4d: mode must be one of conv, recurrent, got 'fft'"):
        S4DLayer(2, 4, 0.001, 0.1, "lin", mode="fft")


def test_the_block_drops_whole_channels_of_a_sequence() -> None:
    """S4D's code ties its dropout masks over time (`DropoutNd(tie=True)`, `nn.Dropout1d`): a channel of a
    sequence is kept (×1/(1 − p) = 2) or zeroed at every step."""
    torch.manual_seed(0)
    model = cells.build("s4d", 1, 8, 1, dropout=0.5).train()
    out = model.blocks[0].drop(torch.ones(4, 10, 8))
    assert torch.equal(out, out[:, :1].expand_as(out))
    assert set(out.unique().tolist()) == {0.0, 2.0}
