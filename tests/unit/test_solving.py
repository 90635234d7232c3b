"""What "solved" means (issue 17 §1, §3): each task's threshold, solved k of n seeds, steps to solve,
max T solved, the area under metric vs T, and arms that ran out of memory kept on the board, marked.

The leaderboard tests write real rows to SQLite through the platform's own API; every expected number
is worked out by hand in the test.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import pytest
from sqlalchemy import Engine

from seqarena import tasks
from seqarena.errors import BadInput
from seqarena.platform import searches
from seqarena.platform.leaderboard import ArmBest, board_frame, leaderboard, table, to_json
from seqarena.platform.solving import SolveStats, reach, spec_fraction, steps_to_solve
from seqarena.tasks.adding import Adding
from seqarena.tasks.copy import Copy
from seqarena.tasks.ecg import HeartbeatECG
from seqarena.tasks.smnist import SequentialMNIST

ADD = 1.0 / 6.0  # the adding problem's trivial MSE; solved below a tenth of it: 1/60 = 0.016667


def curve(*points: tuple[int, float]) -> list[dict[str, float]]:
    return [{"step": float(step), "train_loss": value, "val_mse": value} for step, value in points]


def arm(key: str) -> dict[str, Any]:
    task, t, model = key.split("/")
    return {"task": task, "seq_len": int(t[2:]), "model": model, "key": key, "metric_name": "mse",
            "higher_is_better": False, "baseline": ADD}


def run(trial_id: str, metric: float | None, lr: float, *, role: str = "search", seed: int = 0,
        status: str = "completed", steps: int = 3000, points: list[dict[str, float]] | None = None) -> dict[str, Any]:
    return {"trial_id": trial_id, "seed": seed, "hparams": {"lr": lr}, "role": role, "status": status,
            "metric": metric, "steps": steps, "curve": points or []}


def record(engine: Engine, trials: dict[str, list[dict[str, Any]]]) -> str:
    search_id = searches.create_search(engine, name="solve", spec_yaml="name: solve\n", spec_hash="s",
                                       mlflow_experiment_id="1", arms=[arm(key) for key in trials])
    for key, rows in trials.items():
        for row in rows:
            assert searches.record_trial(engine, search_id, key, row)
    return search_id


# ------------------------------------------------------------------------------------ each task's threshold

def test_every_task_says_what_solves_it_with_its_reason() -> None:
    for name in tasks.names():
        criterion = tasks.task_class(name).solved_when
        assert isinstance(criterion, tasks.SolvedWhen) and len(criterion.source) > 40, name


def test_thresholds_follow_each_task_s_rule() -> None:
    assert Adding.solved_when.threshold(ADD) == pytest.approx(1 / 60)
    assert Adding.solved_when.met(0.0166, ADD, False) and not Adding.solved_when.met(0.0167, ADD, False)
    copy_baseline = 10 * math.log(8) / 1020  # T = 1000: 0.020387
    assert Copy.solved_when.threshold(copy_baseline) == pytest.approx(0.0020387, abs=1e-7)
    assert SequentialMNIST.solved_when.met(0.98, 0.1135, True)
    assert not SequentialMNIST.solved_when.met(0.979, 0.1135, True)
    assert HeartbeatECG.solved_when.threshold(0.9) == pytest.approx(0.95)  # half of the majority class's errors
    assert not Adding.solved_when.met(None, ADD, False)


# ------------------------------------------------------------------------------------------- steps to solve

def test_steps_to_solve_is_the_first_validation_point_under_the_threshold() -> None:
    points = curve((100, 0.17), (200, 0.05), (300, 0.012), (400, 0.02), (500, 0.001))
    assert steps_to_solve(points, "mse", Adding.solved_when, ADD, False) == 300  # the rebound at 400 changes nothing
    assert steps_to_solve(curve((100, 0.17), (200, 0.0167)), "mse", Adding.solved_when, ADD, False) is None
    assert steps_to_solve(None, "mse", Adding.solved_when, ADD, False) is None
    accuracy = [{"step": 50.0, "val_accuracy": 0.5}, {"step": 100.0, "val_accuracy": 0.981}]
    assert steps_to_solve(accuracy, "accuracy", SequentialMNIST.solved_when, 0.11, True) == 100


SOLVED = "adding/T=100/cornn"
UNSOLVED = "adding/T=100/rnn"


def solve_study(engine: Engine) -> str:
    """cornn: the winner lr=1 has five seeds: s1 (0.005, val under 1/60 at 1200), r1 (0.010, at 2400),
    r2 (0.166, on the plateau), r3 (diverged), r4 (0.002, at 1800): solved 3 of 5, steps 1200, 1800, 2400.
    rnn: three seeds of lr=1 at 0.16-0.168, none under 1/60 within 2000 steps."""
    plateau = curve((1000, 0.17), (2000, 0.166))
    return record(engine, {
        SOLVED: [run("s1", 0.005, 1, points=curve((600, 0.17), (1200, 0.015), (1800, 0.004))),
                 run("s2", 0.15, 2, points=plateau),
                 run("r1", 0.010, 1, role="repeat", seed=1, points=curve((1200, 0.16), (2400, 0.009))),
                 run("r2", 0.166, 1, role="repeat", seed=2, points=plateau),
                 run("r3", None, 1, role="repeat", seed=3, status="diverged", steps=400),
                 run("r4", 0.002, 1, role="repeat", seed=4, points=curve((1200, 0.1), (1800, 0.01)))],
        UNSOLVED: [run("u1", 0.160, 1, steps=2000, points=plateau), run("u2", 0.17, 2, steps=2000),
                   run("u3", 0.165, 1, role="repeat", seed=1, steps=2000, points=plateau),
                   run("u4", 0.168, 1, role="repeat", seed=2, steps=2000, points=plateau)],
    })


def test_solved_k_of_n_seeds_and_steps_to_solve_on_the_leaderboard(engine: Engine) -> None:
    board = {row.key: row for row in leaderboard(engine, search_id=solve_study(engine))}
    solve = board[SOLVED].solve
    assert solve is not None
    assert (solve.solved, solve.seeds, solve.budget, solve.steps) == (3, 5, 3000, (1200, 1800, 2400))
    assert (solve.steps_median, solve.steps_range) == (1800, (1200, 2400))
    assert solve.rule == "mse < 0.01667"
    assert solve.cell() == "3 / 5 in 1800 (1200–2400) steps"
    assert board[SOLVED].n == 4  # the mean is over the four seeds with a metric; r3 diverged
    payload = {row["key"]: row for row in to_json(list(board.values()))}
    assert payload[SOLVED]["solve"]["steps_median"] == 1800 and payload[SOLVED]["solve"]["solved"] == 3
    frame = board_frame(list(board.values())).set_index("model")
    assert (frame.loc["cornn", "solved"], frame.loc["cornn", "seeds"], frame.loc["cornn", "steps_to_solve_min"]) == (
        3, 5, 1200)


def test_an_arm_no_seed_solved_reads_zero_of_n_within_its_budget(engine: Engine) -> None:
    board = {row.key: row for row in leaderboard(engine, search_id=solve_study(engine))}
    rnn = board[UNSOLVED]
    assert rnn.solve is not None and rnn.solve.cell() == "0 / 3 within 2000 steps"
    assert rnn.solve.steps == () and rnn.solve.steps_median is None
    assert rnn.beats_baseline is False  # 0.1643 is not under 0.15
    assert to_json([rnn])[0]["solve"]["cell"] == "0 / 3 within 2000 steps"


# ------------------------------------------------------------------------------------------ how far in T

def test_arms_that_ran_out_of_memory_stay_on_the_board_marked(engine: Engine) -> None:
    search_id = record(engine, {"adding/T=100/lstm": [run("a", 0.01, 1)],
                                "adding/T=5000/lstm": [run("b", None, 1, status="oom", steps=0),
                                                       run("c", None, 2, status="oom", steps=0),
                                                       run("d", None, 3, status="diverged", steps=10)]})
    board = {row.seq_len: row for row in leaderboard(engine, search_id=search_id)}
    assert (board[5000].mean, board[5000].failure, board[5000].solve) == (None, "oom", None)
    assert board[100].failure is None
    assert table(list(board.values())).loc["lstm", 5000] == "oom"
    assert reach(list(board.values()))[0].marked == ("oom at T = 5000",)


def arm_best(seq_len: int, mean: float | None, solved: int = 0, seeds: int = 3, model: str = "lstm",
             failure: str | None = None) -> ArmBest:
    """A leaderboard row of the adding problem, as `leaderboard` returns it."""
    stats = None if mean is None else SolveStats(solved=solved, seeds=seeds, budget=1000, threshold=1 / 60,
                                                  rule="mse < 0.01667", steps=())
    return ArmBest(search_id="s", key=f"adding/T={seq_len}/{model}", task="adding", seq_len=seq_len, model=model,
                   metric_name="mse", higher_is_better=False, baseline=ADD, metric=mean, mean=mean, std=None,
                   n=seeds, trial_id=None, hparams=None, mlflow_run_id=None, params=None, train_seq_per_s=None,
                   infer_seq_per_s=None, peak_mem_mb=None, trials=seeds, beats_baseline=False, solve=stats,
                   failure=failure)


def test_max_t_solved_takes_any_seed_or_the_spec_s_fraction() -> None:
    rows = [arm_best(100, 0.01, solved=3), arm_best(1000, 0.05, solved=1), arm_best(10000, 0.16, solved=0),
            arm_best(100, 0.001, solved=2, model="gru"), arm_best(1000, None, model="gru", failure="oom")]
    lstm, gru = (line for line in sorted(reach(rows), key=lambda line: line.model, reverse=True))
    assert (lstm.model, lstm.max_t_solved, lstm.seq_lens) == ("lstm", 1000, (100, 1000, 10000))
    assert {line.model: line.max_t_solved for line in reach(rows, fraction=0.5)} == {"lstm": 100, "gru": 100}
    assert {line.model: line.max_t_solved for line in reach(rows, fraction=1.0)} == {"lstm": 100, "gru": None}
    assert gru.marked == ("oom at T = 1000",)
    with pytest.raises(BadInput, match="solved_fraction"):
        reach(rows, fraction=1.5)


def test_area_under_metric_vs_log_t() -> None:
    rows = [arm_best(100, 0.01), arm_best(1000, 0.05), arm_best(10000, 0.16),
            arm_best(100, 0.002, model="gru"), arm_best(1000, None, model="gru", failure="oom"),
            arm_best(100, 0.03, model="rnn"), dataclasses.replace(arm_best(10000, None, model="rnn"), solve=None)]
    areas = {line.model: line.auc for line in reach(rows)}
    # lstm: trapezoids over log10 T = 2, 3, 4: ((0.01 + 0.05) / 2 + (0.05 + 0.16) / 2) / 2 = 0.0675
    assert areas["lstm"] == pytest.approx(0.0675)
    # gru: out of memory at T = 1000 counts at the baseline: (0.002 + 1/6) / 2
    assert areas["gru"] == pytest.approx((0.002 + ADD) / 2)
    # rnn: T = 10000 never ran (no failure recorded): one point left, its metric
    assert areas["rnn"] == pytest.approx(0.03)


def test_the_metric_vs_t_figure_marks_the_arms_without_a_result() -> None:
    from seqarena.dashboard.figures import versus_seq_len

    rows = [arm_best(100, 0.01), arm_best(5000, None, failure="oom")]
    every = board_frame(rows)
    figure = versus_seq_len(every[every["mean"].notna()], "mean", "t", "mse", marked=every[every["failure"].notna()])
    marked = next(trace for trace in figure.data if trace.name == "lstm" and trace.mode == "markers+text")
    assert (list(marked.x), list(marked.y), list(marked.text)) == ([5000], [ADD], ["lstm: oom at T = 5000"])
    assert [trace.name for trace in figure.data if trace.showlegend is not False] == ["lstm"]  # one legend entry


# ---------------------------------------------------------------------------------- the command line

def test_seqarena_leaderboard_prints_k_of_n_and_how_far_in_t(tmp_path: Any, monkeypatch: pytest.MonkeyPatch,
                                                              run_cli: Any) -> None:
    monkeypatch.setenv("SEQARENA_HOME", str(tmp_path))
    monkeypatch.delenv("SEQARENA_DB_URL", raising=False)
    from seqarena.platform import database

    engine = database.get_engine()
    search_id = solve_study(engine)
    code, out, _ = run_cli(["leaderboard", "--task", "adding"])
    assert code == 0
    assert "3 / 5 in 1800 (1200–2400) steps" in out and "0 / 3 within 2000 steps" in out
    assert "#1 of 1" in out  # cornn's winner: the search's best, the one configuration re-run
    code, out, _ = run_cli(["leaderboard", "--task", "adding", "--search", search_id, "--json"])
    rows = {row["model"]: row for row in json.loads(out)}
    assert rows["cornn"]["solve"]["cell"] == "3 / 5 in 1800 (1200–2400) steps"
    assert rows["cornn"]["reach"]["max_t_solved"] == 100 and rows["rnn"]["reach"]["max_t_solved"] is None
    # 3 of 5 seeds is under a fraction of 0.7: T = 100 no longer counts for cornn
    code, out, _ = run_cli(["leaderboard", "--task", "adding", "--json", "--solved-fraction", "0.7"])
    assert {row["model"]: row["reach"]["max_t_solved"] for row in json.loads(out)} == {"cornn": None, "rnn": None}


def test_a_search_s_spec_sets_the_fraction_of_seeds_for_max_t_solved() -> None:
    assert spec_fraction("name: a\nsolved_fraction: 0.5\n") == 0.5
    assert spec_fraction("name: a\n") == 0.0 and spec_fraction(None) == 0.0
