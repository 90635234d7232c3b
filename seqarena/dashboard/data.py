"""The dashboard's data, cached per database URL (Streamlit's `cache_data` / `cache_resource`).

Reads go through `seqarena.platform` (`leaderboard`, `jobs`, `profiles`: the same Python API the CLI
uses). Results are cached for `TTL_S` seconds, so a page rendered
again within that time (a filter change, a rerun) does not touch the database, and a running
search still shows up within seconds. Writes (submit, cancel) never go through a cache.
"""

from __future__ import annotations

import os
from typing import Any

import pandas as pd
import streamlit as st
from mlflow.tracking import MlflowClient
from sqlalchemy import Engine

from seqarena.dashboard.serve import MLFLOW_UI_ENV
from seqarena.platform import comparison_table, database, jobs, leaderboard, lengths, profiles
from seqarena.platform.importance import ArmImportance, arm_importance
from seqarena.platform.leaderboard import ArmBest
from seqarena.platform.tracking import SEARCH_TAG, TRIAL_TAG

TTL_S = 10
"""Seconds a cached query result is served before the database is asked again."""
CURVE_TTL_S = 5
"""Learning curves refresh faster: a researcher watches a running search learn."""
DEFAULT_MLFLOW_UI = "http://127.0.0.1:5000"


def database_url() -> str:
    return database.database_url()


@st.cache_resource(show_spinner=False)
def engine(url: str) -> Engine:
    """One engine per database URL for the whole server (schema brought to head once)."""
    return database.get_engine(url)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def options(url: str) -> leaderboard.Options:
    return leaderboard.options(engine(url))


@st.cache_data(ttl=TTL_S, show_spinner=False)
def board(url: str, task: str | None, search_ids: tuple[str, ...] | None,
          models: tuple[str, ...] | None) -> list[ArmBest]:
    """The leaderboard rows (one per arm, aggregated in SQL) for the current filters."""
    return leaderboard.leaderboard(engine(url), task=task, search_ids=search_ids, models=models)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def comparison(url: str, task: str | None, search_ids: tuple[str, ...] | None,
               models: tuple[str, ...] | None) -> pd.DataFrame:
    """The comparison table (`seqarena.platform.comparison_table`) of the leaderboard under the current filters."""
    return comparison_table.comparison_table(engine(url), board(url, task, search_ids, models))


@st.cache_data(ttl=TTL_S, show_spinner=False)
def length_points(url: str, task: str, search_ids: tuple[str, ...] | None,
                  models: tuple[str, ...] | None) -> pd.DataFrame:
    """Length generalisation points for the current filters (`seqarena.platform.lengths.points_frame`)."""
    return lengths.points_frame(lengths.length_points(engine(url), task, search_ids=search_ids, models=models))


@st.cache_data(ttl=TTL_S, show_spinner=False)
def arm_trials(url: str, search_id: str, arm_key: str) -> pd.DataFrame:
    return leaderboard.arm_trials(engine(url), search_id, arm_key)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def ranked_trials(url: str, task: str, seq_len: int, search_ids: tuple[str, ...],
                  models: tuple[str, ...] | None) -> pd.DataFrame:
    return leaderboard.ranked_trials(engine(url), task, seq_len, search_ids, models)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def importance(url: str, search_id: str, arm_key: str) -> ArmImportance:
    """fANOVA importances of one arm's hyperparameters (`BadInput` when it has too few varied trials)."""
    return arm_importance(engine(url), search_id, arm_key)


def jobs_frame(url: str) -> pd.DataFrame:
    """The job queue, uncached: the page that changes jobs shows their state right after."""
    return jobs.jobs_frame(engine(url))


# ------------------------------------------------------------------------------------------- MLflow

def mlflow_ui() -> str:
    """The MLflow UI that run links open (`SEQARENA_MLFLOW_UI`, default the local `mlflow ui`)."""
    return os.environ.get(MLFLOW_UI_ENV, DEFAULT_MLFLOW_UI).rstrip("/")


def run_link(experiment_id: str | None, run_id: str | None) -> str | None:
    """The MLflow UI address of a run (links only: the MLflow server refuses to be framed)."""
    if not experiment_id or not run_id:
        return None
    return f"{mlflow_ui()}/#/experiments/{experiment_id}/runs/{run_id}"


@st.cache_resource(show_spinner=False)
def _client(uri: str) -> MlflowClient:
    return MlflowClient(uri)



@st.cache_data(ttl=CURVE_TTL_S, show_spinner=False)
def curves(uri: str, run_ids: tuple[str, ...], key: str) -> pd.DataFrame:
    """The `key` step metric of each run: columns run_id, step, value."""
    client = _client(uri)
    rows: list[dict[str, Any]] = []
    for run_id in run_ids:
        history = client.get_metric_history(run_id, key)
        rows.extend({"run_id": run_id, "step": metric.step, "value": metric.value} for metric in history)
    return pd.DataFrame(rows, columns=["run_id", "step", "value"])


@st.cache_data(ttl=CURVE_TTL_S, show_spinner=False)
def running_runs(uri: str, experiment_id: str, search_id: str, arm_key: str) -> pd.DataFrame:
    """The arm's trials still running (MLflow child runs in state RUNNING): trial id and run id."""
    runs = _client(uri).search_runs(
        [experiment_id], max_results=1000,
        filter_string=f"tags.`{SEARCH_TAG}` = '{_quoted(search_id)}' AND tags.arm = '{_quoted(arm_key)}' "
                      "AND attributes.status = 'RUNNING'")
    return pd.DataFrame([{"trial_id": run.data.tags.get(TRIAL_TAG), "mlflow_run_id": run.info.run_id,
                          "role": run.data.tags.get("role")} for run in runs],
                        columns=["trial_id", "mlflow_run_id", "role"])


def _quoted(value: str) -> str:
    return value.replace("'", "")



# ------------------------------------------------------------------------------------------- profiles

@st.cache_data(ttl=TTL_S, show_spinner=False)
def profile_runs(url: str) -> pd.DataFrame:
    """The `seqarena profile` runs, newest first (`profiles.profile_runs_frame`)."""
    return profiles.profile_runs_frame(engine(url))


@st.cache_data(ttl=TTL_S, show_spinner=False)
def profile_rows(url: str, run_id: str) -> pd.DataFrame:
    """One profile run's rows, one per (model, T) (`profiles.profile_rows_frame`)."""
    return profiles.profile_rows_frame(engine(url), run_id)
