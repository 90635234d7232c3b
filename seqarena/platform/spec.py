"""Search specs: the YAML file that says what to search, how, and on what budget (DESIGN.md, "Specs").

A spec names one task, its sequence lengths and the models to compare. An *arm* is one
(task, seq_len, model): each arm is searched and early-stopped on its own, with
`search.num_samples` trials (a grid search: the grid's size) plus `repeats - 1` re-runs of its best
configuration with other seeds.

Search domains come from the models' declarations (`cells.space`): a hyperparameter is searched
over its declared domain when it is `searched` and that domain holds more than one value.
`space` replaces a domain (`[low, high]`, `[low, high, log]` or `{choices: [...]}`) and makes the
hyperparameter searched; `fixed` pins a value. Both take model names or `all` as keys; an `all`
entry applies to the listed models that declare the hyperparameter, and a model's own entry
replaces the `all` entry of the same name. A hyperparameter may not be both fixed and overridden.

`param_budget` (the Long Range Arena fairness rule) fixes each arm's `hidden_size` so that the
model plus the task's readout head has within 10% of that many parameters, counted with the arm's
fixed and default hyperparameters.

All checking happens once, when the spec is parsed: registry names, ranges, fixed values, the task
at every sequence length (a real data set's files are read then) and the hidden sizes of
`param_budget`. Every problem is a `BadInput` whose field is the dotted path into the YAML
(`search.algorithm`, `models[1]`, `space.cornn.dt`), with the value received and what is allowed.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import torch
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveInt,
    PrivateAttr,
    ValidationError,
    model_serializer,
    model_validator,
)

from seqarena import cells, tasks
from seqarena.cells.space import HParam, Value, by_name, resolve
from seqarena.errors import BadInput, DataError, one_of
from seqarena.tasks.base import Task

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution

#: The key of `space` / `fixed` entries that apply to every listed model declaring the hyperparameter.
ALL = "all"
#: How far a model's parameter count may be from `param_budget`, as a fraction of the budget.
BUDGET_TOLERANCE = 0.10
#: Hidden sizes tried to find the step of the admissible ones (e.g. a multiple of nhead).
_MAX_SIZE_UNIT = 64
_OVERRIDE_FORMS = "[low, high], [low, high, log] or {choices: [...]}"
_MAPPING = "a YAML mapping of spec fields (name, task, seq_lens, models, budget, search, ...)"


class Arm(NamedTuple):
    """One (task, seq_len, model): the unit that is searched and early-stopped on its own."""

    task: str
    seq_len: int
    model: str

    @property
    def key(self) -> str:
        """`task/T=seq_len/model`, the arm's name in trackers and tables."""
        return f"{self.task}/T={self.seq_len}/{self.model}"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Budget(_Strict):
    """Training budget of one trial."""

    max_steps: int = Field(1000, gt=0, description="training steps (optimiser updates) of a trial")
    eval_every: int = Field(100, gt=0, description="steps between validation evaluations")

    @model_validator(mode="after")
    def _eval_within_run(self) -> Budget:
        if self.eval_every > self.max_steps:
            raise BadInput("eval_every", self.eval_every, f"1 <= eval_every <= max_steps ({self.max_steps})")
        return self


class SearchSettings(_Strict):
    """How each arm is searched and early-stopped."""

    algorithm: Literal["tpe", "random", "grid"] = Field("tpe", description="Optuna sampler of each arm")
    num_samples: int = Field(16, ge=1, description="search trials per arm (ignored for grid: the grid size)")
    scheduler: Literal["asha", "none"] = Field("asha", description="early stopping within an arm")
    max_concurrent_trials: int | None = Field(None, ge=1, description="trials running at once; null: Tune's")
    seed: int = Field(0, ge=0, description="seed of the samplers")
    grace_period: int | None = Field(
        None, gt=0, description="steps before ASHA may stop a trial; eval_every..max_steps, "
        "default 2 * eval_every (at most max_steps); filled in when the spec is parsed")
    reduction_factor: int = Field(3, ge=2, description="ASHA keeps 1 / reduction_factor per rung")
    grid_points: int = Field(3, ge=2, description="grid values per continuous range (log-spaced for log "
                             "ranges; integers rounded and de-duplicated)")


class Resources(_Strict):
    """What one trial reserves on the cluster."""

    cpus_per_trial: float = Field(1.0, gt=0, description="CPU cores per trial (fractions allowed)")
    gpus_per_trial: float = Field(0.0, ge=0, description="GPUs per trial (fractions allowed)")


