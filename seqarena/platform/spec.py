"""Search specs: the YAML file that says what to search, how, and on what budget.

A spec names one task, its sequence lengths, the models to compare and the task's data protocol
(`protocol`): one protocol of the task that every model shares (a comparison: `adding` with
`tcn` gives every arm TCN's markers and fixed training set), or `authors`, each model its own
paper's protocol for the task where the task declares one, else the task's default (a
reproduction). `task_options` apply over the protocol's values. An *arm* is one
(task, seq_len, model): each arm is searched and early-stopped on its own, with
`search.num_samples` trials (a grid search: the grid's size) plus `repeats - 1` re-runs of each of
its `repeat_top_k` best configurations with other seeds (the leaderboard's winner is the best of them
after the re-run, `seqarena.platform.leaderboard`).

This module holds the schema and its loading. What each arm searches (`space`, `fixed`, the
models' declared domains) is `seqarena.platform.domains`; the hidden sizes of `param_budget` are
`seqarena.platform.budget`.

All checking happens once, when the spec is parsed: registry names, ranges, fixed values, the task's
options and every sequence length (from the task's shape: no data file is read or downloaded;
`seqarena validate --check-data` looks for the files) and the hidden sizes of `param_budget`. Every
problem is a `BadInput` whose field is the dotted path into the YAML (`search.algorithm`,
`models[1]`, `space.cornn.dt`), with the value received and what is allowed.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    model_validator,
)

from seqarena import cells, tasks
from seqarena.cells.space import HParam, Value, by_name, resolve
from seqarena.errors import BadInput, one_of
from seqarena.platform import spec_yaml
from seqarena.platform.budget import BudgetSize, size_for_budget
from seqarena.platform.domains import (
    ALL,
    Override,
    arm_domains,
    choice_changes,
    domain_text,
    fixed_entries,
    fixed_hparams,
    for_model,
    grid,
)
from seqarena.tasks.base import TaskShape
from seqarena.workers.config import MAX_MODEL_PARAMS, check_model_size

#: Longest job name (MLflow refuses run names over 500 characters; the name also names folders).
MAX_NAME = 100
#: Largest sequence length (the tasks' own bound, `seqarena.tasks.MAX_SEQ_LEN`).
MAX_SEQ_LEN = tasks.MAX_SEQ_LEN
#: Largest `param_budget`: 20 M parameters take 320 MB in training (weights, gradients, Adam's two
#: moments at 4 bytes each); finding the hidden size builds models of about that size.
MAX_PARAM_BUDGET = MAX_MODEL_PARAMS
#: Most search trials per arm, and most trials of a whole spec (`Spec.trial_count`).
MAX_TRIALS = 10_000
#: Most seeds of an arm's best configuration.
MAX_REPEATS = 100
#: Most sequence lengths, and most models, in one spec.
MAX_LIST = 64
#: Most other lengths T′ an arm's trials are tested at (`length_generalisation`).
MAX_OTHER_LENGTHS = 16

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


class _NoAliasDumper(yaml.SafeDumper):
    """Writes every value out (a spec with aliases is refused when read back: `spec_yaml`)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


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
    num_samples: int = Field(16, ge=1, le=MAX_TRIALS,
                             description="search trials per arm (ignored for grid: the grid size)")
    scheduler: Literal["asha", "none"] = Field("asha", description="early stopping within an arm")
    max_concurrent_trials: int | None = Field(None, ge=1, description="trials running at once; null: Tune's")
    seed: int = Field(0, ge=0, description="seed of the samplers")
    grace_period: int | None = Field(
        None, gt=0, description="steps before ASHA may stop a trial; eval_every..max_steps, "
        "default 2 * eval_every (at most max_steps); filled in when the spec is parsed")
    reduction_factor: int = Field(3, ge=2, description="ASHA keeps 1 / reduction_factor per rung")
    grid_points: int = Field(3, ge=2, le=100, description="grid values per continuous range (log-spaced for log "
                             "ranges; integers rounded and de-duplicated)")
    ladder: bool = Field(False, description="a T-ladder: each model starts at the smallest T and goes on to the "
                         "next T only once it solved the one before (seqarena.platform.arms.ladder_solves); "
                         "the arms it never reaches are recorded as skipped")


class Resources(_Strict):
    """What one trial reserves on the cluster."""

    cpus_per_trial: float = Field(1.0, gt=0, description="CPU cores per trial (fractions allowed)")
    gpus_per_trial: float = Field(0.0, ge=0, description="GPUs per trial (fractions allowed)")


