"""The dashboard's statistics: intervals on the leaderboard page, the Compare page, importance on the trials page.

On the seeded results of `tests/seed_results.py` (adding, lower is better): gru at T=100 ran seeds 1 (0.002)
and 2 (0.004); lstm at T=100 seed 1 (0.05); at T=1000 gru 0.09 and lstm 0.03, both seed 1.
"""

from __future__ import annotations

import pytest

from .test_dashboard import figures, frame_with, open_page, page_text, seeded, seeded_home, traces, values  # noqa: F401 -- fixtures, used by name


@pytest.mark.usefixtures("seeded")
def test_the_leaderboard_page_shows_each_arm_s_interval_and_n() -> None:
    app = open_page()
    board = next(m.value for m in app.markdown if "seqarena-board" in m.value)
    assert 'title="3 trials; 95 % CI 0.003 [0.002, 0.004] n = 2;' in board  # each cell's tooltip
    intervals = frame_with(app, "T = 1000").set_index("model")
    # resampling {0.002, 0.004}: both 0.002 with probability ¼ > 2.5 %: the 95 % interval is the range
    assert intervals.loc["gru", "T = 100"] == "0.003 [0.002, 0.004] n = 2"
    assert intervals.loc["lstm", "T = 1000"] == "0.03 [0.03, 0.03] n = 1"
    assert intervals.loc["rnn", "T = 1000"] == "0.166 [0.166, 0.166] n = 1"


@pytest.mark.usefixtures("seeded")
def test_the_compare_page_pairs_two_models_by_seed() -> None:
    app = open_page("compare.py")
    assert (app.selectbox(key="compare_a").value, app.selectbox(key="compare_b").value) == ("gru", "lstm")
    table = frame_with(app, "gru − lstm (paired)").set_index("T")
    assert table.loc[100, "gru"] == "0.003 [0.002, 0.004] n = 2" and table.loc[100, "lstm"] == "0.05 [0.05, 0.05] n = 1"
    # one shared seed (1): difference 0.002 − 0.05; the exact sign-flip p over 2 assignments is 1, no model is better
    assert table.loc[100, "gru − lstm (paired)"] == "-0.048 [-0.048, -0.048] n = 1"
    assert (table.loc[100, "p"], table.loc[100, "better"]) == ("1", "—")
    assert table.loc[1000, "gru − lstm (paired)"] == "0.06 [0.06, 0.06] n = 1"
    difference = traces(figures(app)[0])["gru − lstm"]
    assert difference == ([100.0, 1000.0], pytest.approx([-0.048, 0.06]))
    app.selectbox(key="compare_b").select("rnn").run()
    table = frame_with(app, "gru − rnn (paired)").set_index("T")
    assert table.loc[100, "gru − rnn (paired)"] == "-0.158 [-0.158, -0.158] n = 1"


@pytest.mark.usefixtures("seeded")
def test_the_trials_page_shows_hyperparameter_importance() -> None:
    app = open_page("trials.py")
    bars = next(chart for chart in figures(app) if chart["data"][0]["type"] == "bar")
    assert set(bars["data"][0]["y"]) == {"learning_rate", "hidden_size"}
    assert sum(values(bars["data"][0]["x"])) == pytest.approx(1.0)
    assert figures(app)[-1]["data"][0]["type"] == "parcoords"
    app.selectbox(key="trials_arm").select(next(option for option in app.selectbox(key="trials_arm").options
                                                 if option.startswith("adding/T=100/lstm"))).run()
    assert "Hyperparameter importance: needs an arm with at least 2 ranked search trials" in page_text(app)
