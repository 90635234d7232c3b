"""Search domains of a spec's arms: what each arm searches, over what, and what it fixes.

A hyperparameter is searched over its declared domain (`cells.space`) when it is `searched` and
that domain holds more than one value; a spec's `space` entry replaces the domain (an `Override`:
an interval `[low, high]` / `[low, high, log]`, or `{choices: [...]}`) and makes it searched; a
`fixed` entry pins a value. Both take model names or `all` as keys: an `all` entry applies to the
listed models that declare the hyperparameter, and a model's own entry replaces it.

The search driver reads `fixed_hparams`, `search_space` (Optuna distributions) and `grid` (the
finite values of Optuna's GridSampler). Nothing here reads data or builds a task.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, model_serializer, model_validator

from seqarena import cells
from seqarena.cells.space import HParam, Value, by_name
from seqarena.errors import BadInput, one_of

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution

    from seqarena.platform.spec import Arm, Spec

#: The key of `space` / `fixed` entries that apply to every listed model declaring the hyperparameter.
ALL = "all"
OVERRIDE_FORMS = "[low, high], [low, high, log] or {choices: [...]}"


class Override(BaseModel):
    """A search domain: an interval `[low, high]` / `[low, high, log]`, or `{choices: [...]}`.

    In YAML an interval is written as a list; `to_yaml` writes it back the same way. `search_space`,
    `grid` and `describe` see every searched domain, declared or overridden, in this form.
    """

    model_config = ConfigDict(extra="forbid")

    low: int | float | None = Field(None, description="lower end of the interval (inclusive)")
    high: int | float | None = Field(None, description="upper end of the interval (inclusive)")
    log: bool = Field(False, description="search the interval log-uniformly")
    choices: list[Any] | None = Field(None, min_length=1, description="the finite set searched")

    @model_validator(mode="before")
    @classmethod
    def _from_yaml(cls, data: Any) -> Any:
        if isinstance(data, list | tuple):
            return _range_from_list(list(data))
        if not isinstance(data, Mapping):
            raise BadInput("", data, OVERRIDE_FORMS)
        ends = {end: _number(data[end], data) for end in ("low", "high") if data.get(end) is not None}
        return {**data, **ends}

    @model_validator(mode="after")
    def _one_form(self) -> Override:
        range_parts = self.low is not None or self.high is not None or self.log
        if self.choices is not None and not range_parts:
            return self
        if self.choices is None and self.low is not None and self.high is not None:
            return self
        raise BadInput("", self.__dict__, OVERRIDE_FORMS)

    @model_serializer
    def _as_yaml(self) -> list[Any] | dict[str, list[Any]]:
        if self.choices is not None:
            return {"choices": list(self.choices)}
        return [self.low, self.high, "log"] if self.log else [self.low, self.high]


def _range_from_list(items: list[Any]) -> dict[str, Any]:
    """`[low, high]` or `[low, high, log]` as Override fields."""
    if len(items) not in (2, 3) or (len(items) == 3 and items[2] != "log"):
        raise BadInput("", items, OVERRIDE_FORMS)
    return {"low": _number(items[0], items), "high": _number(items[1], items), "log": len(items) == 3}


def _number(value: Any, whole: Any) -> int | float:
    """An interval end as a number (YAML reads `1e-4` as a string)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    raise BadInput("", whole, f"numbers in {OVERRIDE_FORMS}")


# --- which entries apply to a model ------------------------------------------------------------


def for_model(section: Mapping[str, Mapping[str, Any]], model: str) -> dict[str, tuple[str, Any]]:
    """name -> (key, value) of the `space` or `fixed` entries that apply to `model`."""
    declared = by_name(cells.space(model))
    entries = {name: (ALL, value) for name, value in section.get(ALL, {}).items() if name in declared}
    entries.update({name: (model, value) for name, value in section.get(model, {}).items()})
    return entries


def fixed_entries(spec: Spec, model: str) -> dict[str, Any]:
    """name -> value of the `fixed` entries that apply to `model`."""
    return {name: value for name, (_, value) in for_model(spec.fixed, model).items()}


