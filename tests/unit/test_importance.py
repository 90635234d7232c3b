"""Hyperparameter importance of an arm from its recorded trials (Optuna's fANOVA on a rebuilt study)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from seqarena.errors import BadInput
from seqarena.platform import database, searches
from seqarena.platform.importance import arm_importance

KEY = "adding/T=100/lstm"
SPEC = "name: imp\ntask: adding\nseq_lens: [100]\nmodels: [lstm]\n"  # lstm searches hidden_size and lr (log)
LRS = [1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 3e-4, 7e-4, 3e-3, 7e-3, 1.5e-4]
HIDDEN = [64, 128, 256, 256, 64, 128, 128, 256, 64, 64, 256, 128]  # unrelated to the order of lr


def _engine(home: Path, spec_yaml: str, metric_of) -> tuple[Engine, str]:
    engine = database.get_engine()
    arm = {"task": "adding", "seq_len": 100, "model": "lstm", "key": KEY, "metric_name": "mse",
           "higher_is_better": False, "baseline": 0.167}
    search_id = searches.create_search(engine, name="imp", spec_yaml=spec_yaml, spec_hash="h",
                                       mlflow_experiment_id="1", arms=[arm])
    for i, (lr, hidden) in enumerate(zip(LRS, HIDDEN, strict=True)):
        searches.record_trial(engine, search_id, KEY, {
            "trial_id": f"t{i}", "seed": 0, "role": "search", "status": "completed", "steps": 10,
            "hparams": {"lr": lr, "hidden_size": hidden, "num_layers": 1}, "metric": metric_of(lr, hidden)})
    searches.record_trial(engine, search_id, KEY, {  # neither a failed trial nor a repeat is evaluated
        "trial_id": "bad", "seed": 0, "role": "search", "status": "diverged", "steps": 10, "metric": None,
        "hparams": {"lr": 5e-3, "hidden_size": 64, "num_layers": 1}})
    return engine, search_id


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("SEQARENA_HOME", str(tmp_path))
    monkeypatch.delenv("SEQARENA_DB_URL", raising=False)
    yield tmp_path
    database.get_engine().dispose()


def test_the_parameter_that_decides_the_metric_is_the_most_important(home: Path) -> None:
    engine, search_id = _engine(home, SPEC, lambda lr, hidden: 0.01 * (math.log10(lr) + 5) ** 2)
    found = arm_importance(engine, search_id, KEY)
    assert found.n_trials == 12 and found.distributions == "spec"
    shares = {param.name: param.importance for param in found.params}
    assert set(shares) == {"lr", "hidden_size"}  # num_layers never varied
    assert shares["lr"] > 0.8 > shares["hidden_size"] and sum(shares.values()) == pytest.approx(1.0)
    assert found.params[0].name == "lr"


def test_with_an_unreadable_spec_the_distributions_come_from_the_values(home: Path) -> None:
    engine, search_id = _engine(home, "name: imp\n", lambda lr, hidden: {64: 0.15, 128: 0.08, 256: 0.01}[hidden])
    found = arm_importance(engine, search_id, KEY)
    assert found.distributions == "recorded values"
    shares = {param.name: param.importance for param in found.params}
    assert shares["hidden_size"] > 0.8 > shares["lr"]


def test_importance_cli(home: Path, run_cli) -> None:
    _engine(home, SPEC, lambda lr, hidden: 0.01 * (math.log10(lr) + 5) ** 2)
    code, out, _ = run_cli(["importance", "--task", "adding", "--seq-len", "100", "--model", "lstm", "--json"])
    assert code == 0
    found = json.loads(out)
    assert found["key"] == KEY and found["n_trials"] == 12 and found["params"][0]["name"] == "lr"
    code, out, _ = run_cli(["importance", "--task", "adding", "--seq-len", "100", "--model", "lstm"])
    assert code == 0 and "lr" in out and "12 search trials" in out
    code, _, err = run_cli(["importance", "--task", "adding", "--seq-len", "200", "--model", "lstm"])
    assert code == 2 and err == "error: seq_len: got 200; allowed: one of 100\n"
    code, _, err = run_cli(["importance", "--task", "adding", "--seq-len", "100", "--model", "gru"])
    assert code == 2 and err == "error: model: got 'gru'; allowed: one of lstm\n"


def test_an_arm_with_one_ranked_trial_is_refused(home: Path) -> None:
    engine, search_id = _engine(home, SPEC, lambda lr, hidden: None if lr != 1e-4 else 0.1)
    with pytest.raises(BadInput, match="at least 2 ranked search trials"):
        arm_importance(engine, search_id, KEY)


def test_an_arm_whose_trials_all_scored_alike_is_refused(home: Path) -> None:
    engine, search_id = _engine(home, SPEC, lambda lr, hidden: 0.1)  # fANOVA has no variance to share out
    with pytest.raises(BadInput, match="1 distinct metric values"):
        arm_importance(engine, search_id, KEY)
