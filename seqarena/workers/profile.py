"""Profiles of the models against the sequence length: what a step costs in time and memory.

For each model and sequence length T, on random data `x: [B, T, input_size]`, `y: [B, 1]`:

* a **training step**: forward of the model, a linear readout of the last step's features, MSE
  loss, backward and the model's declared optimiser step (Adam for every model of the zoo);
* an **inference step**: the same forward and readout in eval mode under `torch.inference_mode()`.

Each is run `warmup` times untimed, then `repeats` times timed with `time.perf_counter` (CUDA is
synchronised around each run, `seqarena.workers.measure.Stopwatch`); the profile reports the
median and every run. Peak memory of a training step is measured on the first warm-up step with
`seqarena.workers.measure.measure_step_memory` (the same measure as a trial's: CUDA's allocator
counter, or on CPU the tensors saved for backward plus parameters, gradients and optimiser state).
At least one warm-up step always runs, because the memory measurement is one.

Models are built at their declared defaults (`seqarena.cells.space`) except the hidden size, so a
model keeps its authors' depth (TCN: 8 residual blocks, UnICORNN: 3 layers, Transformer: 2).

A (model, T) that runs out of memory is recorded with status `oom`; with `max_mem_gb`, a (model, T)
whose peak memory, extrapolated from the smaller T of the same model, would exceed the limit is
not run and has status `skipped` (the exponent of T is fitted on the last two measured lengths and
clamped to [1, 2]; after only one measurement it is 2, the attention worst case).
"""

from __future__ import annotations

import csv
import json
import math
import platform
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from seqarena import cells
from seqarena.cells.space import resolve
from seqarena.errors import BadInput, one_of
from seqarena.workers.config import resolve_device
from seqarena.workers.measure import Stopwatch, measure_step_memory
from seqarena.workers.memory import is_out_of_memory, release_memory
from seqarena.workers.protocol import make_optimizer
from seqarena.workers.trial import SequenceNet

PROFILE_STATUSES = ("ok", "oom", "skipped")
"""ok: measured; oom: ran out of memory; skipped: the `max_mem_gb` guard did not run it."""
DEFAULT_PATH = "eager"
"""The implementation that ran when a model does not say (`implementation` attribute)."""


@dataclass(frozen=True)
class ProfilePlan:
    """A validated profile request (see `plan_profile`)."""

    models: tuple[str, ...]
    seq_lens: tuple[int, ...]
    batch_size: int = 64
    hidden: int = 128
    device: str = "cpu"
    repeats: int = 5
    warmup: int = 2
    input_size: int = 1
    max_mem_gb: float | None = None
    seed: int = 0

    @property
    def cases(self) -> list[tuple[str, int]]:
        """Every (model, T), each model's lengths in increasing order (the memory guard needs it)."""
        return [(model, seq_len) for model in self.models for seq_len in sorted(self.seq_lens)]


@dataclass
class ProfileRow:
    """What one (model, T) costs. Times in seconds per step; memory in MiB; None when not measured."""

    model: str
    seq_len: int
    batch_size: int
    hidden: int
    device: str
    status: str = "ok"
    num_layers: int | None = None
    params: int | None = None
    train_step_s: float | None = None
    train_step_s_all: list[float] = field(default_factory=list)
    infer_step_s: float | None = None
    infer_step_s_all: list[float] = field(default_factory=list)
    train_seq_per_s: float | None = None
    infer_seq_per_s: float | None = None
    peak_mem_mb: float | None = None
    peak_mem_method: str | None = None
    path: str = DEFAULT_PATH
    """The implementation that ran (`implementation` of the model, else eager); `train/inference` when they differ."""
    torch_version: str = torch.__version__
    threads: int = 1
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class LastStepReadout(nn.Module):
    """The profile's head: a linear map of the last step's features. `[B, T, H] -> [B, 1]`."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.linear = nn.Linear(hidden_size, 1)

    def forward(self, features: Tensor) -> Tensor:
        return self.linear(features[:, -1])


# ------------------------------------------------------------------------------------------ validation

def parse_list(field_name: str, text: str) -> list[str]:
    """`"lstm, cornn"` -> `["lstm", "cornn"]`; `BadInput` when nothing is named."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise BadInput(field_name, text, "a comma-separated list, e.g. 100,1000")
    return items


