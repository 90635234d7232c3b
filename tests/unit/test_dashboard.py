"""The dashboard's pages, run headless by Streamlit's AppTest against a seeded database and MLflow store.

The seed (`tests/seed_results.py`) holds known trials; every expected number below follows from
its docstring by hand.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from seqarena import cells
from seqarena.dashboard.figures import model_colors
from seqarena.dashboard.filters import Filters
from seqarena.dashboard.leaderboard import board_html
from seqarena.dashboard.pareto import pareto_front
from seqarena.dashboard.safety import redact
from seqarena.dashboard.serve import APP
from seqarena.platform import database, jobs, searches
from seqarena.platform.leaderboard import leaderboard, model_ranks

from ..seed_results import ADDING_SPEC, Seeded, seed

UI = "http://127.0.0.1:5000"


@pytest.fixture(scope="module")
def seeded_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Seeded]]:
    home = tmp_path_factory.mktemp("dashboard_home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SEQARENA_HOME", str(home))
        patch.delenv("SEQARENA_DB_URL", raising=False)
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        yield home, seed()


@pytest.fixture
def seeded(seeded_home: tuple[Path, Seeded], monkeypatch: pytest.MonkeyPatch) -> Seeded:
    home, ids = seeded_home
    monkeypatch.setenv("SEQARENA_HOME", str(home))
    for name in ("SEQARENA_DB_URL", "MLFLOW_TRACKING_URI", "SEQARENA_MLFLOW_UI", "SEQARENA_DASHBOARD_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return ids


@pytest.fixture
def empty_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SEQARENA_HOME", str(tmp_path))
    for name in ("SEQARENA_DB_URL", "MLFLOW_TRACKING_URI", "SEQARENA_DASHBOARD_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def open_page(page: str | None = None, **state: Any) -> AppTest:
    app = AppTest.from_file(str(APP), default_timeout=60)
    app.run()
    for key, value in state.items():
        app.session_state[key] = value
    if page is not None:
        app.switch_page(page)
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def figures(app: AppTest) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in app.get("plotly_chart")]


def values(array: Any) -> list[float]:
    """A Plotly array as numbers (Plotly 6+ sends numeric arrays as base64 typed arrays)."""
    if isinstance(array, dict) and "bdata" in array:
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=np.dtype(array["dtype"])).tolist()
    return list(array)


def traces(figure: dict) -> dict[str, tuple[list[float], list[float]]]:
    return {trace["name"]: (values(trace["x"]), values(trace["y"])) for trace in figure["data"]}


def board_cells(app: AppTest) -> dict[str, list[str]]:
    """The leaderboard table as row label -> cell texts (tags stripped), from its HTML."""
    table = next(m.value for m in app.markdown if "seqarena-board" in m.value)
    rows = {}
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", table, flags=re.S):
        texts = [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)]
        rows[texts[0]] = texts[1:]
    return rows


def frame_with(app: AppTest, column: str) -> pd.DataFrame:
    """The first dataframe on the page that has `column` (AppTest's dataframes carry no key)."""
    return next(frame.value for frame in app.dataframe if column in frame.value.columns)


def page_text(app: AppTest) -> str:
    parts = [e.value for kind in ("markdown", "caption", "error", "success", "info", "title") for e in app.get(kind)]
    return "\n".join(str(part) for part in parts)


# ---------------------------------------------------------------------------------------- leaderboard

def test_the_leaderboard_shows_each_T_s_winner_with_its_numbers_baseline_and_run_link(seeded: Seeded) -> None:
    app = open_page()
    cells_ = board_cells(app)
    assert cells_["model"] == ["T = 100", "T = 1000"]
    # solved: MSE under 1/60 (the adding problem's `solved_when`); the seeded trials ran 40 steps; gru's two seeds
    # at T = 100 first met it at steps 20 and 30 of their curves
    unsolved = "(not solved: 0 / 1 within 40 steps)"
    assert cells_["gru"] == ["★ 0.003 ± 0.0014solved 2 / 2 in 25 (20–30) steps", f"0.09 {unsolved}"]
    assert cells_["lstm"] == [f"0.05 {unsolved}", f"★ 0.03 {unsolved}"]
    assert cells_["rnn"] == [f"0.16 {unsolved}", f"0.166 {unsolved}"]
    assert cells_["trivial baseline"] == ["0.167", "0.167"]
    table = next(m.value for m in app.markdown if "seqarena-board" in m.value)
    experiment = seeded.experiments["adding-study"]
    assert f'href="{UI}/#/experiments/{experiment}/runs/{seeded.runs["gru100_a"]}"' in table
    assert f'href="{UI}/#/experiments/{experiment}/runs/{seeded.runs["lstm1000_a"]}"' in table
    winners = frame_with(app, "best model")
    assert dict(zip(winners["T"], winners["best model"], strict=True)) == {100: "gru", 1000: "lstm"}


def test_the_leaderboard_page_shows_how_far_in_t_each_model_solves(seeded: Seeded) -> None:
    reach = frame_with(open_page(), "max T solved").set_index("model")
    # gru solved at T = 100 (0.002 and 0.004 under 1/60), not at 1000 (0.09); lstm and rnn at neither
    assert reach.loc["gru", "max T solved"] == 100 and reach.loc[["lstm", "rnn"], "max T solved"].isna().all()
    # gru's area over log10 T = 2..3: (0.003 + 0.09) / 2
    assert reach.loc["gru", "AUC (metric vs log10 T)"] == pytest.approx(0.0465)


def test_the_mlflow_ui_address_is_configurable(seeded: Seeded, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQARENA_MLFLOW_UI", "https://mlflow.example.org/")
    table = next(m.value for m in open_page().markdown if "seqarena-board" in m.value)
    assert f'href="https://mlflow.example.org/#/experiments/{seeded.experiments["adding-study"]}/runs/' in table


def test_serving_the_dashboard_imports_no_page_module_and_prints_no_streamlit_warning() -> None:
    """`seqarena dashboard` imports `serve` before it becomes the Streamlit server; a page module imported then
    (`data`, whose `st.cache_data` finds no running app) printed "No runtime found" eleven times at every start."""
    import subprocess
    import sys

    probe = ("import sys, seqarena.dashboard.serve; "
             "print(sorted(m for m in sys.modules if m.startswith('seqarena.dashboard')))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "['seqarena.dashboard', 'seqarena.dashboard.safety', 'seqarena.dashboard.serve']"
    assert "No runtime found" not in done.stderr


def test_filters_change_task_models_and_searches(seeded: Seeded) -> None:
    app = open_page()
    assert app.sidebar.selectbox[0].options == ["adding", "smnist"]
    app.sidebar.selectbox[0].select("smnist").run()
    assert board_cells(app)["lstm"] == ["★ 0.97 (not solved: 0 / 1 within 40 steps)"]  # 0.97 < 0.98
    assert board_cells(app)["trivial baseline"] == ["0.1"]
    app.sidebar.multiselect(key="filter_models").select("gru").run()
    shown = board_cells(app)
    assert set(shown) == {"model", "gru", "trivial baseline"}
    assert shown["gru"] == ["★ 0.95 (not solved: 0 / 1 within 40 steps)"]
    app.sidebar.selectbox[0].select("adding").run()
    searches = app.sidebar.multiselect(key="filter_searches")
    assert len(searches.options) == 1 and "adding-study" in searches.options[0]


def test_an_empty_database_says_how_to_get_results(empty_home: Path) -> None:
    assert "seqarena demo" in page_text(open_page())


# ------------------------------------------------------------------------------------------ figures

def test_metric_vs_T_has_a_line_per_model_with_spread_and_the_baseline(seeded: Seeded) -> None:
    figure = figures(open_page("accuracy.py"))[0]
    lines = traces(figure)
    assert set(lines) == {"gru", "lstm", "rnn", "trivial baseline"}
    assert lines["gru"][0] == [100, 1000] and lines["gru"][1] == pytest.approx([0.003, 0.09])
    assert lines["lstm"][1] == pytest.approx([0.05, 0.03])
    assert lines["rnn"] == ([100, 1000], pytest.approx([0.16, 0.166]))
    assert lines["trivial baseline"][1] == pytest.approx([0.167, 0.167])
    gru = next(trace for trace in figure["data"] if trace["name"] == "gru")
    assert values(gru["error_y"]["array"]) == pytest.approx([2 ** 0.5 * 0.001, 0.0])
    assert figure["layout"]["xaxis"]["type"] == "log"


def test_memory_and_throughput_vs_T_come_from_each_arm_s_best_trial(seeded: Seeded) -> None:
    memory, speed = figures(open_page("cost.py"))
    assert traces(memory)["gru"][1] == pytest.approx([4.0, 40.0])
    assert traces(memory)["lstm"][1] == pytest.approx([6.0, 60.0])
    lines = {(trace["name"], trace["line"]["dash"]): values(trace["y"]) for trace in speed["data"]}
    assert lines["gru", "solid"] == pytest.approx([200.0, 20.0])  # training
    assert lines["gru", "dash"] == pytest.approx([600.0, 60.0])  # inference
    assert [trace["name"] for trace in speed["data"] if trace["showlegend"]].count("gru") == 1  # one legend entry
    assert memory["layout"]["xaxis"]["type"] == "log" and speed["layout"]["yaxis"]["type"] == "log"
    assert speed["layout"]["yaxis"]["tickformat"] == "~g"  # 0.002 reads 0.002 on a log axis, never "2"
    gru = next(trace for trace in speed["data"] if trace["name"] == "gru")
    assert "cpu / torch-cpu; timing: steady state" in gru["customdata"]  # where gru's best trial was measured


def test_the_pareto_front_is_the_trials_nothing_beats_in_metric_and_throughput(seeded: Seeded) -> None:
    app = open_page("pareto.py")
    app.selectbox(key="pareto_seq_len").select(100).run()
    figure = figures(app)[0]
    front = traces(figure)["Pareto front"]
    # only trials that solve (mse < 0.0167) can be on it: gru100_a (200/s, 0.002) beats gru100_b (150/s, 0.010);
    # rnn (400/s, 0.16) is faster but solves nothing: greyed, off the front
    assert sorted(zip(front[0], front[1], strict=True)) == [(200.0, pytest.approx(0.002))]
    colors = model_colors([])
    assert next(t for t in figure["data"] if t["name"] == "Pareto front")["marker"]["color"] == [colors["gru"]]
    rnn = next(t for t in figure["data"] if t["name"] == "rnn")
    assert rnn["marker"]["color"] == "#bbbbbb"
    assert "no trial solved it for lstm, rnn: not on the front" in page_text(app)
    app.radio(key="pareto_cost").set_value("parameter count").run()
    front = traces(figures(app)[0])["Pareto front"]
    # fewest parameters among the solving trials: gru100_a (10,000) with the best MSE
    assert sorted(zip(front[0], front[1], strict=True)) == [(10000.0, pytest.approx(0.002))]


def test_pareto_front_by_hand() -> None:
    points = pd.DataFrame({"metric": [0.1, 0.2, 0.05, 0.3, 0.1], "speed": [10.0, 30.0, 5.0, 20.0, 10.0]})
    assert pareto_front(points, False, "speed", True).tolist() == [True, True, True, False, False]
    assert pareto_front(points, True, "speed", True).tolist() == [False, True, False, True, False]


# ------------------------------------------------------------------------------------------- trials

def test_the_trials_page_shows_statuses_curves_and_hyperparameters(seeded: Seeded) -> None:
    app = open_page("trials.py")
    assert "adding/T=100/gru" in app.selectbox(key="trials_arm").value
    counts = {metric.label: int(metric.value) for metric in app.metric}
    assert counts == {"running": 1, "completed": 3, "stopped": 0, "diverged": 0, "oom": 0, "failed": 0}
    table = frame_with(app, "trial_id")
    assert set(table["trial_id"]) == {"gru100_a", "gru100_b", "gru100_r"}
    assert table.set_index("trial_id").loc["gru100_b", "hp.hidden_size"] == 128
    chosen = app.multiselect(key=f"trials_curves:{seeded.searches['adding-study']}:adding/T=100/gru").value
    assert chosen[0] == f"{seeded.running_trial} (running)" and "gru100_a (completed)" in chosen
    charts = figures(app)
    validation = traces(charts[0])
    assert validation["gru100_a (completed)"] == ([10, 20, 30], pytest.approx([0.167, 0.012, 0.002]))
    assert validation[f"{seeded.running_trial} (running)"] == ([10], pytest.approx([0.15]))
    parallel = charts[-1]["data"][0]
    assert parallel["type"] == "parcoords"
    assert [dimension["label"] for dimension in parallel["dimensions"]] == ["learning_rate", "hidden_size",
                                                                             "test mse"]


def test_the_trials_page_counts_diverged_and_early_stopped_trials(seeded: Seeded) -> None:
    app = open_page("trials.py")
    arm = next(option for option in app.selectbox(key="trials_arm").options if "adding/T=1000/rnn" in option)
    app.selectbox(key="trials_arm").select(arm).run()
    counts = {metric.label: int(metric.value) for metric in app.metric}
    assert (counts["diverged"], counts["stopped"], counts["completed"]) == (1, 1, 0)
    assert app.multiselect[0].value == ["rnn1000_b (stopped)", "rnn1000_a (diverged)"]  # the arm's own, best first
    assert any("it needs two or more trials with a test metric (it has 1)" in c.value for c in app.caption)


# --------------------------------------------------------------------------------------------- jobs

BAD_SPEC = "name: bad\ntask: adding\nseq_lens: [20]\nmodels: [gru, nosuchmodel]\n"
GOOD_SPEC = ("name: from-the-dashboard\ntask: adding\nseq_lens: [20]\nmodels: [gru]\n"
             "budget: {max_steps: 10, eval_every: 5}\n")


def submit(app: AppTest, spec: str, token: str | None = None) -> AppTest:
    app.text_area(key="submit_spec").set_value(spec)
    if token is not None:
        app.text_input(key="submit_token").set_value(token)
    app.button[[b.label for b in app.button].index("Submit")].click().run()
    return app


def test_the_form_refuses_a_bad_spec_and_queues_a_good_one(empty_home: Path) -> None:
    app = submit(open_page("jobs.py"), BAD_SPEC)
    assert len(app.error) == 1 and "models" in app.error[0].value and "gru" in app.error[0].value
    assert jobs.list_jobs(database.get_engine()) == []
    app = submit(app, GOOD_SPEC)
    queued = jobs.list_jobs(database.get_engine())
    assert [(job.name, job.state, job.submitted_by) for job in queued] == [("from-the-dashboard", "queued",
                                                                             "dashboard")]
    assert f"queued job {queued[0].id}" in app.success[0].value
    assert queued[0].id in set(frame_with(app, "state")["id"])


def test_cancel_from_the_dashboard(empty_home: Path) -> None:
    job_id = jobs.submit(database.get_engine(), GOOD_SPEC)
    app = open_page("jobs.py")
    app.button[[b.label for b in app.button].index("Cancel job")].click().run()
    assert jobs.get_job(database.get_engine(), job_id).state == "cancelled"
    assert "cancelled" in app.success[0].value


def test_with_a_token_set_submit_and_cancel_ask_for_it(empty_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    token = "dash-token-9f8e7d"
    monkeypatch.setenv("SEQARENA_DASHBOARD_TOKEN", token)
    job_id = jobs.submit(database.get_engine(), GOOD_SPEC)
    app = submit(open_page("jobs.py"), GOOD_SPEC, token="wrong")
    assert "token" in app.error[0].value and len(jobs.list_jobs(database.get_engine())) == 1
    app.text_input(key="cancel_token").set_value("wrong")
    app.button[[b.label for b in app.button].index("Cancel job")].click().run()
    assert jobs.get_job(database.get_engine(), job_id).state == "queued"
    app = submit(app, GOOD_SPEC, token=token)
    assert len(jobs.list_jobs(database.get_engine())) == 2
    assert token not in page_text(app)


def test_a_running_job_shows_per_arm_progress(seeded: Seeded) -> None:
    engine = database.get_engine()
    job_id = jobs.submit(engine, ADDING_SPEC)
    jobs.claim(engine, "worker-a", 60)
    jobs.attach_search(engine, job_id, "worker-a", seeded.searches["adding-study"], "run")
    try:
        app = open_page("jobs.py")
        texts = [bar.proto.text for bar in app.get("progress")]
        assert any(text.startswith("adding/T=100/gru: 3/") and "best 0.003 ± 0.0014" in text for text in texts)
        assert any(text.startswith("adding/T=1000/rnn: 2/") for text in texts)
    finally:
        jobs.cancel(engine, job_id)
        jobs.finish(engine, job_id, "worker-a", "cancelled")


MNIST_SPEC = ("name: mnist-job\ntask: smnist\nseq_lens: [784]\nmodels: [lstm, cornn]\nparam_budget: 20000\n"
              "search: {num_samples: 4}\n")


def test_showing_and_validating_a_job_on_a_real_dataset_reads_no_data(empty_home: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The jobs page validates specs (per-arm progress, "Only validate"): with an empty data folder
    (and downloads forbidden) it still shows them, and the folder stays empty."""
    folder = empty_home / "no-data"
    folder.mkdir()
    monkeypatch.setenv("SEQARENA_DATA", str(folder))
    engine = database.get_engine()
    job_id = jobs.submit(engine, MNIST_SPEC)
    jobs.claim(engine, "worker-a", 60)
    try:
        app = open_page("jobs.py")
        texts = [bar.proto.text for bar in app.get("progress")]
        assert texts == ["smnist/T=784/lstm: 0/4 trials · best —", "smnist/T=784/cornn: 0/4 trials · best —"]
        app.checkbox(key="submit_validate_only").check()
        app = submit(app, MNIST_SPEC)
        assert not app.error and app.success[-1].value == "valid: 2 arms, 8 trials"
        assert list(folder.iterdir()) == []
    finally:
        jobs.cancel(engine, job_id)
        jobs.finish(engine, job_id, "worker-a", "cancelled")


# ------------------------------------------------------------------------------------------- models

def test_the_models_page_renders_equations_hyperparameters_and_ranks(seeded: Seeded) -> None:
    app = open_page("models.py")
    app.selectbox(key="models_choice").select("cornn").run()
    assert [latex.value.strip("$\n") for latex in app.latex] == list(cells.equations("cornn"))
    hparams = frame_with(app, "valid")
    assert {"dt", "gamma", "epsilon"} <= set(hparams["name"])
    ranks = frame_with(app, "wins").set_index("model")
    assert ranks.loc["gru", "wins"] == 1 and ranks.loc["lstm", "wins"] == 1 and ranks.loc["rnn", "wins"] == 0
    app.selectbox(key="models_choice").select("gru").run()
    assert any("Rank 1 of 3" in m.value for m in app.markdown)


def test_model_ranks_by_hand(seeded: Seeded) -> None:
    ranks = model_ranks(leaderboard(database.get_engine(), task="adding")).set_index("model")
    assert ranks["mean_rank"].to_dict() == {"gru": 1.5, "lstm": 1.5, "rnn": 3.0}
    # arms solved by a seed: only gru at T = 100 (0.002 and 0.004 under 1/60); lstm's 0.05 and 0.03 are not
    assert ranks["solved"].to_dict() == {"gru": 1, "lstm": 0, "rnn": 0}


def seed_tie(engine: Any) -> None:
    """adding at T=100: gru and lstm tie at 0.05, rnn 0.16; at T=200 lstm 0.04 beats gru 0.06."""
    metrics = {("gru", 100): 0.05, ("lstm", 100): 0.05, ("rnn", 100): 0.16, ("gru", 200): 0.06, ("lstm", 200): 0.04}
    arms = [{"task": "adding", "seq_len": seq_len, "model": model, "key": f"adding/T={seq_len}/{model}",
             "metric_name": "mse", "higher_is_better": False, "baseline": 0.167} for model, seq_len in metrics]
    search_id = searches.create_search(engine, name="tie", spec_yaml="name: tie\n", spec_hash="h",
                                       mlflow_experiment_id="0", arms=arms)
    for (model, seq_len), metric in metrics.items():
        searches.record_trial(engine, search_id, f"adding/T={seq_len}/{model}",
                              {"trial_id": f"{model}{seq_len}", "seed": 0, "hparams": {"lr": 0.01},
                               "status": "completed", "steps": 10, "metric": metric})


def test_a_tie_for_best_at_T_is_broken_alike_by_the_cli_and_every_dashboard_page(empty_home: Path, run_cli) -> None:
    """Equal means are placed by model name: gru is best at T=100 in the CLI's order, on the
    leaderboard page's star and summary, and in the models page's wins (lstm wins only T=200)."""
    seed_tie(database.get_engine())
    code, out, _ = run_cli(["leaderboard", "--task", "adding", "--json"])
    assert code == 0
    cli_order = [(row["seq_len"], row["model"]) for row in json.loads(out)]
    assert cli_order == [(100, "gru"), (100, "lstm"), (100, "rnn"), (200, "lstm"), (200, "gru")]
    board = open_page()
    winners = frame_with(board, "best model")
    assert dict(zip(winners["T"], winners["best model"], strict=True)) == {100: "gru", 200: "lstm"}
    assert board_cells(board)["gru"][0].startswith("★") and not board_cells(board)["lstm"][0].startswith("★")
    ranks = frame_with(open_page("models.py"), "wins").set_index("model")
    assert ranks["wins"].to_dict() == {"gru": 1, "lstm": 1, "rnn": 0}
    assert ranks["mean_rank"].to_dict() == {"gru": 1.5, "lstm": 1.5, "rnn": 3.0}


# ------------------------------------------------------------------------------------------ secrets

def test_an_unreachable_database_is_one_line_that_hides_the_password(empty_home: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQARENA_DB_URL", "postgresql+psycopg://seqarena:Sup3rSecretPw@127.0.0.1:9/nowhere")
    app = AppTest.from_file(str(APP), default_timeout=60)
    app.run()
    assert len(app.error) == 1 and "SEQARENA_DB_URL" in app.error[0].value
    assert "Sup3rSecretPw" not in page_text(app) and not app.exception


def test_redact_hides_url_passwords_and_secret_environment_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAY_AUTH_TOKEN", "ray-token-123456")
    text = redact("connect postgresql://me:hunter22@db:5432/x failed; token ray-token-123456")
    assert text == "connect postgresql://me:***@db:5432/x failed; token ***"


def test_the_dashboard_command_refuses_a_bad_port(run_cli: Any) -> None:
    code, _, err = run_cli(["dashboard", "--port", "70000"])
    assert code == 2 and "port" in err


def _protocol_board(engine: Any, protocols: dict[str, str | None]) -> list[Any]:
    """The leaderboard of one adding search at T = 100 whose arms follow `protocols` (model -> name)."""
    arms = [{"task": "adding", "seq_len": 100, "model": model, "key": f"adding/T=100/{model}", "metric_name": "mse",
             "higher_is_better": False, "baseline": 0.167, "protocol": protocol}
            for model, protocol in protocols.items()]
    search_id = searches.create_search(engine, name="p", spec_yaml="name: p\n", spec_hash="p",
                                       mlflow_experiment_id="1", arms=arms)
    for i, model in enumerate(protocols):
        searches.record_trial(engine, search_id, f"adding/T=100/{model}",
                              {"trial_id": f"t{i}", "role": "search", "seed": 0, "status": "completed",
                               "metric": 0.01 * (i + 1), "hparams": {}, "steps": 10})
    return leaderboard(engine, search_id=search_id)


def test_the_leaderboard_page_states_the_data_protocol(url: str) -> None:
    engine = database.get_engine(url)
    current = Filters(url, "adding", None, None, ())
    shared = board_html(_protocol_board(engine, {"gru": "tcn", "lstm": "tcn"}), current)
    assert "; data protocol tcn</caption>" in shared and "(protocol " not in shared
    own = board_html(_protocol_board(engine, {"cornn": "cornn", "lem": "lem", "gru": None}), current)
    assert "data protocol" not in own.split("</caption>")[0]
    for model, protocol in (("cornn", "cornn"), ("lem", "lem"), ("gru", "unrecorded")):
        assert f"<th>{model} <small>(protocol {protocol})</small></th>" in own


def test_no_page_draws_a_stray_string() -> None:
    """Streamlit draws a page script's bare top-level strings ("magic"): a docstring under a constant showed as a
    paragraph at the top of the Trials page. Each page has only its module docstring."""
    import ast

    pages = [path for path in APP.parent.glob("*.py") if "\ndef render(" in path.read_text()] + [APP]
    assert len(pages) >= 10
    for page in pages:
        body = ast.parse(page.read_text()).body[1:]
        stray = [node.lineno for node in body if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)]
        assert not stray, f"{page.name}: a bare string at line(s) {stray}"
