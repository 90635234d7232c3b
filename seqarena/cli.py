"""The `seqarena` command line: a thin layer over the Python API.

Exit codes: 0 success, 1 a failure outside the user's input, 2 bad input (one line on stderr
naming the field, the value and what is allowed; `--debug` shows the traceback).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from seqarena.errors import BadInput
from seqarena.platform.redaction import redact, redact_logs
from seqarena.platform.statistics import LEVEL, RESAMPLES
from seqarena.workers import EvalReport, Observer

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Compare sequence models on long-range-memory benchmarks.")
stderr = Console(stderr=True)
stdout = Console()
_debug = {"on": False}


@app.callback()
def _global(
    debug: Annotated[bool, typer.Option("--debug", help="show tracebacks")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="log progress details")] = False,
) -> None:
    _debug["on"] = debug
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s",
                        handlers=[RichHandler(console=stderr, show_path=False)])
    redact_logs()


def parse_assignments(field: str, items: list[str]) -> dict[str, str]:
    """`["dt=0.1", "gamma=2"]` -> `{"dt": "0.1", "gamma": "2"}`; `BadInput` on a malformed item."""
    parsed: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise BadInput(field, item, "NAME=VALUE")
        parsed[name.strip()] = value.strip()
    return parsed


def collect_hparams(explicit: dict[str, Any], hp: list[str]) -> dict[str, Any]:
    """Merge the dedicated flags (`--hidden`, `--lr`, ...) with `--hp NAME=VALUE` pairs."""
    given = {name: value for name, value in explicit.items() if value is not None}
    extra = parse_assignments("hp", hp)
    clash = sorted(set(given) & set(extra))
    if clash:
        raise BadInput("hp", clash[0], "each hyperparameter given once (flag or --hp, not both)")
    return {**given, **extra}


@app.command()
def train(
    model: Annotated[str, typer.Option(help="model name (see `seqarena models`)")],
    task: Annotated[str, typer.Option(help="task name: adding, copy, smnist, psmnist, char, ecg, imdb, har2, ncifar")],
    seq_len: Annotated[int, typer.Option(help="sequence length T (copy: blank length)")],
    hidden: Annotated[int | None, typer.Option(help="hidden size (default: the authors')")] = None,
    layers: Annotated[int | None, typer.Option(help="number of layers (default: the authors')")] = None,
    lr: Annotated[float | None, typer.Option(help="learning rate (default: the authors')")] = None,
    batch_size: Annotated[int | None, typer.Option(help="batch size (default: the authors')")] = None,
    steps: Annotated[int, typer.Option(help="training steps")] = 1000,
    eval_every: Annotated[int, typer.Option(help="steps between validation evaluations")] = 100,
    eval_batch_size: Annotated[int, typer.Option(help="sequences per evaluation batch")] = 1000,
    seed: Annotated[int, typer.Option(help="seed of initialisation, dropout and training data")] = 0,
    device: Annotated[str, typer.Option(help="cpu, cuda or cuda:N")] = "cpu",
    hp: Annotated[list[str] | None, typer.Option(help="hyperparameter NAME=VALUE (repeatable)")] = None,
    option: Annotated[list[str] | None, typer.Option(help="task option NAME=VALUE (repeatable)")] = None,
    protocol: Annotated[str | None, typer.Option(
        help="the task's data protocol (a paper's: see docs/reference/protocols.md), or 'authors' for the "
             "model's own; --option values apply over it (default: the task's default protocol)")] = None,
    checkpoint_dir: Annotated[Path | None, typer.Option(help="checkpoint here; resume if present")] = None,
    eval_length: Annotated[list[int] | None, typer.Option(
        help="another length T′ to test the trained model at (repeatable; adding, copy, char)")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="last stdout line: the result as JSON")] = False,
) -> None:
    """Train one trial in this process (no Ray) and print its final metrics."""
    from seqarena.workers import make_config, prepare
    from seqarena.workers.trial import Trainer

    hparams = collect_hparams({"hidden_size": hidden, "num_layers": layers, "lr": lr,
                               "batch_size": batch_size}, hp or [])
    config = make_config(model=model, task=task, seq_len=seq_len, hparams=hparams,
                         task_options=parse_assignments("option", option or []), protocol=protocol, steps=steps,
                         eval_every=eval_every, eval_batch_size=eval_batch_size, seed=seed, device=device,
                         checkpoint_dir=checkpoint_dir, eval_lengths=tuple(eval_length or ()))
    setup = prepare(config)
    with trial_progress(config.steps) as observer:
        result = Trainer(setup, observer).run()
    if json_output:
        print(result.to_json())
    else:
        _print_result(result)


@contextmanager
def trial_progress(total: int) -> Iterator[Observer]:
    """A live progress bar on stderr (step, loss, last validation metrics) fed by an `Observer`, on a terminal;
    elsewhere (a log, a pipe), where a live bar cannot redraw (and stopping it wrote a stray empty line before a
    refusal's one line), one line per validation: `step 100/1500: loss 0.1734 val_mse 0.1781`."""
    columns = (TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("{task.fields[status]}"))
    with Progress(*columns, console=stderr, transient=True, disable=not stderr.is_terminal) as progress:
        bar = progress.add_task("train", total=total, status="")
        last_eval = {"text": ""}

        def on_step(step: int, loss: float) -> None:
            progress.update(bar, completed=step, status=f"loss {loss:.4g} {last_eval['text']}")

        def on_eval(report: EvalReport) -> None:
            shown = {k: v for k, v in report.metrics.items() if k.startswith("val_")}
            last_eval["text"] = " ".join(f"{k} {v:.4g}" for k, v in shown.items())
            if not stderr.is_terminal:
                loss = report.metrics.get("train_loss")
                said = f"loss {loss:.4g} " if loss is not None else ""
                stderr.print(f"step {report.step}/{total}: {said}{last_eval['text']}", highlight=False, soft_wrap=True)

        yield Observer(on_step=on_step, on_eval=on_eval)


def _print_result(result: Any) -> None:
    table = Table(title=f"{result.model} on {result.task} (T={result.seq_len})", show_header=False)
    direction = "higher" if result.higher_is_better else "lower"
    rows = [
        ("status", result.status),
        (f"test {result.metric_name} ({direction} is better)", _fmt(result.metric)),
        ("baseline", _fmt(result.baseline)),
        *((f"test {k}", _fmt(v)) for k, v in result.test_metrics.items() if k != result.metric_name),
        *((f"test {result.metric_name} at T′ = {p.seq_len}", _fmt(p.metric) if p.status == "completed"
           else f"{p.status}{f' ({p.note})' if p.note else ''}") for p in result.lengths),
        ("best validation step", str(result.best_step)),
        ("parameters", f"{result.params:,}"),
        ("train sequences/s", f"{result.train_seq_per_s:,.1f}"),
        ("inference sequences/s", f"{result.infer_seq_per_s:,.1f}"),
        ("peak memory of a training step (MiB)", _fmt(result.peak_mem_mb)),
        ("wall time (s)", f"{result.wall_s:.1f}"),
        ("steps", str(result.steps)),
        ("hyperparameters", ", ".join(f"{k}={v}" for k, v in result.hparams.items())),
    ]
    for name, value in rows:
        table.add_row(name, value)
    Console().print(table)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.5g}"