class Override(_Strict):
    """A search domain: an interval `[low, high]` / `[low, high, log]`, or `{choices: [...]}`.

    In YAML an interval is written as a list; `to_yaml` writes it back the same way. `search_space`,
    `grid` and `describe` see every searched domain, declared or overridden, in this form.
    """

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
            raise BadInput("", data, _OVERRIDE_FORMS)
        ends = {end: _number(data[end], data) for end in ("low", "high") if data.get(end) is not None}
        return {**data, **ends}

    @model_validator(mode="after")
    def _one_form(self) -> Override:
        range_parts = self.low is not None or self.high is not None or self.log
        if self.choices is not None and not range_parts:
            return self
        if self.choices is None and self.low is not None and self.high is not None:
            return self
        raise BadInput("", self.__dict__, _OVERRIDE_FORMS)

    @model_serializer
    def _as_yaml(self) -> list[Any] | dict[str, list[Any]]:
        if self.choices is not None:
            return {"choices": list(self.choices)}
        return [self.low, self.high, "log"] if self.log else [self.low, self.high]


def _range_from_list(items: list[Any]) -> dict[str, Any]:
    """`[low, high]` or `[low, high, log]` as Override fields."""
    if len(items) not in (2, 3) or (len(items) == 3 and items[2] != "log"):
        raise BadInput("", items, _OVERRIDE_FORMS)
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
    raise BadInput("", whole, f"numbers in {_OVERRIDE_FORMS}")


class Spec(_Strict):
    """A search job: the arms (task x seq_lens x models), how each is searched, and the budget."""

    name: str = Field(pattern=r"^[A-Za-z0-9_-]+$", description="job name: letters, digits, '-', '_'")
    task: str = Field(description="registry name of the task (seqarena.tasks.names())")
    task_options: dict[str, Any] = Field(default_factory=dict, description="options given to tasks.build")
    seq_lens: list[PositiveInt] = Field(min_length=1, description="sequence lengths T (copy: blank length)")
    models: list[str] = Field(min_length=1, description="registry names of the models compared")
    budget: Budget = Field(default_factory=Budget)
    search: SearchSettings = Field(default_factory=SearchSettings)
    space: dict[str, dict[str, Override]] = Field(
        default_factory=dict, description="model (or all) -> hyperparameter -> replacement search domain")
    fixed: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="model (or all) -> hyperparameter -> fixed value")
    param_budget: PositiveInt | None = Field(
        None, description="parameters (model + readout head) each arm gets, within 10%, via hidden_size")
    repeats: int = Field(1, ge=1, description="seeds of each arm's best configuration, the search trial included")
    resources: Resources = Field(default_factory=Resources)

    #: (model, seq_len) -> (hidden_size, parameter count), chosen for `param_budget`.
    _budget_sizes: dict[tuple[str, int], tuple[int, int]] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _check_against_registries(self) -> Spec:
        _validate(self)
        return self

    def arms(self) -> list[Arm]:
        """Every arm, sequence length first, then models in the order listed."""
        return [Arm(self.task, seq_len, model) for seq_len in self.seq_lens for model in self.models]

    def trials_per_arm(self, model: str) -> int:
        """Search trials of an arm of `model` (grid: the grid size) plus `repeats - 1` re-runs."""
        arm = Arm(self.task, self.seq_lens[0], model)
        if self.search.algorithm == "grid":
            searched = math.prod(len(values) for values in grid(self, arm).values())
        else:
            searched = self.search.num_samples
        return searched + self.repeats - 1

    def trial_count(self) -> int:
        """Trials of the whole job."""
        return sum(self.trials_per_arm(arm.model) for arm in self.arms())

    def to_yaml(self) -> str:
        """The spec as YAML, every default filled in; `load_spec` reads it back to an equal spec."""
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False, default_flow_style=None)

    def spec_hash(self) -> str:
        """sha256 (hex) of the canonical JSON of the spec: equal specs, equal hashes."""
        text = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


# --- loading -----------------------------------------------------------------------------------


def load_spec(source: str | Path) -> Spec:
    """Read a spec from a YAML file (a `Path`, or a string naming an existing file) or YAML text.

    Raises:
        BadInput: an unreadable file, invalid YAML, or any problem `parse_spec` finds.
    """
    return parse_spec(_parse_yaml(_read_source(source)))


