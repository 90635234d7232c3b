"""One training trial: what `seqarena train` runs in-process and every Ray Tune trial will run.

Protocol (docs/reference/tasks.md, "General conventions"; docs/reference/protocols.md): the
optimiser, clipping, weight decay, readout initialisation and learning-rate schedule that the
model's authors used for the task (declared in its hyperparameter space, applied through
`seqarena.workers.protocol`), a validation evaluation every
`eval_every` steps, and the test metric reported **at the best validation step** (the model's
weights at that step are kept and evaluated on the test set at the end). A loss that becomes
NaN or infinite ends the trial with status `diverged`: a result, not a crash.

Checkpoints (when `checkpoint_dir` is set) are written after every evaluation and hold the model,
optimiser, learning-rate scheduler, data stream position, RNG state, best weights and learning curve, so a trial stopped
after a checkpoint and resumed from it ends with exactly the numbers of an uninterrupted run.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from seqarena import cells, tasks
from seqarena.tasks.base import Batch, Task
from seqarena.workers import checkpoint as ckpt
from seqarena.workers.config import Setup, TrialConfig, prepare
from seqarena.workers.measure import WARMUP_STEPS, Stopwatch, measure_step_memory
from seqarena.workers.memory import is_out_of_memory, release_memory
from seqarena.workers.protocol import LRSchedule, init_readout, make_optimizer, weight_penalty
from seqarena.workers.results import EvalReport, LengthResult, TrialResult, finite

log = logging.getLogger(__name__)


class SequenceNet(nn.Module):
    """A model's features followed by the task's readout head."""

    def __init__(self, backbone: cells.SequenceModel, head: nn.Module) -> None:
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.backbone(x))


@dataclass
class TrialState:
    """Everything about a running trial that a checkpoint must restore."""

    step: int = 0
    curve: list[dict[str, float]] = field(default_factory=list)
    best_value: float | None = None
    best_step: int = 0
    best_weights: dict[str, Tensor] | None = None
    train_watch: Stopwatch = field(default_factory=lambda: Stopwatch(skip=WARMUP_STEPS + 1))
    """training steps: the warm-up and the memory step left out (`seqarena.workers.measure.WARMUP_STEPS`)"""
    infer_watch: Stopwatch = field(default_factory=lambda: Stopwatch(skip=1))
    """evaluation batches: the first (it builds the inference path's kernels) left out"""
    peak_mem_mb: float | None = None
    peak_mem_method: str = ""
    elapsed_s: float = 0.0
    status: str = "running"


@dataclass
class Observer:
    """Optional callbacks: `on_step(step, loss)` after each update, `on_eval(report)` after each
    evaluation (and its checkpoint)."""

    on_step: Callable[[int, float], None] | None = None
    on_eval: Callable[[EvalReport], None] | None = None


def build_model(setup: Setup) -> SequenceNet:
    """The model of `setup` with the task's head initialised as its authors did, on its device (uses
    the global RNG)."""
    hp = setup.hparams
    backbone = cells.build(setup.config.model, setup.task.input_size, int(hp["hidden_size"]),
                           int(hp["num_layers"]), seq_len=setup.task.length, **setup.model_kwargs)
    head = setup.task.head(int(hp["hidden_size"]))
    init_readout(head.linear, str(hp["readout_init"]))
    return SequenceNet(backbone, head).to(setup.device)


class Trainer:
    """Runs one prepared trial; see the module docstring for the protocol."""

    def __init__(self, setup: Setup, observer: Observer | None = None) -> None:
        self.setup, self.config, self.task = setup, setup.config, setup.task
        self.observer = observer or Observer()
        torch.manual_seed(self.config.seed)
        self.model = build_model(setup)
        self.optimizer = make_optimizer(self.model, setup.hparams)
        self.stream = self.task.train_stream(self.config.seed)
        self.state = TrialState()
        self.batch_size = int(setup.hparams["batch_size"])
        self.schedule = LRSchedule.from_hparams(setup.hparams, self.stream.steps_per_epoch(self.batch_size))
        self.scheduler = self.schedule.scheduler(self.optimizer)
        self.clip = float(setup.hparams["grad_clip"])
        self._eval_sets: dict[str, tuple[Tensor, Tensor]] = {}

    def run(self) -> TrialResult:
        """Train (resuming from a checkpoint if there is one), then evaluate on the test set."""
        cells.keep_freed_blocks()  # each step's large tensors reuse the last step's freed memory (heap.py)
        started = time.perf_counter()
        resumed_elapsed = self._maybe_resume()
        pending_losses: list[float] = []
        while self.state.step < self.config.steps and self.state.status == "running":
            loss = self._train_step()
            pending_losses.append(loss)
            if not math.isfinite(loss):
                self.state.status = "diverged"
                log.warning("loss became %s at step %d: trial diverged", loss, self.state.step)
            elif self.state.step % self.config.eval_every == 0 or self.state.step == self.config.steps:
                self._evaluate_and_checkpoint(pending_losses, resumed_elapsed + time.perf_counter() - started)
                pending_losses = []
        if self.state.status == "running":
            self.state.status = "completed"
        self.state.elapsed_s = resumed_elapsed + time.perf_counter() - started
        return self._final_result()

    def _train_step(self) -> float:
        inputs, targets = (t.to(self.setup.device) for t in self.stream.next(self.batch_size))
        self.model.train()

        def step() -> Tensor:
            self.optimizer.zero_grad(set_to_none=True)
            loss = self.task.loss(self.model(inputs), targets)
            if torch.isfinite(loss):
                penalty = weight_penalty(self.model, self.setup.hparams)
                (loss if penalty is None else loss + penalty).backward()
                if self.clip > 0:
                    nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)
                self.optimizer.step()
                self.scheduler.step()
            return loss

        with self.state.train_watch.timing(len(inputs), self.setup.device):
            if self._memory_step():
                loss, self.state.peak_mem_mb, self.state.peak_mem_method = measure_step_memory(
                    self.model, self.optimizer, step, self.setup.device)
            else:
                loss = step()
        self.state.step += 1
        value = float(loss.detach())
        if self.observer.on_step:
            self.observer.on_step(self.state.step, value)
        return value

    def _memory_step(self) -> bool:
        """Whether this step's peak memory is measured: the first after the warm-up (steady state), or the
        last step of a trial shorter than that."""
        if self.state.peak_mem_mb is not None:
            return False
        return self.state.step >= WARMUP_STEPS or self.state.step + 1 >= self.config.steps

    def evaluate(self, split: str) -> dict[str, float]:
        """Mean of every per-sample metric over the fixed `split` set (eval mode, timed)."""
        if split not in self._eval_sets:
            self._eval_sets[split] = self.task.eval_set(split)  # type: ignore[arg-type]
        return self.evaluate_on(self.task, self._eval_sets[split])

    @torch.no_grad()
    def evaluate_on(self, task: Task, batch: Batch, timed: bool = True) -> dict[str, float]:
        """Mean of every per-sample metric of `task` over the fixed set `batch` (eval mode)."""
        self.model.eval()
        inputs, targets = batch
        watch = self.state.infer_watch if timed else Stopwatch()
        sums: dict[str, float] = {}
        size = self.config.eval_batch_size
        for start in range(0, len(inputs), size):
            x = inputs[start:start + size].to(self.setup.device)
            y = targets[start:start + size].to(self.setup.device)
            with watch.timing(len(x), self.setup.device):
                output = self.model(x)
            for name, values in task.metrics(output, y).items():
                sums[name] = sums.get(name, 0.0) + float(values.double().sum())
        return {name: total / len(inputs) for name, total in sums.items()}

    def _improves(self, value: float) -> bool:
        best = self.state.best_value
        if not math.isfinite(value):
            return False
        if best is None:
            return True
        return value > best if self.task.higher_is_better else value < best

    def _evaluate_and_checkpoint(self, losses: list[float], elapsed: float) -> None:
        val = self.evaluate("val")
        value = val[self.task.metric_name]
        if self._improves(value):
            self.state.best_value, self.state.best_step = value, self.state.step
            self.state.best_weights = copy.deepcopy(self.model.state_dict())
        point = {"step": float(self.state.step), "train_loss": sum(losses) / len(losses),
                 **{f"val_{k}": v for k, v in val.items()}}
        self.state.curve.append(point)
        path = self._save_checkpoint(elapsed)
        if self.observer.on_eval:
            self.observer.on_eval(EvalReport(step=self.state.step, metrics=point, checkpoint=path,
                                              best_value=self.state.best_value))

    def _save_checkpoint(self, elapsed: float) -> Path | None:
        if self.config.checkpoint_dir is None:
            return None
        self.state.elapsed_s = elapsed
        return ckpt.save(self.config.checkpoint_dir, self.config.fingerprint(), self)

    def _maybe_resume(self) -> float:
        if self.config.checkpoint_dir is None:
            return 0.0
        restored = ckpt.load(self.config.checkpoint_dir, self.config.fingerprint(), self)
        if restored:
            log.info("resumed from %s at step %d", self.config.checkpoint_dir, self.state.step)
        return self.state.elapsed_s if restored else 0.0

    def _final_result(self) -> TrialResult:
        test: dict[str, float] = {}
        lengths: list[LengthResult] = []
        if self.state.best_weights is not None:
            self.model.load_state_dict(self.state.best_weights)
            test = self.evaluate("test")
            lengths = [self.test_at(length) for length in self.config.eval_lengths]
        params = sum(p.numel() for p in self.model.parameters())
        extra = {**self.model.backbone.extra_info(), **self.schedule.record(self.config.steps)}
        return TrialResult.build(self.setup, self.state, test, params, extra, lengths)

    def test_at(self, seq_len: int) -> LengthResult:
        """The model as it is now tested at another length T′ (length generalisation): the task built at T′ with
        the trial's options (so its test set comes from the same data seed), every metric. Out of memory at T′
        is the point's status `oom`, any other error (a model that cannot run at T′) `failed`, never the
        trial's; the test is not counted in the trial's inference throughput."""
        try:
            task = tasks.build(self.config.task, seq_len, **self.task.options.model_dump())
            test = self.evaluate_on(task, task.eval_set("test"), timed=False)
        except Exception as error:  # any failure at T′ is that point's result, not the trial's
            status = "oom" if is_out_of_memory(error) else "failed"
            note = f"{type(error).__name__}: {(str(error).splitlines() or [''])[0]}"[:300]
            release_memory()
            log.warning("test at T'=%d: %s", seq_len, note)
            return LengthResult(seq_len=seq_len, status=status, note=note)
        metric = finite(test.get(task.metric_name))
        return LengthResult(seq_len=seq_len, status="completed" if metric is not None else "diverged",
                            metric=metric, test_metrics=test, note=self._reach_note(task))

    def _reach_note(self, task: Task) -> str | None:
        """Why a model sees less than the whole input at T′ (a receptive field shorter than it), else None."""
        field = self.model.backbone.extra_info().get("receptive_field")
        if isinstance(field, int) and field < task.length:
            return f"receptive field {field} < input length {task.length}"
        return None


def run_trial(config: TrialConfig, observer: Observer | None = None) -> TrialResult:
    """Validate `config`, then train and evaluate one trial (see `Trainer`)."""
    return Trainer(prepare(config), observer).run()
