"""Fused coRNN, JANET and LEM on the CPU against their eager unrolls and nn.LSTM (issue 8).

One run, one process, the same CPU for every model: training-step time (forward + backward of the
last step's features summed, gradients cleared in between; median of `--repeats` after one warm-up
round, the models taking turns so that a change of load hits all of them) of `nn.LSTM` and of each
cell, one layer, through the eager unroll (`use_kernel=False`) and through its compiled kernel, at batch
64, hidden 128, T = 1000 by default. nn.LSTM runs as torch runs it by default (on this CPU its oneDNN
kernel) and, for reference only, once more with oneDNN off (ATen's own implementation).
Targets: fused time <= 0.5 x nn.LSTM's for coRNN and JANET, <= 0.9 x for LEM; each fused cell
>= 1.5 x faster than its own eager unroll.

Writes `benchmarks/results/fused_cells.json` (with torch version, device, load and git sha) and
replaces the section "## Fused coRNN, JANET and LEM on CPU (issue 8)" of `benchmarks/RESULTS.md`.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/fused_cells.py [--threads 1] [--repeats 7] [--note TEXT]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from cpu_timing import (  # benchmarks/cpu_timing.py
    ROOT,
    command_line,
    last_step_loss,
    machine,
    median_seconds,
    replace_section,
)
from torch import nn

from seqarena.cells.cornn import CoRNN
from seqarena.cells.janet import JANET
from seqarena.cells.kernel_stack import KernelStackedRecurrent
from seqarena.cells.kernels import cpp_build
from seqarena.cells.lem import LEM

HEADING = "## Fused coRNN, JANET and LEM on CPU (issue 8)"
CELLS: dict[str, type[KernelStackedRecurrent]] = {"cornn": CoRNN, "janet": JANET, "lem": LEM}
#: Targets: fused time / nn.LSTM time at most this, per cell; eager time / fused time at least SPEEDUP.
VS_LSTM = {"cornn": 0.5, "janet": 0.5, "lem": 0.9}
SPEEDUP = 1.5
#: A second nn.LSTM timing, for reference only (the targets use nn.LSTM as torch runs it by default).
REFERENCE = "nn.LSTM, oneDNN off (reference)"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--input-size", type=int, default=1, help="features per step (1: a scalar sequence)")
    parser.add_argument("--steps", type=int, default=1000, help="sequence length T")
    parser.add_argument("--repeats", type=int, default=7, help="timed training steps per model (after 1 warm-up)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--cells", nargs="+", default=list(CELLS), choices=list(CELLS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--note", default="", help="free text for the section (e.g. what limits an unmet target)")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "fused_cells.json")
    parser.add_argument("--results-md", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    return parser.parse_args()


def training_step(model: nn.Module, u: torch.Tensor, onednn: bool = True) -> Callable[[], None]:
    """Forward, sum of the last step's features (nn.LSTM returns a tuple), backward. `onednn=False` runs
    it with torch's oneDNN (mkldnn) kernels off: nn.LSTM then takes ATen's own CPU implementation."""
    def step() -> None:
        model.zero_grad(set_to_none=True)
        with torch.backends.mkldnn.flags(enabled=onednn):
            last_step_loss(model, u).backward()
    return step


def time_models(args: argparse.Namespace) -> dict[str, float]:
    torch.manual_seed(args.seed)
    built: dict[str, nn.Module] = {"nn.LSTM": nn.LSTM(args.input_size, args.hidden, batch_first=True)}
    for name in args.cells:
        for fused in (False, True):
            built[f"{name} {'fused' if fused else 'eager'}"] = CELLS[name](args.input_size, args.hidden, 1,
                                                                            dropout=0.0, use_kernel=fused)
    u = torch.randn(args.batch, args.steps, args.input_size, generator=torch.Generator().manual_seed(args.seed))
    steps = {name: training_step(model, u) for name, model in built.items()}
    steps[REFERENCE] = training_step(built["nn.LSTM"], u, onednn=False)
    seconds = median_seconds(steps, args.repeats)
    for name in args.cells:
        if built[f"{name} fused"].implementation != "fused-cpu":
            raise RuntimeError(f"the fused {name} kernel did not run: {cpp_build.build_error(name)}")
    return seconds


def kernel_loads(names: list[str]) -> dict[str, dict[str, float | bool]]:
    """Seconds to make each kernel usable in this process, and whether a cached build was found."""
    loads = {}
    for name in names:
        cached = any(cpp_build.cache_dir(name).glob("*.so"))
        start = time.perf_counter()
        cpp_build.require(name)
        loads[name] = {"seconds": time.perf_counter() - start, "cached": cached}
    return loads


def verdicts(seconds: dict[str, float], names: list[str]) -> dict[str, dict[str, Any]]:
    result = {}
    for name in names:
        fused = seconds[f"{name} fused"]
        vs_lstm, speedup = fused / seconds["nn.LSTM"], seconds[f"{name} eager"] / fused
        result[name] = {"fused / nn.LSTM": {"value": vs_lstm, "target": VS_LSTM[name], "met": vs_lstm <= VS_LSTM[name]},
                        "eager / fused": {"value": speedup, "target": SPEEDUP, "met": speedup >= SPEEDUP}}
    return result


def markdown(result: dict[str, Any]) -> str:
    a, m = result["args"], result["machine"]
    loads = ", ".join(f"{name} {v['seconds']:.2f} s ({'cached' if v['cached'] else 'built'})"
                      for name, v in result["kernel_load"].items())
    lines = [HEADING, "", f"Measured {result['when']} with", "",
             "    " + command_line("fused_cells.py", result["argv"]), "",
             f"- Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']} (CPU capability {m['cpu_capability']}), "
             f"Python {m['python']}, {a['threads']} intra-op thread(s), OMP_NUM_THREADS={m['omp_num_threads']}; "
             f"load average {result['load_before']} before and {result['load_after']} after (1, 5, 15 min: "
             f"other work shares the cores, so times are noisy); git {m['git_sha']}.",
             f"- Kernels ready in: {loads}.",
             f"- Training step = forward + backward of the last step's features summed; one layer, batch {a['batch']}, "
             f"hidden {a['hidden']}, input size {a['input_size']}, T = {a['steps']}; median of {a['repeats']} "
             f"after a warm-up round; the {len(result['seconds'])} timed steps take turns. Whole run: "
             f"{result['wall_seconds']:.0f} s.", ""]
    if a["note"]:
        lines += [f"Note: {a['note']}", ""]
    lines += ["| model | training step (s) |", "|---|---:|"]
    lines += [f"| {name} | {value:.4f} |" for name, value in result["seconds"].items()]
    lines += ["", "| cell | fused / nn.LSTM time | required | met | eager / fused time | required | met |",
              "|---|---:|---:|:---:|---:|---:|:---:|"]
    for name, v in result["targets"].items():
        lstm, eager = v["fused / nn.LSTM"], v["eager / fused"]
        lines.append(f"| {name} | {lstm['value']:.3f} | <= {lstm['target']} | {'met' if lstm['met'] else 'not met'} "
                     f"| {eager['value']:.2f} | >= {eager['target']} | {'met' if eager['met'] else 'not met'} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    start, load_before = time.perf_counter(), [round(v, 1) for v in os.getloadavg()]
    loads = kernel_loads(args.cells)
    seconds = time_models(args)
    result = {"when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "argv": sys.argv[1:],
              "args": {k: v for k, v in vars(args).items() if k not in ("json", "results_md")},
              "machine": machine(), "kernel_load": loads, "load_before": load_before,
              "load_after": [round(v, 1) for v in os.getloadavg()], "seconds": seconds,
              "targets": verdicts(seconds, args.cells), "wall_seconds": time.perf_counter() - start}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    replace_section(args.results_md, HEADING, markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
