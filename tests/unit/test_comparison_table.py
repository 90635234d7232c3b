"""The comparison table (issue 19): one row per (model, T) of a task, its numbers checked by hand against the
seeded results (`tests/seed_results.py`), on the Leaderboard page (AppTest) and in its CSV."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from seqarena.dashboard.display import rounded, significant
from seqarena.dashboard.serve import APP
from seqarena.platform import database
from seqarena.platform.comparison_table import comparison_table, mixed_measurements
from seqarena.platform.leaderboard import leaderboard

from ..seed_results import Seeded, seed

UI = "http://127.0.0.1:5000"
STD_GRU_100 = math.sqrt((0.002 - 0.003) ** 2 + (0.004 - 0.003) ** 2)  # ddof = 1 over two seeds: 0.0014142


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    home = tmp_path_factory.mktemp("comparison_home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SEQARENA_HOME", str(home))
        for name in ("SEQARENA_DB_URL", "MLFLOW_TRACKING_URI", "SEQARENA_MLFLOW_UI", "SEQARENA_DASHBOARD_TOKEN"):
            patch.delenv(name, raising=False)
        yield seed()


@pytest.fixture(scope="module")
def table(seeded: Seeded) -> pd.DataFrame:
    engine = database.get_engine()
    return comparison_table(engine, leaderboard(engine, task="adding"))


def row(table: pd.DataFrame, model: str, seq_len: int) -> dict:
    found = table[(table["model"] == model) & (table["T"] == seq_len)]
    assert len(found) == 1
    return found.iloc[0].to_dict()


def test_one_row_per_model_and_T_in_leaderboard_order(table: pd.DataFrame) -> None:
    assert list(zip(table["T"], table["model"], strict=True)) == [
        (100, "gru"), (100, "lstm"), (100, "rnn"), (1000, "lstm"), (1000, "gru"), (1000, "rnn")]


def test_the_winner_s_numbers_by_hand(table: pd.DataFrame, seeded: Seeded) -> None:
    gru = row(table, "gru", 100)
    assert gru["test mse mean"] == pytest.approx(0.003) and gru["test mse std"] == pytest.approx(STD_GRU_100)
    assert (gru["n"], gru["solved"], gru["steps to solve"]) == (2, "2 / 2", 25.0)  # first under 0.0167: 20, 30
    assert (gru["params"], gru["peak memory (MB)"], gru["training seq/s"], gru["inference seq/s"]) == \
        (10_000, 4.0, 200.0, 600.0)
    assert (gru["device"], gru["implementation"], gru["timing"]) == ("cpu", "torch-cpu", "steady state")
    assert (gru["trials"], gru["stopped by ASHA"], gru["trial_id"]) == (3, 0, "gru100_a")
    assert gru["mlflow_run_id"] == seeded.runs["gru100_a"]


def test_unsolved_arms_say_0_of_n_and_where_their_cost_was_measured(table: pd.DataFrame) -> None:
    lstm = row(table, "lstm", 100)
    assert (lstm["solved"], lstm["n"]) == ("0 / 1", 1) and pd.isna(lstm["steps to solve"])
    assert pd.isna(lstm["test mse std"])  # one seed: no spread
    assert (lstm["device"], lstm["implementation"], lstm["timing"]) == ("cuda", "torch-cudnn", "may include warm-up")
    rnn = row(table, "rnn", 100)
    assert (rnn["device"], rnn["timing"]) == ("not recorded", "not recorded")


def test_trials_asha_stopped_are_counted(table: pd.DataFrame) -> None:
    rnn = row(table, "rnn", 1000)  # one diverged trial, one stopped at 0.166 (ranked at the step it stopped)
    assert (rnn["trials"], rnn["stopped by ASHA"], rnn["test mse mean"], rnn["solved"]) == (2, 1, 0.166, "0 / 1")


def test_numbers_are_shown_to_four_significant_digits() -> None:
    assert [significant(v) for v in (0.0014142, 22013.7, 0.002, 4.0, 0.0)] == [0.001414, 22010.0, 0.002, 4.0, 0.0]
    frame = rounded(pd.DataFrame({"a": [0.123456, None], "b": ["x", "y"], "n": [1, 2]}))
    assert frame["a"].iloc[0] == 0.1235 and pd.isna(frame["a"].iloc[1]) and list(frame["n"]) == [1, 2]


def test_the_leaderboard_page_shows_the_table_sortable_linked_and_as_csv(seeded: Seeded,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    app = AppTest.from_file(str(APP), default_timeout=60)
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    shown = next(frame.value for frame in app.dataframe if "peak memory (MB)" in frame.value.columns)
    gru = shown[(shown["model"] == "gru") & (shown["T"] == 100)].iloc[0]
    assert gru["test mse std"] == 0.001414  # 4 significant digits on screen
    experiment = seeded.experiments["adding-study"]
    assert gru["MLflow run"] == f"{UI}/#/experiments/{experiment}/runs/{seeded.runs['gru100_a']}"
    assert "stopped early by ASHA" in " ".join(c.value for c in app.caption)
    assert any("Cost not measured alike (devices cpu: gru T=100; cuda: lstm T=100;" in w.value for w in app.warning)
    button = next(b for b in app.get("download_button") if "comparison" in b.proto.label)
    assert "comparison table" in button.proto.label


def test_an_empty_board_gives_an_empty_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQARENA_HOME", str(tmp_path))
    monkeypatch.delenv("SEQARENA_DB_URL", raising=False)
    assert comparison_table(database.get_engine(), []).empty


def test_mixed_measurements_flag_devices_and_a_model_s_own_implementations() -> None:
    """Models through different implementations are what a comparison compares; one model through two, or rows
    on two devices, are not alike."""
    frame = pd.DataFrame({"model": ["gru", "gru", "lem"], "T": [50, 100, 50], "trial_id": ["a", "b", "c"],
                          "device": ["cpu", "cpu", "cpu"], "implementation": ["torch-cpu", "torch-cpu", "fused-cpu"]})
    assert mixed_measurements(frame) is None
    frame.loc[1, "implementation"] = "eager"
    assert mixed_measurements(frame) == "gru through torch-cpu at T=50, eager at T=100"
    frame.loc[2, "device"] = "cuda"
    assert mixed_measurements(frame) == ("devices cpu: gru T=50, gru T=100; cuda: lem T=50; "
                                         "gru through torch-cpu at T=50, eager at T=100")
