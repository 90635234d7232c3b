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
that pair.

Tune copies the AWS credentials of the driver's environment into the `runtime_env` of every trial
actor (`ray.tune.execution.class_cache.ENV_VARS_TO_PROPAGATE`), and Ray's runtime-env agent writes
each runtime env in plain text into its log on every node (`logs/runtime_env_agent.log` of the Ray
session): the S3 secret key of `SEQARENA_STORAGE` was found there. `keep_credentials_home` takes
those names out of Tune's set, so a trial uses the credentials of its own node's environment (as the
Ray worker processes inherit them), never a copy shipped and logged by Ray.
`tests/unit/test_tune_adapter.py` and `tests/integration/test_search.py` check all three against the
pinned Ray (`tests/integration/test_secrets_at_rest.py` the last one end to end).
"""

from __future__ import annotations

from typing import Any

from ray.tune.search import Searcher, SearchGenerator

#: Credentials Tune would copy from the driver's environment into each trial actor's runtime env.
CREDENTIAL_ENVS = frozenset({"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SECURITY_TOKEN", "AWS_SESSION_TOKEN"})
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


def keep_credentials_home() -> None:
    """Stop Tune from copying the driver's AWS credentials into the trials' runtime env (see the module
    docstring); the set is changed in place, so every holder of it sees the change."""
    from ray.tune.execution import class_cache

    class_cache.ENV_VARS_TO_PROPAGATE.difference_update(CREDENTIAL_ENVS)