def parse_models(text: str) -> list[str]:
    """Comma-separated model names; `all` is every registered model."""
    items = parse_list("models", text)
    return cells.names() if items == ["all"] else items


def parse_seq_lens(text: str) -> list[int]:
    """Comma-separated positive integers (`100,1000,10000`)."""
    items = parse_list("seq_lens", text)
    try:
        return [int(item) for item in items]
    except ValueError:
        raise BadInput("seq_lens", text, "comma-separated positive integers, e.g. 100,1000") from None


def _positive(field_name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise BadInput(field_name, value, "a positive integer")
    return value


def plan_profile(models: Sequence[str], seq_lens: Sequence[int], *, batch_size: int = 64, hidden: int = 128,
                 device: str = "cpu", repeats: int = 5, warmup: int = 2, input_size: int = 1,
                 max_mem_gb: float | None = None, seed: int = 0) -> ProfilePlan:
    """Check every argument before anything runs; `BadInput` names the first bad field.

    Each model is built once at the smallest T on the CPU, so a hidden size a model refuses (e.g.
    not a multiple of the Transformer's heads) is found here too.
    """
    if not models:
        raise BadInput("models", list(models), one_of(cells.names()))
    for name in models:
        cells.model_class(name)
    if not seq_lens:
        raise BadInput("seq_lens", list(seq_lens), "at least one positive integer")
    lengths = tuple(dict.fromkeys(_positive("seq_lens", t) for t in seq_lens))
    for name, value in (("batch_size", batch_size), ("hidden", hidden), ("repeats", repeats),
                        ("input_size", input_size)):
        _positive(name, value)
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise BadInput("warmup", warmup, "an integer >= 0")
    if max_mem_gb is not None and not (isinstance(max_mem_gb, int | float) and max_mem_gb > 0):
        raise BadInput("max_mem_gb", max_mem_gb, "a positive number of GiB")
    resolved = resolve_device(device)
    plan = ProfilePlan(tuple(dict.fromkeys(models)), lengths, batch_size, hidden, str(resolved), repeats,
                       warmup, input_size, max_mem_gb, seed)
    for name in plan.models:
        _build(plan, name, min(lengths))
    return plan


# ------------------------------------------------------------------------------------------ measuring

def _build(plan: ProfilePlan, name: str, seq_len: int) -> tuple[SequenceNet, dict[str, Any]]:
    """Model `name` at its declared defaults with `plan.hidden` units, and the last-step readout."""
    hparams = resolve(cells.space(name), {"hidden_size": plan.hidden})
    kwargs = {key: hparams[key] for key in cells.model_hparams(name)}
    backbone = cells.build(name, plan.input_size, plan.hidden, int(hparams["num_layers"]), seq_len=seq_len,
                           **kwargs)
    return SequenceNet(backbone, LastStepReadout(plan.hidden)), hparams


def _times(step: Callable[[], object], runs: int, items: int, device: torch.device) -> list[float]:
    """Seconds of each of `runs` calls of `step` (CUDA synchronised around each)."""
    times = []
    for _ in range(runs):
        watch = Stopwatch()
        with watch.timing(items, device):
            step()
        times.append(watch.seconds)
    return times


def measure_case(plan: ProfilePlan, name: str, seq_len: int) -> ProfileRow:
    """Build model `name`, then time its training and inference steps at `seq_len` (see the module doc)."""
    device = torch.device(plan.device)
    torch.manual_seed(plan.seed)
    net, hparams = _build(plan, name, seq_len)
    net = net.to(device)
    optimizer = make_optimizer(net, hparams)
    generator = torch.Generator().manual_seed(plan.seed)
    x = torch.randn(plan.batch_size, seq_len, plan.input_size, generator=generator).to(device)
    y = torch.randn(plan.batch_size, 1, generator=generator).to(device)

    def train_step() -> Tensor:
        optimizer.zero_grad(set_to_none=True)
        loss = nn.functional.mse_loss(net(x), y)
        loss.backward()
        optimizer.step()
        return loss

    def infer_step() -> Tensor:
        with torch.inference_mode():
            return net(x)

    net.train()
    _, peak_mb, method = measure_step_memory(net, optimizer, train_step, device)
    train_times = _warm_then_time(train_step, max(plan.warmup - 1, 0), plan, device)  # memory step: 1st warm-up
    train_path = _path(net)
    net.eval()
    infer_times = _warm_then_time(infer_step, plan.warmup, plan, device)
    path = train_path if _path(net) == train_path else f"{train_path}/{_path(net)}"
    return _row(plan, name, seq_len, net, int(hparams["num_layers"]), train_times, infer_times, peak_mb, method,
                path)


def _path(net: SequenceNet) -> str:
    """The implementation the model's last forward pass took (its `implementation` attribute), else eager."""
    return str(getattr(net.backbone, "implementation", DEFAULT_PATH))


def _warm_then_time(step: Callable[[], object], warmup: int, plan: ProfilePlan, device: torch.device) -> list[float]:
    """`warmup` untimed runs of `step`, then the seconds of each of `plan.repeats` timed ones."""
    for _ in range(warmup):
        step()
    return _times(step, plan.repeats, plan.batch_size, device)


def _row(plan: ProfilePlan, name: str, seq_len: int, net: SequenceNet, num_layers: int, train_times: list[float],
         infer_times: list[float], peak_mb: float, method: str, path: str) -> ProfileRow:
    train_s, infer_s = statistics.median(train_times), statistics.median(infer_times)
    return ProfileRow(
        **_identity(plan, name, seq_len), num_layers=num_layers, params=sum(p.numel() for p in net.parameters()),
        train_step_s=train_s, train_step_s_all=train_times, infer_step_s=infer_s, infer_step_s_all=infer_times,
        train_seq_per_s=_rate(plan.batch_size, train_s), infer_seq_per_s=_rate(plan.batch_size, infer_s),
        peak_mem_mb=peak_mb, peak_mem_method=method, path=path)


def _identity(plan: ProfilePlan, name: str, seq_len: int) -> dict[str, Any]:
    return {"model": name, "seq_len": seq_len, "batch_size": plan.batch_size, "hidden": plan.hidden,
            "device": plan.device, "torch_version": torch.__version__, "threads": torch.get_num_threads()}


def _rate(items: int, seconds: float) -> float | None:
    return items / seconds if seconds > 0 else None


# ------------------------------------------------------------------------------------------ the profile

def estimated_peak_mb(measured: Sequence[tuple[int, float]], seq_len: int) -> float | None:
    """Peak memory at `seq_len` extrapolated from the (T, MiB) measured before at smaller T, or None."""
    if not measured:
        return None
    last_t, last_mb = measured[-1]
    exponent = 2.0
    if len(measured) > 1:
        prev_t, prev_mb = measured[-2]
        if prev_mb > 0 and last_mb > 0 and last_t != prev_t:
            exponent = min(max(math.log(last_mb / prev_mb) / math.log(last_t / prev_t), 1.0), 2.0)
    return last_mb * (seq_len / last_t) ** exponent


def profile_case(plan: ProfilePlan, name: str, seq_len: int,
                 measured: Sequence[tuple[int, float]] = ()) -> ProfileRow:
    """`measure_case`, with an out-of-memory error or the `max_mem_gb` guard turned into a row's status."""
    estimate = estimated_peak_mb(measured, seq_len)
    if plan.max_mem_gb is not None and estimate is not None and estimate > plan.max_mem_gb * 1024:
        return ProfileRow(**_identity(plan, name, seq_len), status="skipped",
                          note=f"estimated peak {estimate:,.0f} MiB > max_mem_gb {plan.max_mem_gb:g} GiB")
    try:
        return measure_case(plan, name, seq_len)
    except (RuntimeError, MemoryError) as error:
        if not is_out_of_memory(error):
            raise
        note = str(error).strip().splitlines()[0][:300] if str(error).strip() else type(error).__name__
    release_memory()
    return ProfileRow(**_identity(plan, name, seq_len), status="oom", note=note)


def run_plan(plan: ProfilePlan, on_case: Callable[[str, int, ProfileRow | None], None] | None = None
             ) -> list[ProfileRow]:
    """Profile every (model, T) of `plan`; `on_case(model, T, None)` before each, `(model, T, row)` after."""
    cells.keep_freed_blocks()  # timed steps reuse freed memory, as a trial's do (heap.py)
    rows: list[ProfileRow] = []
    measured: dict[str, list[tuple[int, float]]] = {}
    for name, seq_len in plan.cases:
        if on_case:
            on_case(name, seq_len, None)
        row = profile_case(plan, name, seq_len, measured.get(name, []))
        if row.status == "ok" and row.peak_mem_mb is not None:
            measured.setdefault(name, []).append((seq_len, row.peak_mem_mb))
        rows.append(row)
        if on_case:
            on_case(name, seq_len, row)
    return rows


def profile(models: Sequence[str], seq_lens: Sequence[int], batch_size: int = 64, hidden: int = 128,
            device: str = "cpu", repeats: int = 5, warmup: int = 2, input_size: int = 1, *,
            max_mem_gb: float | None = None, seed: int = 0) -> list[ProfileRow]:
    """Time and memory of a training and an inference step of each model at each T (module doc).

    Raises `BadInput` naming the field (unknown model, non-positive size, `cuda` without a GPU)
    before anything runs.
    """
    plan = plan_profile(models, seq_lens, batch_size=batch_size, hidden=hidden, device=device, repeats=repeats,
                        warmup=warmup, input_size=input_size, max_mem_gb=max_mem_gb, seed=seed)
    return run_plan(plan)


# ------------------------------------------------------------------------------------------ output

def environment(plan: ProfilePlan) -> dict[str, Any]:
    """The run's settings and machine: what a profile file records besides its rows."""
    device = torch.device(plan.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    return {**{key: value for key, value in asdict(plan).items() if key not in ("models", "seq_lens")},
            "models": list(plan.models), "seq_lens": list(plan.seq_lens), "device_name": name,
            "torch_version": torch.__version__, "threads": torch.get_num_threads(),
            "machine": f"{platform.system()} {platform.machine()}, python {platform.python_version()}"}


CSV_COLUMNS = [f.name for f in fields(ProfileRow)]


def write_files(plan: ProfilePlan, rows: Sequence[ProfileRow], folder: Path) -> tuple[Path, Path]:
    """Write `profile.json` (settings, machine and rows) and `profile.csv` (one line per row) into `folder`.

    In the CSV, the per-run times are JSON lists.
    """
    folder.mkdir(parents=True, exist_ok=True)
    json_path, csv_path = folder / "profile.json", folder / "profile.csv"
    json_path.write_text(json.dumps({**environment(plan), "rows": [row.to_json() for row in rows]}, indent=1))
    with csv_path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for row in rows:
            values = row.to_json()
            values.update({key: json.dumps(values[key]) for key in ("train_step_s_all", "infer_step_s_all")})
            writer.writerow(values)
    return json_path, csv_path


TABLE_COLUMNS = ("model", "T", "status", "params", "train step (ms)", "train seq/s", "infer step (ms)",
                 "infer seq/s", "peak MiB", "path")


def table_rows(rows: Sequence[ProfileRow]) -> list[list[str]]:
    """The rows as text cells under `TABLE_COLUMNS` (for the terminal and for Markdown)."""
    def num(value: float | None, scale: float = 1.0, digits: str = ",.1f") -> str:
        return "—" if value is None else format(value * scale, digits)

    return [[row.model, str(row.seq_len), row.status if not row.note else f"{row.status}: {row.note}",
             "—" if row.params is None else f"{row.params:,}", num(row.train_step_s, 1e3, ",.2f"),
             num(row.train_seq_per_s), num(row.infer_step_s, 1e3, ",.2f"), num(row.infer_seq_per_s),
             num(row.peak_mem_mb, digits=",.2f"), row.path] for row in rows]


def default_name(plan: ProfilePlan) -> str:
    """A run's label when none is given: models, lengths, batch and hidden size, device."""
    return (f"{','.join(plan.models)} T={','.join(str(t) for t in sorted(plan.seq_lens))} "
            f"B={plan.batch_size} H={plan.hidden} {plan.device}")[:200]
