"""A leaderboard you can publish (issue 17 §5): what `seqarena report` writes, read from the database alone.

For one task (and optionally one search): the leaderboard (`seqarena.platform.leaderboard.leaderboard`,
the one ranking rule: each arm's best configuration, its mean over seeds with the percentile bootstrap
interval of `seqarena.platform.statistics` and n, solved k of n and the steps to solve of
`seqarena.platform.solving`), how far in T each model reaches (`solving.reach`: max T solved, area under
metric vs log T, marked failed cells), the cost of each arm's best trial (parameters, peak memory,
training and inference throughput, with the device and implementation it ran on), the data protocols
the arms followed (`seqarena.tasks.protocols`) and what solves the task (`Task.solved_when`), the
searches behind the numbers (spec hash and spec), and the provenance of every number: the facts each run
recorded in the database (`Trial.facts`: device, GPU, implementation, git commit, seqarena, torch, CUDA,
ray, optuna and mlflow versions). A run recorded before facts were kept says "not recorded" (its facts
are tags of its MLflow run only). The environment that wrote the report (its versions and git commit)
is stated apart from the environments that produced the numbers.

The same content three ways: `sections` (title, caption, header and rows of text: the Markdown tables
and the HTML page's tables), `to_markdown` and `to_json`. No plots here: `seqarena/report.py` adds the
dashboard's figures to the HTML page.
"""

from __future__ import annotations

import platform
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

from sqlalchemy import Engine, select, tuple_

from seqarena import tasks
from seqarena.errors import BadInput, one_of
from seqarena.platform import searches
from seqarena.platform.leaderboard import ArmBest, check_task_models, leaderboard, places
from seqarena.platform.leaderboard import to_json as board_json
from seqarena.platform.lengths import LengthPoint, length_points, lengths_frame
from seqarena.platform.schema import Trial
from seqarena.platform.solving import Reach, reach
from seqarena.platform.statistics import LEVEL, RESAMPLES, SEED, interval_text, level_text
from seqarena.workers.placement import git_commit

PACKAGES = ("seqarena", "torch", "ray", "optuna", "mlflow")
"""The packages whose versions the report names (of the runs, and of the environment that wrote it)."""
NOT_RECORDED = "not recorded"


@dataclass(frozen=True)
class Provenance:
    """Where the runs behind a number ran: each fact's distinct values over the runs that recorded it."""

    runs: int
    recorded: int
    """runs whose facts the database holds (the others were recorded before facts were kept)"""
    device: tuple[str, ...] = ()
    gpu_name: tuple[str, ...] = ()
    implementation: tuple[str, ...] = ()
    git_commit: tuple[str, ...] = ()
    seqarena_version: tuple[str, ...] = ()
    torch_version: tuple[str, ...] = ()
    cuda_version: tuple[str, ...] = ()
    ray_version: tuple[str, ...] = ()
    optuna_version: tuple[str, ...] = ()
    mlflow_version: tuple[str, ...] = ()
    timing: tuple[str, ...] = ()
    """how the throughput was timed (`seqarena.workers.measure.STEADY`); none: it may include the warm-up"""

    def text(self, name: str) -> str:
        """The values of fact `name`, e.g. "cuda", "cpu, cuda", or "not recorded"."""
        return ", ".join(getattr(self, name)) or NOT_RECORDED


FACTS = tuple(item.name for item in fields(Provenance) if item.name not in ("runs", "recorded"))


def provenance(facts: Sequence[dict[str, str] | None]) -> Provenance:
    """The provenance of the runs whose recorded facts are `facts` (None: a run without facts)."""
    recorded = [item for item in facts if item]
    values = {name: tuple(sorted({str(item[name]) for item in recorded if item.get(name)})) for name in FACTS}
    return Provenance(runs=len(facts), recorded=len(recorded), **values)


@dataclass(frozen=True)
class PublishedArm:
    """One arm of the report: its leaderboard row, the provenance of its runs and of its best trial (the cost)."""

    board: ArmBest
    place: int | None
    """its place at its T (`leaderboard.places`); None without a ranked trial"""
    runs: Provenance
    best: Provenance


@dataclass(frozen=True)
class SearchSummary:
    """A search behind the report's numbers."""

    id: str
    name: str
    status: str
    spec_hash: str
    created_at: datetime
    finished_at: datetime | None
    mlflow_parent_run_id: str | None
    spec_yaml: str


@dataclass(frozen=True)
class Environment:
    """The environment that wrote the report (not the one that produced its numbers)."""

    generated_at: datetime
    git_commit: str
    python: str
    versions: tuple[tuple[str, str], ...]
    """(package, version) for each of PACKAGES"""