class LengthGrid(_Strict):
    """`length_generalisation`: the other lengths T′ at which every completed trial's trained model (its best
    weights) is tested at the end of the trial, on the task's test set built at T′ with the arm's options
    (the same data seed). For tasks defined at every length (`Task.other_lengths`: adding, copy, char)."""

    factors: list[Annotated[float, Field(gt=0, le=1000)]] = Field(
        default_factory=list, max_length=MAX_OTHER_LENGTHS,
        description="multiples of each arm's T (0.5, 2, 4: T′ = round(f·T))")
    lengths: list[Annotated[int, Field(gt=0, le=MAX_SEQ_LEN)]] = Field(
        default_factory=list, max_length=MAX_OTHER_LENGTHS, description="absolute lengths T′, the same for every arm")

    def at(self, seq_len: int) -> tuple[int, ...]:
        """The other lengths of an arm at T = `seq_len`, ascending, each once, T itself left out."""
        found = {max(1, round(factor * seq_len)) for factor in self.factors} | set(self.lengths)
        return tuple(sorted(found - {seq_len}))


class Spec(_Strict):
    """A search job: the arms (task x seq_lens x models), how each is searched, and the budget."""

    name: str = Field(pattern=r"^[A-Za-z0-9_-]+$", max_length=MAX_NAME,
                      description=f"job name: letters, digits, '-', '_'; at most {MAX_NAME} characters")
    task: str = Field(description="registry name of the task (seqarena.tasks.names())")
    task_options: dict[str, Any] = Field(default_factory=dict, description="options given to tasks.build, over "
                                         "the protocol's values")
    protocol: str | None = Field(
        None, description="the task's data protocol every model shares (a name of seqarena.tasks.protocols(task)), "
        "or 'authors': each model its own paper's, else the task's default; filled in with the task's default "
        "protocol when the spec is parsed")
    seq_lens: list[Annotated[int, Field(gt=0, le=MAX_SEQ_LEN)]] = Field(
        min_length=1, max_length=MAX_LIST, description=f"sequence lengths T (copy: blank length), 1..{MAX_SEQ_LEN:,}")
    models: list[str] = Field(min_length=1, max_length=MAX_LIST, description="registry names of the models compared")
    budget: Budget = Field(default_factory=Budget)
    search: SearchSettings = Field(default_factory=SearchSettings)
    space: dict[str, dict[str, Override]] = Field(
        default_factory=dict, description="model (or all) -> hyperparameter -> replacement search domain")
    fixed: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="model (or all) -> hyperparameter -> fixed value")
    param_budget: int | None = Field(
        None, gt=0, le=MAX_PARAM_BUDGET, description="parameters (model + readout head) each arm gets, within 10%, "
        f"via hidden_size; at most {MAX_PARAM_BUDGET:,} (16 bytes a parameter in training: weights, gradients, "
        "Adam's two moments)")
    repeats: int = Field(1, ge=1, le=MAX_REPEATS,
                         description="seeds of each arm's best configuration, the search trial included")
    repeat_top_k: int = Field(3, ge=1, le=MAX_REPEATS,
                              description="configurations of each arm re-run with `repeats` seeds: the search's "
                              "best k (by validation), so the winner is chosen on fresh seeds")
    solved_fraction: float = Field(0.0, ge=0.0, le=1.0,
                                   description="share of an arm's seeds that must solve its task for the arm's T "
                                   "to count toward the model's 'max T solved' (0: one seed is enough)")
    resources: Resources = Field(default_factory=Resources)
    length_generalisation: LengthGrid | None = Field(
        None, description="other lengths T′ at which each trained trial is tested (factors of T, absolute "
        "lengths); tasks of fixed length (sMNIST, ...) refuse it")

    #: (model, seq_len) -> hidden size and parameter count, chosen for `param_budget`.
    _budget_sizes: dict[tuple[str, int], BudgetSize] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _check_against_registries(self) -> Spec:
        _validate(self)
        return self

    def arms(self) -> list[Arm]:
        """Every arm, sequence length first, then models in the order listed."""
        return [Arm(self.task, seq_len, model) for seq_len in self.seq_lens for model in self.models]

    def below(self, arm: Arm) -> Arm | None:
        """On a T-ladder (`search.ladder`), the arm of the same model at the next smaller T, which must solve
        before `arm` runs; None at the ladder's foot and off a ladder."""
        lengths = sorted(self.seq_lens)
        at = lengths.index(arm.seq_len)
        return Arm(arm.task, lengths[at - 1], arm.model) if self.search.ladder and at > 0 else None

    def task_protocol(self, model: str) -> tasks.Protocol:
        """The data protocol the arms of `model` follow: its name and the task options they get."""
        return tasks.protocol(self.task, self.protocol, self.task_options, model=model)

    def other_lengths(self, arm: Arm) -> tuple[int, ...]:
        """The lengths T′ at which the trials of `arm` are tested besides its own T (`length_generalisation`)."""
        return self.length_generalisation.at(arm.seq_len) if self.length_generalisation else ()

    def budget_size(self, arm: Arm) -> BudgetSize | None:
        """The hidden size chosen for `arm` under `param_budget`; None without a budget."""
        return self._budget_sizes.get((arm.model, arm.seq_len))

    def searched_per_arm(self, model: str) -> int:
        """Search trials of an arm of `model` (grid: the grid size)."""
        arm = Arm(self.task, self.seq_lens[0], model)
        if self.search.algorithm == "grid":
            return math.prod(len(values) for values in grid(self, arm).values())
        return self.search.num_samples

    def trials_per_arm(self, model: str) -> int:
        """Search trials of an arm of `model` plus `repeats - 1` re-runs of each of its top
        `repeat_top_k` configurations (at most as many as it searched)."""
        searched = self.searched_per_arm(model)
        return searched + min(self.repeat_top_k, searched) * (self.repeats - 1)

    def trial_count(self) -> int:
        """Trials of the whole job."""
        return sum(self.trials_per_arm(arm.model) for arm in self.arms())

    def to_yaml(self) -> str:
        """The spec as YAML, every default filled in; `load_spec` reads it back to an equal spec."""
        return yaml.dump(self.model_dump(mode="json"), Dumper=_NoAliasDumper, sort_keys=False, default_flow_style=None)

    def spec_hash(self) -> str:
        """sha256 (hex) of the canonical JSON of the spec: equal specs, equal hashes."""
        text = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


