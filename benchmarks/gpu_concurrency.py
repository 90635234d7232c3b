"""Trials sharing one GPU: aggregate training throughput of 1, 2, 4 and 8 processes on one device.

A search with a fractional `gpus_per_trial` (0.25: four trials per GPU) runs that many trials, each
its own Ray worker process, on one GPU at once. This benchmark measures what that buys without Ray:
`P` worker processes (spawned once, `multiprocessing` "spawn", each with its own CUDA context as a
Ray worker has) train the same model at the same time, each its own copy, and the aggregate rate is
every process's steps over the wall-clock window from the first start to the last end.

A training step is what a trial's is: gradients cleared, forward, the last step's features summed
as the loss, backward, an Adam update (float32, input size 1, one layer). Models: coRNN, UnICORNN and
LEM through their fused kernels (Triton on CUDA, C++ on the CPU) and nn.LSTM (cuDNN on CUDA).

1. On the GPU machine (torch with CUDA and Triton; nothing else of seqarena's dependencies):

       PYTHONPATH=. python3 benchmarks/gpu_concurrency.py measure --json OUT.json

2. Here: `.venv/bin/python benchmarks/gpu_concurrency.py report OUT.json` copies the JSON to
   `benchmarks/results/gpu_concurrency.json` and replaces the section "## Trials sharing one GPU" of
   `benchmarks/RESULTS.md`.

Target on an H200 at T = 1000, B = 64, H = 128: 8 concurrent processes give at least 4x the aggregate
steps per second of one (a recurrent kernel keeps only a few of the 132 SMs busy). A smoke run on the
CPU: `measure --device cpu --steps 2 --seq-len 20 --procs 1 2`.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cpu_timing import last_step_loss, replace_section  # noqa: E402  (benchmarks/cpu_timing.py)

HEADING = "## Trials sharing one GPU"
MODELS = ("cornn", "unicornn", "lem", "lstm")
TARGET_SPEEDUP = 4.0  # 8 concurrent against one, on an H200
TARGET_PROCS = 8


def build(name: str, hidden: int, device: str) -> nn.Module:
    """The model `name` with one layer of `hidden` units, input size 1, its fused path when it has one."""
    if name == "lstm":
        return nn.LSTM(1, hidden, batch_first=True).to(device)
    from seqarena.cells.cornn import CoRNN
    from seqarena.cells.lem import LEM
    from seqarena.cells.unicornn import UnICORNN

    cells = {"cornn": CoRNN, "unicornn": UnICORNN, "lem": LEM}
    return cells[name](1, hidden, 1, dropout=0.0, use_kernel=True).to(device)


def implementation(model: nn.Module, device: str) -> str:
    """What ran the model's recurrence (the fused cells say it; nn.LSTM is cuDNN on CUDA)."""
    if isinstance(model, nn.LSTM):
        return "cudnn" if device.startswith("cuda") else "aten"
    return str(getattr(model, "implementation", "?"))


def _train(model: nn.Module, optimizer: torch.optim.Optimizer, u: torch.Tensor, steps: int) -> None:
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        last_step_loss(model, u).backward()
        optimizer.step()


def worker(rank: int, settings: dict[str, Any], tasks: Any, results: Any) -> None:
    """One process: for each model it is sent, warm up, say ready, wait for "go", time its steps."""
    torch.set_num_threads(settings["threads"])
    device = settings["device"]
    while (name := tasks.get()) is not None:
        torch.manual_seed(rank)
        model = build(name, settings["hidden"], device)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        u = torch.randn(settings["batch"], settings["seq_len"], 1, device=device)
        _train(model, optimizer, u, settings["warmup"])
        _sync(device)
        results.put(("ready", rank))
        assert tasks.get() == "go"
        start = time.monotonic()  # CLOCK_MONOTONIC: one clock for every process of the machine
        _train(model, optimizer, u, settings["steps"])
        _sync(device)
        results.put(("done", rank, start, time.monotonic(), implementation(model, device)))
        del model, optimizer, u
        if device.startswith("cuda"):
            torch.cuda.empty_cache()


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def run_level(name: str, procs: int, queues: list[Any], results: Any, steps: int) -> dict[str, Any]:
    """Train `name` in the first `procs` workers at once; their aggregate and per-process rates."""
    for queue in queues[:procs]:
        queue.put(name)
    for _ in range(procs):
        kind, *_ = results.get()
        assert kind == "ready", kind
    for queue in queues[:procs]:
        queue.put("go")
    done = [results.get() for _ in range(procs)]
    starts, ends = [d[2] for d in done], [d[3] for d in done]
    window = max(ends) - min(starts)
    return {"procs": procs, "window_s": window, "aggregate_steps_per_s": procs * steps / window,
            "per_process_steps_per_s": sorted(steps / (end - start) for _, _, start, end, _ in done),
            "implementation": sorted({d[4] for d in done})}