@dataclass(frozen=True)
class Publication:
    """Everything a report of one task holds (see the module docstring)."""

    task: str
    search_id: str | None
    """the search asked for; None: each arm from its latest search"""
    arms: tuple[PublishedArm, ...]
    reach: tuple[Reach, ...]
    searches: tuple[SearchSummary, ...]
    protocols: tuple[tuple[str, dict[str, Any]], ...]
    """(name, option values) of each data protocol the arms followed"""
    solved_rule: str
    solved_source: str
    environment: Environment
    lengths: tuple[LengthPoint, ...] = ()
    """each arm's best configuration tested at other lengths T′ (`seqarena.platform.lengths`), when its spec
    named `length_generalisation`"""


def environment() -> Environment:
    """This process's versions of PACKAGES, Python and git commit, and the time."""
    versions = tuple((name, _version(name)) for name in PACKAGES)
    return Environment(generated_at=datetime.now(UTC), git_commit=git_commit() or NOT_RECORDED,
                       python=platform.python_version(), versions=versions)


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def publication(engine: Engine, task: str, search: str | None = None) -> Publication:
    """The report of `task` (and of search `search`, an id or name): `BadInput` for a task with no recorded
    arm, a search that does not exist or has no arm of the task."""
    check_task_models(engine, task, [])
    search_id = None
    if search is not None:
        found = searches.find_search(engine, search)
        known = sorted({arm.task for arm in found.arms})
        if task not in known:
            raise BadInput("task", task, f"a task of search {found.id}: {one_of(known)}")
        search_id = found.id
    rows = leaderboard(engine, task=task, search_id=search_id)
    facts = trial_facts(engine, rows)
    placed = {(row.search_id, row.key): place for place, row in places(rows)}
    arms = tuple(PublishedArm(board=row, place=placed.get((row.search_id, row.key)),
                              runs=provenance([facts.get((row.search_id, run.trial_id)) for run in row.runs]),
                              best=provenance([facts.get((row.search_id, row.trial_id))] if row.trial_id else []))
                 for row in rows)
    criterion = tasks.task_class(task).solved_when
    baseline = rows[0].baseline if rows else 0.0
    higher = rows[0].higher_is_better if rows else False
    metric = rows[0].metric_name if rows else "metric"
    return Publication(task=task, search_id=search_id, arms=arms, reach=tuple(reach(rows)),
                       searches=_searches(engine, [row.search_id for row in rows]),
                       protocols=_protocols(task, rows), solved_rule=f"{metric} {criterion.describe(baseline, higher)}",
                       solved_source=criterion.source, environment=environment(),
                       lengths=tuple(length_points(engine, task, search_id=search_id)))


def trial_facts(engine: Engine, rows: Sequence[ArmBest]) -> dict[tuple[str, str], dict[str, str] | None]:
    """(search id, trial id) -> the recorded facts of every run and best trial of `rows`."""
    keys = sorted({(row.search_id, run.trial_id) for row in rows for run in row.runs}
                  | {(row.search_id, row.trial_id) for row in rows if row.trial_id})
    found: dict[tuple[str, str], dict[str, str] | None] = {}
    with engine.connect() as conn:
        for start in range(0, len(keys), 200):  # a bounded IN list per query
            chunk = keys[start:start + 200]
            stmt = select(Trial.search_id, Trial.trial_id, Trial.facts).where(
                tuple_(Trial.search_id, Trial.trial_id).in_(chunk))
            found.update({(search_id, trial_id): facts for search_id, trial_id, facts in conn.execute(stmt)})
    return found


def _searches(engine: Engine, ids: Sequence[str]) -> tuple[SearchSummary, ...]:
    found = [searches.get_search(engine, search_id) for search_id in dict.fromkeys(ids)]
    return tuple(SearchSummary(id=s.id, name=s.name, status=s.status, spec_hash=s.spec_hash, created_at=s.created_at,
                               finished_at=s.finished_at, mlflow_parent_run_id=s.mlflow_parent_run_id,
                               spec_yaml=s.spec_yaml)
                 for s in sorted((s for s in found if s is not None), key=lambda s: (s.created_at, s.id)))


def _protocols(task: str, rows: Sequence[ArmBest]) -> tuple[tuple[str, dict[str, Any]], ...]:
    declared = tasks.protocols(task)
    names = sorted({row.protocol or NOT_RECORDED for row in rows})
    return tuple((name, declared.get(name, {})) for name in names)


# ------------------------------------------------------------------------------------------ as tables