@app.command()
def models(json_output: Annotated[bool, typer.Option("--json")] = False,
           model: Annotated[str | None, typer.Option(
               "--model", help="only this model (seqarena.cells.names())")] = None) -> None:
    """List the models and their declared hyperparameters: the authors' defaults, per task where they
    differ (their training protocol included: readout init, weight decay, lr schedule), and search ranges."""
    from seqarena import cells

    names = [cells.model_class(model).name] if model else cells.names()
    spaces = {name: [hp.summary() for hp in cells.space(name)] for name in names}
    if json_output:
        print(json.dumps(spaces))
        return
    for name, hps in spaces.items():
        table = Table(title=f"{name}: {cells.model_class(name).citation}")
        for column in ("name", "role", "default", "per task", "search", "valid"):
            table.add_column(column)
        for row in hps:
            table.add_row(row["name"], row["role"], str(row["default"]), row["per_task"], row["search"], row["valid"])
        Console().print(table)


@app.command()
def validate(spec: Annotated[str, typer.Argument(help="a spec YAML file")],
             json_output: Annotated[bool, typer.Option("--json")] = False,
             check_data: Annotated[bool, typer.Option(
                 "--check-data", help="also look for the task's data files here (nothing is read or downloaded); "
                                      "exit 1 when one is missing")] = False) -> None:
    """Check a search spec; print its arms, what each searches and the number of trials."""
    from seqarena import tasks
    from seqarena.platform.capacity import capacity, visible_cluster
    from seqarena.platform.spec import describe, load_spec

    loaded = load_spec(spec)
    rows = describe(loaded)
    data = tasks.check_data(loaded.task, **loaded.task_options) if check_data else None
    fits = capacity(loaded, visible_cluster())
    if json_output:
        summary = {"name": loaded.name, "trial_count": loaded.trial_count(), "arms": rows,
                   "trials_at_once": fits.at_once, "capacity": fits.line()}
        if data is not None:
            summary["data"] = {"ok": data.ok, "missing": [str(path) for path in data.missing], "line": data.line()}
        print(json.dumps(summary, default=str))
    else:
        _print_arms(loaded.name, loaded.trial_count(), rows)
        (stderr if fits.warning else stdout).print(fits.line(), soft_wrap=True)
    if data is not None and not json_output:
        (stdout if data.ok else stderr).print(data.line(), soft_wrap=True)
    if data is not None and not data.ok:
        raise typer.Exit(1)