def parse_spec(data: Mapping[str, Any]) -> Spec:
    """Validate a spec given as a mapping (e.g. parsed YAML).

    Raises:
        BadInput: the first problem, with the dotted path of its field.
    """
    if not isinstance(data, Mapping):
        raise BadInput("spec", _summary(data), _MAPPING)
    try:
        return Spec.model_validate(dict(data))
    except ValidationError as error:
        raise _as_bad_input(error) from None


def _read_source(source: str | Path) -> str:
    """The YAML text of `source`."""
    path = Path(source)
    if isinstance(source, Path) or _is_file(path):
        try:
            return path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise BadInput("spec", str(source), f"a readable UTF-8 YAML file ({error})") from None
    if "\n" not in source and source.strip().endswith((".yaml", ".yml")):
        raise BadInput("spec", source, "an existing YAML file, or YAML text")
    return source


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):  # YAML text too long for a file name, or with a NUL byte
        return False


def _parse_yaml(text: str) -> Mapping[str, Any]:
    """The mapping in `text`; a syntax error or another kind of document is a `BadInput`."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise BadInput("spec", f"invalid YAML{where}: {problem}", _MAPPING) from None
    if not isinstance(data, Mapping):
        raise BadInput("spec", _summary(data), _MAPPING)
    return data


def _summary(data: Any) -> Any:
    """`data` itself when short, else its type: error messages stay one short line."""
    return data if len(repr(data)) <= 80 else f"a {type(data).__name__}"


def _as_bad_input(error: ValidationError) -> BadInput:
    """The first problem of a pydantic error as a `BadInput` naming the dotted field path."""
    first = error.errors()[0]
    where = _dotted(first["loc"])
    inner = first.get("ctx", {}).get("error")
    if isinstance(inner, BadInput):  # raised by one of our validators, relative to `where`
        if not where:
            return inner
        field = where + (inner.field if inner.field.startswith("[") or not inner.field else f".{inner.field}")
        return type(inner)(field, inner.value, inner.allowed)
    value = None if first["type"] == "missing" else first.get("input")
    return BadInput(where or "spec", value, _allowed(first))


def _dotted(loc: tuple[int | str, ...]) -> str:
    """`('space', 'cornn', 'dt')` -> `space.cornn.dt`; `('models', 1)` -> `models[1]`."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _allowed(problem: Mapping[str, Any]) -> str:
    """What is allowed, in words, for one pydantic problem."""
    kind = problem["type"]
    if kind == "extra_forbidden":
        model = _model_at(problem["loc"][:-1])
        return one_of(model.model_fields) if model else "no further keys"
    if kind == "missing":
        return "a value (this field is required)"
    if kind == "string_pattern_mismatch":
        return "letters, digits, '-' and '_'"
    if kind == "too_short":
        return f"at least {problem['ctx']['min_length']} item(s)"
    return str(problem["msg"]).removeprefix("Input should be ")


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The pydantic model that validates the mapping at `loc` (for listing its known keys)."""
    if not loc:
        return Spec
    if len(loc) == 1 and str(loc[0]) in Spec.model_fields:
        annotation = Spec.model_fields[str(loc[0])].annotation
        return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    return Override if len(loc) == 3 and loc[0] == "space" else None


# --- checks against the registries (run by Spec's validator) -----------------------------------


def _validate(spec: Spec) -> None:
    """Check `spec` against the model and task registries, and make its values canonical."""
    _check_names(spec)
    built = _build_tasks(spec)
    spec.search = _with_grace_period(spec.search, spec.budget)
    spec.fixed = {key: _checked_fixed(spec, key, values) for key, values in spec.fixed.items()}
    spec.space = {key: _checked_overrides(spec, key, entries) for key, entries in spec.space.items()}
    _check_conflicts(spec)
    if spec.param_budget is not None:
        spec._budget_sizes = {(arm.model, arm.seq_len): _size_for_budget(spec, arm, built[arm.seq_len])
                              for arm in spec.arms()}


def _check_names(spec: Spec) -> None:
    """Registered task and models, no repeats, `space` / `fixed` keys among the listed models."""
    tasks.task_class(spec.task)
    known = cells.names()
    for i, model in enumerate(spec.models):
        if model not in known:
            raise BadInput(f"models[{i}]", model, one_of(known))
    _check_unique("models", spec.models)
    _check_unique("seq_lens", spec.seq_lens)
    for section in ("space", "fixed"):
        for key in getattr(spec, section):
            if key == ALL or key in spec.models:
                continue
            if key in known:
                raise BadInput(f"{section}.{key}", key, f"a model listed in models ({', '.join(spec.models)}) "
                               f"or {ALL}")
            raise BadInput(f"{section}.{key}", key, one_of([*known, ALL]))


def _check_unique(field: str, values: list[Any]) -> None:
    for i, value in enumerate(values):
        if value in values[:i]:
            raise BadInput(f"{field}[{i}]", value, f"each value once ({value!r} is {field}[{values.index(value)}])")


def _build_tasks(spec: Spec) -> dict[int, Task]:
    """The task at every sequence length: checks the options, the length and the data files."""
    built = {}
    for i, seq_len in enumerate(spec.seq_lens):
        try:
            built[seq_len] = tasks.build(spec.task, seq_len, **spec.task_options)
        except DataError:
            raise
        except BadInput as error:
            field = error.field
            if field == "seq_len":
                field = f"seq_lens[{i}]"
            elif field.startswith("option."):
                field = "task_options." + field.removeprefix("option.")
            raise BadInput(field, error.value, error.allowed.removeprefix("Input should be ")) from None
    return built


def _with_grace_period(search: SearchSettings, budget: Budget) -> SearchSettings:
    """`search` with its grace period checked, or set to its default 2 * eval_every (<= max_steps)."""
    if search.grace_period is None:
        return search.model_copy(update={"grace_period": min(2 * budget.eval_every, budget.max_steps)})
    if not budget.eval_every <= search.grace_period <= budget.max_steps:
        raise BadInput("search.grace_period", search.grace_period,
                       f"budget.eval_every <= grace_period <= budget.max_steps ({budget.eval_every} .. "
                       f"{budget.max_steps})")
    return search


def _declarations(spec: Spec, section: str, key: str, name: str) -> list[tuple[str, HParam]]:
    """(model, HParam) for each model that entry `section.key.name` applies to; none is an error."""
    models = spec.models if key == ALL else [key]
    found = [(model, by_name(cells.space(model))[name]) for model in models
             if name in by_name(cells.space(model))]
    if not found:
        known = {hp.name for model in models for hp in cells.space(model)}
        owner = "any listed model" if key == ALL else f"model {key}"
        raise BadInput(f"{section}.{key}.{name}", name, f"a hyperparameter of {owner}: {one_of(known)}")
    return found


def _check_value(field: str, model: str, hp: HParam, value: Any) -> Value:
    """`hp.check(value)`, its error renamed to `field`."""
    try:
        return hp.check(value)
    except BadInput as error:
        raise BadInput(field, value, f"{error.allowed} (model {model})") from None


def _checked_fixed(spec: Spec, key: str, values: Mapping[str, Any]) -> dict[str, Value]:
    """The entries of `fixed.<key>`, each checked against every model it applies to."""
    checked: dict[str, Value] = {}
    for name, value in values.items():
        for model, hp in _declarations(spec, "fixed", key, name):
            checked[name] = _check_value(f"fixed.{key}.{name}", model, hp, value)
    return checked


def _checked_overrides(spec: Spec, key: str, entries: Mapping[str, Override]) -> dict[str, Override]:
    """The entries of `space.<key>`, each checked against every model it applies to."""
    checked = {}
    for name, override in entries.items():
        field = f"space.{key}.{name}"
        for model, hp in _declarations(spec, "space", key, name):
            if override.choices is not None:
                checked[name] = _checked_choices(field, model, hp, override.choices)
            else:
                checked[name] = _checked_range(field, model, hp, override)
    return checked


def _checked_choices(field: str, model: str, hp: HParam, choices: list[Any]) -> Override:
    values = [_check_value(field, model, hp, value) for value in choices]
    for i, value in enumerate(values):
        if value in values[:i]:
            raise BadInput(field, choices, f"distinct choices ({value!r} appears twice)")
    return Override(choices=values)


def _checked_range(field: str, model: str, hp: HParam, override: Override) -> Override:
    """An interval inside the valid range of `hp` (a float or int), low < high, low > 0 if log."""
    written = [override.low, override.high, *(["log"] if override.log else [])]
    if hp.kind == "choice":
        raise BadInput(field, written, f"{{choices: [...]}} for {hp.name}, a choice of model {model} "
                       f"({hp.allowed()})")
    low, high = (_check_value(field, model, hp, end) for end in (override.low, override.high))
    if not low < high:  # type: ignore[operator]
        raise BadInput(field, written, "low < high")
    if override.log and low <= 0:  # type: ignore[operator]
        raise BadInput(field, written, "low > 0 for a log range")
    return Override(low=low, high=high, log=override.log)


def _for_model(section: Mapping[str, Mapping[str, Any]], model: str) -> dict[str, tuple[str, Any]]:
    """name -> (key, value) of the `space` or `fixed` entries that apply to `model`."""
    declared = by_name(cells.space(model))
    entries = {name: (ALL, value) for name, value in section.get(ALL, {}).items() if name in declared}
    entries.update({name: (model, value) for name, value in section.get(model, {}).items()})
    return entries


def _check_conflicts(spec: Spec) -> None:
    """Nothing both fixed and overridden; no hidden_size given by hand under `param_budget`."""
    for model in spec.models:
        fixed, searched = _for_model(spec.fixed, model), _for_model(spec.space, model)
        for name, (key, _) in searched.items():
            if name in fixed:
                raise BadInput(f"space.{key}.{name}", name, f"a hyperparameter that is not also fixed "
                               f"(fixed.{fixed[name][0]}.{name} fixes it for model {model})")
        if spec.param_budget is None:
            continue
        for section, entries in (("fixed", fixed), ("space", searched)):
            if "hidden_size" in entries:
                key, value = entries["hidden_size"]
                raise BadInput(f"{section}.{key}.hidden_size", value.model_dump() if section == "space" else value,
                               f"no hidden_size while param_budget ({spec.param_budget}) chooses it")


# --- param_budget ------------------------------------------------------------------------------


def _size_for_budget(spec: Spec, arm: Arm, task: Task) -> tuple[int, int]:
    """(hidden_size, parameter count) of `arm` closest to `spec.param_budget`; an error unless within 10%.

    The count uses the arm's fixed and default hyperparameters. Sizes go in steps of `unit`, the
    smallest size with which the model builds for every searched choice (e.g. each nhead divides it).
    """
    budget = int(spec.param_budget or 0)
    values = resolve(cells.space(arm.model), _fixed_entries(spec, arm.model), task=arm.task)
    count = functools.cache(lambda hidden: _param_count(arm, task, values, hidden))
    variants = [{**values, **change} for change in _choice_changes(spec, arm.model)]
    low, high = _size_bounds(by_name(cells.space(arm.model))["hidden_size"])
    unit = _size_unit(arm, high, lambda size: [count(size)] + [_param_count(arm, task, v, size) for v in variants])
    k = _smallest_reaching(lambda k: count(k * unit), budget, high // unit)
    candidates = [s * unit for s in (k - 1, k) if s * unit >= max(low, 1)]
    best = min(candidates, key=lambda size: abs(count(size) - budget))
    if abs(count(best) - budget) > BUDGET_TOLERANCE * budget:
        nearest = ", ".join(f"hidden_size={size}: {count(size)} parameters" for size in candidates)
        steps = (f"; sizes go in steps of {unit} so that every searched choice builds: fixing such choices "
                 "allows finer steps") if unit > 1 else ""
        raise BadInput("param_budget", budget, f"a budget that {arm.model} meets within 10% with a hidden_size "
                       f"in {low}..{high} on {arm.key} (nearest: {nearest}{steps})")
    return best, count(best)


def _fixed_entries(spec: Spec, model: str) -> dict[str, Any]:
    """name -> value of the `fixed` entries that apply to `model`."""
    return {name: value for name, (_, value) in _for_model(spec.fixed, model).items()}


def _choice_changes(spec: Spec, model: str) -> list[dict[str, Value]]:
    """One change per value of each searched choice among the model's constructor hyperparameters."""
    constructor = {*cells.model_hparams(model), "num_layers"}
    searched = _searched(spec, model, skip={*_fixed_entries(spec, model), "hidden_size"})
    return [{name: value} for name, (_, domain) in searched.items()
            if name in constructor and domain.choices is not None for value in domain.choices]