@dataclass(frozen=True)
class Section:
    """One table of the report: its title, a caption saying how to read it, its header and rows of text."""

    key: str
    title: str
    caption: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


def _number(value: float | int | None) -> str:
    return "—" if value is None else f"{value:.4g}"


def sections(pub: Publication) -> list[Section]:
    """The report's tables: leaderboard, how far in T, at other lengths T′ (only where some arm was tested
    there), cost, provenance, data protocols, searches."""
    other_lengths = [_lengths_section(pub)] if pub.lengths else []
    return [_board_section(pub), _reach_section(pub), *other_lengths, _cost_section(pub), _provenance_section(pub),
            _protocol_section(pub), _search_section(pub)]


def _board_section(pub: Publication) -> Section:
    first = pub.arms[0].board if pub.arms else None
    metric = first.metric_name if first else "metric"
    direction = "higher is better" if first and first.higher_is_better else "lower is better"
    rows = []
    for arm in pub.arms:
        row, solve = arm.board, arm.board.solve
        low_high = solve.steps_range if solve else None
        steps = "—" if not solve or solve.steps_median is None else (
            f"{solve.steps_median:g}" + ("" if not low_high or low_high[0] == low_high[1]
                                          else f" ({low_high[0]}–{low_high[1]})"))
        mean = interval_text(row.interval, compact=True) if row.interval else (row.failure or "—")
        rows.append((str(row.seq_len), "—" if arm.place is None else str(arm.place), row.model, mean, str(row.n),
                     f"{solve.solved} / {solve.seeds}" if solve else "—", steps,
                     str(solve.budget) if solve else "—", _number(row.baseline), row.protocol or NOT_RECORDED,
                     row.search_id[:8]))
    caption = (f"test {metric} ({direction}) of each arm's best configuration: mean over its n seeds with the "
               f"{level_text(LEVEL)} percentile bootstrap interval ({RESAMPLES} resamples, seed {SEED}); solved: "
               f"seeds whose test {pub.solved_rule}; steps to solve: median (range) over the solved seeds of the first "
               "validation step that solved; budget: the most steps a seed trained")
    return Section("leaderboard", "Leaderboard", caption,
                   ("T", "place", "model", f"{metric} mean [CI] n", "n", "solved k / n", "steps to solve",
                    "budget steps", "trivial baseline", "data protocol", "search"), tuple(rows))


def _reach_section(pub: Publication) -> Section:
    rows = tuple((line.model, ", ".join(str(t) for t in line.seq_lens),
                  "—" if line.max_t_solved is None else str(line.max_t_solved), _number(line.auc),
                  "; ".join(line.marked) or "—") for line in pub.reach)
    return Section("reach", "How far in T", "max T solved: the longest T at which at least one seed solved the task; "
                   "AUC: area under the mean metric against log10 T over its span (a failed T at the trivial baseline)",
                   ("model", "T", "max T solved", "AUC (metric vs log10 T)", "marked"), rows)


def _lengths_section(pub: Publication) -> Section:
    table = lengths_frame(pub.lengths)
    metric = pub.lengths[0].metric_name
    header = tuple(str(name) if name in ("model", "trained T") else f"T′ = {name}" for name in table.columns)
    rows = tuple(tuple(str(value) for value in row) for row in table.itertuples(index=False))
    return Section("lengths", "At other lengths T′ (length generalisation)",
                   f"test {metric} of each arm's best configuration, trained at T and tested at T′ with the weights "
                   "it ended with: mean (n seeds); * the trained T (the leaderboard's mean); a point that could not "
                   "be measured says how it ended (oom at T′ = …)", header, rows)


def _cost_row(arm: PublishedArm) -> tuple[str, ...]:
    row = arm.board
    return (str(row.seq_len), row.model, "—" if row.params is None else str(row.params), _number(row.peak_mem_mb),
            _number(row.train_seq_per_s), _number(row.infer_seq_per_s), arm.best.text("device"),
            arm.best.text("gpu_name"), arm.best.text("implementation"))


def _cost_section(pub: Publication) -> Section:
    rows = tuple(_cost_row(arm) for arm in pub.arms if arm.board.trial_id)
    return Section("cost", "Cost", "of each arm's best trial: trainable parameters, peak memory of a training step "
                   "(MB), sequences per second in training and in inference, and where it ran",
                   ("T", "model", "params", "peak memory (MB)", "training seq/s", "inference seq/s", "device", "GPU",
                    "implementation"), rows)


