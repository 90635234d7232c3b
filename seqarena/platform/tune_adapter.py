"""What seqarena needs of Ray Tune beyond its public hooks: a longer wait before an actor is reused,
and reopening a restored search.

Trials reuse their actors (`reuse_actors=True`). A trial that Tune stops early (ASHA, or at
`max_t`) keeps running until its next report, which may come after its test evaluation; before a
cached actor takes the next trial, Tune waits `TUNE_FUNCTION_THREAD_TIMEOUT_S` (2 s by default)
for that thread to end, and past it fails the *next* trial without telling the callbacks or the
searcher, so that trial is never recorded. `worker_env` gives every trial process a wait long
enough for a stopped trial to reach its next report (Ray's documented variable, set through the
job's `runtime_env`).

After a resume, `ArmSearcher` rebuilds its counters from the trials Tune restored (see
`seqarena.platform.arms`). Tune's `SearchGenerator` saved its own "finished" flag in the same
snapshot, so it may say "finished" while trials remain to hand out, and a finished generator never
asks its searcher again. Ray has no call to reopen it; its own save and restore pair
(`SearchGenerator.get_state` / `set_state`) carries the flag, and `reopen_generator` goes through
that pair. `tests/unit/test_tune_adapter.py` and `tests/integration/test_search.py` check both
against the pinned Ray.
"""

from __future__ import annotations

from typing import Any

from ray.tune.search import Searcher, SearchGenerator

#: Seconds a reused trial actor waits for the previous trial's thread to end.
THREAD_TIMEOUT_S = 600


def worker_env() -> dict[str, str]:
    """Environment variables for every Ray worker of a search (`ray.init(runtime_env=...)`)."""
    return {"TUNE_FUNCTION_THREAD_TIMEOUT_S": str(THREAD_TIMEOUT_S)}


def searcher_of(tune_controller: Any) -> Searcher | None:
    """The searcher behind the controller's search algorithm (None when it has none)."""
    generator = getattr(tune_controller, "search_alg", None)
    return generator.searcher if isinstance(generator, SearchGenerator) else None


def reopen_generator(tune_controller: Any) -> None:
    """Let the controller's search generator ask its searcher for trials again."""
    generator = tune_controller.search_alg
    state = generator.get_state()
    if state["finished"]:
        generator.set_state({**state, "finished": False})
