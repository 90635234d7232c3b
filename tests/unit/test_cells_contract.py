"""The contract every registered model keeps: shape, causality, finite gradients, determinism, hparam checks.

Parametrised over `cells.names()`: a newly registered model is tested without editing this file.
Sizes are tiny (d=3, H=8, T=12, B=2) so the whole suite runs in seconds on a CPU.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from seqarena import cells
from seqarena.cells import HParam
from seqarena.cells.space import by_name
from seqarena.cells.tcn import receptive_field

D, H, T, B = 3, 8, 12, 2
NAMES = cells.names()
LAYERS = (1, 2)


pytestmark = pytest.mark.usefixtures("one_thread")


def covering_kernel(num_layers: int, length: int) -> int:
    """The smallest TCN kernel whose receptive field covers `length` steps."""
    k = 2
    while receptive_field(k, num_layers) < length:
        k += 1
    return k


def small(name: str, num_layers: int = 1, seed: int = 0, **hparams: Any) -> cells.SequenceModel:
    """A small instance of `name`; TCN gets a kernel whose receptive field covers T."""
    if name == "tcn":
        hparams.setdefault("kernel_size", covering_kernel(num_layers, T))
    torch.manual_seed(seed)
    return cells.build(name, D, H, num_layers, seq_len=T, **hparams)


def inputs(seed: int = 1) -> torch.Tensor:
    return torch.randn(B, T, D, generator=torch.Generator().manual_seed(seed))


def readout_weights() -> torch.Tensor:
    # A fixed random projection instead of a plain sum over features: the transformer ends in a
    # LayerNorm whose features sum to a constant, so the gradient of a plain sum is ~0 there.
    return torch.randn(H, generator=torch.Generator().manual_seed(7))


def test_registry_is_not_empty_and_names_are_unique() -> None:
    assert len(NAMES) >= 9
    assert len(set(NAMES)) == len(NAMES)
    assert {"rnn", "lstm", "gru", "janet", "cornn", "unicornn", "lem", "tcn", "transformer"} <= set(NAMES)


@pytest.mark.parametrize("num_layers", LAYERS)
@pytest.mark.parametrize("name", NAMES)
def test_output_shape(name: str, num_layers: int) -> None:
    model = small(name, num_layers).eval()
    out = model(inputs())
    assert out.shape == (B, T, H)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("num_layers", LAYERS)
@pytest.mark.parametrize("name", NAMES)
def test_causality(name: str, num_layers: int) -> None:
    model = small(name, num_layers).eval()
    x = inputs()
    with torch.no_grad():
        reference = model(x)
        for t in (0, T // 2, T - 2):
            changed = x.clone()
            changed[:, t + 1:] = torch.randn(B, T - t - 1, D) * 5.0
            out = model(changed)
            # Bit-identical, the transformer included: masked scores are -inf, so future keys
            # and values enter row t only as exact zeros. FFT convolutions (S4D) to rounding only.
            if model.causal_to_the_bit:
                assert torch.equal(out[:, : t + 1], reference[:, : t + 1]), f"step {t} saw the future"
            else:
                scale = float(reference.abs().max())
                torch.testing.assert_close(out[:, : t + 1], reference[:, : t + 1], rtol=0, atol=1e-5 * scale,
                                           msg=f"step {t} saw the future")
            assert not torch.equal(out[:, t + 1:], reference[:, t + 1:]), "future inputs unused"


@pytest.mark.parametrize("num_layers", LAYERS)
@pytest.mark.parametrize("name", NAMES)
def test_last_output_reaches_first_input(name: str, num_layers: int) -> None:
    model = small(name, num_layers).eval()
    x = inputs().requires_grad_(True)
    out = model(x)
    (out[:, -1] * readout_weights()).sum().backward()
    assert x.grad is not None
    first = x.grad[:, 0]
    assert torch.isfinite(x.grad).all()
    assert first.abs().sum() > 1e-8, "the last output does not depend on the first input"


@pytest.mark.parametrize("num_layers", LAYERS)
@pytest.mark.parametrize("name", NAMES)
def test_all_parameters_get_finite_gradients(name: str, num_layers: int) -> None:
    model = small(name, num_layers).train()
    out = model(inputs())
    (out * readout_weights()).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"parameters without gradient: {missing}"
    for param_name, param in model.named_parameters():
        assert torch.isfinite(param.grad).all(), param_name
    total = sum(float(p.grad.abs().sum()) for p in model.parameters())
    assert total > 0.0


@pytest.mark.parametrize("num_layers", LAYERS)
@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_model(name: str, num_layers: int) -> None:
    first, second = small(name, num_layers, seed=3).eval(), small(name, num_layers, seed=3).eval()
    third = small(name, num_layers, seed=4).eval()
    params1, params2, params3 = (list(m.state_dict().values()) for m in (first, second, third))
    assert all(torch.equal(a, b) for a, b in zip(params1, params2, strict=True))
    assert not all(torch.equal(a, c) for a, c in zip(params1, params3, strict=True))
    x = inputs()
    with torch.no_grad():
        assert torch.equal(first(x), second(x))
        assert not torch.equal(first(x), third(x))


@pytest.mark.parametrize("name", NAMES)
def test_train_mode_with_seed_is_reproducible(name: str) -> None:
    outputs = []
    for _ in range(2):
        model = small(name, 2, seed=5).train()
        torch.manual_seed(11)  # dropout masks come from the global generator
        outputs.append(model(inputs()))
    assert torch.equal(outputs[0], outputs[1])


def test_unknown_model_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="corn") as info:
        cells.build("corn", D, H)
    for name in NAMES:
        assert name in str(info.value)


@pytest.mark.parametrize("name", NAMES)
def test_unknown_hparam_names_the_allowed_ones(name: str) -> None:
    with pytest.raises(ValueError, match="no_such_hparam") as info:
        cells.build(name, D, H, no_such_hparam=1.0)
    for allowed in cells.model_hparams(name):
        assert allowed in str(info.value)


@pytest.mark.parametrize("name", NAMES)
def test_structural_and_training_hparams_are_not_build_keywords(name: str) -> None:
    allowed = cells.model_hparams(name)
    assert "hidden_size" not in allowed
    assert "num_layers" not in allowed
    assert "lr" not in allowed
    with pytest.raises(ValueError):
        cells.build(name, D, H, lr=1e-3)


def out_of_range(hp: HParam) -> Any:
    """A value of the right type that `hp` must reject."""
    if hp.kind == "choice" and hp.valid is None:
        if isinstance(hp.choices[0], str):
            return "not-a-choice"
        return max(hp.choices) * 2 + 1  # type: ignore[operator]
    high = hp.valid[1] if hp.valid is not None else hp.high
    assert high is not None
    return int(high) + 1 if hp.kind == "int" or isinstance(hp.default, int) else float(high) * 2 + 1.0


def model_hparam_cases() -> list[tuple[str, str]]:
    """(model, hyperparameter) pairs with an out-of-range value; bools have none."""
    return [
        (name, hp) for name in NAMES for hp in cells.model_hparams(name)
        if not isinstance(by_name(cells.space(name))[hp].default, bool)
    ]


@pytest.mark.parametrize(("name", "hp_name"), model_hparam_cases())
def test_value_outside_valid_range_is_rejected(name: str, hp_name: str) -> None:
    hp = by_name(cells.space(name))[hp_name]
    value = out_of_range(hp)
    with pytest.raises(ValueError, match=hp_name) as info:
        cells.build(name, D, H, **{hp_name: value})
    assert hp.allowed() in str(info.value)


@pytest.mark.parametrize("name", NAMES)
def test_negative_dropout_is_rejected(name: str) -> None:
    with pytest.raises(ValueError, match="dropout"):
        cells.build(name, D, H, dropout=-0.1)


@pytest.mark.parametrize("size", [0, -4])
@pytest.mark.parametrize("name", NAMES)
def test_non_positive_sizes_are_rejected(name: str, size: int) -> None:
    with pytest.raises(ValueError, match="hidden_size"):
        cells.build(name, D, size)
    with pytest.raises(ValueError, match="num_layers"):
        cells.build(name, D, H, size)
    with pytest.raises(ValueError, match="input_size"):
        cells.build(name, size, H)
    with pytest.raises(ValueError, match="seq_len"):
        cells.build(name, D, H, seq_len=size)


@pytest.mark.parametrize("name", NAMES)
def test_space_declares_the_common_hparams(name: str) -> None:
    declared = by_name(cells.space(name))
    for required in ("hidden_size", "num_layers", "lr", "batch_size"):
        assert required in declared, f"{name} does not declare {required}"
    assert declared["lr"].role == "train"
    assert declared["batch_size"].role == "train"
    assert declared["hidden_size"].role == "model"
    assert declared["num_layers"].role == "model"
    assert len(declared) == len(cells.space(name)), "duplicate hyperparameter names"


def hparam_cases() -> list[tuple[str, HParam]]:
    return [(name, hp) for name in NAMES for hp in cells.space(name)]


@pytest.mark.parametrize(("name", "hp"), hparam_cases(), ids=lambda v: v if isinstance(v, str) else v.name)
def test_declared_defaults_and_ranges_are_consistent(name: str, hp: HParam) -> None:
    assert hp.check(hp.default) == hp.default
    for task, value in hp.per_task.items():
        assert hp.check(value) == value, f"{name}.{hp.name} default for {task}"
    if hp.kind == "choice":
        assert len(hp.choices) > 0
        assert hp.default in hp.choices or hp.valid is not None
        for value in hp.choices:
            hp.check(value)
    else:
        assert hp.low is not None and hp.high is not None
        assert hp.low <= hp.high
        if hp.valid is not None:
            assert hp.valid[0] <= hp.low <= hp.high <= hp.valid[1], f"{name}.{hp.name} search outside valid"
        if hp.log:
            assert hp.low > 0, f"{name}.{hp.name}: log search needs a positive low"
    assert hp.role in ("model", "train")


@pytest.mark.parametrize("name", NAMES)
def test_build_uses_declared_defaults(name: str) -> None:
    space = by_name(cells.space(name))
    default_layers = int(space["num_layers"].default)
    model = cells.build(name, D, H, default_layers)
    assert model.hidden_size == H
    assert model.num_layers == default_layers
    assert model.input_size == D
    assert model.name == name
    assert model.citation
