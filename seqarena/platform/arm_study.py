"""One arm's Optuna study, driven through Optuna's ask-and-tell interface.

The study lives in Optuna's RDB storage inside the platform database (`study_storage`: PostgreSQL in
a deployment, where every driver and dashboard reaches it; SQLite on one machine), so that a resumed
search continues it and nothing of it sits in a node's folder. Its name is unique in that database
(`<search id or round>/<arm key>`). Each Tune trial of the arm is one Optuna trial: `ask` samples every searched value
at once (`Study.ask(fixed_distributions=...)`), `report` records the objective at a step, and
`tell` finishes it; `warm` adds the trials a search recorded before (`Study.add_trials`, for a
search that grows). Optuna's trial numbers, not its `Trial` objects, are what this class keeps
across a save (`ArmSearcher.save`, JSON), so a restored study is the same study read back from its
storage, sampled by a sampler reseeded from the arm's seed and the trials it handed out.
The objective is maximised (`seqarena.platform.arms`: the validation metric signed so
that higher is better).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import optuna
from optuna.trial import TrialState
from sqlalchemy import exc, make_url, text

from seqarena.errors import BadInput
from seqarena.platform import database

#: The schema of a PostgreSQL platform database that holds Optuna's tables (Optuna's own `trials` and
#: `alembic_version` tables would clash with the platform's in its default schema).
OPTUNA_SCHEMA = "optuna"
_storages: dict[str, optuna.storages.RDBStorage] = {}
_storages_lock = threading.Lock()
T = TypeVar("T")


def study_storage(url: str | None = None) -> optuna.storages.BaseStorage | str:
    """Where the studies live: `url` when given (an Optuna storage URL), else the platform database
    (`SEQARENA_DB_URL`, read now and never kept in a pickled object): on PostgreSQL its schema
    `optuna`, on SQLite the file beside it named `<stem>-optuna.db` (one SQLite file cannot hold both
    sets of tables). One storage per database for this process."""
    return url if url is not None else platform_storage(database.database_url())


def platform_storage(raw: str) -> optuna.storages.RDBStorage:
    """Optuna's storage inside the platform database at SQLAlchemy URL `raw` (see `study_storage`)."""
    with _storages_lock:
        if raw not in _storages:
            _storages[raw] = _open_platform_storage(raw)
        return _storages[raw]


def _open_platform_storage(raw: str) -> optuna.storages.RDBStorage:
    parsed = make_url(raw)
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        with _creation_lock(raw):
            _create_schema(raw)
            return optuna.storages.RDBStorage(raw, engine_kwargs={
                "pool_pre_ping": True, "connect_args": {"options": f"-csearch_path={OPTUNA_SCHEMA}"}})
    if backend == "sqlite" and parsed.database and parsed.database != ":memory:":
        path = Path(parsed.database).expanduser()
        sibling = path.with_name(f"{path.stem}-optuna.db")
        return optuna.storages.RDBStorage(f"sqlite:///{sibling}", engine_kwargs={"connect_args": {"timeout": 30}})
    raise BadInput("SEQARENA_DB_URL", database.safe_url(raw),
                   "a PostgreSQL URL or a SQLite file (the searches' Optuna studies are kept beside the platform's)")


#: pg_advisory_lock key held while Optuna's tables are created: two drivers starting at once (two workers
#: taking jobs) would otherwise both create them and one fail on PostgreSQL's catalog constraints.
_PG_OPTUNA_LOCK = 0x5E9A_0971


@contextmanager
def _creation_lock(raw: str) -> Iterator[None]:
    """Hold the database's advisory lock for creating Optuna's schema and tables (one process at a time)."""
    with database.get_engine(raw).connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _PG_OPTUNA_LOCK})
        conn.commit()
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _PG_OPTUNA_LOCK})
            conn.commit()


def _create_schema(raw: str) -> None:
    engine = database.get_engine(raw)
    try:
        with engine.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{OPTUNA_SCHEMA}"'))
    except exc.IntegrityError:  # another driver created it at the same moment
        pass