def fixed_hparams(spec: Spec, arm: Arm) -> dict[str, Value]:
    """The arm's fixed hyperparameters (`fixed.all` and `fixed.<model>`, checked), plus the
    hidden_size chosen for `param_budget`. Everything else takes the model's task default."""
    if arm not in spec.arms():
        raise BadInput("arm", arm.key, one_of(a.key for a in spec.arms()))
    declared = by_name(cells.space(arm.model))
    values = {name: declared[name].check(value) for name, value in fixed_entries(spec, arm.model).items()}
    size = spec.budget_size(arm)
    if size is not None:
        values["hidden_size"] = size.hidden_size
    return values


# --- searched domains --------------------------------------------------------------------------


def declared_domain(hp: HParam) -> Override | None:
    """The declared search domain of `hp`, or None when it holds a single value."""
    if hp.kind == "choice":
        return Override(choices=list(hp.choices)) if len(hp.choices) > 1 else None
    if hp.low is None or hp.high is None or not hp.low < hp.high:
        return None
    cast = int if hp.kind == "int" else float
    return Override(low=cast(hp.low), high=cast(hp.high), log=hp.log)


def searched(spec: Spec, model: str, skip: set[str]) -> dict[str, tuple[HParam, Override]]:
    """The searched hyperparameters of `model` other than `skip`, with their domains, in declaration order."""
    overrides = for_model(spec.space, model)
    domains = {}
    for hp in cells.space(model):
        if hp.name in skip:
            continue
        if hp.name in overrides:
            domains[hp.name] = (hp, overrides[hp.name][1])
        elif hp.searched and (declared := declared_domain(hp)) is not None:
            domains[hp.name] = (hp, declared)
    return domains


def arm_domains(spec: Spec, arm: Arm) -> dict[str, tuple[HParam, Override]]:
    """The searched hyperparameters of `arm`: all but the fixed ones (and hidden_size under param_budget)."""
    return searched(spec, arm.model, skip=set(fixed_hparams(spec, arm)))


def choice_changes(spec: Spec, model: str) -> list[dict[str, Value]]:
    """One change per value of each searched choice among the model's constructor hyperparameters
    (the variants whose parameter counts `param_budget` must all build)."""
    constructor = {*cells.model_hparams(model), "num_layers"}
    domains = searched(spec, model, skip={*fixed_entries(spec, model), "hidden_size"})
    return [{name: value} for name, (_, domain) in domains.items()
            if name in constructor and domain.choices is not None for value in domain.choices]


def search_space(spec: Spec, arm: Arm) -> dict[str, BaseDistribution]:
    """Optuna distributions of the arm's searched hyperparameters (a float or int interval, or choices)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    space: dict[str, BaseDistribution] = {}
    for name, (hp, domain) in arm_domains(spec, arm).items():
        if domain.choices is not None:
            space[name] = CategoricalDistribution(domain.choices)
        elif hp.kind == "int":
            space[name] = IntDistribution(int(domain.low or 0), int(domain.high or 0), log=domain.log)
        else:
            space[name] = FloatDistribution(float(domain.low or 0), float(domain.high or 0), log=domain.log)
    return space


def grid(spec: Spec, arm: Arm) -> dict[str, list[Value]]:
    """Finite values of each searched hyperparameter for Optuna's GridSampler: the choices, or
    `search.grid_points` points of an interval (log-spaced for a log interval; integers rounded and
    de-duplicated)."""
    return {name: grid_values(hp, domain, spec.search.grid_points)
            for name, (hp, domain) in arm_domains(spec, arm).items()}


def grid_values(hp: HParam, domain: Override, points: int) -> list[Value]:
    """The choices of `domain`, or `points` values spanning its interval, ends included."""
    if domain.choices is not None:
        return list(domain.choices)
    low, high = float(domain.low or 0), float(domain.high or 0)
    if domain.log:
        a, b = math.log(low), math.log(high)
        values = [math.exp(a + (b - a) * i / (points - 1)) for i in range(points)]
    else:
        values = [low + (high - low) * i / (points - 1) for i in range(points)]
    values[0], values[-1] = low, high
    if hp.kind == "int":
        return list(dict.fromkeys(round(value) for value in values))
    return [float(f"{value:.12g}") for value in values]


def domain_text(hp: HParam, domain: Override) -> str:
    """`one of a, b` or `float in [low, high] log`, for `seqarena validate`."""
    if domain.choices is not None:
        return "one of " + ", ".join(str(choice) for choice in domain.choices)
    return f"{hp.kind} in [{domain.low:g}, {domain.high:g}]" + (" log" if domain.log else "")
