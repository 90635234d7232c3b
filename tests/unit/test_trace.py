"""`seqarena trace`: per-step states, gates and gradient norms, checked against independent computations."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from seqarena import cells
from seqarena.cells.base import probing
from seqarena.workers.config import make_config, prepare
from seqarena.workers.trace import trace
from seqarena.workers.trial import build_model
from tests.helpers import ADDING_RUN, recorded_run

GATES = {"lstm": {"input", "forget", "output"}, "gru": {"reset", "update"}, "janet": {"forget"},
         "lem": {"dt_y", "dt_z"}}


@pytest.mark.parametrize("name", cells.names())
def test_probing_runs_the_same_computation_step_by_step(name: str) -> None:
    torch.manual_seed(0)
    model = cells.build(name, 3, 8, 2, seq_len=25).eval()
    x = torch.randn(4, 25, 3)
    with probing() as probe:
        stepped = model(x)
    torch.testing.assert_close(stepped, model(x), rtol=1e-5, atol=1e-5)  # torch's fused modules included
    recurrent = name not in ("tcn", "transformer")
    assert [len(layer) for layer in probe.states] == ([25, 25] if recurrent else [])
    assert {name for layer in probe.gates for name in layer} == GATES.get(name, set())


def setup_of(model: str, seq_len: int, **hparams: Any) -> Any:
    config = make_config(model=model, task="adding", seq_len=seq_len, task_options={"n_val": 16, "n_test": 16},
                         hparams={"hidden_size": 16, **hparams})
    return prepare(config)


@pytest.mark.parametrize("model", ["lstm", "cornn"])
def test_an_untrained_model_at_T_500_has_a_finite_gradient_norm_per_step(model: str) -> None:
    setup = setup_of(model, 500)
    torch.manual_seed(0)
    net = build_model(setup)
    before = {name: p.clone() for name, p in net.named_parameters()}
    inputs, targets = setup.task.eval_set("val")
    result = trace(net, setup.task, (inputs[:8], targets[:8]), model=model)
    assert len(result.grad_state) == 1 and len(result.grad_state[0]) == 500
    assert len(result.grad_input) == 500 and len(result.state_norm[0]) == 500 and len(result.states) == 500
    assert all(math.isfinite(v) and v >= 0 for v in result.grad_state[0] + result.grad_input)
    assert result.grad_state[0][-1] > 0 and math.isfinite(result.reach())
    assert set(result.gates) == GATES.get(model, set())
    assert all(len(curve) == 500 for curve in result.gates.values())
    assert all(torch.equal(p, before[name]) for name, p in net.named_parameters())  # weights untouched
    assert all(p.grad is None for p in net.parameters())


def test_the_last_step_s_state_gradient_is_the_head_s_gradient() -> None:
    """At t = T only the readout sees h_T (a GRU's whole state): ∂L/∂h_T = Wᵀ ∂L/∂ŷ, computed apart."""
    setup = setup_of("gru", 30)
    torch.manual_seed(1)
    net = build_model(setup).eval()
    inputs, targets = setup.task.eval_set("val")
    batch = (inputs[:6], targets[:6])
    features = net.backbone(batch[0])
    output = net.head(features)
    (grad_output,) = torch.autograd.grad(setup.task.loss(output, batch[1]), output)
    expected = (grad_output @ net.head.linear.weight).norm(dim=-1).mean()
    result = trace(net, setup.task, batch, model="gru")
    assert result.grad_state[0][-1] == pytest.approx(float(expected), rel=1e-5)


def test_trace_command_on_a_recorded_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_cli: Any) -> None:
    monkeypatch.setenv("SEQARENA_HOME", str(tmp_path))
    monkeypatch.delenv("SEQARENA_DB_URL", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    run_id = recorded_run(tmp_path, ADDING_RUN)
    code, out, err = run_cli(["trace", "--run", run_id, "--out", str(tmp_path / "trace"), "--seq-len", "40",
                              "--batch-size", "8", "--json"])
    assert code == 0, err
    traced = json.loads(out.strip().splitlines()[-1])
    assert (traced["model"], traced["seq_len"], traced["batch_size"]) == ("gru", 40, 8)
    assert len(traced["grad_state"][0]) == 40 and set(traced["gates"]) == {"reset", "update"}
    assert json.loads((tmp_path / "trace" / "trace.json").read_text()) == traced
    assert "plotly" in (tmp_path / "trace" / "trace.html").read_text()[:200_000].lower()
    code, _, err = run_cli(["trace", "--run", "no-such-run"])
    assert code == 2 and "run" in err
    code, _, err = run_cli(["trace", "--run", run_id, "--task", "copy"])
    assert code == 2 and "task" in err
    # the dashboard's bound on "Trace at T": 4 x the run's T = 20 is 80 (issue 18 §4)
    code, _, err = run_cli(["trace", "--run", run_id, "--seq-len", "81", "--out", str(tmp_path / "long")])
    errors = [line for line in err.splitlines() if line.startswith("error")]  # beside MLflow's download bar
    assert code == 2 and len(errors) == 1, err
    assert "seq_len" in errors[0] and "81" in errors[0] and "80" in errors[0] and "Traceback" not in err
    assert not (tmp_path / "long").exists()


def test_the_inside_page_traces_the_arm_s_best_trial(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from streamlit.testing.v1 import AppTest

    from seqarena.dashboard.serve import APP

    monkeypatch.setenv("SEQARENA_HOME", str(tmp_path))
    monkeypatch.delenv("SEQARENA_DB_URL", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    run_id = recorded_run(tmp_path, ADDING_RUN)
    app = AppTest.from_file(str(APP), default_timeout=120)
    app.run()
    app.switch_page("inside.py")
    app.run()
    assert not app.exception and not app.error
    chosen = [box for box in app.text_input if box.key.startswith("inside_run:")]  # its key names the arm
    assert len(chosen) == 1 and chosen[0].value == run_id
    figure = json.loads(app.get("plotly_chart")[0].proto.spec)
    names = {trace["name"] for trace in figure["data"]}
    assert {"‖∂L/∂s_t‖ layer 1", "‖∂L/∂u_t‖", "gate reset", "gate update"} <= names
    assert any("reaches the first step" in caption.value for caption in app.caption)


def test_the_trace_figure_says_when_a_model_has_no_gates() -> None:
    """coRNN has no gates: the Inside the model page's gates panel says so instead of staying an empty box."""
    from seqarena.dashboard.figures import trace_figure

    setup = setup_of("cornn", 10)
    torch.manual_seed(0)
    inputs, targets = setup.task.eval_set("val")
    titles = [note.text for note in trace_figure(trace(build_model(setup), setup.task, (inputs[:4], targets[:4]),
                                                       model="cornn")).layout.annotations]
    assert "gates: none, cornn has no gates (its state norms and features are above and below)" in titles
    gru = setup_of("gru", 10)
    inputs, targets = gru.task.eval_set("val")
    titles = [note.text for note in trace_figure(trace(build_model(gru), gru.task, (inputs[:4], targets[:4]),
                                                       model="gru")).layout.annotations]
    assert "gates (mean over batch and units), last layer" in titles


def test_the_trace_figure_s_gradient_axis_reads_whole_numbers() -> None:
    """Issue 19: the gradient panel's log axis labels 0.002 as 0.002 (Plotly's default printed a bare "2" between
    decades and "100µ" for 0.0001)."""
    from seqarena.dashboard.figures import LOG_TICKS, trace_figure

    gru = setup_of("gru", 10)
    torch.manual_seed(0)
    inputs, targets = gru.task.eval_set("val")
    layout = trace_figure(trace(build_model(gru), gru.task, (inputs[:4], targets[:4]), model="gru")).layout
    assert (layout.yaxis.type, layout.yaxis.tickformat, layout.yaxis.title.text) == ("log", LOG_TICKS, "gradient norm")
