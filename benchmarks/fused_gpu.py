"""The Triton kernels of coRNN, JANET, LEM and UnICORNN on a GPU against cuDNN's nn.LSTM (issue 8).

Two steps, because the GPU is on another machine than the repository's results:

1. On the GPU machine (torch with CUDA and Triton; nothing else of seqarena's dependencies is needed):

       PYTHONPATH=. python3 benchmarks/fused_gpu.py measure --json OUT.json [--repeats 10]

   One process, one GPU, float32, batch 64, hidden 128, input size 1, one layer: the training-step
   time (forward + backward of the last step's features summed, gradients cleared in between;
   median of `--repeats` after warm-up, the models taking turns, `torch.cuda.synchronize` around
   each step) of `nn.LSTM` (cuDNN) and of each cell through its eager unroll and its Triton kernel,
   at T = 1000 and 2000; the BPTT kernels once per `tl.dot` precision (`ieee`: float32 FMA,
   `tf32x3`: tensor cores), the faster one counting; and UnICORNN's peak GPU memory of a training
   step (`torch.cuda.max_memory_allocated` above the model's parameters and input) at T = 1000 and
   10000, eager against fused.
2. Here: `.venv/bin/python benchmarks/fused_gpu.py report OUT.json` copies the JSON to
   `benchmarks/results/fused_gpu.json` and replaces the section "## Fused cells on a GPU (issue 8)" of
   `benchmarks/RESULTS.md`.

Targets: UnICORNN's fused step at least 3.5x faster than nn.LSTM at T = 1000 and 2000 (the paper's
claim for its CUDA kernel against cuDNN's LSTM); coRNN and LEM within 2x of nn.LSTM's time (JANET
reported, no target); on the GPU as on the CPU, UnICORNN's recurrence adds under 10 % of the eager
version's memory growth from T = 1000 to 10000 (judged on the saved tensors, as on the CPU; the
peak is reported beside it).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cpu_timing import last_step_loss, replace_section, training_step  # noqa: E402  (benchmarks/cpu_timing.py)

from seqarena.cells.cornn import CoRNN  # noqa: E402  (after the path: the GPU machine has no install)
from seqarena.cells.janet import JANET  # noqa: E402
from seqarena.cells.kernels import triton_common  # noqa: E402
from seqarena.cells.lem import LEM  # noqa: E402
from seqarena.cells.unicornn import UnICORNN  # noqa: E402


def _saved_tensor_counter() -> type:
    """`seqarena.workers.measure.SavedTensorCounter`, loaded from its file: the package `seqarena.workers`
    imports pydantic and more, which the GPU machine does not have; the module itself needs torch only."""
    spec = importlib.util.spec_from_file_location("seqarena_measure", ROOT / "seqarena" / "workers" / "measure.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module.SavedTensorCounter


HEADING = "## Fused cells on a GPU (issue 8)"
CELLS = {"unicornn": UnICORNN, "cornn": CoRNN, "lem": LEM, "janet": JANET}
#: Targets: nn.LSTM time / UnICORNN fused time at least this; fused / nn.LSTM time at most this per cell.
UNICORNN_VS_LSTM = 3.5
WITHIN_LSTM = {"cornn": 2.0, "lem": 2.0}
MEMORY_SHARE = 0.1
BPTT = ("cornn", "janet", "lem")
#: The configurations `tune` tries: (K block of `tl.dot`, `input_precision`).
CONFIGS = [(k_block, precision) for precision in ("ieee", "tf32x3") for k_block in (16, 32, 64, 128)]
#: Largest scaled error (max |fused - eager| / max |eager| over features and gradients) a configuration
#: may have to count as accurate; JANET's chrono-initialised recurrence is ill-conditioned in float32.
ACCURATE = {"cornn": 1e-4, "janet": 1e-3, "lem": 1e-4}


def median_ms(steps: dict[str, Callable[[], None]], repeats: int, warmup: int = 2) -> dict[str, float]:
    """Median milliseconds per step of each model; the models take turns within each round."""
    times: dict[str, list[float]] = {name: [] for name in steps}
    for repeat in range(warmup + repeats):
        for name, step in steps.items():
            torch.cuda.synchronize()
            start = time.perf_counter()
            step()
            torch.cuda.synchronize()
            if repeat >= warmup:
                times[name].append(1e3 * (time.perf_counter() - start))
    return {name: statistics.median(values) for name, values in times.items()}


def sequence(args: argparse.Namespace, steps: int) -> Tensor:
    return torch.randn(args.batch, steps, 1, device="cuda", generator=torch.Generator("cuda").manual_seed(steps))


def make(name: str, args: argparse.Namespace, fused: bool) -> nn.Module:
    torch.manual_seed(args.seed)
    return CELLS[name](1, args.hidden, 1, dropout=0.0, use_kernel=fused).cuda()


def outputs_and_grads(model: nn.Module, u: Tensor) -> list[Tensor]:
    model.zero_grad(set_to_none=True)
    u = u.detach().requires_grad_(True)
    features = model(u)
    weights = torch.linspace(-1, 1, features.shape[1], device=u.device, dtype=u.dtype)
    (features * weights[:, None]).square().sum().backward()
    return [t.double() for t in (features.detach(), u.grad, *(p.grad for p in model.parameters()))]


def scaled_error(got: list[Tensor], want: list[Tensor]) -> float:
    return max(float((g - w).abs().max() / w.abs().max().clamp_min(1e-30)) for g, w in zip(got, want, strict=True))


def tune(args: argparse.Namespace) -> None:
    """Every configuration of `CONFIGS` for each BPTT kernel: error against float64 eager, time at T = 1000."""
    result: dict[str, Any] = {"when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "device": device_facts(),
                              "args": {k: str(v) for k, v in vars(args).items()}, "cells": {}, "best": {}}
    check_u, time_u = sequence(args, args.check_steps), sequence(args, args.steps[0])
    for name in args.cells:
        if name not in BPTT:
            continue
        fused = make(name, args, True)
        reference = outputs_and_grads(make(name, args, False).double(), check_u.double())
        rows = {}
        for k_block, precision in CONFIGS:
            triton_common.CONFIG[name] = (k_block, precision)
            start = time.perf_counter()
            error = scaled_error(outputs_and_grads(fused, check_u), reference)
            compile_s = time.perf_counter() - start
            ms = median_ms({"fused": training_step(fused, time_u)}, args.repeats)["fused"]
            rows[f"{k_block} {precision}"] = {"ms": ms, "error": error, "first_call_s": compile_s}
            print(f"{name} K block {k_block} {precision}: {ms:.2f} ms, error {error:.1e}, first call {compile_s:.1f} s",
                  flush=True)
        result["cells"][name] = rows
        accurate = {k: v for k, v in rows.items() if v["error"] <= ACCURATE[name]}
        best = min(accurate, key=lambda k: accurate[k]["ms"])
        k_block, precision = best.split()
        result["best"][name] = [int(k_block), precision]
        triton_common.CONFIG.pop(name)
    args.json.write_text(json.dumps(result, indent=2))
    print(json.dumps(result["best"]))


def profile(args: argparse.Namespace) -> None:
    """torch.profiler's table of UnICORNN's fused training step at the first `--steps` (where its time goes)."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    model = make("unicornn", args, True)
    step = training_step(model, sequence(args, args.steps[0]))
    wall = median_ms({"step": step}, args.repeats)["step"]
    with torch_profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(args.repeats):
            step()
        torch.cuda.synchronize()
    events = prof.key_averages()
    gpu_us = sum(e.self_device_time_total for e in events) / args.repeats
    table = events.table(sort_by="cpu_time_total", row_limit=30)
    text = (f"unicornn fused training step, T = {args.steps[0]}: {wall:.2f} ms wall (median), "
            f"{gpu_us / 1e3:.2f} ms of GPU kernel time per step\n\n{table}")
    args.json.write_text(text)
    print(text)


