"""The state-space models on the platform: `param_budget` sizes them, specs take them beside the oscillator RNNs."""

from __future__ import annotations

import pytest
import torch

from seqarena import cells
from seqarena.cells.kernels import scan as S
from seqarena.cells.ssm import TimeBatchNorm
from seqarena.platform.domains import fixed_hparams, search_space
from seqarena.platform.spec import describe, parse_spec
from tests.unit.test_spec import param_count

NEW = ["linoss", "dlinoss", "lru", "s4d", "mamba", "mingru", "minlstm"]


def test_param_budget_sizes_every_state_space_model() -> None:
    """Each arm's parameter count (model + head, built independently) is within 10% of the budget, and the
    new models run beside the oscillator RNNs in one spec."""
    spec = parse_spec({"name": "unit", "task": "adding", "seq_lens": [30], "models": [*NEW, "cornn", "lem"],
                       "param_budget": 30_000, "fixed": {"dlinoss": {"state_size": 32}, "lru": {"state_size": 64},
                                                          "linoss": {"state_size": 32}, "s4d": {"state_size": 16}}})
    for arm in spec.arms():
        fixed = fixed_hparams(spec, arm)
        assert "hidden_size" not in search_space(spec, arm)
        assert abs(param_count(arm, fixed) - 30_000) <= 3_000, arm.key
    assert len(describe(spec)) == len(NEW) + 2


@pytest.mark.parametrize("name", NEW)
def test_the_models_run_in_float64_and_on_one_step(name: str) -> None:
    """T = 1 (a single scan step) and float64 weights: the shapes and dtypes the tasks and the trace use."""
    torch.manual_seed(0)
    model = cells.build(name, 2, 8, 1).double().eval()
    out = model(torch.randn(3, 1, 2, dtype=torch.float64))
    assert out.shape == (3, 1, 8) and out.dtype == torch.float64 and torch.isfinite(out).all()


@pytest.mark.parametrize("name", NEW)
def test_the_models_report_the_scan_source_that_ran(name: str) -> None:
    model = cells.build(name, 2, 8, 1)
    assert model.extra_info() == {"implementation": "not run"}
    model(torch.randn(2, 5, 2))
    # the C++ source builds on this machine; S4D trains by its convolution view (its default mode)
    want = {"mamba": "selective-scan-cpp", "s4d": "fft-conv"}.get(name, "scan-cpp")
    assert model.extra_info()["implementation"] == want


def test_every_registered_model_has_its_own_colour() -> None:
    from seqarena.dashboard.figures import model_colors

    colours = model_colors(cells.names())
    assert len(set(colours.values())) == len(cells.names())


@pytest.mark.parametrize(("name", "hparams"), [("lru", {}), ("linoss", {"variant": "im"}),
                                               ("linoss", {"variant": "imex"}), ("dlinoss", {})])
def test_the_fused_modal_scan_gives_the_complex_torch_path_s_layer(name: str, hparams: dict,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """One block in float64 on the C++ modal scan (split layout) and on the composition of complex `scan`s
    (`backend_for` forced to the sequential loop): the same outputs and parameter gradients."""
    torch.manual_seed(0)
    model = cells.build(name, 3, 6, 1, state_size=5, dropout=0.0, **hparams).double()
    x = torch.randn(2, 40, 3, dtype=torch.float64)

    def run() -> list[torch.Tensor]:
        model.zero_grad()
        out = model(x)
        (out**2).sum().backward()
        return [out.detach(), *(p.grad.clone() for p in model.parameters())]

    fused = run()
    monkeypatch.setattr(S, "backend_for", lambda b, method="auto": "reference")
    for got, want in zip(fused, run(), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-11)


def test_time_batch_norm_normalises_each_channel_over_batch_and_time() -> None:
    """Training mode: (x − mean) / √(var + eps) with the biased variance over (B, T); the running variance
    takes the unbiased one (n = B·T)."""
    x = torch.randn(3, 7, 4, dtype=torch.float64) * 2 + 1
    norm = TimeBatchNorm(4).double()
    mean, var = x.mean(dim=(0, 1)), x.var(dim=(0, 1), unbiased=False)
    torch.testing.assert_close(norm(x), (x - mean) / torch.sqrt(var + 1e-5))
    torch.testing.assert_close(norm.norm.running_var, 0.9 + 0.1 * x.var(dim=(0, 1), unbiased=True))
