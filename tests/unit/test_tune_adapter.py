"""The Ray Tune adapter against the pinned Ray: a finished search generator is reopened."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import pytest
from ray import tune
from ray.tune.search import Searcher, SearchGenerator

from seqarena.platform import tune_adapter


class Finished(Searcher):
    """A searcher with nothing left to hand out."""

    def suggest(self, trial_id: str) -> str:
        return Searcher.FINISHED


def test_a_generator_that_finished_asks_its_searcher_again_after_reopening() -> None:
    searcher = Finished()
    generator = SearchGenerator(searcher)
    generator.add_configurations([tune.Experiment("search", run=lambda config: None, num_samples=10)])
    assert generator.is_finished() is False
    assert generator.next_trial() is None and generator.is_finished() is True  # the searcher said FINISHED
    controller = SimpleNamespace(search_alg=generator)  # TuneController's public `search_alg`
    assert tune_adapter.searcher_of(controller) is searcher
    tune_adapter.reopen_generator(controller)
    assert generator.is_finished() is False
    tune_adapter.reopen_generator(controller)  # reopening an open generator changes nothing
    assert generator.is_finished() is False and generator.get_state()["counter"] == 0


def test_a_controller_without_a_search_generator_has_no_searcher() -> None:
    assert tune_adapter.searcher_of(SimpleNamespace(search_alg=None)) is None
    assert tune_adapter.searcher_of(object()) is None


def test_tune_no_longer_ships_the_drivers_aws_credentials_to_its_trials(monkeypatch: pytest.MonkeyPatch) -> None:
    from ray.tune.execution import class_cache

    # what the pinned Ray ships, read in a new interpreter: a search run earlier in this process already
    # took the names out of the (process-wide) set
    shown = subprocess.run([sys.executable, "-c", "from ray.tune.execution import class_cache; "
                            "print(' '.join(sorted(class_cache.ENV_VARS_TO_PROPAGATE)))"],
                           capture_output=True, text=True, check=True, timeout=300).stdout.split()
    assert set(shown) >= tune_adapter.CREDENTIAL_ENVS
    monkeypatch.setattr(class_cache, "ENV_VARS_TO_PROPAGATE", set(shown))
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3-secret-of-the-driver")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIADRIVER")
    tune_adapter.keep_credentials_home()
    assert not tune_adapter.CREDENTIAL_ENVS & class_cache.ENV_VARS_TO_PROPAGATE
    cache = class_cache._ActorClassCache()
    options = cache.get(type("Trainable", (), {}))._default_options  # the runtime env Ray would create
    assert "s3-secret-of-the-driver" not in repr(options) and "AKIADRIVER" not in repr(options)