def _print_arms(name: str, trial_count: int, rows: list[dict[str, Any]]) -> None:
    table = Table(title=f"{name}: {len(rows)} arms, {trial_count} trials")
    for column in rows[0]:
        table.add_column(column)
    for row in rows:
        table.add_row(*(_cell(value) for value in row.values()))
    Console().print(table)


def _cell(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items()) or "-"
    return str(value)


@app.command()
def run(
    spec: Annotated[str | None, typer.Argument(help="a spec YAML file")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="continue the latest search of SPEC")] = False,
    search: Annotated[str | None, typer.Option(help="with --resume: the search id or name")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="print the final leaderboard as JSON")] = False,
) -> None:
    """Run a search on Ray Tune (local Ray, or the cluster at RAY_ADDRESS), with live progress."""
    from seqarena.platform.spec import load_spec

    loaded = None if spec is None else load_spec(spec)  # validated before Ray, MLflow or the database
    from seqarena.platform.capacity import check_placeable, visible_cluster
    from seqarena.platform.search import resume_search, run_search

    if loaded is not None and not resume:  # a trial no node can hold would wait for ever
        check_placeable(loaded.resources, visible_cluster())

    if resume:
        if spec is None and search is None:
            raise BadInput("resume", None, "a spec file or --search ID naming the search to continue")
        outcome = resume_search(search or loaded.name)  # type: ignore[union-attr]
    elif loaded is None:
        raise BadInput("spec", None, "a spec YAML file (see examples/)")
    else:
        outcome = run_search(loaded)
    _print_outcome(outcome, json_output)


@app.command()
def extend(
    search: Annotated[str, typer.Argument(help="the search to extend (id or name)")],
    spec: Annotated[str, typer.Option("--spec", help="a spec YAML: more trials, other lengths or models, with the "
                                      "search's task, protocol, task options and budgets")],
    json_output: Annotated[bool, typer.Option("--json", help="print the final leaderboard as JSON")] = False,
) -> None:
    """Extend a finished search: run only the trials SPEC adds, each arm's study warm-started from the
    trials it recorded."""
    from seqarena.platform.spec import load_spec

    loaded = load_spec(spec)
    from seqarena.platform.campaigns import extend_search

    _print_outcome(extend_search(search, loaded), json_output)


@app.command()
def retry(
    search: Annotated[str, typer.Argument(help="the search (id or name)")],
    json_output: Annotated[bool, typer.Option("--json", help="print the final leaderboard as JSON")] = False,
) -> None:
    """Rerun the failed and out-of-memory trials of a finished search, each recorded once in its place."""
    from seqarena.platform.campaigns import retry_search

    _print_outcome(retry_search(search), json_output)


def _print_outcome(outcome: Any, json_output: bool) -> None:
    from seqarena.platform.leaderboard import to_json
    from seqarena.platform.tracking import ui_hint

    if json_output:
        print(json.dumps({"search_id": outcome.search_id, "mlflow_parent_run_id": outcome.parent_run_id,
                          "leaderboard": to_json(outcome.leaderboard), "skipped": outcome.skipped}, default=str))
        return
    _print_board(outcome.leaderboard)
    for key, why in outcome.skipped.items():
        stderr.print(f"skipped {key}: {why}")
    stderr.print(f"search {outcome.search_id}; MLflow parent run {outcome.parent_run_id}; "
                 f"browse it with: {redact(ui_hint(outcome.tracking_uri))}")


def _print_board(rows: list[Any], solved_fraction: float = 0.0) -> None:
    from seqarena.platform.leaderboard import table

    frame = table(rows)
    board = Table(title="leaderboard (test metric at the best validation step; mean ± std over the winner's seeds)")
    board.add_column("model")
    for column in frame.columns:
        board.add_column(str(column))
    for model, values in frame.iterrows():
        board.add_row(str(model), *(str(v) for v in values))
    Console().print(board)
    _print_arms_best(rows)
    _print_reach(rows, solved_fraction)