def measure_all(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Every model at every level of concurrency, through one pool of `max(procs)` workers."""
    settings = {key: getattr(args, key) for key in ("device", "hidden", "batch", "seq_len", "steps", "warmup",
                                                    "threads")}
    context = mp.get_context("spawn")
    queues = [context.Queue() for _ in range(max(args.procs))]
    results = context.Queue()
    workers = [context.Process(target=worker, args=(rank, settings, queue, results), daemon=True)
               for rank, queue in enumerate(queues)]
    for process in workers:
        process.start()
    measured: dict[str, dict[str, Any]] = {}
    try:
        for name in args.models:
            levels = [run_level(name, procs, queues, results, args.steps) for procs in args.procs]
            one = levels[0]["aggregate_steps_per_s"]
            measured[name] = {str(level["procs"]): {**level, "speedup": level["aggregate_steps_per_s"] / one}
                              for level in levels}
            print(name, {p: round(v["aggregate_steps_per_s"], 1) for p, v in measured[name].items()}, flush=True)
    finally:
        for queue in queues:
            queue.put(None)
        for process in workers:
            process.join(timeout=30)
    return measured


def device_facts(device: str) -> dict[str, Any]:
    """The GPU (or CPU) and the versions the figures depend on."""
    facts: dict[str, Any] = {"device": device, "torch": torch.__version__, "python": platform.python_version()}
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(0)
        facts.update(gpu=props.name, multiprocessors=props.multi_processor_count,
                     memory_gib=round(props.total_memory / 2**30, 1), cuda=torch.version.cuda)
    else:
        facts["cpu"] = platform.processor() or platform.machine()
    return facts


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Run the benchmark and write its JSON to `args.json`."""
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("gpu_concurrency.py: --device cuda needs a CUDA GPU (use --device cpu for a smoke run)")
    if sorted(set(args.procs)) != args.procs or args.procs[0] < 1:
        raise SystemExit(f"--procs: increasing positive counts, got {args.procs}")
    started = time.perf_counter()
    result = {"when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "device": device_facts(args.device),
              "args": {k: v for k, v in vars(args).items() if k not in ("command", "json")},
              "argv": sys.argv[1:], "models": measure_all(args)}
    result["seconds"] = time.perf_counter() - started
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    print(markdown(result))
    return result


def markdown(result: dict[str, Any]) -> str:
    """The RESULTS.md section: aggregate steps/s per model and level, speed-up over one, the target."""
    d, a = result["device"], result["args"]
    where = (f"{d['gpu']} ({d['multiprocessors']} SMs, {d['memory_gib']} GiB), torch {d['torch']} (CUDA {d['cuda']})"
             if "gpu" in d else f"the CPU ({d['cpu']}), torch {d['torch']}")
    levels = [str(p) for p in a["procs"]]
    lines = [HEADING, "", f"Measured {result['when']} with", "",
             "    PYTHONPATH=. python3 benchmarks/gpu_concurrency.py " + " ".join(result["argv"]), "",
             f"- Device: {where}, Python {d['python']}.",
             f"- Each process trains its own copy: T = {a['seq_len']}, batch {a['batch']}, hidden {a['hidden']}, "
             f"one layer, Adam; {a['warmup']} warm-up steps, then {a['steps']} timed steps started together. "
             f"Aggregate = all processes' steps / (last end - first start). Whole run: {result['seconds']:.0f} s.", "",
             "| model (path) | " + " | ".join(f"{p} proc. (steps/s)" for p in levels) + " | "
             + " | ".join(f"x{p}" for p in levels[1:]) + " |",
             "|---|" + "---:|" * (2 * len(levels) - 1)]
    for name, by_level in result["models"].items():
        path = ", ".join(by_level[levels[0]]["implementation"])
        lines.append(f"| {name} ({path}) | " + " | ".join(f"{by_level[p]['aggregate_steps_per_s']:.1f}" for p in levels)
                     + " | " + " | ".join(f"{by_level[p]['speedup']:.2f}" for p in levels[1:]) + " |")
    judged = str(TARGET_PROCS)
    if judged in levels and "gpu" in d:
        lines += ["", f"| target: {TARGET_PROCS} processes / 1 | value | required | met |", "|---|---:|---:|:---:|"]
        for name, by_level in result["models"].items():
            value = by_level[judged]["speedup"]
            lines.append(f"| {name} | {value:.2f} | >= {TARGET_SPEEDUP:g} | "
                         f"{'met' if value >= TARGET_SPEEDUP else 'not met'} |")
    if result.get("note"):
        lines += ["", result["note"]]
    return "\n".join(lines) + "\n"


def report(args: argparse.Namespace) -> None:
    """Keep a measured JSON under benchmarks/results and write its section of RESULTS.md."""
    result = json.loads(args.json.read_text())
    if args.note:
        result["note"] = args.note
    target = args.results / "gpu_concurrency.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(result, indent=2))
    replace_section(args.results_md, HEADING, markdown(result))
    print(markdown(result))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("measure", help="train 1, 2, 4, 8 processes at once on one device, write JSON")
    run.add_argument("--json", type=Path, required=True, help="where to write the figures")
    run.add_argument("--device", default="cuda", help="cuda (the GPU every process shares) or cpu (smoke run)")
    run.add_argument("--procs", type=int, nargs="+", default=[1, 2, 4, 8], help="processes at once, increasing")
    run.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    run.add_argument("--seq-len", type=int, default=1000, help="sequence length T")
    run.add_argument("--batch", type=int, default=64)
    run.add_argument("--hidden", type=int, default=128)
    run.add_argument("--steps", type=int, default=100, help="timed training steps per process")
    run.add_argument("--warmup", type=int, default=3, help="untimed steps first (kernels compile)")
    run.add_argument("--threads", type=int, default=1, help="torch CPU threads per process")
    rep = sub.add_parser("report", help="write a measured JSON into benchmarks/RESULTS.md")
    rep.add_argument("json", type=Path)
    rep.add_argument("--note", default="", help="free text for the section (what limits an unmet target)")
    rep.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results", help="where the JSON is kept")
    rep.add_argument("--results-md", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.command == "report":
        report(args)
    else:
        measure(args)


if __name__ == "__main__":
    main()