class ArmStudy:
    """The Optuna study of one arm, keyed by Tune's trial ids; `storage_url` None: the platform database."""

    def __init__(self, storage_url: str | None, study_name: str, sampler: optuna.samplers.BaseSampler,
                 space: dict[str, optuna.distributions.BaseDistribution]) -> None:
        self.storage_url, self.study_name, self.sampler, self.space = storage_url, study_name, sampler, space
        self.numbers: dict[str, int] = {}
        self.told: set[str] = set()
        self._study: optuna.Study | None = None
        self._asked: dict[str, optuna.Trial] = {}
        self.study  # noqa: B018 -- create the study (or load it) now, as the search starts

    @property
    def study(self) -> optuna.Study:
        """The study, created in its storage on first use (loaded if it exists)."""
        if self._study is None:
            self._study = self._outlast(lambda: optuna.create_study(
                storage=study_storage(self.storage_url), study_name=self.study_name, sampler=self.sampler,
                pruner=optuna.pruners.NopPruner(), direction="maximize", load_if_exists=True), "opening")
        return self._study

    def _outlast(self, call: Callable[[], T], what: str) -> T:
        """`call()`, retried through an outage of the database that holds the study (`database.retry`)."""
        return database.retry(call, f"{what} the Optuna study {self.study_name}")

    def __getstate__(self) -> dict[str, Any]:
        return {key: value for key, value in self.__dict__.items() if key not in ("_study", "_asked")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _study=None, _asked={})

    def reseed(self, sampler: optuna.samplers.BaseSampler) -> None:
        """Sample from now on with `sampler` (a restored search: its saved state holds no sampler)."""
        self.sampler, self._study, self._asked = sampler, None, {}

    def asked(self, trial_id: str) -> bool:
        """Whether this study handed out Tune trial `trial_id`."""
        return trial_id in self.numbers

    def ask(self, trial_id: str) -> dict[str, Any]:
        """Sample the searched values of a new trial."""
        trial = self._outlast(lambda: self.study.ask(fixed_distributions=self.space), "asking")
        self.numbers[trial_id] = trial.number
        self._asked[trial_id] = trial
        return dict(trial.params)

    def report(self, trial_id: str, objective: float, step: int) -> None:
        """Record an intermediate objective (for trials asked by this process and not yet told)."""
        if trial_id in self._asked and trial_id not in self.told:
            self._outlast(lambda: self._asked[trial_id].report(objective, step), "reporting to")

    def tell(self, trial_id: str, objective: float | None, error: bool) -> None:
        """Finish an asked trial: complete with its objective; without one, failed (`error`) or pruned."""
        if trial_id in self.told:
            return
        state = TrialState.COMPLETE if objective is not None else TrialState.FAIL if error else TrialState.PRUNED
        self._outlast(lambda: self.study.tell(self.numbers[trial_id], objective, state=state, skip_if_finished=True),
                      "telling")
        self.told.add(trial_id)
        self._asked.pop(trial_id, None)

    def add(self, params: dict[str, Any], objective: float | None) -> None:
        """Add a trial this study never asked for (complete with `objective`, or failed without one)."""
        state = TrialState.COMPLETE if objective is not None else TrialState.FAIL
        trial = optuna.trial.create_trial(state=state, value=objective, params=params, distributions=self.space)
        self._outlast(lambda: self.study.add_trial(trial), "adding to")

    def warm(self, trials: list[tuple[dict[str, Any], float | None]], queued: Sequence[dict[str, Any]] = ()) -> int:
        """Warm-start a new study with trials recorded before (searched values, objective or None: failed),
        in one `Study.add_trials`, then queue the `queued` values (`Study.enqueue_trial`: a grid's points
        not run yet, asked before anything is sampled); return how many trials it took. Nothing is added
        to a study that has trials already (it was warmed before), nor a trial outside this study's space
        (`create_trial` refuses it: the space changed since)."""
        if self._outlast(lambda: self.study.get_trials(deepcopy=False), "reading"):
            return 0
        frozen = []
        for params, objective in trials:
            state = TrialState.COMPLETE if objective is not None else TrialState.FAIL
            try:
                frozen.append(optuna.trial.create_trial(state=state, value=objective, params=params,
                                                        distributions=self.space))
            except ValueError:  # a value outside the space, or a searched name it lacks
                continue
        self.study.add_trials(frozen)
        for params in queued:
            self.study.enqueue_trial(params)
        return len(frozen)

    def fail_abandoned(self, live: set[str]) -> None:
        """Fail every running trial of the study that no live Tune trial in `live` stands behind."""
        alive = {self.numbers[trial_id] for trial_id in live if trial_id in self.numbers}
        failed = set()
        for frozen in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if frozen.number not in alive:
                self.study.tell(frozen.number, state=TrialState.FAIL, skip_if_finished=True)
                failed.add(frozen.number)
        self.told |= {trial_id for trial_id, number in self.numbers.items() if number in failed}
