"""Inside a model: hidden states, gates and the gradient of the loss through time (`seqarena trace`).

The diagnostics the papers use to explain why LSTM fails on long sequences and the oscillator
models do not: coRNN (Rusch & Mishra 2021, Prop. 3.3 / Fig. on gradient norms), UnICORNN (Sec. 4,
bounds on ∂L/∂y_t) and LEM (Rusch et al. 2022, Sec. 4) bound the gradients of the loss with
respect to the hidden state at early steps away from zero and infinity; an LSTM's decay
geometrically over the steps that separate them from the loss.

For one fixed batch of the task (its validation set, so independent of any seed), with the model
in evaluation mode:

* `grad_state[l][t]`: the batch mean of ‖∂L/∂s_t‖ for the state s_t of recurrent layer l (all
  state tensors of the step, e.g. (y, z) of coRNN, (h, c) of LSTM), the total derivative through
  every later step — how far back the gradient reaches. Recurrent models only.
* `grad_input[t]`: the batch mean of ‖∂L/∂u_t‖ for the input at step t, for every model (TCN and
  Transformer included).
* `state_norm[l][t]`: the batch mean of ‖h_t‖ of layer l's features; `states`: the first units of
  the last layer's features for the first sequence, per step.
* `gates[name][t]`: the mean over batch and units of each gate of the last recurrent layer
  (LSTM input/forget/output, GRU reset/update, JANET forget, LEM Δt̄ and Δt_z).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor

from seqarena.cells.base import probing
from seqarena.tasks.base import Batch, Task


@dataclass
class Trace:
    """Per-step diagnostics of one model on one batch (see the module docstring); lists over t = 1..T."""

    model: str
    task: str
    seq_len: int
    batch_size: int
    loss: float
    grad_input: list[float]
    grad_state: list[list[float]] = field(default_factory=list)
    state_norm: list[list[float]] = field(default_factory=list)
    states: list[list[float]] = field(default_factory=list)
    gates: dict[str, list[float]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def reach(self, layer: int = 0) -> float | None:
        """‖∂L/∂s_1‖ / ‖∂L/∂s_T‖ of `layer`: how much of the gradient at the last step reaches the first."""
        if not self.grad_state:
            return None
        curve = self.grad_state[layer]
        return curve[0] / curve[-1] if curve[-1] > 0 else float("inf")


def trace(net: torch.nn.Module, task: Task, batch: Batch, *, model: str, units: int = 8) -> Trace:
    """Run `net` (a model followed by the task's head) on `batch`, backpropagate the task's loss,
    and read the per-step diagnostics. The weights are left untouched (no optimiser step)."""
    was_training = net.training
    net.eval()
    inputs, targets = batch
    inputs = inputs.detach().clone().requires_grad_(True)
    try:
        with torch.enable_grad(), probing() as probe:
            output = net(inputs)
            loss = task.loss(output, targets)
            net.zero_grad(set_to_none=True)
            loss.backward()
    finally:
        net.train(was_training)
        net.zero_grad(set_to_none=True)
    result = Trace(model=model, task=task.name, seq_len=inputs.shape[1], batch_size=inputs.shape[0],
                   loss=float(loss.detach()), grad_input=_per_step_norm(inputs.grad))
    for layer_states in probe.states:
        result.grad_state.append([_mean_norm([s.grad for s in state]) for state in layer_states])
        result.state_norm.append([float(state[0].detach().norm(dim=-1).mean()) for state in layer_states])
    if probe.states:
        last = probe.states[-1]
        result.states = [state[0][0, :units].detach().tolist() for state in last]
        result.gates = {name: [float(v.mean()) for v in values] for name, values in probe.gates[-1].items()}
    return result


def _per_step_norm(grad: Tensor | None) -> list[float]:
    if grad is None:
        return []
    return grad.norm(dim=-1).mean(dim=0).tolist()


def _mean_norm(grads: list[Tensor | None]) -> float:
    """Batch mean of the norm of one step's state gradient (its tensors concatenated); 0 if none reached it."""
    present = [g for g in grads if g is not None]
    if not present:
        return 0.0
    return float(torch.cat(present, dim=-1).norm(dim=-1).mean())
