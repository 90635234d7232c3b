"""`seqarena compare`: two models per T, seed by seed, on trials written to a real SQLite database."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from seqarena.platform import database, searches
from seqarena.platform.comparison import better, compare, note

KEYS = ("adding/T=100/cornn", "adding/T=100/lstm", "adding/T=200/cornn", "adding/T=200/lstm", "adding/T=300/cornn",
        "adding/T=300/lstm")


def _trial(trial_id: str, metric: float | None, lr: float, seed: int, role: str = "search",
           status: str = "completed") -> dict[str, Any]:
    return {"trial_id": trial_id, "seed": seed, "hparams": {"lr": lr}, "role": role, "status": status,
            "metric": metric, "steps": 100}


TRIALS = {
    # cornn T=100: best configuration lr=1 (0.02, seed 0), repeats seeds 1-3: runs 0.02, 0.03, 0.01, 0.04 (mean 0.025)
    KEYS[0]: [_trial("c_a", 0.02, 1, 0), _trial("c_b", 0.09, 2, 0), _trial("c_r1", 0.03, 1, 1, "repeat"),
              _trial("c_r2", 0.01, 1, 2, "repeat"), _trial("c_r3", 0.04, 1, 3, "repeat"),
              _trial("c_r9", 0.001, 2, 5, "repeat")],  # a repeat of another configuration: not a run
    # lstm T=100: best lr=1 (0.10, seed 0), repeats seeds 1, 2 and 4: runs 0.10, 0.12, 0.08, 0.50 (mean 0.2)
    KEYS[1]: [_trial("l_a", 0.10, 1, 0), _trial("l_r1", 0.12, 1, 1, "repeat"), _trial("l_r2", 0.08, 1, 2, "repeat"),
              _trial("l_r4", 0.50, 1, 4, "repeat")],
    KEYS[2]: [_trial("c200", 0.15, 1, 0)],
    KEYS[3]: [_trial("l200", None, 1, 0, status="diverged")],
    # T=300: six shared seeds, cornn lower on each: exact p = 2 / 2^6 = 0.03125 < 0.05, cornn better
    KEYS[4]: [_trial("c300", 0.01, 1, 0), *(_trial(f"c300_{s}", 0.01 * (s + 1), 1, s, "repeat") for s in range(1, 6))],
    KEYS[5]: [_trial("l300", 0.05, 1, 0), *(_trial(f"l300_{s}", 0.05 + 0.01 * s, 1, s, "repeat") for s in range(1, 6))],
}


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    monkeypatch.setenv("SEQARENA_HOME", str(tmp_path))
    monkeypatch.delenv("SEQARENA_DB_URL", raising=False)
    engine = database.get_engine()
    arms = [{"task": "adding", "seq_len": int(key.split("/")[1][2:]), "model": key.split("/")[2], "key": key,
             "metric_name": "mse", "higher_is_better": False, "baseline": 0.167,
             "protocol": "janet" if key == KEYS[5] else "cornn"} for key in KEYS]
    search_id = searches.create_search(engine, name="pair", spec_yaml="name: pair\n", spec_hash="h",
                                       mlflow_experiment_id="1", arms=arms)
    for key, rows in TRIALS.items():
        for row in rows:
            searches.record_trial(engine, search_id, key, row)
    yield engine
    engine.dispose()


def test_paired_difference_over_the_shared_seeds(home: Engine) -> None:
    at_100, at_200, at_300 = compare(home, "adding", "cornn,lstm")
    assert at_100.seq_len == 100 and at_100.same_protocol
    assert (at_100.a.interval.mean, at_100.a.interval.n) == (pytest.approx(0.025), 4)
    assert (at_100.b.interval.mean, at_100.b.interval.n) == (pytest.approx(0.2), 4)
    paired = at_100.paired
    assert paired.seeds == (0, 1, 2)  # seed 3 only cornn ran, seed 4 only lstm
    # differences −0.08, −0.09, −0.07: all negative, so only all − and all + reach |mean| 0.08: p = 2 / 2^3
    assert paired.difference.mean == pytest.approx(-0.08) and paired.difference.n == 3
    assert (paired.p_value, paired.exact) == (pytest.approx(0.25), True)
    # each value alone fills a resample with probability 1/27 > 2.5 %: the 95 % interval is their range
    assert (paired.difference.low, paired.difference.high) == (pytest.approx(-0.09), pytest.approx(-0.07))
    assert at_200.paired is None and at_200.b.interval is None and at_200.a.interval.mean == 0.15
    # p = 0.25 is not significant at 95 %: no model is named better though every difference is negative
    assert better(at_100) is None
    assert at_300.paired.difference.n == 6 and at_300.paired.p_value == pytest.approx(2 / 64)
    assert at_300.paired.difference.mean == pytest.approx(-0.04)  # 0.01·(s+1) − (0.05 + 0.01·s) at every seed
    assert better(at_300) == "cornn"
    assert not at_300.same_protocol and note(at_300) == "different data protocols: same seeds, not the same data"
    assert (note(at_100), note(at_200)) == ("", "no ranked run of lstm")
    assert better(compare(home, "adding", "lstm,cornn", seq_len=300)[0]) == "cornn"


def test_compare_cli_json_and_table(home: Engine, run_cli) -> None:
    code, out, _ = run_cli(["compare", "--task", "adding", "--models", "cornn,lstm", "--json"])
    assert code == 0
    at_100, at_200, at_300 = json.loads(out)
    assert at_100["paired"]["difference"]["mean"] == pytest.approx(-0.08)
    assert at_100["paired"]["p_value"] == pytest.approx(0.25) and at_100["better"] is None
    assert at_300["better"] == "cornn" and at_300["paired"]["seeds"] == [0, 1, 2, 3, 4, 5]
    assert at_100["a"]["interval"]["n"] == 4 and at_200["paired"] is None and at_200["better"] is None
    code, out, _ = run_cli(["compare", "--task", "adding", "--models", "lstm,cornn", "--seq-len", "100"])
    assert code == 0
    assert "0.08 [0.07, 0.09] n = 3" in out  # lstm − cornn
    assert "0.025 [0.015, 0.035] n = 4" in out and "0.25" in out and "│ 200" not in out and "│ 300" not in out
    code, out, _ = run_cli(["compare", "--task", "adding", "--models", "cornn,lstm", "--seq-len", "200"])
    assert "no ranked run of lstm" in out


@pytest.mark.parametrize(("args", "message"), [
    (["--task", "adding", "--models", "cornn"], "error: models: got 'cornn'; allowed: two different model names"),
    (["--task", "adding", "--models", "cornn,cornn"], "error: models: got 'cornn,cornn'"),
    (["--task", "adding", "--models", "cornn,gru"], "error: models: got 'gru'; allowed: one of cornn, lstm"),
    (["--task", "copy", "--models", "cornn,lstm"], "error: task: got 'copy'; allowed: one of adding"),
    (["--task", "adding", "--models", "cornn,lstm", "--seq-len", "400"],
     "error: seq_len: got 400; allowed: one of 100, 200, 300"),
    (["--task", "adding", "--models", "cornn,lstm", "--level", "1.5"], "error: level: got 1.5"),
])
def test_bad_input_is_one_line_and_exit_2(home: Engine, run_cli, args: list[str], message: str) -> None:
    code, out, err = run_cli(["compare", *args])
    assert code == 2 and out == ""
    assert err.startswith(message) and err.count("\n") == 1


def test_leaderboard_shows_each_arm_s_interval_and_n(home: Engine, run_cli) -> None:
    code, out, _ = run_cli(["leaderboard", "--task", "adding"])
    assert code == 0 and "0.025 [0.015, 0.035] n = 4" in out and "0.15 [0.15, 0.15] n = 1" in out
    code, out, _ = run_cli(["leaderboard", "--task", "adding", "--json"])
    cornn = next(row for row in json.loads(out) if row["key"] == KEYS[0])
    assert cornn["interval"]["n"] == 4 and cornn["interval"]["low"] == pytest.approx(0.015)
    assert [run["seed"] for run in cornn["runs"]] == [0, 1, 2, 3]
