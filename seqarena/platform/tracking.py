"""MLflow as the record of every trial.

One parent run per search, one child run per trial (tagged with the search, task, seq_len, model,
arm, trial id and seed; params = the trial's hyperparameters; step metrics = the learning curve;
final metrics = the trial's numbers). The embedded default is a SQLite-backed store under
`SEQARENA_HOME` (`mlflow ui --backend-store-uri sqlite:///$SEQARENA_HOME/mlflow.db` reads it);
`MLFLOW_TRACKING_URI` points at a tracking server instead.

Only the search driver writes here, through `Tracker`; child runs are found again by their
`seqarena.trial_id` tag, so a resumed search never creates a second run for a trial.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from seqarena.platform.home import seqarena_home

log = logging.getLogger(__name__)

PARENT_TAG = "mlflow.parentRunId"
FINAL_STATUS = {"completed": "FINISHED", "diverged": "FAILED", "oom": "FAILED", "stopped": "KILLED",
                "failed": "FAILED"}
"""The MLflow status of a trial's child run for each status of its record (`TrialRecord.status`)."""
SEARCH_TAG = "seqarena.search_id"
TRIAL_TAG = "seqarena.trial_id"
#: On the run of a rerun failed cell (`seqarena retry`): the trial id of the attempt it replaces.
RETRY_TAG = "seqarena.retry_of"
#: A trial run's `TrialConfig` as JSON (what `seqarena.load_run` rebuilds the model from).
CONFIG_TAG = "seqarena.trial_config"
#: The `seqarena train ...` command that reruns a trial alone.
COMMAND_TAG = "seqarena.command"
#: The name of the task's data protocol a trial followed (`seqarena.tasks.protocols`).
PROTOCOL_TAG = "seqarena.protocol"
_BATCH = 900  # MLflow accepts at most 1000 metrics per log_batch


def tracking_uri() -> str:
    """`MLFLOW_TRACKING_URI`, or the embedded SQLite store under `SEQARENA_HOME`."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{seqarena_home() / 'mlflow.db'}"


def ui_hint(uri: str) -> str:
    """How a user opens the runs of `uri` in the MLflow UI."""
    if uri.startswith("sqlite:"):
        return f"mlflow ui --host 127.0.0.1 --backend-store-uri {uri}"
    return f"open {uri} in a browser"


class Tracker:
    """Writes searches and trials to MLflow through its client."""

    def __init__(self, uri: str | None = None) -> None:
        # MLflow writes "View run ... at: <tracking URI>" on stdout for every run it ends: the URI's
        # credentials included, and in the middle of the CLI's own output (issue 18 §3)
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
        self.uri = uri or tracking_uri()
        self.client = self._open_local_store() if self.uri.startswith("sqlite:") else MlflowClient(self.uri)

    def _open_local_store(self) -> MlflowClient:
        """The client of the embedded SQLite store, created (and migrated) under a file lock.

        MLflow migrates a SQLite store when its client is made; two processes doing it at once
        (two workers on a fresh SEQARENA_HOME) collide in its migrations, so they take turns.
        """
        with open(seqarena_home() / "mlflow.db.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                client = MlflowClient(self.uri)
                client.search_experiments(max_results=1)
                return client
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def experiment_id(self, name: str) -> str:
        """The id of experiment `name`, created (with artifacts under SEQARENA_HOME when local)."""
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        location = None
        if self.uri.startswith("sqlite:"):
            location = (seqarena_home() / "mlartifacts" / name.replace("/", "_")).as_uri()
        return self.client.create_experiment(name, artifact_location=location)

    def start_parent(self, experiment_id: str, search_id: str, name: str, spec_yaml: str) -> str:
        """Create the search's parent run with the spec as an artifact; return its id."""
        run = self.client.create_run(experiment_id, run_name=name, tags={SEARCH_TAG: search_id})
        self.client.log_text(run.info.run_id, spec_yaml, "spec.yaml")
        return run.info.run_id

    def log_text(self, run_id: str, text: str, path: str) -> None:
        """Store `text` as the run's artifact `path`."""
        self.client.log_text(run_id, text, path)

    def reopen(self, run_id: str) -> None:
        """Mark a run RUNNING again (a resumed search)."""
        self.client.update_run(run_id, status="RUNNING")

    def child_runs(self, experiment_id: str, parent_id: str) -> dict[str, str]:
        """trial id -> run id of the parent's existing child runs."""
        runs = self.client.search_runs([experiment_id], filter_string=f"tags.`{PARENT_TAG}` = '{parent_id}'",
                                       max_results=50_000)
        return {run.data.tags[TRIAL_TAG]: run.info.run_id for run in runs if TRIAL_TAG in run.data.tags}

    def start_child(self, experiment_id: str, parent_id: str, name: str, tags: Mapping[str, Any],
                    params: Mapping[str, Any]) -> str:
        """Create a trial's child run with its tags and params; return its id."""
        all_tags = {PARENT_TAG: parent_id, **{key: str(value) for key, value in tags.items()}}
        run = self.client.create_run(experiment_id, run_name=name, tags=all_tags)
        self.client.log_batch(run.info.run_id, params=[Param(k, str(v)) for k, v in params.items()])
        return run.info.run_id

    def log_missing_params(self, run_id: str, params: Mapping[str, Any]) -> int:
        """Log the params a run lacks (MLflow params are write-once); return how many were missing."""
        present = self.client.get_run(run_id).data.params
        missing = [Param(k, str(v)) for k, v in params.items() if k not in present]
        if missing:
            self.client.log_batch(run_id, params=missing)
        return len(missing)

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int) -> None:
        """Log numeric metrics at `step` in one batch."""
        now = int(time.time() * 1000)
        batch = [Metric(key, float(value), now, step) for key, value in metrics.items()
                 if isinstance(value, int | float) and not isinstance(value, bool)]
        for start in range(0, len(batch), _BATCH):
            self.client.log_batch(run_id, metrics=batch[start:start + _BATCH])

    def last_step(self, run_id: str, key: str) -> int:
        """The highest step logged for metric `key` in a run (-1 when none)."""
        return max((metric.step for metric in self.client.get_metric_history(run_id, key)), default=-1)

    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        """Set string tags on a run."""
        self.client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_artifacts(self, run_id: str, directory: Path, path: str) -> None:
        """Upload a directory as artifacts of a run."""
        self.client.log_artifacts(run_id, str(directory), path)

    def finish(self, run_id: str, status: str) -> None:
        """End a run: `FINISHED`, `FAILED` or `KILLED`."""
        self.client.set_terminated(run_id, status=status)

    def close_running(self, experiment_id: str, parent_id: str, status: str) -> int:
        """End every still-RUNNING child of `parent_id`; return how many were ended."""
        running = f"tags.`{PARENT_TAG}` = '{parent_id}' and attributes.status = 'RUNNING'"
        runs = self.client.search_runs([experiment_id], filter_string=running, max_results=50_000)
        for run in runs:
            self.client.set_terminated(run.info.run_id, status=status)
        return len(runs)
