"""The state-space models and their scan against their speed targets, on the CPU or a GPU.

Three measurements, each a median of interleaved training steps (`median_wall_and_cpu`: wall-clock and CPU
seconds; gradients cleared, forward, the last step's features summed, backward):

* `models`: one layer of every SSM of the zoo (width H, its default state size) against `nn.LSTM(d, H)`
  at B = 64, H = 128, T = 1000, d = 2 (target on the CPU: every SSM faster than the LSTM); with Mamba, also
  a row of Mamba's matrix products alone (`mamba_products_step`: the lower bound its GEMMs set), and one for
  LRU, LinOSS and D-LinOSS (`modal_products_step`); and each step's matrix-product GFLOP (`product_gflop`)
  against this machine's best sgemm rate (`best_sgemm_rate`): the least time its products can take here;
* `scan`: the scan alone (forward and backward) at an LRU layer's shape (B = 16, T = 10,000, N = 256,
  complex) and a minGRU layer's (real, input-dependent a), by the sequential loop (`scan_reference`, one
  step per time step: what the model's recurrence costs as a time loop), the parallel torch scan and the
  C++ loop (target: the parallel path at least 5× faster than the sequential loop);
* `gpu` (`--device cuda`): LinOSS and LRU (one layer, H = 128, default state sizes, Triton scan) against
  cuDNN's `nn.LSTM` at B = 64, T = 10,000 (target: at least 10× faster).

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/ssm_scan.py models scan --json benchmarks/results/ssm_scan.json
    python3 benchmarks/ssm_scan.py gpu --device cuda --json OUT/ssm_gpu.json        (scripts/gpu_ssm_checks.sh)
    .venv/bin/python benchmarks/ssm_scan.py report benchmarks/results/ssm_scan.json [more.json ...]

Every path runs with denormals flushed to zero (`torch.set_flush_denormal`, as the C++ kernels do inside;
`--no-flush-denormal` for torch's default mode): see `run`.

`report` writes the "State-space models" section of benchmarks/RESULTS.md from the JSON files. Needs torch
(and Triton on the GPU) and this checkout on `PYTHONPATH`; nothing else of seqarena's dependencies.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.cpu_timing import ROOT, machine, median_seconds, replace_section, training_step
from seqarena import cells
from seqarena.cells.kernels import heap
from seqarena.cells.kernels import scan as scan_module

MODELS = ("linoss", "dlinoss", "lru", "s4d", "mamba", "mingru", "minlstm")
HEADING = "## State-space models and their scan"
LSTM = "lstm (nn.LSTM)"
INPUTS = 2  # d: the adding problem's input width, every model's and nn.LSTM's


def overrides_of(items: list[str]) -> dict[str, dict[str, str]]:
    """`["s4d.state_size=16", ...]` -> `{"s4d": {"state_size": "16"}}`."""
    result: dict[str, dict[str, str]] = {}
    for item in items:
        key, value = item.split("=", 1)
        model, name = key.split(".", 1)
        result.setdefault(model, {})[name] = value
    return result


def model_steps(
    names: list[str],
    batch: int,
    hidden: int,
    steps: int,
    device: str,
    overrides: dict[str, dict[str, str]] | None = None,
) -> dict[str, Callable[[], None]]:
    """A training step per model (one layer each, `overrides` on its defaults) and for `nn.LSTM` on one shared
    input `[B, T, 2]`. A model with overrides is labelled with them."""
    torch.manual_seed(0)
    u = torch.randn(batch, steps, INPUTS, device=device)
    built: dict[str, nn.Module] = {LSTM: nn.LSTM(INPUTS, hidden, batch_first=True)}
    for name in names:
        changes = (overrides or {}).get(name, {})
        label = name + "".join(f" {k}={v}" for k, v in changes.items())
        built[label] = cells.build(name, INPUTS, hidden, 1, seq_len=steps, **changes)
    result = {name: training_step(model.to(device).train(), u) for name, model in built.items()}
    for label, model in list(built.items()):
        if label.split()[0] == "mamba":
            result[label + ": its matrix products alone"] = mamba_products_step(model, u)
        if label.split()[0] in ("linoss", "dlinoss", "lru"):
            result[label + ": its matrix products alone"] = modal_products_step(model, u)
    return result


def modal_products_step(model: nn.Module, u: Tensor) -> Callable[[], None]:
    """`mamba_products_step` for one LRU / LinOSS / D-LinOSS block: its matrix products as the block computes them
    (`ssm.project_in`, one product by `[B_re; B_im]` into 2P columns, `ssm.read_out`, one addmm by
    `[C_re, −C_im]`, the GLU's two `Linear(H, H)`; the encoder's d = 2 product left out), forward and backward
    on fixed inputs and seeds, nothing else (no scan, norm, GELU, dropout, gate)."""
    from seqarena.cells.ssm import project_in, read_out

    block = model.blocks[0]
    width, states = model.hidden_size, model.state_size
    gen = torch.Generator(device=u.device).manual_seed(1)

    def leaf(*shape: int) -> Tensor:
        return torch.randn(*u.shape[:2], *shape, generator=gen, device=u.device).requires_grad_(True)

    x, h, z = leaf(width), leaf(2 * states), leaf(width)
    weights = [torch.randn(states, width, generator=gen, device=u.device).requires_grad_(True) for _ in range(2)]
    outs = [torch.randn(width, states, generator=gen, device=u.device).requires_grad_(True) for _ in range(2)]
    skip = torch.randn(width, device=u.device).requires_grad_(True)
    maps = (
        lambda: [project_in(x, *weights)],
        lambda: [read_out(h, *outs, skip, x)],
        lambda: [block.glu.w1(z), block.glu.w2(z)],
    )
    seeds = [torch.randn_like(out.detach()) for f in maps for out in f()]

    def step() -> None:
        block.zero_grad(set_to_none=True)
        for t in (x, h, z, *weights, *outs, skip):
            t.grad = None
        torch.autograd.backward([out for f in maps for out in f()], seeds)

    return step


def mamba_products_step(model: nn.Module, u: Tensor) -> Callable[[], None]:
    """A step of one-layer Mamba's matrix products and nothing else, a lower bound on its training step: each
    linear map of `model` as the model computes it (`mamba.narrow_linear` for the encoder and `dt_proj`,
    `mamba.in_proj_halves`, `x_proj`, `out_proj`; their own weights) on a fixed input of the shape it gets in
    the model, forward and backward (weight gradients, and the input gradients where the model needs them: all
    but the encoder's), each backward seeded with a fixed gradient of its output's shape: the model's GEMMs
    (and the two biases' sums), without the convolution, the scan, the norms, the gate and the splits between
    them. If this alone takes longer than nn.LSTM's whole step, the block cannot be faster than nn.LSTM on
    this machine whatever its scan costs."""
    from seqarena.cells.mamba import in_proj_halves, narrow_linear

    mixer = model.mixers[0]
    gen = torch.Generator(device=u.device).manual_seed(1)

    def leaf(width: int) -> Tensor:
        return torch.randn(*u.shape[:2], width, generator=gen, device=u.device).requires_grad_(True)

    inputs = [leaf(mixer.in_proj.in_features), leaf(mixer.inner), leaf(mixer.rank), leaf(mixer.inner)]
    maps = (
        lambda: [narrow_linear(model.encoder, u)],
        lambda: list(in_proj_halves(inputs[0], mixer.in_proj.weight)),
        lambda: [mixer.x_proj(inputs[1])],
        lambda: [narrow_linear(mixer.dt_proj, inputs[2])],
        lambda: [mixer.out_proj(inputs[3])],
    )
    seeds = [torch.randn_like(out.detach()) for f in maps for out in f()]

    def step() -> None:
        model.zero_grad(set_to_none=True)
        for x in inputs:
            x.grad = None
        torch.autograd.backward([out for f in maps for out in f()], seeds)

    return step


def lstm_gflop(batch: int, steps: int, inputs: int, hidden: int) -> float:
    """nn.LSTM's matrix-product GFLOP in a training step: the four gates' input and recurrent products,
    2·B·T·4H·(d + H) forward, twice that backward (input and weight gradients): 3× the forward."""
    return 3 * 2 * batch * steps * 4 * hidden * (inputs + hidden) / 1e9


def product_gflop(steps: dict[str, Callable[[], None]], batch: int, length: int, hidden: int) -> dict[str, float]:
    """GFLOP of matrix products (mm, addmm, bmm, convolutions: what `torch.utils.flop_counter.FlopCounterMode`
    counts) in one call of each step, forward and backward; nn.LSTM's fused kernel is not counted there, so
    its row is `lstm_gflop`. The scans, FFTs, norms and gates add time but no counted FLOP."""
    from torch.utils.flop_counter import FlopCounterMode

    counted = {}
    for name, step in steps.items():
        if name == LSTM:
            counted[name] = lstm_gflop(batch, length, INPUTS, hidden)
            continue
        with FlopCounterMode(display=False) as counter:
            step()
        counted[name] = counter.get_total_flops() / 1e9
    return counted


def best_sgemm_rate(size: int = 2048, repeats: int = 5) -> float:
    """This machine's best float32 matrix-product rate in GFLOP/s (a size³ product, the fastest of `repeats`
    after one warm-up), on the threads torch uses: a ceiling for any model's products."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    fastest = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        fastest = min(fastest, time.perf_counter() - start)
    return 2 * size**3 / fastest / 1e9


def median_wall_and_cpu(
    steps: dict[str, Callable[[], None]], repeats: int
) -> tuple[dict[str, float], dict[str, float]]:
    """`cpu_timing.median_seconds` that also records each step's CPU seconds (`time.process_time`: every thread
    of this process, user and system). On the shared 2-core machine the wall time also counts the time the
    step waited for a core; the CPU time does not, so the two ratios bracket what an idle machine would show
    (a single-threaded step such as the Python loop gains nothing from the second core, the C++ kernels do)."""
    walls: dict[str, list[float]] = {name: [] for name in steps}
    cpus: dict[str, list[float]] = {name: [] for name in steps}
    for repeat in range(repeats + 1):
        for name, step in steps.items():
            start, cpu = time.perf_counter(), time.process_time()
            step()
            if repeat > 0:
                walls[name].append(time.perf_counter() - start)
                cpus[name].append(time.process_time() - cpu)
    return ({n: statistics.median(v) for n, v in walls.items()}, {n: statistics.median(v) for n, v in cpus.items()})


def gpu_median(steps: dict[str, Callable[[], None]], repeats: int) -> dict[str, float]:
    """`median_seconds` with the GPU synchronised around each step."""

    def synced(step: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            step()
            torch.cuda.synchronize()

        return run

    return median_seconds({name: synced(step) for name, step in steps.items()}, repeats)


def scan_case(method: str, a: Tensor, b: Tensor) -> Callable[[], None]:
    """Forward and backward of the scan by `method` ("loop": `scan_reference` under autograd)."""

    def step() -> None:
        a_leaf, b_leaf = a.detach().requires_grad_(True), b.detach().requires_grad_(True)
        h = (
            scan_module.scan_reference(a_leaf, b_leaf)
            if method == "loop"
            else scan_module.scan(a_leaf, b_leaf, method=method)
        )  # type: ignore[arg-type]
        (h.real if h.is_complex() else h)[:, -1].sum().backward()

    return step


def scan_shapes(batch: int, steps: int) -> dict[str, tuple[Tensor, Tensor]]:
    """(a, b) at an LRU layer's shape (constant complex a, N = 256) and a minGRU layer's (input-dependent real a)."""
    gen = torch.Generator().manual_seed(0)
    lam = torch.polar(0.9 + 0.099 * torch.rand(256, generator=gen), torch.rand(256, generator=gen))
    b = torch.randn(batch, steps, 256, generator=gen, dtype=torch.complex64)
    gates = torch.rand(batch, steps, 128, generator=gen)
    return {"lru (complex, N=256)": (lam, b), "mingru (real, H=128)": (gates, torch.randn(batch, steps, 128))}


def measure_scan(args: argparse.Namespace) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    result: dict[str, dict[str, float]] = {}
    cpu: dict[str, dict[str, float]] = {}
    for label, (a, b) in scan_shapes(args.scan_batch, args.scan_steps).items():
        cases = {method: scan_case(method, a, b) for method in ("loop", *args.scan_methods)}
        result[label], cpu[label] = median_wall_and_cpu(cases, args.scan_repeats)
        print(
            label,
            {k: round(v, 3) for k, v in result[label].items()},
            "CPU",
            {k: round(v, 3) for k, v in cpu[label].items()},
            flush=True,
        )
    return result, cpu


def facts() -> dict[str, Any]:
    """`cpu_timing.machine()`, or the little that is known without git (a GPU machine's bare copy)."""
    try:
        return machine()
    except OSError:
        import os
        import platform

        return {
            "cpu": platform.processor(),
            "cores": os.cpu_count(),
            "torch": torch.__version__,
            "device": "cpu",
            "git_sha": "unknown (no git)",
            "load_average": [round(v, 1) for v in os.getloadavg()],
        }


def run(args: argparse.Namespace) -> None:
    # The C++ scan kernels flush denormals while they run (scan/cpu.cpp `FlushDenormals`); torch's own ops
    # (nn.LSTM, the Python loop, the projections) do not unless asked. A loss on the last step only sends
    # gradients that decay into float32 denormals through every recurrence's backward, and each costs the
    # CPU ~100 cycles: the sequential loop's LRU step took 3.9-4.8 s of CPU without and 1.5-1.6 s with
    # flushing. So that every path runs in the same floating-point mode, the whole process flushes
    # (`--no-flush-denormal` measures torch's default mode instead).
    torch.set_flush_denormal(args.flush_denormal)
    heap.keep_freed_blocks()  # as a training process does (Trainer.run, kernels/heap.py)
    result: dict[str, Any] = {
        "machine": facts(),
        "args": {k: v for k, v in vars(args).items() if k != "json"},
        "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    if "models" in args.what:
        steps = model_steps(args.models, args.batch, args.hidden, args.steps, "cpu", overrides_of(args.hp))
        result["models"], result["models_cpu"] = median_wall_and_cpu(steps, args.repeats)
        result["gflop"] = product_gflop(steps, args.batch, args.steps, args.hidden)
        result["sgemm_gflops"] = best_sgemm_rate()
        print(
            "models",
            {k: round(v, 3) for k, v in result["models"].items()},
            "CPU",
            {k: round(v, 3) for k, v in result["models_cpu"].items()},
            flush=True,
        )
    if "scan" in args.what:
        result["scan"], result["scan_cpu"] = measure_scan(args)
    if "gpu" in args.what:
        result["machine"]["device"] = torch.cuda.get_device_name()
        steps = model_steps(["linoss", "lru"], args.batch, args.hidden, args.gpu_steps, "cuda")
        result["gpu"] = gpu_median(steps, args.repeats)
        print("gpu", {k: round(v, 4) for k, v in result["gpu"].items()}, flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))


def ratio_rows(
    times: dict[str, float], baseline: str, target: float, better: str, cpu: dict[str, float] | None = None
) -> list[str]:
    """Table rows of each entry against `baseline` (wall-clock; with `cpu`, also the CPU seconds and their ratio)."""
    rows = []
    for name, seconds in times.items():
        if name == baseline:
            continue
        speedup = times[baseline] / seconds
        cells = f"| {name} | {seconds:.3f} | {speedup:.2f}× | {'pass' if speedup >= target else 'FAIL'} |"
        if cpu:
            cells += f" {cpu[name]:.3f} | {cpu[baseline] / cpu[name]:.2f}× |"
        rows.append(cells)
    head = f"| model | s / step | {better} | target ≥ {target:g}× |"
    rule = "|---|---:|---:|:---:|"
    if cpu:
        head += f" CPU s / step | CPU ratio ({cpu[baseline]:.3f} s) |"
        rule += "---:|---:|"
    return [head, rule, *rows]


def product_rows(result: dict[str, Any]) -> list[str]:
    """Each step's matrix-product GFLOP and the least time they take at this machine's best sgemm rate,
    against nn.LSTM's measured step (`product_gflop`, `best_sgemm_rate`); nothing for runs from before."""
    if "gflop" not in result:
        return []
    rate, lstm = result["sgemm_gflops"], result["models"][LSTM]
    rows = [
        f"Matrix products per training step (forward and backward; `torch.utils.flop_counter`, nn.LSTM's by "
        f"its formula) and the least time they can take at this machine's best float32 sgemm rate, "
        f"{rate:.0f} GFLOP/s (a 2048³ product on the same threads): a model whose products alone take longer "
        f"than nn.LSTM's whole step ({lstm:.3f} s) cannot be faster than it here, whatever its scan costs.",
        "",
        "| step | GFLOP | at the best rate, s | measured, s | measured GFLOP/s | "
        "products at the best rate < nn.LSTM's step |",
        "|---|---:|---:|---:|---:|:---:|",
    ]
    for name, gflop in result["gflop"].items():
        if name != LSTM and "alone" in name:
            continue
        least, seconds = gflop / rate, result["models"][name]
        verdict = "—" if name == LSTM else "yes" if least < lstm else "**no**"
        rows.append(f"| {name} | {gflop:.1f} | {least:.3f} | {seconds:.3f} | {gflop / seconds:.0f} | {verdict} |")
    return [*rows, ""]


def flush_mode(args: dict[str, Any]) -> str:
    """The floating-point mode of a run, as a sentence (empty for runs from before `--flush-denormal`)."""
    if "flush_denormal" not in args:
        return ""
    if args["flush_denormal"]:
        return " Denormals flushed to zero in every path (`--flush-denormal`)."
    return " torch's default floating-point mode (denormals kept, except inside the C++ kernels)."


def markdown(results: list[dict[str, Any]], paths: list[str], note: str = "") -> str:
    lines = [
        HEADING,
        "",
        "Written by `benchmarks/ssm_scan.py report` from "
        + ", ".join(f"`{p}`" for p in paths)
        + " (raw JSON); the docstring of the script says what each part times.",
        "",
    ]
    for result in results:
        m, a = result["machine"], result["args"]
        lines += [
            f"Measured {result['measured_at']} on {m.get('device', 'cpu')} ({m['cpu']}, {m['cores']} cores, "
            f"load average {m['load_average']}), torch {m['torch']}, git {m['git_sha']}.{flush_mode(a)}",
            "",
        ]
        if "models" in result:
            lines += [
                f"Training step, one layer, B = {a['batch']}, H = {a['hidden']}, T = {a['steps']} (CPU): "
                "speed-up over nn.LSTM.",
                "",
                *ratio_rows(
                    result["models"], LSTM, 1.0, "LSTM time / model time", result.get("models_cpu")
                ),
                "",
                *product_rows(result),
            ]
        for label, times in result.get("scan", {}).items():
            lines += [
                f"Scan forward + backward, {label}, B = {a['scan_batch']}, T = {a['scan_steps']} (CPU): "
                "speed-up over the sequential loop.",
                "",
                *ratio_rows(times, "loop", 5.0, "loop time / this time", result.get("scan_cpu", {}).get(label)),
                "",
            ]
        if "gpu" in result:
            lines += [
                f"Training step, one layer, B = {a['batch']}, H = {a['hidden']}, T = {a['gpu_steps']} on "
                f"{m['device']}: speed-up over cuDNN's LSTM.",
                "",
                *ratio_rows(result["gpu"], LSTM, 10.0, "LSTM time / model time"),
                "",
            ]
    return "\n".join([*lines, note] if note else lines)


def report(args: argparse.Namespace) -> None:
    results = [json.loads(Path(p).read_text()) for p in args.files]
    section = markdown(
        results,
        [
            str(Path(p).resolve().relative_to(ROOT)) if Path(p).resolve().is_relative_to(ROOT) else str(p)
            for p in args.files
        ],
        args.note,
    )
    replace_section(ROOT / "benchmarks" / "RESULTS.md", HEADING, section + "\n")
    print(section)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", nargs="+", choices=("models", "scan", "gpu", "report"))
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "ssm_scan.json")
    parser.add_argument("--files", nargs="*", default=[], help="report: the JSON files to write up")
    parser.add_argument("--note", default="", help="report: a paragraph printed under the tables")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--hp", nargs="*", default=[], help="MODEL.NAME=VALUE overrides of a model's defaults")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--gpu-steps", type=int, default=10000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scan-batch", type=int, default=16)
    parser.add_argument("--scan-steps", type=int, default=10000)
    parser.add_argument("--scan-repeats", type=int, default=2)
    parser.add_argument(
        "--flush-denormal",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="torch.set_flush_denormal for every measured path (default: on; see `run`)",
    )
    parser.add_argument(
        "--scan-methods",
        nargs="+",
        default=["parallel", "cpp"],
        choices=["parallel", "cpp"],
        help="scan: the sources timed against the sequential loop",
    )
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.what == ["report"]:
        report(arguments)
    else:
        run(arguments)