#: The fields two specs must agree on for their trials to be compared (and one to extend the other's search):
#: the task, its data (protocol and options), the training budget and the parameter budget.
COMPARABLE_FIELDS = ("task", "protocol", "task_options", "budget", "param_budget")


def check_extends(old: Spec, new: Spec, search: str) -> None:
    """Refuse `new` as an extension of search `search` (run with `old`) unless every `COMPARABLE_FIELDS`
    value agrees; `BadInput` names the first field that differs."""
    before, after = old.model_dump(mode="json"), new.model_dump(mode="json")
    for name in COMPARABLE_FIELDS:
        for field, was, now in _differences(name, before[name], after[name]):
            raise BadInput(field, now, f"{was!r}, as in search {search} (an extension's trials must be "
                           "comparable with the search's)")


def _differences(field: str, was: Any, now: Any) -> list[tuple[str, Any, Any]]:
    """(dotted field, old value, new value) of each leaf where `was` and `now` differ (absent: None)."""
    if isinstance(was, dict) and isinstance(now, dict):
        return [found for key in sorted(set(was) | set(now))
                for found in _differences(f"{field}.{key}", was.get(key), now.get(key))]
    return [] if was == now else [(field, was, now)]


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
            with path.open("rb") as stream:
                raw = stream.read(spec_yaml.MAX_BYTES + 1)
            spec_yaml.check_size(max(len(raw), path.stat().st_size))
            return raw.decode("utf-8")
        except (OSError, UnicodeDecodeError) as error:
            reason = error.strerror if isinstance(error, OSError) else f"not UTF-8 at byte {error.start}"
            raise BadInput("spec", str(source), f"a readable UTF-8 YAML file ({reason})") from None
    if "\n" not in source and source.strip().endswith((".yaml", ".yml")):
        raise BadInput("spec", source, "an existing YAML file, or YAML text")
    return source


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):  # YAML text too long for a file name, or with a NUL byte
        return False


def _parse_yaml(text: str) -> Mapping[str, Any]:
    """The mapping in `text`, within the limits of `seqarena.platform.spec_yaml`."""
    return spec_yaml.parse(text)


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
    """Check `spec` against the model and task registries, and make its values canonical.

    Pure: the tasks' shapes come from their options, so no data file is read or downloaded.
    """
    _check_names(spec)
    spec.protocol = spec.protocol if spec.protocol == tasks.AUTHORS else tasks.protocol_name(spec.task, spec.protocol)
    shapes = _task_shapes(spec)
    _check_other_lengths(spec)
    spec.search = _with_grace_period(spec.search, spec.budget)
    spec.fixed = {key: _checked_fixed(spec, key, values) for key, values in spec.fixed.items()}
    spec.space = {key: _checked_overrides(spec, key, entries) for key, entries in spec.space.items()}
    _check_conflicts(spec)
    if (count := spec.trial_count()) > MAX_TRIALS:
        raise BadInput("search.num_samples", spec.search.num_samples,
                       f"a spec of at most {MAX_TRIALS:,} trials (this one has {count:,}: arms x trials per arm)")
    if spec.param_budget is not None:
        spec._budget_sizes = {(arm.model, arm.seq_len): _budget_size(spec, arm, shapes[arm])
                              for arm in spec.arms()}
    for arm in spec.arms():
        _check_model_size(spec, arm, shapes[arm])


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


