"""Fused UnICORNN on the CPU against its eager unroll and nn.LSTM (issue 8, performance point 2).

One run, one process, the same CPU for all three:

* training-step time (forward + backward of a loss on the last step's features, gradients zeroed
  in between; median of `--repeats` after one warm-up) of `nn.LSTM`, one-layer UnICORNN through
  the eager unroll (`use_kernel=False`) and through the compiled kernel, at batch 64, hidden 128,
  T = 1000 by default. Targets: fused <= 0.05 x LSTM, fused >= 10 x faster than eager.
* peak training memory of eager and fused UnICORNN at T = 1000 and T = 10000, measured as the
  trials measure it on the CPU (`seqarena.workers.measure.measure_step_memory`: bytes of the
  tensors autograd saves for backward + parameters, gradients and Adam's state). Target: the
  growth from T = 1000 to 10000 of the fused model is < 10 % of the eager model's.

Writes `benchmarks/results/fused_unicornn.json` (with torch version, device and git sha) and
replaces the section "## Fused UnICORNN on CPU (issue 8)" of `benchmarks/RESULTS.md` from it.

    .venv/bin/python benchmarks/fused_unicornn.py [--threads 1] [--repeats 5] [--memory-steps 1000 10000]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
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
    training_step,
)
from torch import nn

from seqarena.cells.kernels import cpp_build
from seqarena.cells.unicornn import UnICORNN
from seqarena.workers.measure import CPU_METHOD, measure_step_memory

HEADING = "## Fused UnICORNN on CPU (issue 8)"
SPEED_VS_LSTM, SPEED_VS_EAGER, MEMORY_SHARE = 0.05, 10.0, 0.10


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--input-size", type=int, default=1, help="features per step (1: a scalar sequence)")
    parser.add_argument("--steps", type=int, default=1000, help="sequence length T of the timing runs")
    parser.add_argument("--repeats", type=int, default=7, help="timed training steps per model (after 1 warm-up)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--memory-steps", type=int, nargs=2, default=(1000, 10000))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--note", default="", help="free text for the section (e.g. what limits an unmet target)")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "fused_unicornn.json")
    parser.add_argument("--results-md", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    return parser.parse_args()


def models(args: argparse.Namespace) -> dict[str, nn.Module]:
    torch.manual_seed(args.seed)
    return {
        "nn.LSTM": nn.LSTM(args.input_size, args.hidden, batch_first=True),
        "unicornn eager": UnICORNN(args.input_size, args.hidden, 1, dropout=0.0, use_kernel=False),
        "unicornn fused": UnICORNN(args.input_size, args.hidden, 1, dropout=0.0, use_kernel=True),
    }


def time_models(args: argparse.Namespace) -> dict[str, float]:
    u = torch.randn(args.batch, args.steps, args.input_size, generator=torch.Generator().manual_seed(args.seed))
    built = models(args)
    seconds = median_seconds({name: training_step(model, u) for name, model in built.items()}, args.repeats)
    if built["unicornn fused"].implementation != "fused-cpu":
        raise RuntimeError(f"the fused kernel did not run: {cpp_build.build_error('unicornn')}")
    return seconds


def peak_memory_mb(fused: bool, steps: int, args: argparse.Namespace) -> float:
    torch.manual_seed(args.seed)
    model = UnICORNN(args.input_size, args.hidden, 1, dropout=0.0, use_kernel=fused)
    optimizer = torch.optim.Adam(model.parameters())
    u = torch.randn(args.batch, steps, args.input_size)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        last_step_loss(model, u).backward()
        optimizer.step()

    step()  # Adam's state exists from here on, as in a trial's later steps
    return measure_step_memory(model, optimizer, step, torch.device("cpu"))[1]


def memory(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    return {name: {str(steps): peak_memory_mb(fused, steps, args) for steps in args.memory_steps}
            for name, fused in (("unicornn eager", False), ("unicornn fused", True))}


def kernel_load() -> dict[str, float | bool]:
    """Seconds to make the kernel usable in this process, and whether a cached build was found."""
    cached = any(cpp_build.cache_dir("unicornn").glob("*.so"))
    start = time.perf_counter()
    if cpp_build.load("unicornn") is None:
        raise RuntimeError(f"the fused kernel is unavailable: {cpp_build.build_error('unicornn')}")
    return {"seconds": time.perf_counter() - start, "cached": cached}


def verdicts(seconds: dict[str, float], mem: dict[str, dict[str, float]]) -> dict[str, dict[str, float | bool]]:
    fused = seconds["unicornn fused"]
    vs_lstm = fused / seconds["nn.LSTM"]
    speedup = seconds["unicornn eager"] / fused
    growth = {name: values[max(values, key=int)] - values[min(values, key=int)] for name, values in mem.items()}
    share = growth["unicornn fused"] / growth["unicornn eager"]
    return {"fused / lstm time": {"value": vs_lstm, "target": SPEED_VS_LSTM, "met": vs_lstm <= SPEED_VS_LSTM},
            "eager / fused time": {"value": speedup, "target": SPEED_VS_EAGER, "met": speedup >= SPEED_VS_EAGER},
            "fused / eager memory growth": {"value": share, "target": MEMORY_SHARE, "met": share < MEMORY_SHARE}}


def markdown(result: dict[str, Any]) -> str:
    a, m = result["args"], result["machine"]
    steps = a["memory_steps"]
    lines = [HEADING, "", f"Measured {result['when']} with", "",
             "    " + command_line("fused_unicornn.py", result["argv"]), "",
             f"- Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']} (CPU capability {m['cpu_capability']}), "
             f"Python {m['python']}, {a['threads']} intra-op thread(s), load average {m['load_average']} at the end "
             f"(other work shares the cores); git {m['git_sha']}.",
             f"- Kernel: ready in {result['kernel_load']['seconds']:.2f} s in this process "
             f"({'loaded from the cache' if result['kernel_load']['cached'] else 'built: the cache was empty'}).",
             f"- Training step = forward + backward of the last step's features summed; batch {a['batch']}, "
             f"hidden {a['hidden']}, input size {a['input_size']}, T = {a['steps']}; median of {a['repeats']} "
             "after a warm-up round; the models take turns.", ""]
    if a.get("note"):
        lines += [f"Note: {a['note']}", ""]
    lines += ["| model | training step (s) |", "|---|---:|"]
    lines += [f"| {name} | {value:.4f} |" for name, value in result["seconds"].items()]
    lines += ["", f"Peak training memory (MiB; {CPU_METHOD}), one layer, batch {a['batch']}:", "",
              f"| model | T = {steps[0]} | T = {steps[1]} | growth |", "|---|---:|---:|---:|"]
    for name, values in result["memory_mb"].items():
        first, last = values[str(steps[0])], values[str(steps[1])]
        lines.append(f"| {name} | {first:.1f} | {last:.1f} | {last - first:.1f} |")
    lines += ["", "| target | value | required | met |", "|---|---:|---:|:---:|"]
    for name, v in result["targets"].items():
        sign = ">=" if name.startswith("eager") else ("<" if "memory" in name else "<=")
        lines.append(f"| {name} | {v['value']:.4f} | {sign} {v['target']} | {'met' if v['met'] else 'not met'} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    load = kernel_load()
    seconds = time_models(args)
    mem = memory(args)
    result = {"when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "argv": sys.argv[1:],
              "args": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(args).items()
                       if k not in ("json", "results_md")},
              "machine": machine(), "kernel_load": load, "seconds": seconds, "memory_mb": mem,
              "targets": verdicts(seconds, mem)}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    replace_section(args.results_md, HEADING, markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