def _print_arms_best(rows: list[Any]) -> None:
    from seqarena.platform.statistics import interval_text

    best = Table(title="best configuration per arm (solved: seeds of it that solved the task, median and range of "
                 "the steps to solve; re-run: the winner's place in the search among the configurations re-run; "
                 "beats: mean better than the trivial baseline by over 10 %)")
    for column in ("task", "T", "model", "protocol", "metric", "mean [95 % CI] n", "baseline", "solved", "re-run",
                   "beats", "params", "trials"):
        best.add_column(column)
    best.add_column("MLflow run", no_wrap=True)
    for row in rows:
        solved = row.solve.cell() if row.solve else (row.failure or "-")
        rerun = f"#{row.search_place} of {row.rerun_configs}" if row.rerun_configs else "-"
        best.add_row(row.task, str(row.seq_len), row.model, row.protocol or "-", _fmt(row.metric),
                     interval_text(row.interval, compact=True), _fmt(row.baseline), solved, rerun,
                     "yes" if row.beats_baseline else "no", str(row.params), str(row.trials), str(row.mlflow_run_id))
    Console(width=max(Console().width, 200)).print(best)


def _print_reach(rows: list[Any], solved_fraction: float) -> None:
    from seqarena.platform.solving import reach

    enough = "a seed" if solved_fraction == 0 else f"{solved_fraction:.0%} of its seeds (and one)"
    far = Table(title=f"how far in T (max T solved: longest T where {enough} solved; AUC: area under metric vs "
                "log10 T over its span, a failed T at the baseline)")
    for column in ("task", "model", "T", "max T solved", "AUC", "marked"):
        far.add_column(column)
    for line in reach(rows, solved_fraction):
        far.add_row(line.task, line.model, ", ".join(str(t) for t in line.seq_lens),
                    "-" if line.max_t_solved is None else str(line.max_t_solved), _fmt(line.auc),
                    "; ".join(line.marked) or "-")
    Console(width=max(Console().width, 132)).print(far)


@app.command()
def demo(json_output: Annotated[bool, typer.Option("--json", help="print the leaderboard as JSON")] = False) -> None:
    """Run the demo search (adding problem, two lengths, six models) on the embedded defaults, then record a
    small profile of its models (steady-state memory and throughput at several T, a few seconds each)."""
    from seqarena.platform import database, profiles
    from seqarena.platform.search import DEMO_SPEC, run_search
    from seqarena.platform.spec import load_spec

    spec = load_spec(DEMO_SPEC)
    outcome = run_search(spec)
    sizes = profiles.DemoProfile()
    with profile_progress(len(spec.models) * len(sizes.seq_lens)) as on_case:
        run_id = profiles.profile_demo(database.get_engine(), spec.models, sizes, on_case)
    stderr.print(f"recorded the demo's profile run {run_id} (the dashboard's Memory & throughput page)")
    _print_outcome(outcome, json_output)
    if not json_output:
        stderr.print("see the leaderboard again with: seqarena leaderboard --search demo")


