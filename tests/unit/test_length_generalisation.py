"""Length generalisation (issue 17 §3): a trained trial tested at other lengths T′, its points recorded."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from sqlalchemy import Engine, select

from seqarena import tasks
from seqarena.errors import BadInput
from seqarena.platform import database, searches
from seqarena.platform.lengths import length_points
from seqarena.platform.progress import ArmCounts, SearchProgress
from seqarena.platform.recorder import RecorderTarget, SearchRecorder
from seqarena.platform.schema import TrialLength
from seqarena.platform.search import arm_plans
from seqarena.platform.spec import describe, parse_spec
from seqarena.platform.tracking import Tracker
from seqarena.workers import TrialConfig, make_config, run_trial
from seqarena.workers.config import SearchTrial, prepare
from seqarena.workers.rerun import train_argv
from seqarena.workers.results import LengthResult, TrialRecord
from seqarena.workers.trial import build_model
from seqarena.workers.tune_trainable import STEP

from .test_dashboard import figures, open_page, values


def tiny(**overrides: object) -> TrialConfig:
    fields = {"model": "gru", "task": "adding", "seq_len": 12, "steps": 8, "eval_every": 4, "seed": 3,
              "hparams": {"hidden_size": 6, "batch_size": 8, "lr": 0.01}, "task_options": {"n_val": 16, "n_test": 24},
              "eval_lengths": (6, 30)}
    return make_config(**{**fields, **overrides})


def test_metric_at_other_length_is_the_best_weights_on_the_task_built_there(tmp_path: Path) -> None:
    """The trial's MSE at T′ = 30 equals an independent evaluation: the best weights read from the trial's
    checkpoint, the adding test set built at T = 30 with the same options, MSE computed by hand."""
    config = tiny(checkpoint_dir=tmp_path)
    result = run_trial(config)
    assert [point.seq_len for point in result.lengths] == [6, 30]
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=True)["state"]["best_weights"]
    model = build_model(prepare(config))
    model.load_state_dict(saved)
    model.eval()
    for point in result.lengths:
        inputs, targets = tasks.build("adding", point.seq_len, n_val=16, n_test=24).eval_set("test")
        assert inputs.shape == (24, point.seq_len, 2)
        with torch.no_grad():
            by_hand = float(((model(inputs) - targets) ** 2).mean())
        assert point.status == "completed" and point.note is None
        assert point.metric == pytest.approx(by_hand, rel=1e-6)
        assert point.test_metrics == {"mse": pytest.approx(by_hand, rel=1e-6)}
    assert result.lengths[0].metric != result.lengths[1].metric  # two sets, two numbers


def test_points_reach_the_record_and_its_numbers() -> None:
    """The record of the result keeps each point; MLflow's numbers name them test_<metric>_at_T<T′>."""
    result = run_trial(tiny(eval_lengths=(24,)))
    record = TrialRecord.from_result(result.model_dump(mode="json"), trial_id="t1", seed=3, hparams={})
    assert record.lengths == result.lengths
    assert record.numbers()["test_mse_at_T24"] == result.lengths[0].metric
    assert "lengths" not in record.row() and "metric_name" not in record.row()


def test_a_tcn_that_cannot_see_the_whole_input_at_t_prime_is_marked() -> None:
    """TCN with kernel 2 and 2 levels sees 1 + 2·(2 − 1)·(1 + 2) = 7 steps: fine at T = 6, marked at 30."""
    result = run_trial(tiny(model="tcn", hparams={"hidden_size": 6, "batch_size": 8, "num_layers": 2,
                                                  "kernel_size": 2}))
    notes = {point.seq_len: point.note for point in result.lengths}
    assert notes[6] is None
    assert notes[30] == "receptive field 7 < input length 30"


def test_a_task_of_fixed_length_refuses_other_lengths_in_one_line() -> None:
    with pytest.raises(BadInput) as caught:
        prepare(make_config(model="gru", task="smnist", seq_len=784, eval_lengths=(392,)))
    message = str(caught.value)
    assert "\n" not in message and message.startswith("eval_lengths: got [392]")
    assert "smnist" in message and "adding, copy, char" in message


def test_a_length_the_task_refuses_names_its_index() -> None:
    with pytest.raises(BadInput, match=r"^eval_lengths\[1\]: got 1; allowed: at least 2"):
        prepare(tiny(eval_lengths=(30, 1)))


def test_a_point_is_a_typed_value_with_clean_floats() -> None:
    point = LengthResult(seq_len=30, status="diverged", metric=float("nan"), test_metrics={"mse": float("inf")})
    assert point.metric is None and point.test_metrics == {"mse": None}
    with pytest.raises(ValueError):
        LengthResult(seq_len=30, status="lost")


