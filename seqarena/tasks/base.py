"""The task interface: sizes, loss, metric, trivial baseline, seeded data.

A task owns its readout head (a linear map from the model's features, at the last step for
many-to-one tasks, at every step for many-to-many ones; docs/reference/models.md §0), its loss
and its metrics. Training data is an endless, seeded `BatchStream` whose position can be saved in
a checkpoint; validation and test sets are fixed tensors that do not depend on the trial's seed,
so every trial of every model is scored on the same samples.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import torch
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from torch import Tensor, nn

from seqarena.errors import BadInput
from seqarena.tasks.data import DataFiles, confined

#: A path a task option names: absolute, and inside `$SEQARENA_DATA` or `$SEQARENA_DATA_ALLOW` (`data.confined`).
DataPath = Annotated[Path, AfterValidator(confined)]

Split = Literal["val", "test"]
Batch = tuple[Tensor, Tensor]
SolvedRule = Literal["fraction_of_baseline", "absolute", "gap_closed"]


@dataclass(frozen=True)
class SolvedWhen:
    """What "solved" means for a task: a threshold on its headline metric (each task's `solved_when`).

    `rule` says how the threshold follows from `value` and the task's trivial baseline b:
    - `fraction_of_baseline`: value × b (a loss that must fall under a fraction of the trivial one);
    - `absolute`: value itself (an accuracy the papers treat as solving the task);
    - `gap_closed`: b + value × (1 − b) (an accuracy that closes that share of the gap between the
      majority-class baseline and a perfect score).
    The metric meets it when strictly below (lower is better) or at least at it (higher is better).
    `source`: why this threshold, with the paper or the reference page it comes from
    (docs/reference/tasks.md §13).
    """

    rule: SolvedRule
    value: float
    source: str

    def threshold(self, baseline: float) -> float:
        """The metric value that solves the task whose trivial baseline is `baseline`."""
        if self.rule == "fraction_of_baseline":
            return self.value * baseline
        if self.rule == "gap_closed":
            return baseline + self.value * (1.0 - baseline)
        return self.value

    def met(self, metric: float | None, baseline: float, higher_is_better: bool) -> bool:
        """Whether `metric` solves the task (False for a missing metric)."""
        if metric is None:
            return False
        limit = self.threshold(baseline)
        return metric >= limit if higher_is_better else metric < limit

    def describe(self, baseline: float, higher_is_better: bool) -> str:
        """E.g. "mse < 0.01667" for the adding problem (the metric name left to the caller)."""
        return f"{'>=' if higher_is_better else '<'} {self.threshold(baseline):.4g}"


class LazyRows:
    """The inputs of a fixed evaluation set, built a slice at a time instead of held whole.

    Behaves like the `[N, T, F]` tensor it stands for where evaluation uses one: `len()`, `.shape`
    and contiguous slices `rows[a:b]` (a tensor of rows a..b-1, equal on every call; `rows[:]` is
    the whole set). Tasks whose full evaluation inputs would take gigabytes return one from
    `eval_set` (noise-padded CIFAR-10 at T = 1000: 10 000 × 1000 × 96 floats = 3.8 GB; IMDB's
    25 000 test reviews × 500 words × 100-d vectors = 5 GB), so that an evaluation holds one batch.
    """

    def __init__(self, length: int, build: Callable[[int, int], Tensor]) -> None:
        self.length = length
        self.build = build

    def __len__(self) -> int:
        return self.length

    @property
    def shape(self) -> torch.Size:
        return torch.Size((self.length, *self.build(0, min(1, self.length)).shape[1:]))

    def __getitem__(self, index: slice) -> Tensor:
        if not isinstance(index, slice):
            raise TypeError(f"LazyRows takes a slice of rows, got {index!r}")
        start, stop, step = index.indices(self.length)
        if step != 1:
            raise TypeError("LazyRows takes contiguous slices only")
        return self.build(start, max(start, stop))


class TaskOptions(BaseModel):
    """Options every task accepts; tasks extend this model (unknown options are refused)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class DatasetOptions(TaskOptions):
    """Options every task on a downloaded data set accepts: how validation is carved, where files live."""

    split_seed: int = Field(0, ge=0, description="seed of the train/validation split")
    data_dir: DataPath | None = Field(None, description="data root; default $SEQARENA_DATA (inside it or a folder "
                                      "of $SEQARENA_DATA_ALLOW)")


def parse_options(model: type[TaskOptions], options: Mapping[str, Any]) -> TaskOptions:
    """Validate `options` against `model`; the first problem becomes a `BadInput` naming the field."""
    try:
        return model(**options)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "options"
        allowed = str(first["msg"]).removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            shared = [name for name in model.model_fields if name in DatasetOptions.model_fields]
            own = [name for name in model.model_fields if name not in shared]
            allowed = "one of " + ", ".join(own + shared)  # the task's own options first
        raise BadInput(f"option.{where}", first.get("input"), allowed) from None


class ReadoutHead(nn.Module):
    """`Linear(H, out)` on the last step (`[B, T, H] -> [B, out]`) or every step (`-> [B, T, out]`)."""

    def __init__(self, hidden_size: int, output_size: int, per_step: bool) -> None:
        super().__init__()
        self.per_step = per_step
        self.linear = nn.Linear(hidden_size, output_size)

    def forward(self, features: Tensor) -> Tensor:
        return self.linear(features if self.per_step else features[:, -1])


@dataclass(frozen=True)
class TaskShape:
    """What a model and its readout head see of a task at one length, known from the options alone.

    Every task computes it without reading data (`Task.shape_of`), so a spec is validated and its
    `param_budget` hidden sizes are chosen on any machine; a built task reports the same value
    (`Task.shape`).

    Attributes:
        task: registry name.
        seq_len: the sequence length T as asked (copy: the blank length).
        length: steps of an input sequence (T, or T + 20 for copy).
        input_size: features per step d of the inputs `[B, length, d]`.
        output_size: outputs of the readout: the classes, or 1 for a regression or one binary logit.
        per_step: the readout acts at every step (many-to-many), else at the last one.
    """

    task: str
    seq_len: int
    length: int
    input_size: int
    output_size: int
    per_step: bool

    def head(self, hidden_size: int) -> ReadoutHead:
        """The linear readout from `hidden_size` features."""
        return ReadoutHead(hidden_size, self.output_size, self.per_step)


class BatchStream(ABC):
    """An endless, seeded source of training batches whose position survives a checkpoint."""

    @abstractmethod
    def next(self, batch_size: int) -> Batch:
        """The next `(inputs [B, T, d], targets)` batch."""

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue the stream exactly where it is."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a `state_dict`."""

    def epoch_size(self) -> int | None:
        """Training sequences in one pass over a fixed training set; None for fresh data every step
        (no epochs). The papers count their learning-rate schedules in these epochs."""
        return None

    def steps_per_epoch(self, batch_size: int) -> int | None:
        """Optimiser steps in one epoch at `batch_size` (the ragged end is dropped); None without epochs."""
        size = self.epoch_size()
        return None if size is None else max(1, size // batch_size)


Generator = Callable[[int, int, torch.Generator], Batch]


class GeneratedStream(BatchStream):
    """Fresh samples every step from a pure generator `fn(seq_len, n, generator)` (infinite data,
    as in the coRNN and LEM adding scripts)."""

    def __init__(self, fn: Generator, seq_len: int, seed: int) -> None:
        self.fn, self.seq_len = fn, seq_len
        self.generator = torch.Generator().manual_seed(seed)

    def next(self, batch_size: int) -> Batch:
        return self.fn(self.seq_len, batch_size, self.generator)

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])


