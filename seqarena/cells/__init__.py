"""The model zoo: `names()`, `build(...)`, `space(name)`.

A model is its module plus one line in `_MODELS`; the contract tests in
`tests/unit/test_cells_contract.py` cover every registered model.
"""

from __future__ import annotations

import inspect
from typing import Any

from seqarena.cells.base import SequenceModel
from seqarena.cells.cornn import CoRNN
from seqarena.cells.dlinoss import DLinOSS
from seqarena.cells.gru import GRU
from seqarena.cells.janet import JANET
from seqarena.cells.kernels.heap import keep_freed_blocks
from seqarena.cells.lem import LEM
from seqarena.cells.linoss import LinOSS
from seqarena.cells.lru import LRU
from seqarena.cells.lstm import LSTM
from seqarena.cells.mamba import Mamba
from seqarena.cells.mingru import MinGRU, MinLSTM
from seqarena.cells.rnn import ElmanRNN
from seqarena.cells.s4d import S4D
from seqarena.cells.space import HParam, Space, Value, resolve
from seqarena.cells.tcn import TCN
from seqarena.cells.transformer import CausalTransformer
from seqarena.cells.unicornn import UnICORNN
from seqarena.errors import BadInput, one_of

__all__ = [
    "HParam", "SequenceModel", "Space", "build", "equations", "keep_freed_blocks", "model_class", "model_hparams",
    "names", "paper", "space",
]

_MODELS: dict[str, type[SequenceModel]] = {
    cls.name: cls
    for cls in (ElmanRNN, LSTM, GRU, JANET, CoRNN, UnICORNN, LEM, TCN, CausalTransformer,
                LinOSS, DLinOSS, LRU, S4D, Mamba, MinGRU, MinLSTM)
}

#: Hyperparameters passed to `build` positionally rather than as `**hparams`.
STRUCTURAL = ("hidden_size", "num_layers")


def names() -> list[str]:
    """Registered model names, in registry order."""
    return list(_MODELS)


def model_class(name: str) -> type[SequenceModel]:
    """The class registered as `name`; `BadInput` (a ValueError) naming the known ones otherwise."""
    try:
        return _MODELS[name]
    except KeyError:
        raise BadInput("model", name, one_of(_MODELS)) from None


def space(name: str) -> Space:
    """The declared hyperparameters of model `name`: defaults, search and valid ranges."""
    return model_class(name).hparams


def equations(name: str) -> tuple[str, ...]:
    """The update equations of model `name` as LaTeX, one display block per string.

    Each string is a body for Streamlit's `st.latex` (KaTeX), without `$$` delimiters; the symbols
    of the declared hyperparameters are the paper's (`dt` is Δt, `gamma` is γ, `alpha` is α, ...).
    Raises `BadInput` (a ValueError) naming the known models for an unknown `name`.
    """
    return model_class(name).equations


def paper(name: str) -> str:
    """The one-line citation (authors, year, title, venue) of the paper model `name` follows.

    Raises `BadInput` (a ValueError) naming the known models for an unknown `name`.
    """
    return model_class(name).citation


def model_hparams(name: str) -> list[str]:
    """Names of the hyperparameters that `build` accepts as keywords for model `name`."""
    return [hp.name for hp in space(name) if hp.role == "model" and hp.name not in STRUCTURAL]


def build(name: str, input_size: int, hidden_size: int, num_layers: int = 1, *,
          seq_len: int | None = None, **hparams: Any) -> SequenceModel:
    """Build model `name` mapping `[B, T, input_size]` to causal features `[B, T, hidden_size]`.

    Missing model hyperparameters take their declared defaults. `seq_len`, when given, is the
    longest sequence the model will see (chrono initialisation uses it as T_max).

    Raises:
        ValueError (`BadInput`): unknown model or hyperparameter, a value outside its valid range,
        or a non-positive size.
    """
    cls = model_class(name)
    allowed = model_hparams(name)
    unknown = [key for key in hparams if key not in allowed]
    if unknown:
        raise BadInput("hp", unknown[0], f"for model {name}: {one_of(allowed) if allowed else 'none'}")
    structural = resolve(space(name), {"hidden_size": hidden_size, "num_layers": num_layers})
    checked: dict[str, Value] = {
        key: value for key, value in resolve(space(name), hparams).items() if key in allowed
    }
    _check_positive("input_size", input_size)
    if seq_len is not None:
        _check_positive("seq_len", seq_len)
        if "seq_len" in inspect.signature(cls.__init__).parameters:
            checked["seq_len"] = seq_len
    return cls(input_size, int(structural["hidden_size"]), int(structural["num_layers"]), **checked)


def _check_positive(field: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise BadInput(field, value, "a positive integer")
