"""`param_budget`: the hidden size that gives an arm's model a fixed number of parameters.

The Long Range Arena fairness rule (Tay et al., ICLR 2021: models compared at comparable parameter
counts): each arm's `hidden_size` is chosen so that the model plus the task's readout head has
within `BUDGET_TOLERANCE` (10%) of the budget's parameters, counted with the arm's fixed and
default hyperparameters. Only the task's shape (`TaskShape`: input size, readout, length) enters
the count, so no data is read.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch

from seqarena import cells
from seqarena.cells.space import HParam, Value, by_name
from seqarena.errors import BadInput
from seqarena.tasks.base import TaskShape

#: How far a model's parameter count may be from `param_budget`, as a fraction of the budget.
BUDGET_TOLERANCE = 0.10
#: Hidden sizes tried to find the step of the admissible ones (e.g. a multiple of nhead).
_MAX_SIZE_UNIT = 64


@dataclass(frozen=True)
class BudgetSize:
    """The hidden size chosen for an arm and the parameters (model + readout head) it gives."""

    hidden_size: int
    params: int


def param_count(model: str, shape: TaskShape, values: Mapping[str, Value], hidden: int) -> int:
    """Parameters of `model` with hyperparameters `values` and `hidden` units, plus the task's head."""
    kwargs = {name: values[name] for name in cells.model_hparams(model)}
    with torch.random.fork_rng(devices=[]):  # building initialises weights: leave the global RNG alone
        backbone = cells.build(model, shape.input_size, hidden, int(values["num_layers"]),
                               seq_len=shape.length, **kwargs)
        head = shape.head(hidden)
    return sum(p.numel() for p in (*backbone.parameters(), *head.parameters()))


def size_for_budget(budget: int, model: str, shape: TaskShape, values: Mapping[str, Value],
                    variants: list[dict[str, Value]], where: str) -> BudgetSize:
    """The hidden size of `model` whose count is closest to `budget`; a `BadInput` unless within 10%.

    `values` are the arm's fixed and default hyperparameters; `variants` the changes of each
    searched constructor choice, all of which must build. Sizes go in steps of the smallest size
    with which every variant builds (e.g. each searched nhead divides it). `where` names the arm.
    """
    count = functools.cache(lambda hidden: param_count(model, shape, values, hidden))
    low, high = _size_bounds(by_name(cells.space(model))["hidden_size"])
    unit = _size_unit(model, high, lambda size: [count(size)] + [
        param_count(model, shape, {**values, **change}, size) for change in variants])
    k = _smallest_reaching(lambda k: count(k * unit), budget, high // unit)
    candidates = [s * unit for s in (k - 1, k) if s * unit >= max(low, 1)]
    best = min(candidates, key=lambda size: abs(count(size) - budget))
    if abs(count(best) - budget) > BUDGET_TOLERANCE * budget:
        nearest = ", ".join(f"hidden_size={size}: {count(size)} parameters" for size in candidates)
        steps = (f"; sizes go in steps of {unit} so that every searched choice builds: fixing such choices "
                 "allows finer steps") if unit > 1 else ""
        raise BadInput("param_budget", budget, f"a budget that {model} meets within 10% with a hidden_size "
                       f"in {low}..{high} on {where} (nearest: {nearest}{steps})")
    return BudgetSize(best, count(best))


def _size_bounds(hp: HParam) -> tuple[int, int]:
    """The hidden sizes a model accepts: the valid range, else the declared domain."""
    if hp.valid is not None:
        return int(hp.valid[0]), int(hp.valid[1])
    if hp.kind == "choice":
        return int(min(hp.choices)), int(max(hp.choices))  # type: ignore[call-overload]
    return int(hp.low or 1), int(hp.high or 1)


def _size_unit(model: str, high: int, build: Callable[[int], object]) -> int:
    """The smallest hidden size with which `build` succeeds; admissible sizes are its multiples."""
    problem: BadInput | None = None
    for size in range(1, min(_MAX_SIZE_UNIT, high) + 1):
        try:
            build(size)
            return size
        except BadInput as error:
            problem = error
    raise BadInput("param_budget", model, f"a model that builds, for every searched choice, with some "
                   f"hidden_size in 1..{min(_MAX_SIZE_UNIT, high)} ({problem})")


def _smallest_reaching(count: Callable[[int], int], budget: int, kmax: int) -> int:
    """The smallest k in 1..kmax with count(k) >= budget (kmax if none); count is increasing.

    Doubling then bisection: only sizes up to twice the answer are ever built.
    """
    hi = 1
    while hi < kmax and count(hi) < budget:
        hi = min(2 * hi, kmax)
    lo = hi // 2  # count(lo) < budget, or lo == 0
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if count(mid) >= budget:
            hi = mid
        else:
            lo = mid
    return hi