@app.command(name="leaderboard")
def leaderboard_command(
    task: Annotated[str | None, typer.Option(help="only this task")] = None,
    seq_len: Annotated[int | None, typer.Option(help="only this sequence length")] = None,
    search: Annotated[str | None, typer.Option(help="only this search (id or name)")] = None,
    solved_fraction: Annotated[float | None, typer.Option(
        help="share of an arm's seeds that must solve for 'max T solved' (default: the search's spec, else 0: "
             "one seed)")] = None,
    json_output: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The best configuration per arm (solved k of n seeds, steps to solve), a models × sequence-lengths
    table of the metric, and how far in T each model reaches."""
    from seqarena.platform import database, searches
    from seqarena.platform.leaderboard import leaderboard, to_json
    from seqarena.platform.solving import spec_fraction

    engine = database.get_engine()
    found = searches.find_search(engine, search) if search else None
    search_id = found.id if found else None
    fraction = solved_fraction if solved_fraction is not None else spec_fraction(found.spec_yaml if found else None)
    rows = leaderboard(engine, task=task, seq_len=seq_len, search_id=search_id)
    if json_output:
        print(json.dumps(to_json(rows, fraction), default=str))
    elif rows:
        _print_board(rows, fraction)
    else:
        stderr.print("no finished trials match")
    for key, why in (searches.skipped_arms(engine, search_id) if search_id and not json_output else {}).items():
        stderr.print(f"skipped {key}: {why}")


@app.command(name="compare")
def compare_command(
    task: Annotated[str, typer.Option(help="the task, e.g. adding")],
    models: Annotated[str, typer.Option(help="two models separated by a comma, e.g. cornn,lstm")],
    seq_len: Annotated[int | None, typer.Option(help="only this sequence length")] = None,
    search: Annotated[str | None, typer.Option(help="only this search (id or name)")] = None,
    level: Annotated[float, typer.Option(help="confidence level of the intervals")] = LEVEL,
    resamples: Annotated[int, typer.Option(help="bootstrap resamples")] = RESAMPLES,
    json_output: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Two models per T over the seeds of their best configurations: means with bootstrap intervals, and
    the paired difference over the seeds both ran with its interval and sign-flip p-value."""
    from seqarena.platform import comparison, database, searches

    engine = database.get_engine()
    search_id = searches.find_search(engine, search).id if search else None
    settings = comparison.Settings(resamples=resamples, level=level)
    rows = comparison.compare(engine, task, models, seq_len=seq_len, search_id=search_id, settings=settings)
    if json_output:
        print(json.dumps(comparison.to_json(rows), default=str))
    else:
        _print_comparison(rows, settings)


def _print_comparison(rows: list[Any], settings: Any) -> None:
    from seqarena.platform.comparison import summary_frame, title

    if not rows:
        stderr.print("no arm of these models at this task")
        return
    _print_frame(summary_frame(rows), title(rows, settings))


@app.command(name="lengths")
def lengths_command(
    task: Annotated[str, typer.Option(help="the task, e.g. adding")],
    search: Annotated[str | None, typer.Option(help="only this search (id or name)")] = None,
    models: Annotated[str | None, typer.Option(help="only these models, separated by commas")] = None,
    json_output: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Length generalisation: each model's best configuration, trained at T, tested at the other lengths T′ of
    its spec's length_generalisation (mean over its seeds with n; * the trained T; oom / failed points marked)."""
    from seqarena import tasks
    from seqarena.platform import database, lengths, searches

    tasks.task_class(task)
    engine = database.get_engine()
    search_id = searches.find_search(engine, search).id if search else None
    chosen = [name.strip() for name in models.split(",")] if models else None
    points = lengths.length_points(engine, task, search_id=search_id, models=chosen)
    if json_output:
        print(json.dumps([point.to_json() for point in points]))
    elif not points:
        stderr.print(f"no trial of task {task} was tested at other lengths (spec field length_generalisation)")
    else:
        _print_frame(lengths.lengths_frame(points), f"{task}: {points[0].metric_name} at other lengths T′ "
                     "(mean over the seeds of each arm's best configuration; * trained T)")


def _print_frame(frame: Any, title: str) -> None:
    board = Table(title=title)
    for column in frame.columns:
        board.add_column(str(column))
    for values in frame.itertuples(index=False):
        board.add_row(*(str(value) for value in values))
    Console(width=max(Console().width, 132)).print(board)


@app.command(name="report")
def report_command(
    task: Annotated[str, typer.Option(help="the task, e.g. adding")],
    out: Annotated[Path, typer.Option(help="folder for report.html, report.md and report.json")],
    search: Annotated[str | None, typer.Option(
        help="only this search (id or name); default: each arm's latest")] = None,
) -> None:
    """A leaderboard you can publish, from the database alone: a self-contained HTML page (plots inline) with its
    Markdown and JSON twins (leaderboard with intervals and solve statistics, max T solved, cost, data protocol,
    spec hashes, and the device, git commit and versions of every number)."""
    from seqarena.platform import database
    from seqarena.report import write_report

    written = write_report(database.get_engine(), task, search, out)
    stderr.print(f"wrote {written.html}, {written.markdown} and {written.json} ({written.arms} arms)")


@app.command(name="importance")
def importance_command(
    task: Annotated[str, typer.Option(help="the task, e.g. adding")],
    seq_len: Annotated[int, typer.Option(help="the sequence length of the arm")],
    model: Annotated[str, typer.Option(help="the model of the arm")],
    search: Annotated[str | None, typer.Option(help="this search's arm (id or name)")] = None,
    json_output: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Hyperparameter importance of one arm (Optuna's fANOVA over its ranked search trials and their test metric)."""
    from dataclasses import asdict

    from seqarena.platform import database, searches
    from seqarena.platform.importance import arm_importance, find_arm

    engine = database.get_engine()
    search_id = searches.find_search(engine, search).id if search else None
    found = arm_importance(engine, *find_arm(engine, task, seq_len, model, search_id))
    if json_output:
        print(json.dumps(asdict(found)))
        return
    stdout.print(f"{found.key}: hyperparameter importance for test {found.metric_name} (fANOVA, share of variance) "
                 f"over {found.n_trials} search trials; distributions from {found.distributions}")
    board = Table()
    board.add_column("hyperparameter")
    board.add_column("importance", justify="right")
    for param in found.params:
        board.add_row(param.name, f"{param.importance:.3f}")
    stdout.print(board)


@app.command(name="profile")
def profile_command(
    models: Annotated[str, typer.Option(help="comma-separated model names, or 'all'")],
    seq_lens: Annotated[str, typer.Option(help="comma-separated sequence lengths, e.g. 100,1000,10000")],
    batch_size: Annotated[int, typer.Option(help="sequences per step")] = 64,
    hidden: Annotated[int, typer.Option(help="hidden size of every model")] = 128,
    device: Annotated[str, typer.Option(help="cpu, cuda or cuda:N")] = "cpu",
    repeats: Annotated[int, typer.Option(help="timed runs of each step (the median is reported)")] = 5,
    warmup: Annotated[int, typer.Option(help="untimed runs of each step before the timed ones")] = 2,
    max_mem_gb: Annotated[float | None, typer.Option(
        help="skip a (model, T) whose peak memory, extrapolated from smaller T, would exceed this (GiB)")] = None,
    out: Annotated[Path | None, typer.Option(help="folder for profile.json and profile.csv "
                                                  "(default ./profile-<UTC time>)")] = None,
    name: Annotated[str | None, typer.Option(help="the run's label in the database and the dashboard")] = None,
    record: Annotated[bool, typer.Option("--record/--no-record", help="store the run in the platform database")] = True,
    json_output: Annotated[bool, typer.Option("--json", help="print the run as one JSON line")] = False,
) -> None:
    """Time and peak memory of a training and an inference step of each model at each sequence length."""
    from datetime import UTC, datetime

    from seqarena.platform import database, profiles
    from seqarena.workers import profile as profiling

    plan = profiling.plan_profile(profiling.parse_models(models), profiling.parse_seq_lens(seq_lens),
                                  batch_size=batch_size, hidden=hidden, device=device, repeats=repeats,
                                  warmup=warmup, max_mem_gb=max_mem_gb)
    engine = database.get_engine() if record else None  # an unreachable database is refused before the run
    with profile_progress(len(plan.cases)) as on_case:
        rows = profiling.run_plan(plan, on_case)
    folder = out or Path(f"profile-{datetime.now(UTC):%Y%m%d-%H%M%S}")
    profiling.write_files(plan, rows, folder)
    run_id = None if engine is None else profiles.record_profile(
        engine, name or profiling.default_name(plan), profiling.environment(plan), [row.to_json() for row in rows],
        out_dir=str(folder.resolve()))
    if json_output:
        print(json.dumps({"run_id": run_id, "out": str(folder), "rows": [row.to_json() for row in rows]}))
        return
    table = Table(title=f"profile on {plan.device}: batch {plan.batch_size}, hidden {plan.hidden}, "
                        f"median of {plan.repeats} runs after {plan.warmup} warm-up")
    for column in profiling.TABLE_COLUMNS:
        table.add_column(column)
    for cells_ in profiling.table_rows(rows):
        table.add_row(*cells_)
    Console(width=max(Console().width, 132)).print(table)
    stderr.print(f"wrote {folder / 'profile.json'} and {folder / 'profile.csv'}"
                 + (f"; recorded as profile run {run_id}" if run_id else ""))


@contextmanager
def profile_progress(total: int) -> Iterator[Any]:
    """A progress bar on stderr over the (model, T) of a profile, fed by `run_plan`'s `on_case`."""
    columns = (TextColumn("[bold]profile"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("{task.fields[status]}"))
    with Progress(*columns, console=stderr, transient=True) as progress:
        bar = progress.add_task("profile", total=total, status="")

        def on_case(model: str, seq_len: int, row: Any) -> None:
            if row is None:
                progress.update(bar, status=f"{model} T={seq_len}")
            else:
                progress.advance(bar)

        yield on_case


@app.command()
def dashboard(
    host: Annotated[str, typer.Option(help="address to bind; 0.0.0.0 exposes it to the network")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to serve on")] = 8501,
    mlflow_ui: Annotated[str | None, typer.Option(
        help="MLflow UI address that run links open (default $SEQARENA_MLFLOW_UI or http://127.0.0.1:5000)")] = None,
) -> None:
    """Start the Streamlit dashboard on the platform database (and MLflow for run details)."""
    from seqarena.dashboard.serve import serve

    serve(host, port, mlflow_ui)


@app.command(name="trace")
def trace_command(
    run: Annotated[str, typer.Option("--run", help="the MLflow run id of a recorded trial")],
    task: Annotated[str | None, typer.Option(help="trace on this task (default: the run's)")] = None,
    seq_len: Annotated[int | None, typer.Option(help="trace at this sequence length (default: the run's)")] = None,
    batch_size: Annotated[int, typer.Option(help="validation sequences in the traced batch")] = 32,
    out: Annotated[Path | None, typer.Option(help="folder for trace.json and trace.html")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="print the trace as one JSON line")] = False,
) -> None:
    """Hidden states, gates and the gradient norm of the loss w.r.t. the state at each step of a trained model."""
    from seqarena.dashboard.figures import trace_figure
    from seqarena.platform.trained import trace_run

    result = trace_run(run, task=task, seq_len=seq_len, batch_size=batch_size)
    folder = out or Path(f"trace-{run[:8]}")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "trace.json").write_text(json.dumps(result.to_json()))
    trace_figure(result).write_html(folder / "trace.html", include_plotlyjs=True)
    if json_output:
        print(json.dumps(result.to_json()))
        return
    _print_trace(result)
    stderr.print(f"wrote {folder / 'trace.json'} and {folder / 'trace.html'}")


def _print_trace(result: Any) -> None:
    steps = sorted({1, max(result.seq_len // 4, 1), max(result.seq_len // 2, 1), max(3 * result.seq_len // 4, 1),
                    result.seq_len})
    table = Table(title=f"{result.model} on {result.task}, T = {result.seq_len}: loss {result.loss:.4g}")
    table.add_column("t")
    rows = {f"‖∂L/∂s_t‖ layer {i + 1}": curve for i, curve in enumerate(result.grad_state)}
    rows["‖∂L/∂u_t‖"] = result.grad_input
    rows.update({f"gate {name}": curve for name, curve in result.gates.items()})
    for name in rows:
        table.add_column(name)
    for step in steps:
        table.add_row(str(step), *(f"{curve[step - 1]:.3g}" for curve in rows.values()))
    Console().print(table)


@app.command()
def sample(
    run: Annotated[str, typer.Option("--run", help="the MLflow run id of a trained char-task trial")],
    prime: Annotated[str, typer.Option(help="the text to start from")] = "The ",
    length: Annotated[int, typer.Option(help="characters to generate after the prime")] = 300,
    temperature: Annotated[float, typer.Option(help="softmax temperature (lower: more likely characters)")] = 1.0,
    seed: Annotated[int, typer.Option(help="seed of the sampling")] = 0,
) -> None:
    """Generate text from a trained character-level language model (the `char` task)."""
    import torch

    from seqarena.platform.trained import load_run
    from seqarena.tasks.char import sample_text

    trained = load_run(run)
    if trained.config.task != "char":
        raise BadInput("run", run, f"a run of the char task (this one is {trained.config.task})")
    print(sample_text(trained.net, trained.setup.task, prime, length, temperature,
                      torch.Generator().manual_seed(seed)))


def _job_row(job: Any) -> dict[str, Any]:
    return {"id": job.id, "name": job.name, "state": job.state, "priority": job.priority,
            "submitted_by": job.submitted_by, "attempts": job.attempts, "worker": job.worker_id,
            "search_id": job.search_id, "mlflow_parent_run_id": job.mlflow_parent_run_id,
            "created_at": str(job.created_at), "finished_at": str(job.finished_at) if job.finished_at else None,
            "error": job.error}


@app.command()
def submit(spec: Annotated[str, typer.Argument(help="a spec YAML file")],
           priority: Annotated[int, typer.Option(help="higher runs first")] = 0) -> None:
    """Validate a spec and queue it as a job; print the job id (and, on stderr, how many of its trials
    fit at once on the cluster this machine sees)."""
    from seqarena.platform import database, jobs, storage
    from seqarena.platform.capacity import capacity, check_placeable, visible_cluster
    from seqarena.platform.spec import load_spec

    loaded, cluster = load_spec(spec), visible_cluster()
    if os.environ.get("RAY_ADDRESS"):  # the cluster the job runs on; without it, the worker's is not known here
        check_placeable(loaded.resources, cluster)
    if os.environ.get(storage.FIELD):  # the storage the job's search writes to; unset: the worker's own folder
        storage.storage().check()
    fits = capacity(loaded, cluster)
    print(jobs.submit(database.get_engine(), spec, priority=priority))
    stderr.print(fits.line(), soft_wrap=True)


@app.command(name="jobs")
def jobs_command(state: Annotated[str | None, typer.Option(help="only jobs in this state")] = None,
                 json_output: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List jobs, newest first."""
    from seqarena.platform import database, jobs

    rows = [_job_row(job) for job in jobs.list_jobs(database.get_engine(), state)]
    if json_output:
        print(redact(json.dumps(rows)))
        return
    table = Table(title="jobs")
    for column in ("id", "name", "state", "priority", "attempts", "worker", "submitted_by", "created_at"):
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(row[c]) for c in ("id", "name", "state", "priority", "attempts", "worker",
                                                 "submitted_by", "created_at")))
    Console().print(table)


@app.command()
def status(job_id: Annotated[str, typer.Argument(help="a job id (or a unique prefix)")],
           json_output: Annotated[bool, typer.Option("--json")] = False) -> None:
    """A job's state, its per-arm progress, the best trial so far and its MLflow run."""
    from seqarena.platform import database, jobs, searches
    from seqarena.platform.leaderboard import leaderboard, to_json
    from seqarena.platform.solving import spec_fraction

    engine = database.get_engine()
    job = jobs.get_job(engine, job_id)
    board = leaderboard(engine, search_id=job.search_id) if job.search_id else []
    skipped = searches.skipped_arms(engine, job.search_id) if job.search_id else {}
    fraction = spec_fraction(job.spec_yaml)
    row = {**_job_row(job), "arms": to_json(board, fraction), "skipped": skipped}
    if json_output:
        print(redact(json.dumps(row, default=str)))
        return
    stderr.print(f"job {job.id} ({job.name}): {job.state}, attempt {job.attempts}, "
                 f"MLflow parent run {job.mlflow_parent_run_id or '-'}")
    if board:
        _print_board(board, fraction)
    for key, why in skipped.items():
        stderr.print(f"skipped {key}: {why}")


@app.command()
def cancel(job_id: Annotated[str, typer.Argument(help="a job id (or a unique prefix)")]) -> None:
    """Cancel a job: a queued one never starts; a running one stops, keeping what finished."""
    from seqarena.platform import database, jobs

    print(jobs.cancel(database.get_engine(), job_id))


@app.command()
def resume(job_id: Annotated[str, typer.Argument(help="a job id (or a unique prefix)")]) -> None:
    """Queue a failed, cancelled or interrupted job again; it continues from its checkpoints."""
    from seqarena.platform import database, jobs

    jobs.resume(database.get_engine(), job_id)
    print("queued")


@app.command()
def worker(
    max_jobs: Annotated[int | None, typer.Option(help="stop after this many jobs")] = None,
    once: Annotated[bool, typer.Option("--once", help="stop when the queue is empty")] = False,
    lease: Annotated[float, typer.Option(help="lease length in seconds (renewed every third of it)")] = 60.0,
    poll: Annotated[float, typer.Option(help="seconds between looks at an empty queue")] = 2.0,
) -> None:
    """Take queued jobs and run them on Ray (RAY_ADDRESS or a local Ray); SIGTERM stops gracefully."""
    from seqarena.platform.worker import WorkerSettings, serve

    if lease <= 0 or poll <= 0:
        raise BadInput("lease" if lease <= 0 else "poll", lease if lease <= 0 else poll, "a positive number")
    ran = serve(WorkerSettings(lease_seconds=lease, poll_seconds=poll, max_jobs=max_jobs, once=once))
    stderr.print(f"worker ran {ran} job(s)")


def main() -> None:
    """Console entry point: run the app, turning errors into the documented exit codes."""
    try:
        code = app(standalone_mode=False)  # a command's `typer.Exit(code)` comes back as its code
    except BadInput as error:
        _fail(error, 2)
    except (typer.Abort, KeyboardInterrupt):
        stderr.print("aborted")
        sys.exit(130)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except Exception as error:  # a failure outside the user's input: exit 1
        if _is_usage_error(error):  # a bad option or argument: one line, exit 2
            print(f"error: {error.format_message()}", file=sys.stderr)  # type: ignore[attr-defined]
            sys.exit(2)
        if hasattr(error, "show") and isinstance(getattr(error, "exit_code", None), int):
            error.show()  # type: ignore[attr-defined]
            sys.exit(error.exit_code)  # type: ignore[attr-defined]
        _fail(error, 1)
    else:
        if isinstance(code, int) and code:
            sys.exit(code)


def _is_usage_error(error: BaseException) -> bool:
    """A click usage error (`--priority high`, a missing option), from click or the copy typer vendors."""
    import click

    return isinstance(error, click.UsageError) or any(cls.__name__ == "UsageError" for cls in type(error).__mro__)


def _fail(error: BaseException, code: int) -> None:
    if _debug["on"]:
        stderr.print_exception()
    print(f"error: {redact(str(error))}", file=sys.stderr)
    sys.exit(code)


if __name__ == "__main__":
    main()