def time_all(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    fused = {f"{name} fused": make(name, args, True) for name in args.cells}
    eager = {f"{name} eager": make(name, args, False) for name in args.cells}
    torch.manual_seed(args.seed)
    lstm = nn.LSTM(1, args.hidden, batch_first=True).cuda()
    result: dict[str, dict[str, float]] = {}
    for steps in args.steps:
        u = sequence(args, steps)
        models = {"nn.LSTM": lstm, **fused, **(eager if steps in args.eager_steps else {})}
        ms = median_ms({key: training_step(model, u) for key, model in models.items()}, args.repeats)
        for key, model in fused.items():
            if model.implementation != "fused-cuda":
                raise RuntimeError(f"{key} took the {model.implementation} path")
        result[str(steps)] = ms
        print(f"T = {steps}: " + ", ".join(f"{k} {v:.2f} ms" for k, v in ms.items()), flush=True)
    return result


def peak_memory_mb(fused: bool, steps: int, args: argparse.Namespace) -> float:
    """Peak GPU memory of one training step above what exists before it (parameters, input)."""
    torch.manual_seed(args.seed)
    model = UnICORNN(1, args.hidden, 1, dropout=0.0, use_kernel=fused).cuda()
    u = torch.randn(args.batch, steps, 1, device="cuda")
    training_step(model, u)()  # warm-up: compilation, gradient buffers
    model.zero_grad(set_to_none=True)
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    last_step_loss(model, u).backward()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / 2**20


def saved_memory_mb(fused: bool, steps: int, args: argparse.Namespace) -> float:
    """Bytes of the tensors a training step saves for backward (one count per storage), as on the CPU."""
    torch.manual_seed(args.seed)
    model = UnICORNN(1, args.hidden, 1, dropout=0.0, use_kernel=fused).cuda()
    u = torch.randn(args.batch, steps, 1, device="cuda")
    counter = _saved_tensor_counter()(exclude={p.untyped_storage().data_ptr() for p in model.parameters()})
    with torch.autograd.graph.saved_tensors_hooks(counter.pack, lambda tensor: tensor):
        loss = last_step_loss(model, u)
    loss.backward()
    return counter.total_bytes / 2**20


def memory(args: argparse.Namespace) -> dict[str, dict[str, dict[str, float]]]:
    models = (("unicornn eager", False), ("unicornn fused", True))
    return {measure: {name: {str(steps): function(fused, steps, args) for steps in args.memory_steps}
                      for name, fused in models}
            for measure, function in (("peak", peak_memory_mb), ("saved", saved_memory_mb))}


def device_facts() -> dict[str, Any]:
    props = torch.cuda.get_device_properties(0)
    import triton

    smi = shutil.which("nvidia-smi")
    driver = subprocess.run([smi, "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True,
                            text=True).stdout.strip() if smi else "?"
    return {"gpu": props.name, "multiprocessors": props.multi_processor_count,
            "memory_gib": round(props.total_memory / 2**30, 1), "driver": driver, "torch": torch.__version__,
            "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(), "triton": triton.__version__,
            "python": platform.python_version()}


def measure(args: argparse.Namespace) -> None:
    start = time.perf_counter()
    tuned = json.loads(args.config.read_text()) if args.config else None
    if tuned:
        triton_common.CONFIG.update({name: tuple(config) for name, config in tuned["best"].items()})
    config = {name: list(triton_common.CONFIG.get(name, triton_common.DEFAULT_CONFIG)) for name in BPTT}
    result = {"when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "device": device_facts(),
              "args": {k: v for k, v in vars(args).items() if k not in ("command", "json", "config")},
              "argv": sys.argv[1:], "config": config, "tune": tuned, "ms": time_all(args), "memory_mb": memory(args)}
    result["seconds"] = time.perf_counter() - start
    args.json.write_text(json.dumps(result, indent=2))
    print(markdown(result))


def verdicts(result: dict[str, Any]) -> list[tuple[str, float, str, bool | None]]:
    rows = []
    for steps, ms in result["ms"].items():
        lstm = ms["nn.LSTM"]
        if "unicornn fused" in ms:
            ratio = lstm / ms["unicornn fused"]
            rows.append((f"T = {steps}: nn.LSTM / unicornn fused time", ratio, f">= {UNICORNN_VS_LSTM}",
                         ratio >= UNICORNN_VS_LSTM))
        for name, bound in WITHIN_LSTM.items():
            if f"{name} fused" in ms:
                ratio = ms[f"{name} fused"] / lstm
                rows.append((f"T = {steps}: {name} fused / nn.LSTM time", ratio, f"<= {bound}", ratio <= bound))
    for measure, mem in result["memory_mb"].items():
        growth = {k: v[max(v, key=int)] - v[min(v, key=int)] for k, v in mem.items()}
        share = growth["unicornn fused"] / growth["unicornn eager"]
        label = f"unicornn fused / eager memory growth ({measure}{'' if measure == 'saved' else ', for information'})"
        judged = measure == "saved"
        rows.append((label, share, f"< {MEMORY_SHARE}" if judged else "—", share < MEMORY_SHARE if judged else None))
    return rows


def markdown(result: dict[str, Any]) -> str:
    d, a = result["device"], result["args"]
    lines = [HEADING, "", f"Measured {result['when']} on a GPU machine lent for this session, with", "",
             "    PYTHONPATH=. python3 benchmarks/fused_gpu.py " + " ".join(result["argv"]), "",
             "then `benchmarks/fused_gpu.py report` here.", "",
             f"- GPU: {d['gpu']} ({d['multiprocessors']} SMs, {d['memory_gib']} GiB), driver {d['driver']}; "
             f"torch {d['torch']} (CUDA {d['cuda']}, cuDNN {d['cudnn']}), Triton {d['triton']}, Python {d['python']}.",
             f"- Training step = forward + backward of the last step's features summed; float32, batch {a['batch']}, "
             f"hidden {a['hidden']}, input size 1, one layer; median of {a['repeats']} after 2 warm-up rounds, the "
             f"models taking turns, synchronised around each step. Whole run: {result['seconds']:.0f} s.",
             "- BPTT kernels' configuration (K block of `tl.dot`, precision): "
             + ", ".join(f"{name} {k} {p}" for name, (k, p) in result["config"].items()) + ".", ""]
    if result.get("tune"):
        lines += tune_table(result["tune"], same_run=not result.get("tune_separate"))
    steps = list(result["ms"])
    keys = list(dict.fromkeys(key for ms in result["ms"].values() for key in ms))
    lines += ["| model | " + " | ".join(f"T = {s} (ms)" for s in steps) + " |",
              "|---|" + "---:|" * len(steps)]
    for key in keys:
        lines.append(f"| {key} | " + " | ".join(f"{result['ms'][s][key]:.2f}" if key in result["ms"][s] else "—"
                                                 for s in steps) + " |")
    for measure, mem in result["memory_mb"].items():
        mem_steps = list(next(iter(mem.values())))
        what = ("peak GPU memory above parameters and input (`torch.cuda.max_memory_allocated`)" if measure == "peak"
                else "tensors saved for backward (one count per storage, as on the CPU)")
        lines += ["", f"UnICORNN's memory of a training step, {what}, MiB, one layer:", "",
                  "| model | " + " | ".join(f"T = {s}" for s in mem_steps) + " | growth |",
                  "|---|" + "---:|" * (len(mem_steps) + 1)]
        for key, values in mem.items():
            growth = values[mem_steps[-1]] - values[mem_steps[0]]
            lines.append(f"| {key} | " + " | ".join(f"{values[s]:.1f}" for s in mem_steps) + f" | {growth:.1f} |")
    lines += ["", "| target | value | required | met |", "|---|---:|---:|:---:|"]
    for label, value, required, met in verdicts(result):
        lines.append(f"| {label} | {value:.3f} | {required} | {'—' if met is None else 'met' if met else 'not met'} |")
    if result.get("note"):
        lines += ["", result["note"]]
    return "\n".join(lines) + "\n"


def tune_table(tune: dict[str, Any], same_run: bool = True) -> list[str]:
    """The `tune` run: time at T = 1000 and error against float64 eager of every configuration."""
    configs = list(next(iter(tune["cells"].values())))
    timed_steps = tune["args"]["steps"].strip("[]").split(",")[0]
    when = "same machine, just before" if same_run else f"{tune['when']}, {tune['device']['gpu']}, an earlier lease"
    lines = [f"`tune` ({when}): training step at T = " + timed_steps
             + " (ms) and largest scaled error against float64 eager at T = " + tune["args"]["check_steps"]
             + " of each configuration (K block, precision); **bold**: chosen (the fastest within "
             + ", ".join(f"{k} {v:g}" for k, v in ACCURATE.items()) + ").", "",
             "| cell | " + " | ".join(configs) + " |", "|---|" + "---:|" * len(configs)]
    for name, rows in tune["cells"].items():
        best = " ".join(str(v) for v in tune["best"][name])
        cells = [(f"**{r['ms']:.2f}**" if c == best else f"{r['ms']:.2f}") + f" ({r['error']:.0e})"
                 for c, r in rows.items()]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def report(args: argparse.Namespace) -> None:
    result = json.loads(args.json.read_text())
    if args.tune:
        result["tune"] = json.loads(args.tune.read_text())
        result["tune_separate"] = True
    if args.note:
        result["note"] = args.note
    target = ROOT / "benchmarks" / "results" / "fused_gpu.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(result, indent=2))
    if args.profile:
        shutil.copyfile(args.profile, target.with_name("fused_gpu_profile.txt"))
    replace_section(ROOT / "benchmarks" / "RESULTS.md", HEADING, markdown(result))
    print(markdown(result))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for command, text in (("measure", "time the models on this machine's GPU and write JSON"),
                          ("tune", "time every BPTT kernel configuration and write JSON"),
                          ("profile", "profile UnICORNN's fused training step, write the table (text)")):
        run = sub.add_parser(command, help=text)
        run.add_argument("--json", type=Path, required=True)
        run.add_argument("--batch", type=int, default=64)
        run.add_argument("--hidden", type=int, default=128)
        run.add_argument("--steps", type=int, nargs="+", default=[1000, 2000], help="sequence lengths T")
        run.add_argument("--eager-steps", type=int, nargs="+", default=[1000], help="T at which eager runs too")
        run.add_argument("--check-steps", type=int, default=300, help="T of tune's check against eager")
        run.add_argument("--memory-steps", type=int, nargs="+", default=[1000, 10000])
        run.add_argument("--repeats", type=int, default=10)
        run.add_argument("--cells", nargs="+", default=list(CELLS), choices=list(CELLS))
        run.add_argument("--config", type=Path, help="a tune JSON whose best configurations measure uses")
        run.add_argument("--seed", type=int, default=0)
    rep = sub.add_parser("report", help="write a measured JSON into benchmarks/RESULTS.md")
    rep.add_argument("json", type=Path)
    rep.add_argument("--note", default="", help="free text for the section (what limits an unmet target)")
    rep.add_argument("--tune", type=Path, help="a tune JSON from another run to show beside the figures")
    rep.add_argument("--profile", type=Path, help="the profile table (text) of the same run, kept beside the JSON")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.command == "report":
        report(args)
        return
    if not torch.cuda.is_available():
        raise SystemExit(f"benchmarks/fused_gpu.py {args.command} needs a CUDA GPU")
    {"measure": measure, "tune": tune, "profile": profile}[args.command](args)


if __name__ == "__main__":
    main()
