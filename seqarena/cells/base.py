"""The interfaces every model implements, and the one unroller that all step-based cells share.

Shapes: `B` batch, `T` time, `d` input size, `H` hidden size (the paper's `m`).

* `SequenceModel.forward(x: [B, T, d]) -> [B, T, H]`: causal features (step t sees inputs <= t).
* `RecurrentCell` (JANET, coRNN, UnICORNN, LEM): `project_inputs` maps the whole input sequence
  through the input weights in one matrix product, `step` advances the state by one time step
  from one projected input, `output` reads the features from the state. `unroll` runs any cell
  over a sequence; `StackedRecurrent` stacks cells into layers. No model writes its own time loop.
* `probing()`: while active, every recurrent layer reports each step's state (kept in the graph,
  so the gradient of a loss with respect to it can be read) and its gates to a `StepProbe`; the
  diagnostics of `seqarena trace`. Off (the default), the unroller pays one context-variable read.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from seqarena.cells.space import Space

State = tuple[Tensor, ...]


@dataclass(frozen=True)
class OwnOptimizer:
    """The optimiser settings the authors give some parameters apart from the rest (read by
    `seqarena.workers.protocol.make_optimizer`): at most `max_lr` (the trial's learning rate when it is
    smaller) and no weight decay. S4D's A and Δ: `state-spaces/s4` `models/s4/s4d.py:49-59` (`register`:
    `_optim = {"weight_decay": 0.0, "lr": lr}`), `example.py:177` (`lr=min(0.001, args.lr)`) and
    `example.py:247-276` (`setup_optimizer`: one param group per `_optim`)."""

    max_lr: float


#: The attribute under which a parameter carries its `OwnOptimizer`.
OWN_OPTIMIZER_ATTR = "seqarena_own_optimizer"


def own_optimizer(param: nn.Parameter, settings: OwnOptimizer) -> nn.Parameter:
    """`param`, marked to be trained with `settings` (see `OwnOptimizer`)."""
    setattr(param, OWN_OPTIMIZER_ATTR, settings)
    return param


def own_optimizer_of(param: nn.Parameter) -> OwnOptimizer | None:
    """The `OwnOptimizer` `param` was marked with, if any."""
    settings = getattr(param, OWN_OPTIMIZER_ATTR, None)
    return settings if isinstance(settings, OwnOptimizer) else None


class SequenceModel(nn.Module, ABC):
    """A causal sequence-to-features model: `[B, T, input_size] -> [B, T, hidden_size]`.

    Class attributes:
        name: the registry name (`cornn`).
        hparams: the declared hyperparameters (see `seqarena.cells.space`).
        citation: the paper the implementation follows.
        equations: the model's equations as LaTeX display lines (the dashboard's Models page).
        causal_to_the_bit: True when an output is bit for bit independent of later inputs; False where the
            causal map is computed by FFTs over the whole sequence (S4D's convolution view), so that later
            inputs move earlier outputs by rounding only (about 1e-7 of their size in float32).
    """

    name: ClassVar[str]
    hparams: ClassVar[Space]
    citation: ClassVar[str]
    equations: ClassVar[tuple[str, ...]]
    causal_to_the_bit: bool = True

    def __init__(self, input_size: int, hidden_size: int, num_layers: int) -> None:
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers

    @abstractmethod
    def forward(self, x: Tensor) -> Tensor:
        """Map `x: [B, T, input_size]` to causal features `[B, T, hidden_size]`."""

    def extra_info(self) -> dict[str, Any]:
        """Facts about this instance worth recording with a trial (e.g. a receptive field)."""
        return {}


class RecurrentCell(nn.Module, ABC):
    """One layer of a step-based recurrence.

    `state_size` tensors of shape `[B, H]` form the state; it starts at zero (as in every paper
    here). `step` takes the step's projected input `[B, K]` from `project_inputs`.
    """

    state_size: ClassVar[int]

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size

    def init_state(self, batch: int, like: Tensor) -> State:
        """The zero state `state_size × [B, H]` with the dtype and device of `like`."""
        zeros = like.new_zeros(batch, self.hidden_size)
        return tuple(zeros.clone() for _ in range(self.state_size))

    @abstractmethod
    def project_inputs(self, u: Tensor) -> Tensor:
        """The input terms of the update for all steps at once: `[B, T, d] -> [B, T, K]`."""

    def project_time_major(self, u: Tensor) -> Tensor:
        """`project_inputs(u)` as `[B, T, K]` whose memory is time-major ([T, B, K] contiguous), the
        layout the kernels' C++ sources read without a copy."""
        return self.project_inputs(u.transpose(0, 1)).transpose(0, 1)

    @abstractmethod
    def step(self, x_t: Tensor, state: State) -> State:
        """Advance the state by one step from the projected input `x_t: [B, K]`."""

    @abstractmethod
    def output(self, state: State) -> Tensor:
        """The layer's features `[B, H]` read from a state."""

    def gates(self, x_t: Tensor, state: State) -> dict[str, Tensor]:
        """The gate values `[B, H]` that `step(x_t, state)` uses, by name (for `probing`); none by default."""
        return {}


class StepProbe:
    """What `probing()` collected: per recurrent layer (in the order they ran), each step's state
    (the tensors the next step reads, with `retain_grad`, so after `backward` their `.grad` is the
    total derivative of the loss through all later steps) and each step's gate values (detached)."""

    def __init__(self) -> None:
        self.states: list[list[State]] = []
        self.gates: list[dict[str, list[Tensor]]] = []

    def start_layer(self) -> int:
        """Open the record of the next layer; return its index."""
        self.states.append([])
        self.gates.append({})
        return len(self.states) - 1

    def record(self, layer: int, state: State, gates: dict[str, Tensor] | None = None) -> None:
        """Record one step of `layer`: its new state (kept for gradients) and its gates."""
        for tensor in state:
            if tensor.requires_grad:
                tensor.retain_grad()
        self.states[layer].append(state)
        for name, value in (gates or {}).items():
            self.gates[layer].setdefault(name, []).append(value.detach())


_PROBE: ContextVar[StepProbe | None] = ContextVar("seqarena_step_probe", default=None)


@contextmanager
def probing() -> Iterator[StepProbe]:
    """Collect the steps of every recurrent layer run inside the block (see `StepProbe`)."""
    probe = StepProbe()
    token = _PROBE.set(probe)
    try:
        yield probe
    finally:
        _PROBE.reset(token)


def active_probe() -> StepProbe | None:
    """The probe of the enclosing `probing()` block, if any."""
    return _PROBE.get()


def unroll(cell: RecurrentCell, u: Tensor, state: State | None = None) -> tuple[Tensor, State]:
    """Run `cell` over the sequence `u: [B, T, d]`; return the features `[B, T, H]` and final state.

    Steps are taken with `unbind(1)`: indexing `x[:, t]` on a tensor that needs grad would make
    each step's backward write a full `[B, T, K]` gradient (quadratic in T).
    """
    projected = cell.project_inputs(u)
    if state is None:
        state = cell.init_state(u.shape[0], projected)
    probe = _PROBE.get()
    if probe is not None:
        return _probed_unroll(cell, projected, state, probe)
    outputs = []
    for x_t in projected.unbind(1):
        state = cell.step(x_t, state)
        outputs.append(cell.output(state))
    return torch.stack(outputs, dim=1), state


def _probed_unroll(cell: RecurrentCell, projected: Tensor, state: State, probe: StepProbe) -> tuple[Tensor, State]:
    """`unroll`'s loop, reporting each step's state and gates (`RecurrentCell.gates`) to `probe`."""
    layer = probe.start_layer()
    outputs = []
    for x_t in projected.unbind(1):
        gates = cell.gates(x_t, state)
        state = cell.step(x_t, state)
        probe.record(layer, state, gates)
        outputs.append(cell.output(state))
    return torch.stack(outputs, dim=1), state


class _MaskDropout(nn.Module):
    """Dropout with a Bernoulli mask of the shape `mask_shape` gives, scaled by 1 / (1 − p); identity in
    eval mode or with p = 0. The mask is drawn in the logical order of its shape whatever the input's
    memory layout, so the kernels' time-major outputs and the eager unroll's see the same mask."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def mask_shape(self, x: Tensor) -> tuple[int, ...]:
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty(self.mask_shape(x)).bernoulli_(keep) / keep
        return x * mask


class VariationalDropout(_MaskDropout):
    """Dropout with one Bernoulli mask per (sequence, unit), shared over all time steps.

    As in UnICORNN's deep stacking (Rusch & Mishra 2021, `tk-rusch/unicornn`, dropout
    "over time").
    """

    def mask_shape(self, x: Tensor) -> tuple[int, ...]:
        return (x.shape[0], 1, x.shape[2])


class StepDropout(_MaskDropout):
    """Dropout with a fresh Bernoulli mask at every (sequence, step, unit), as TensorFlow's
    `DropoutWrapper(output_keep_prob)` draws it each step (JANET)."""

    def mask_shape(self, x: Tensor) -> tuple[int, ...]:
        return tuple(x.shape)


#: Where a stack drops units out (p = `dropout`): `variational`, one mask per sequence after every
#: layer, the last included (UnICORNN's `dropout_overtime`); `between_layers`, a fresh mask at every
#: step on the outputs that feed the next layer, none on the features the readout reads (JANET's
#: `DropoutWrapper(output_keep_prob)` cells whose readout reads the final state, `model_file.py`).
DROPOUT_PLACEMENTS = ("variational", "between_layers")


class StackedRecurrent(SequenceModel):
    """`num_layers` cells of one kind; each layer's feature sequence is the next layer's input.

    Subclasses set `cell_type` and implement `make_cell(input_size)` with their hyperparameters;
    dropout (p = `dropout`) is placed as `dropout_placement` says (`DROPOUT_PLACEMENTS`).
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int, dropout: float = 0.0,
                 dropout_placement: str = "variational") -> None:
        super().__init__(input_size, hidden_size, num_layers)
        sizes = [input_size] + [hidden_size] * (num_layers - 1)
        self.layers = nn.ModuleList(self.make_cell(size) for size in sizes)
        if dropout_placement not in DROPOUT_PLACEMENTS:
            raise ValueError(f"dropout_placement {dropout_placement!r}: one of {', '.join(DROPOUT_PLACEMENTS)}")
        self.dropout_placement = dropout_placement
        self.dropout = VariationalDropout(dropout) if dropout_placement == "variational" else StepDropout(dropout)

    def drop(self, x: Tensor, layer: int) -> Tensor:
        """Dropout on the features `x` of layer `layer` (0-based) as `dropout_placement` places it."""
        if self.dropout_placement == "between_layers" and layer == len(self.layers) - 1:
            return x
        return self.dropout(x)

    @abstractmethod
    def make_cell(self, input_size: int) -> RecurrentCell:
        """A cell of this model reading `input_size` features."""

    def forward(self, x: Tensor) -> Tensor:
        for layer, cell in enumerate(self.layers):
            x, _ = unroll(cell, x)
            x = self.drop(x, layer)
        return x
