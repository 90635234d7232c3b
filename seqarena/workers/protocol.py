"""The parts of the authors' training protocols that the training loop applies around the model.

Each model declares its authors' choices per task among its training hyperparameters
(`seqarena.cells.space.training_hparams`, with the file and line of the official code beside each
model's declaration; docs/reference/protocols.md lists them all). Here they act:

* `init_readout`: the readout layer's initialisation (`readout_init`), e.g. LEM's and UnICORNN's
  `kaiming_normal_` (std sqrt(2 / H): 0.125 at H = 128, where torch's default gives std 0.051).
* `make_optimizer` and `weight_penalty`: weight decay on all parameters or on the weight matrices only
  (`weight_decay_on`), in the optimiser after clipping or in the loss before it (`weight_decay_in`;
  JANET's TensorFlow code adds wd · Σ v² / 2 over its non-bias variables to the loss); parameters a
  model marks with their own settings (`seqarena.cells.base.OwnOptimizer`: S4D's A and Δ, at most lr
  0.001 and no weight decay, as in `state-spaces/s4`) get a param group of their own.
* `LRSchedule`: the step decay of the learning rate, counted in epochs of the training set as the
  papers count it and converted to optimiser steps (`lr_decay_epochs`, `lr_decay_repeats`,
  `lr_decay_factor`); `scheduler` turns it into torch's `LambdaLR`, whose state a checkpoint keeps.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.optim.lr_scheduler import LambdaLR

from seqarena.cells.base import OwnOptimizer, own_optimizer_of
from seqarena.cells.space import Value
from seqarena.errors import BadInput


@torch.no_grad()
def init_readout(linear: nn.Linear, scheme: str) -> None:
    """Initialise the readout `linear` as `scheme` says (one of `seqarena.cells.space.READOUT_INITS`);
    `torch` keeps `nn.Linear`'s default. Draws from torch's global RNG."""
    if scheme == "torch":
        return
    if scheme in ("kaiming_normal", "kaiming_normal_zero_bias"):
        nn.init.kaiming_normal_(linear.weight)  # fan_in, gain sqrt(2): std = sqrt(2 / H)
    elif scheme == "glorot_uniform_zero_bias":
        nn.init.xavier_uniform_(linear.weight)
    elif scheme == "normal_0.01":
        linear.weight.normal_(0.0, 0.01)
    else:
        raise BadInput("readout_init", scheme, "torch, kaiming_normal, kaiming_normal_zero_bias, "
                       "glorot_uniform_zero_bias or normal_0.01")
    if scheme.endswith("zero_bias") and linear.bias is not None:
        linear.bias.zero_()


def decayed_parameters(model: nn.Module, on: str) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """The parameters weight decay acts on and the others: `all`, or the `matrices` (two or more
    dimensions; the biases and other vectors are left alone). Parameters with their own optimiser
    settings (`own_optimizer_of`, never decayed) are in neither list."""
    params = [p for p in model.parameters() if own_optimizer_of(p) is None]
    if on == "all":
        return params, []
    return [p for p in params if p.dim() >= 2], [p for p in params if p.dim() < 2]


def make_optimizer(model: nn.Module, hparams: Mapping[str, Value]) -> torch.optim.Optimizer:
    """Adam, RMSprop or SGD with the trial's learning rate; weight decay in the optimiser on the
    parameters `weight_decay_on` names when `weight_decay_in` is `optimizer` (torch defaults else).
    Parameters a model marked with their own settings (`seqarena.cells.base.OwnOptimizer`, e.g. S4D's A
    and Δ) get one group per setting: learning rate min(max_lr, lr), no weight decay."""
    kinds = {"adam": torch.optim.Adam, "rmsprop": torch.optim.RMSprop, "sgd": torch.optim.SGD}
    lr = float(hparams["lr"])
    wd = float(hparams["weight_decay"]) if hparams["weight_decay_in"] == "optimizer" else 0.0
    decayed, exempt = decayed_parameters(model, str(hparams["weight_decay_on"]))
    groups: list[dict[str, Any]] = [{"params": decayed, "weight_decay": wd}]
    if exempt:
        groups.append({"params": exempt, "weight_decay": 0.0})
    own: dict[OwnOptimizer, list[nn.Parameter]] = {}
    for param in model.parameters():
        settings = own_optimizer_of(param)
        if settings is not None:
            own.setdefault(settings, []).append(param)
    for settings, params in own.items():
        groups.append({"params": params, "weight_decay": 0.0, "lr": min(settings.max_lr, lr)})
    return kinds[str(hparams["optimizer"])](groups, lr=lr)


def weight_penalty(model: nn.Module, hparams: Mapping[str, Value]) -> Tensor | None:
    """wd · Σ v² / 2 over the decayed parameters, to add to the loss when `weight_decay_in` is `loss`
    (TensorFlow's `l2_loss`; JANET `model_file.py`); None when there is nothing to add."""
    wd = float(hparams["weight_decay"])
    if hparams["weight_decay_in"] != "loss" or wd == 0.0:
        return None
    decayed, _ = decayed_parameters(model, str(hparams["weight_decay_on"]))
    return wd * sum(p.pow(2).sum() for p in decayed) / 2


@dataclass(frozen=True)
class LRSchedule:
    """The learning rate × `factor` after `every_steps` optimiser steps, once or (`repeats`) after every
    `every_steps`; `every_steps = 0` keeps it constant. `steps_per_epoch` records the conversion from the
    paper's epochs (None for a task without a fixed training set)."""

    every_steps: int = 0
    repeats: bool = False
    factor: float = 0.1
    steps_per_epoch: int | None = None

    @classmethod
    def from_hparams(cls, hparams: Mapping[str, Value], steps_per_epoch: int | None) -> LRSchedule:
        """The schedule of `lr_decay_*` in epochs, converted with the task's `steps_per_epoch`.

        Raises:
            BadInput: a decay in epochs on a task that draws fresh data every step (it has no epochs).
        """
        epochs = int(hparams["lr_decay_epochs"])
        if epochs > 0 and steps_per_epoch is None:
            raise BadInput("lr_decay_epochs", epochs, "0 on a task that draws fresh data every step "
                           "(it has no epochs); a decay needs a fixed training set")
        return cls(every_steps=epochs * (steps_per_epoch or 0), repeats=bool(hparams["lr_decay_repeats"]),
                   factor=float(hparams["lr_decay_factor"]), steps_per_epoch=steps_per_epoch)

    def multiplier(self, step: int) -> float:
        """The learning rate's multiple for the update after `step` updates."""
        if self.every_steps == 0:
            return 1.0
        decays = step // self.every_steps if self.repeats else int(step >= self.every_steps)
        return self.factor ** decays

    def decay_steps(self, budget: int) -> list[int]:
        """The steps (updates done) within `budget` after which the learning rate changes."""
        if self.every_steps == 0:
            return []
        if not self.repeats:
            return [self.every_steps] if self.every_steps < budget else []
        return list(range(self.every_steps, budget, self.every_steps))

    def record(self, budget: int) -> dict[str, int | list[int] | None]:
        """What a trial records of its schedule: the epoch in steps and where the rate changes."""
        return {"steps_per_epoch": self.steps_per_epoch, "lr_decay_steps": self.decay_steps(budget)}

    def scheduler(self, optimizer: torch.optim.Optimizer) -> LambdaLR:
        """torch's `LambdaLR` following this schedule; step it once after every optimiser step."""
        return LambdaLR(optimizer, lambda step: self.multiplier(step))

