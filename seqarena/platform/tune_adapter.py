"""The one thing seqarena needs of Ray Tune beyond its public hooks: reopening a restored search.

After a resume, `ArmSearcher` rebuilds its counters from the trials Tune restored (see
`seqarena.platform.arms`). Tune's `SearchGenerator` saved its own "finished" flag in the same
snapshot, so it may say "finished" while trials remain to hand out, and a finished generator never
asks its searcher again. Ray has no call to reopen it; its own save and restore pair
(`SearchGenerator.get_state` / `set_state`) carries the flag, and `reopen_generator` goes through
that pair. `tests/unit/test_tune_adapter.py` checks it against the pinned Ray.
"""

from __future__ import annotations

from typing import Any

from ray.tune.search import Searcher, SearchGenerator


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