def _task_shapes(spec: Spec) -> dict[Arm, TaskShape]:
    """The task's shape in every arm (with the options of its protocol): checks the options and the
    lengths, reads no data."""
    shapes = {}
    for arm in spec.arms():
        try:
            shapes[arm] = tasks.shape(spec.task, arm.seq_len, **spec.task_protocol(arm.model).options)
        except BadInput as error:
            field = error.field
            if field == "seq_len":
                field = f"seq_lens[{spec.seq_lens.index(arm.seq_len)}]"
            elif field.startswith("option."):
                field = "task_options." + field.removeprefix("option.")
            raise BadInput(field, error.value, error.allowed.removeprefix("Input should be ")) from None
    return shapes


def _check_other_lengths(spec: Spec) -> None:
    """`length_generalisation`: a task that allows other lengths, each T′ of each arm one it takes, at most
    `MAX_OTHER_LENGTHS` per arm (no data read)."""
    field = "length_generalisation"
    for arm in spec.arms() if spec.length_generalisation else []:
        lengths = spec.other_lengths(arm)
        if len(lengths) > MAX_OTHER_LENGTHS:
            raise BadInput(field, spec.length_generalisation.model_dump(), f"at most {MAX_OTHER_LENGTHS} lengths T′ "
                           f"per arm (T = {arm.seq_len} has {len(lengths)})")
        if any(length > MAX_SEQ_LEN for length in lengths):
            raise BadInput(field, max(lengths), f"lengths T′ of at most {MAX_SEQ_LEN:,} (arm T = {arm.seq_len})")
        try:
            tasks.check_other_lengths(spec.task, lengths, field, **spec.task_protocol(arm.model).options)
        except BadInput as error:
            raise BadInput(field, error.value, f"{error.allowed} (arm T = {arm.seq_len})"
                           if error.field != field else error.allowed) from None


def _budget_size(spec: Spec, arm: Arm, shape: TaskShape) -> BudgetSize:
    """The hidden size of `arm` for `param_budget`, counted with its fixed and default hyperparameters."""
    values = resolve(cells.space(arm.model), fixed_entries(spec, arm.model), task=arm.task)
    return size_for_budget(int(spec.param_budget or 0), arm.model, shape, values, choice_changes(spec, arm.model),
                           arm.key)


def _check_model_size(spec: Spec, arm: Arm, shape: TaskShape) -> None:
    """`BadInput` naming the model when the largest model `arm` can build (its largest hidden_size and
    num_layers, fixed, searched or by `param_budget`) has over `MAX_PARAM_BUDGET` parameters
    (`seqarena.workers.config.check_model_size`: counted on torch's meta device, in milliseconds)."""
    values = dict(resolve(cells.space(arm.model), fixed_entries(spec, arm.model), task=arm.task))
    if (size := spec.budget_size(arm)) is not None:
        values["hidden_size"] = size.hidden_size
    for name, (_, domain) in arm_domains(spec, arm).items():
        if name in ("hidden_size", "num_layers"):
            values[name] = max(domain.choices) if domain.choices is not None else domain.high
    try:
        check_model_size(arm.model, values, shape)
    except BadInput as error:
        raise BadInput(f"models[{spec.models.index(arm.model)}]", arm.model,
                       f"{error.allowed} on {arm.key}, its largest configuration; lower hidden_size or "
                       "num_layers in fixed or space") from None


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


def _check_conflicts(spec: Spec) -> None:
    """Nothing both fixed and overridden; no hidden_size given by hand under `param_budget`."""
    for model in spec.models:
        fixed, searched = for_model(spec.fixed, model), for_model(spec.space, model)
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


# --- what `seqarena validate` prints ------------------------------------------------------------


def describe(spec: Spec) -> list[dict[str, Any]]:
    """One row per arm for `seqarena validate`: `arm` (its key), `protocol` (the task's data protocol it
    follows), `searched` (name -> domain), `fixed` (name -> value), `trials` (on a T-ladder: at most);
    under `param_budget` also `params` (model + head); on a T-ladder `after` (the arm that must solve first); with
    `length_generalisation` `other_lengths` (the T′ its trained trials are tested at)."""
    rows = []
    for arm in spec.arms():
        row = {
            "arm": arm.key,
            "protocol": spec.task_protocol(arm.model).name,
            "searched": {name: domain_text(hp, domain) for name, (hp, domain) in arm_domains(spec, arm).items()},
            "fixed": fixed_hparams(spec, arm),
            "trials": spec.trials_per_arm(arm.model),
        }
        if spec.search.ladder:
            below = spec.below(arm)
            row["after"] = f"{below.key} solved" if below else "-"
        if (size := spec.budget_size(arm)) is not None:
            row["params"] = size.params
        if spec.length_generalisation is not None:
            row["other_lengths"] = list(spec.other_lengths(arm))
        rows.append(row)
    return rows