def test_no_other_lengths_leaves_the_checkpoint_fingerprint_as_before() -> None:
    """Trials without eval_lengths keep the fingerprint they had (their checkpoints still resume)."""
    plain = tiny(eval_lengths=())
    data = plain.model_dump(mode="json", exclude={"checkpoint_dir", "protocol", "eval_lengths"})
    assert plain.fingerprint() == hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]
    assert tiny().fingerprint() != plain.fingerprint()


# --- spec ------------------------------------------------------------------------------------------

SPEC = {"name": "reach", "task": "adding", "seq_lens": [10, 40], "models": ["gru"]}


def test_spec_grid_gives_each_arm_its_other_lengths() -> None:
    spec = parse_spec({**SPEC, "length_generalisation": {"factors": [0.5, 1, 2, 4], "lengths": [100, 40]}})
    at = {arm.seq_len: spec.other_lengths(arm) for arm in spec.arms()}
    assert at == {10: (5, 20, 40, 100), 40: (20, 80, 100, 160)}  # T itself left out, each once, ascending
    plans = {plan.template.seq_len: plan.template.eval_lengths for plan in arm_plans(spec)}
    assert plans == at
    assert parse_spec(SPEC).other_lengths(spec.arms()[0]) == ()
    assert [row["other_lengths"] for row in describe(spec)] == [[5, 20, 40, 100], [20, 80, 100, 160]]
    assert "other_lengths" not in describe(parse_spec(SPEC))[0]


def test_spec_of_a_fixed_length_task_refuses_the_grid_in_one_line() -> None:
    with pytest.raises(BadInput) as caught:
        parse_spec({"name": "m", "task": "smnist", "seq_lens": [784], "models": ["gru"],
                    "length_generalisation": {"factors": [2]}})
    assert str(caught.value) == ("length_generalisation: got [1568]; allowed: none for task smnist: its length is "
                                 "fixed (tasks tested at other lengths: adding, copy, char)")


def test_spec_refuses_a_length_the_task_refuses_naming_the_arm() -> None:
    with pytest.raises(BadInput, match=r"^length_generalisation: got 1; allowed: at least 2 .*\(arm T = 10\)$"):
        parse_spec({**SPEC, "length_generalisation": {"factors": [0.1]}})
    with pytest.raises(BadInput, match=r"^length_generalisation.factors\[0\]: got -2; allowed: greater than 0$"):
        parse_spec({**SPEC, "length_generalisation": {"factors": [-2]}})


# --- database and MLflow ------------------------------------------------------------------------------

ARM = "adding/T=12/gru"


def _point(seq_len: int, metric: float | None, status: str = "completed", note: str | None = None) -> dict:
    return {"seq_len": seq_len, "status": status, "metric": metric, "test_metrics": {"mse": metric}, "note": note}


def _row(trial_id: str, seed: int, lr: float, metric: float, lengths: list[dict], role: str = "search",
         status: str = "completed") -> dict:
    return {"trial_id": trial_id, "seed": seed, "hparams": {"lr": lr}, "role": role, "status": status,
            "metric": metric, "steps": 8, "lengths": lengths}