class ShuffledStream(BatchStream):
    """Epochs over a fixed dataset in a seeded random order; `transform` turns stored rows
    (e.g. uint8 pixels) into model inputs batch by batch."""

    def __init__(self, inputs: Tensor, targets: Tensor, seed: int,
                 transform: Callable[[Tensor], Tensor]) -> None:
        self.inputs, self.targets, self.transform = inputs, targets, transform
        self.generator = torch.Generator().manual_seed(seed)
        self.order = torch.randperm(len(inputs), generator=self.generator)
        self.cursor = 0

    def next(self, batch_size: int) -> Batch:
        if self.cursor + batch_size > len(self.order):  # drop the ragged end, start a new epoch
            self.order = torch.randperm(len(self.inputs), generator=self.generator)
            self.cursor = 0
        index = self.order[self.cursor:self.cursor + batch_size]
        self.cursor += batch_size
        return self.transform(self.inputs[index]), self.targets[index]

    def epoch_size(self) -> int:
        return len(self.inputs)

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state(), "order": self.order.clone(), "cursor": self.cursor}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self.order, self.cursor = state["order"].clone(), int(state["cursor"])


class Task(ABC):
    """A benchmark at one sequence length.

    Class attributes:
        name: registry name.
        metric_name: the key of the headline metric in `metrics(...)`.
        higher_is_better: direction of the headline metric.
        per_step: whether the readout acts at every step (many-to-many) or the last one.
        options_model: the pydantic model of this task's options.
        protocols: the task's named data protocols, protocol name -> the option values it sets. Where
            two papers' scripts prepare the same task differently (marker placement, a fixed or a fresh
            training set, the permutation seed, the input encoding), each is a protocol named after the
            model of the paper whose code uses it, with that code's file:line beside it. A task with a
            single protocol declares none of its own: `{"default": {}}`.
        default_protocol: the protocol of a spec that names none; its values are the options' defaults.
        solved_when: what "solved" means for the task (`SolvedWhen`): the one place that says it.
        other_lengths: whether a model trained at one T may be tested at another T′ (length
            generalisation, a spec's `length_generalisation`): True where the task is defined at every
            length (generated sequences, windows cut from a text); False where the length is the data's
            own (sMNIST's 784 pixels) or the options fix it. The one place that says it.
    Instance attributes: `seq_len`, `length`, `input_size`, `output_size` (those of `shape_of`),
    `baseline` (the headline metric of the trivial predictor, see each task), `options`.
    """

    name: ClassVar[str]
    metric_name: ClassVar[str]
    higher_is_better: ClassVar[bool]
    per_step: ClassVar[bool]
    options_model: ClassVar[type[TaskOptions]] = TaskOptions
    protocols: ClassVar[Mapping[str, Mapping[str, Any]]] = {"default": {}}
    default_protocol: ClassVar[str] = "default"
    solved_when: ClassVar[SolvedWhen]
    other_lengths: ClassVar[bool] = False

    seq_len: int
    length: int
    input_size: int
    output_size: int
    baseline: float

    def __init__(self, seq_len: int | None, options: TaskOptions) -> None:
        """Check `seq_len` and the options without data (`shape_of`) and take the shape's sizes."""
        self.options = options
        shape = self.shape_of(seq_len, options)
        self.seq_len, self.length = shape.seq_len, shape.length
        self.input_size, self.output_size = shape.input_size, shape.output_size

    @classmethod
    @abstractmethod
    def shape_of(cls, seq_len: int | None, options: TaskOptions) -> TaskShape:
        """The task's shape at `seq_len` from its options alone: no file is read, nothing downloaded.

        Raises:
            BadInput: a length or an option the task refuses whatever its data.
        """

    @classmethod
    def data_files(cls, options: TaskOptions) -> DataFiles:
        """The files a built task reads, from its options alone; none for generated tasks."""
        return DataFiles()

    @property
    def shape(self) -> TaskShape:
        """The sizes this task was built with; equal to `shape_of(seq_len, options)`."""
        return TaskShape(self.name, self.seq_len, self.length, self.input_size, self.output_size, self.per_step)

    def head(self, hidden_size: int) -> ReadoutHead:
        """The task's linear readout from `hidden_size` features."""
        return self.shape.head(hidden_size)

    @abstractmethod
    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        """Scalar training loss of a batch."""

    @abstractmethod
    def metrics(self, output: Tensor, target: Tensor) -> dict[str, Tensor]:
        """Per-sample metrics `{name: [B]}`; the mean over a split is the reported value."""

    @abstractmethod
    def train_stream(self, seed: int) -> BatchStream:
        """The training batches of a trial seeded with `seed`."""

    @abstractmethod
    def eval_set(self, split: Split) -> Batch:
        """The fixed validation or test set, independent of the trial's seed."""

    def describe(self) -> dict[str, Any]:
        """Facts recorded with a trial: sizes, metric, baseline and options."""
        return {
            "task": self.name, "seq_len": self.seq_len, "input_size": self.input_size,
            "output_size": self.output_size, "metric_name": self.metric_name,
            "higher_is_better": self.higher_is_better, "baseline": self.baseline,
            "options": self.options.model_dump(),
        }