def _provenance_section(pub: Publication) -> Section:
    rows = tuple((str(arm.board.seq_len), arm.board.model, f"{arm.runs.recorded} / {arm.runs.runs}",
                  *(arm.runs.text(name) for name in FACTS), arm.board.mlflow_run_id or "—")
                 for arm in pub.arms if arm.board.runs)
    return Section("provenance", "Provenance of every number",
                   "the facts each run of an arm's best configuration recorded in the database (runs with facts / "
                   f"runs); '{NOT_RECORDED}': runs recorded before facts were kept, whose facts are tags of their "
                   "MLflow run only",
                   ("T", "model", "runs with facts", *FACTS, "MLflow run of the best trial"), rows)


def _protocol_section(pub: Publication) -> Section:
    rows = tuple((name, ", ".join(sorted({arm.board.model for arm in pub.arms
                                          if (arm.board.protocol or NOT_RECORDED) == name})),
                  ", ".join(f"{key}={value}" for key, value in sorted(options.items())) or "—")
                 for name, options in pub.protocols)
    return Section("protocols", "Data protocol", f"what solves {pub.task}: {pub.solved_rule} ({pub.solved_source})",
                   ("protocol", "models", "option values"), rows)


def _search_section(pub: Publication) -> Section:
    rows = tuple((s.id, s.name, s.status, s.spec_hash, f"{s.created_at:%Y-%m-%d %H:%M:%S %Z}",
                  "—" if s.finished_at is None else f"{s.finished_at:%Y-%m-%d %H:%M:%S %Z}",
                  s.mlflow_parent_run_id or "—") for s in pub.searches)
    return Section("searches", "Searches", "the searches behind the numbers; their specs are below",
                   ("search", "name", "status", "spec hash", "created", "finished", "MLflow parent run"), rows)


def headline(pub: Publication) -> list[str]:
    """The lines under the report's title: what it covers and the environment that wrote it."""
    env = pub.environment
    scope = f"search {pub.search_id}" if pub.search_id else "each arm from its latest search"
    versions = ", ".join(f"{name} {version}" for name, version in env.versions)
    return [f"task {pub.task}; {scope}; {len(pub.arms)} arms",
            f"written {env.generated_at:%Y-%m-%d %H:%M:%S %Z} from the platform database alone, by {versions}, "
            f"Python {env.python}, git commit {env.git_commit}",
            f"reproduce: seqarena report --task {pub.task}"
            + (f" --search {pub.search_id}" if pub.search_id else "") + " --out DIR"]


# ---------------------------------------------------------------------------------------- Markdown, JSON

def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(section: Section) -> str:
    lines = ["| " + " | ".join(_md_cell(h) for h in section.header) + " |",
             "|" + "---|" * len(section.header)]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in section.rows]
    return "\n".join(lines)


def to_markdown(pub: Publication) -> str:
    """The report as Markdown: the headline, each section's table, then each search's spec."""
    parts = [f"# seqarena report: {pub.task}", "", *(f"- {line}" for line in headline(pub)), ""]
    for section in sections(pub):
        parts += [f"## {section.title}", "", f"_{section.caption}_", "", markdown_table(section), ""]
    for s in pub.searches:
        parts += [f"### Spec of search {s.name} ({s.id}, hash {s.spec_hash})", "", "```yaml", s.spec_yaml.rstrip(),
                  "```", ""]
    return "\n".join(parts)


def to_json(pub: Publication) -> dict[str, Any]:
    """The report as JSON-ready data: the leaderboard rows as `seqarena leaderboard --json` gives them, each with
    its place and provenance, and the rest of the report beside them."""
    arms = [{**row, "place": arm.place, "provenance": asdict(arm.runs), "best_trial_facts": asdict(arm.best)}
            for arm, row in zip(pub.arms, board_json([arm.board for arm in pub.arms]), strict=True)]
    env = pub.environment
    return {"task": pub.task, "search_id": pub.search_id,
            "generated": {"at": env.generated_at.isoformat(), "git_commit": env.git_commit, "python": env.python,
                          "versions": dict(env.versions)},
            "statistics": {"interval": "percentile bootstrap of the mean", "level": LEVEL, "resamples": RESAMPLES,
                           "seed": SEED},
            "solved_when": {"rule": pub.solved_rule, "source": pub.solved_source},
            "leaderboard": arms, "reach": [asdict(line) for line in pub.reach],
            "lengths": [point.to_json() for point in pub.lengths],
            "protocols": [{"name": name, "options": options} for name, options in pub.protocols],
            "searches": [{**asdict(s), "created_at": s.created_at.isoformat(),
                          "finished_at": None if s.finished_at is None else s.finished_at.isoformat()}
                         for s in pub.searches]}