@pytest.fixture
def engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    monkeypatch.setenv("SEQARENA_HOME", str(tmp_path))
    monkeypatch.delenv("SEQARENA_DB_URL", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    engine = database.get_engine()
    yield engine
    engine.dispose()


def _search(engine: Engine, *keys: str) -> str:
    arms = [{"task": "adding", "seq_len": int(key.split("/")[1][2:]), "model": key.split("/")[2], "key": key,
             "metric_name": "mse", "higher_is_better": False, "baseline": 1 / 6} for key in keys]
    return searches.create_search(engine, name="reach", spec_yaml="name: reach\n", spec_hash="h",
                                  mlflow_experiment_id="1", arms=arms)


def test_points_of_the_best_configuration_over_its_seeds(engine: Engine) -> None:
    """gru at T = 12: best configuration lr 1 (seeds 0, 1, 2), a worse one (lr 2) not counted. At T′ = 24 the
    mean of 0.02, 0.04, 0.06 is 0.04 over n = 3; at T′ = 48 seed 2 ran out of memory: mean 0.1 over n = 2, the
    oom marked; the trained point is the leaderboard's mean (0.01 + 0.02 + 0.03) / 3 = 0.02."""
    search = _search(engine, ARM)
    rows = [_row("a", 0, 1, 0.01, [_point(24, 0.02), _point(48, 0.08)]),
            _row("b", 0, 2, 0.50, [_point(24, 0.9), _point(48, 0.9)]),
            _row("r1", 1, 1, 0.02, [_point(24, 0.04), _point(48, 0.12)], role="repeat"),
            _row("r2", 2, 1, 0.03, [_point(24, 0.06), _point(48, None, "oom", "OutOfMemoryError: CUDA out of memory")],
                 role="repeat")]
    for row in rows:
        searches.record_trial(engine, search, ARM, row)
    trained, at_24, at_48 = length_points(engine, "adding")
    assert (trained.seq_len, trained.trained, trained.mean, trained.n) == (12, True, pytest.approx(0.02), 3)
    assert (at_24.seq_len, at_24.trained_seq_len, at_24.n, at_24.runs) == (24, 12, 3, 3)
    assert at_24.mean == pytest.approx(0.04)
    assert at_24.mark is None and at_24.failures == ()
    assert (at_48.mean, at_48.n, at_48.runs, at_48.failures) == (pytest.approx(0.1), 2, 3, (("oom", 1),))
    assert at_48.mark == "oom at T′ = 48 (OutOfMemoryError: CUDA out of memory), 1 of 3 runs"
    assert length_points(engine, "copy") == []


def test_a_point_without_a_metric_is_marked_not_dropped(engine: Engine) -> None:
    search = _search(engine, ARM)
    searches.record_trial(engine, search, ARM, _row("a", 0, 1, 0.01, [_point(5000, None, "oom", "MemoryError: ")]))
    _, point = length_points(engine, "adding")
    assert (point.mean, point.n, point.mark) == (None, 0, "oom at T′ = 5000 (MemoryError: )")
    assert point.to_json()["failures"] == {"oom": 1}


def test_a_rerun_replaces_its_cells_points(engine: Engine) -> None:
    """`seqarena retry`: the failed trial's row goes, and its points with it (foreign key cascade)."""
    search = _search(engine, ARM)
    searches.record_trial(engine, search, ARM, _row("x", 0, 1, 0.0, [_point(24, None, "failed", "boom")],
                                                    status="failed"))
    assert searches.replace_trial(engine, search, "x", TrialRecord.checked(_row("y", 0, 1, 0.01, [_point(24, 0.3)])))
    with engine.connect() as conn:
        assert conn.execute(select(TrialLength.seq_len, TrialLength.status, TrialLength.metric)).all() == [
            (24, "completed", 0.3)]


def test_recorder_writes_a_real_trials_points_to_the_database_and_mlflow(engine: Engine) -> None:
    """A real trial (gru, adding T = 12, tested at 6 and 30) through the search driver's recorder: one
    `trial_lengths` row per T′ and the MLflow metrics test_mse_at_T6 / test_mse_at_T30, all equal to the
    trial's own numbers."""
    search = _search(engine, ARM)
    config = tiny()
    result = run_trial(config)
    tracker = Tracker()
    experiment = tracker.experiment_id("seqarena/reach")
    parent = tracker.start_parent(experiment, search, "reach", "name: reach\n")
    recorder = SearchRecorder(RecorderTarget(search, experiment, parent), SearchProgress(
        {ARM: ArmCounts(total=1, metric_name="mse", higher_is_better=False)}, title="t"))
    planned = SearchTrial(arm=ARM, role="search", metric_name="mse", higher_is_better=False, trial=config)
    trial = SimpleNamespace(trial_id="t1", config=planned.to_tune(),
                            last_result={"final": True, STEP: 8, "trial_result": result.to_json()})
    recorder.on_trial_complete(0, [], trial)
    expected = {point.seq_len: point.metric for point in result.lengths}
    with engine.connect() as conn:
        stored = dict(conn.execute(select(TrialLength.seq_len, TrialLength.metric)).all())
    assert stored == pytest.approx(expected) and set(stored) == {6, 30}
    run = tracker.client.get_run(tracker.child_runs(experiment, parent)["t1"])
    assert run.data.metrics["test_mse_at_T6"] == pytest.approx(expected[6])
    assert run.data.metrics["test_mse_at_T30"] == pytest.approx(expected[30])
    assert {point.seq_len: point.mean for point in length_points(engine, "adding")} == pytest.approx(
        {12: result.metric, **expected})


def test_cli_lengths_table_and_json(engine: Engine, run_cli) -> None:
    search = _search(engine, ARM)
    searches.record_trial(engine, search, ARM, _row("a", 0, 1, 0.01, [_point(24, 0.02), _point(48, None, "oom")]))
    code, out, _ = run_cli(["lengths", "--task", "adding", "--json"])
    assert code == 0
    points = json.loads(out)
    assert [(p["seq_len"], p["mean"], p["trained"], p["mark"]) for p in points] == [
        (12, 0.01, True, None), (24, 0.02, False, None), (48, None, False, "oom at T′ = 48")]
    code, out, _ = run_cli(["lengths", "--task", "adding"])
    assert code == 0
    assert "0.01 (n=1) *" in out and "0.02 (n=1)" in out and "oom at T′ = 48" in out
    code, _, err = run_cli(["lengths", "--task", "copy"])
    assert code == 0 and "no trial of task copy was tested at other lengths" in err
    code, _, err = run_cli(["lengths", "--task", "adding", "--search", "nope"])
    assert code == 2 and "search: got 'nope'" in err


def test_dashboard_metric_vs_t_page_plots_the_other_lengths(engine: Engine) -> None:
    """The metric-vs-T page's second figure: gru trained at T = 12 (★ at 0.01), 0.02 at T′ = 24, and T′ = 48,
    where it ran out of memory, a ✕ labelled so."""
    search = _search(engine, ARM)
    searches.record_trial(engine, search, ARM, _row("a", 0, 1, 0.01, [_point(24, 0.02), _point(48, None, "oom")]))
    figure = figures(open_page("accuracy.py"))[1]
    trained, marked = figure["data"]  # one legend entry, gru (the ✕ in its group)
    assert trained["name"] == marked["name"] == "gru" and marked["showlegend"] is False
    assert "gru trained at T = 12" in trained["hovertemplate"]
    assert (values(trained["x"]), values(trained["y"])) == ([12, 24], pytest.approx([0.01, 0.02]))
    assert values(marked["x"]) == [48] and marked["text"] == ["gru: oom at T′ = 48"]
    assert trained["marker"]["symbol"] == ["star", "circle"]
    assert figure["layout"]["xaxis"]["type"] == "log"


def test_train_cli_tests_at_other_lengths_and_its_rerun_command_says_so(run_cli) -> None:
    args = ["train", "--model", "gru", "--task", "adding", "--seq-len", "12", "--steps", "4", "--eval-every", "2",
            "--hidden", "4", "--option", "n_val=8", "--option", "n_test=8", "--eval-length", "24"]
    code, out, _ = run_cli([*args, "--json"])
    assert code == 0
    (point,) = json.loads(out.strip().splitlines()[-1])["lengths"]
    assert point["seq_len"] == 24 and point["status"] == "completed" and point["metric"] > 0
    code, out, _ = run_cli(args)
    assert code == 0 and "test mse at T′ = 24" in out
    assert train_argv(tiny())[-5:] == ["--eval-length", "6", "--eval-length", "30", "--json"]
    code, _, err = run_cli(["train", "--model", "gru", "--task", "smnist", "--seq-len", "784", "--eval-length", "100"])
    assert code == 2 and "eval_lengths: got [100]; allowed: none for task smnist" in err


def _refuses_40_gb() -> bool:
    """Whether this machine's allocator refuses 40 GB at once: less memory than that, and Linux's overcommit
    not set to grant anything (mode 1)."""
    try:
        mode = Path("/proc/sys/vm/overcommit_memory").read_text().strip()
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (OSError, ValueError):
        return False
    return mode in ("0", "2") and memory < 32e9


@pytest.mark.skipif(not _refuses_40_gb(), reason="needs a machine whose allocator refuses 40 GB (under 32 GB RAM)")
def test_out_of_memory_at_one_length_is_that_point_s_status_and_the_trial_goes_on() -> None:
    """A real allocator failure: the Transformer's causal mask at T′ = 100 000 is 10¹⁰ floats (40 GB), which
    the CPU allocator refuses at once here. That point is `oom` with the allocator's line; the next T′ is
    measured and the trial itself completes."""
    result = run_trial(tiny(model="transformer", eval_lengths=(100_000, 24),
                            hparams={"hidden_size": 8, "batch_size": 8, "num_layers": 1, "nhead": 2},
                            task_options={"n_val": 8, "n_test": 1}))
    huge, small = result.lengths
    assert result.status == "completed" and result.metric is not None
    assert (huge.seq_len, huge.status, huge.metric) == (100_000, "oom", None)
    assert "can't allocate memory" in huge.note or "out of memory" in huge.note.lower()
    assert (small.seq_len, small.status) == (24, "completed") and small.metric is not None