def _param_count(arm: Arm, task: Task, values: Mapping[str, Value], hidden: int) -> int:
    """Parameters of the arm's model with hyperparameters `values` and `hidden` units, plus the task's head."""
    kwargs = {name: values[name] for name in cells.model_hparams(arm.model)}
    with torch.random.fork_rng(devices=[]):  # building initialises weights: leave the global RNG alone
        backbone = cells.build(arm.model, task.input_size, hidden, int(values["num_layers"]),
                               seq_len=task.length, **kwargs)
        head = task.head(hidden)
    return sum(p.numel() for p in (*backbone.parameters(), *head.parameters()))


def _size_bounds(hp: HParam) -> tuple[int, int]:
    """The hidden sizes a model accepts: the valid range, else the declared domain."""
    if hp.valid is not None:
        return int(hp.valid[0]), int(hp.valid[1])
    if hp.kind == "choice":
        return int(min(hp.choices)), int(max(hp.choices))  # type: ignore[call-overload]
    return int(hp.low or 1), int(hp.high or 1)


def _size_unit(arm: Arm, high: int, build: Callable[[int], object]) -> int:
    """The smallest hidden size with which `build` succeeds; admissible sizes are its multiples."""
    problem: BadInput | None = None
    for size in range(1, min(_MAX_SIZE_UNIT, high) + 1):
        try:
            build(size)
            return size
        except BadInput as error:
            problem = error
    raise BadInput("param_budget", arm.model, f"a model that builds, for every searched choice, with some "
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


# --- what the search driver reads --------------------------------------------------------------


def _check_arm(spec: Spec, arm: Arm) -> None:
    if arm not in spec.arms():
        raise BadInput("arm", arm.key, one_of(a.key for a in spec.arms()))


def fixed_hparams(spec: Spec, arm: Arm) -> dict[str, Value]:
    """The arm's fixed hyperparameters (`fixed.all` and `fixed.<model>`, checked), plus the
    hidden_size chosen for `param_budget`. Everything else takes the model's task default."""
    _check_arm(spec, arm)
    declared = by_name(cells.space(arm.model))
    values = {name: declared[name].check(value) for name, value in _fixed_entries(spec, arm.model).items()}
    if spec.param_budget is not None:
        values["hidden_size"] = spec._budget_sizes[(arm.model, arm.seq_len)][0]
    return values


def _declared_domain(hp: HParam) -> Override | None:
    """The declared search domain of `hp`, or None when it holds a single value."""
    if hp.kind == "choice":
        return Override(choices=list(hp.choices)) if len(hp.choices) > 1 else None
    if hp.low is None or hp.high is None or not hp.low < hp.high:
        return None
    cast = int if hp.kind == "int" else float
    return Override(low=cast(hp.low), high=cast(hp.high), log=hp.log)


def _searched(spec: Spec, model: str, skip: set[str]) -> dict[str, tuple[HParam, Override]]:
    """The searched hyperparameters of `model` other than `skip`, with their domains, in declaration order."""
    overrides = _for_model(spec.space, model)
    domains = {}
    for hp in cells.space(model):
        if hp.name in skip:
            continue
        if hp.name in overrides:
            domains[hp.name] = (hp, overrides[hp.name][1])
        elif hp.searched and (declared := _declared_domain(hp)) is not None:
            domains[hp.name] = (hp, declared)
    return domains


def _domains(spec: Spec, arm: Arm) -> dict[str, tuple[HParam, Override]]:
    """The searched hyperparameters of `arm`: all but the fixed ones (and hidden_size under param_budget)."""
    return _searched(spec, arm.model, skip=set(fixed_hparams(spec, arm)))


def search_space(spec: Spec, arm: Arm) -> dict[str, BaseDistribution]:
    """Optuna distributions of the arm's searched hyperparameters (a float or int interval, or choices)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    space: dict[str, BaseDistribution] = {}
    for name, (hp, domain) in _domains(spec, arm).items():
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
    return {name: _grid_values(hp, domain, spec.search.grid_points)
            for name, (hp, domain) in _domains(spec, arm).items()}


def _grid_values(hp: HParam, domain: Override, points: int) -> list[Value]:
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


def _domain_text(hp: HParam, domain: Override) -> str:
    if domain.choices is not None:
        return "one of " + ", ".join(str(choice) for choice in domain.choices)
    return f"{hp.kind} in [{domain.low:g}, {domain.high:g}]" + (" log" if domain.log else "")


def describe(spec: Spec) -> list[dict[str, Any]]:
    """One row per arm for `seqarena validate`: `arm` (its key), `searched` (name -> domain),
    `fixed` (name -> value), `trials`; under `param_budget` also `params` (model + head)."""
    rows = []
    for arm in spec.arms():
        row = {
            "arm": arm.key,
            "searched": {name: _domain_text(hp, domain) for name, (hp, domain) in _domains(spec, arm).items()},
            "fixed": fixed_hparams(spec, arm),
            "trials": spec.trials_per_arm(arm.model),
        }
        if spec.param_budget is not None:
            row["params"] = spec._budget_sizes[(arm.model, arm.seq_len)][1]
        rows.append(row)
    return rows
