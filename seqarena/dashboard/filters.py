"""The sidebar filters every page shares: task, searches and models.

The entrypoint (`app.py`) draws them before it runs the chosen page, so a choice stays put when
the researcher moves between pages; pages read it with `current()`.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from seqarena.dashboard import data
from seqarena.platform.leaderboard import ArmBest, SearchInfo

_KEY = "seqarena_filters"


@dataclass(frozen=True)
class Filters:
    """The current choice. `search_ids` None: every search (each arm from its latest search)."""

    url: str
    task: str | None
    search_ids: tuple[str, ...] | None
    models: tuple[str, ...] | None
    searches: tuple[SearchInfo, ...]

    def experiment_of(self, search_id: str) -> str | None:
        """The MLflow experiment id of a search (for run links)."""
        return next((s.mlflow_experiment_id for s in self.searches if s.id == search_id), None)

    def search(self, search_id: str) -> SearchInfo | None:
        return next((s for s in self.searches if s.id == search_id), None)

    def board(self) -> list[ArmBest]:
        """The leaderboard rows (one per arm, aggregated in SQL, cached) under these filters."""
        return data.board(self.url, self.task, self.search_ids, self.models)


def sidebar() -> Filters:
    """Draw the filters in the sidebar and remember the choice for the page."""
    url = data.database_url()
    found = data.options(url)
    with st.sidebar:
        st.header("Filters")
        task = st.selectbox("Task", found.tasks, key="filter_task", index=0 if found.tasks else None,
                            placeholder="no results yet")
        searches = [s for s in found.searches if task in found.search_tasks.get(s.id, ())]
        labels = {s.label: s.id for s in searches}
        chosen = st.multiselect("Searches", list(labels), key="filter_searches",
                                placeholder="all (each arm from its latest search)")
        models = found.models.get(task, ()) if task else ()
        chosen_models = st.multiselect("Models", list(models), key="filter_models", placeholder="all models")
    current = Filters(url=url, task=task, search_ids=tuple(labels[c] for c in chosen if c in labels) or None,
                      models=tuple(chosen_models) or None, searches=found.searches)
    st.session_state[_KEY] = current
    return current


def current() -> Filters:
    """The filters the sidebar set in this run (drawn now if the page runs on its own)."""
    found = st.session_state.get(_KEY)
    return found if isinstance(found, Filters) else sidebar()


def no_results() -> None:
    st.info("No search results yet. Run `seqarena demo` (or `seqarena run SPEC`) and they appear here.")
