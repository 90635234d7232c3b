"""Safe defaults (issue 18 §4): a dashboard that listens beyond 127.0.0.1 needs a real token, and the
trace page ("Inside the model", which loads a checkpoint and runs a model) is gated by it and bounds T."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from seqarena.dashboard.serve import check_token
from seqarena.errors import BadInput
from tests.helpers import ADDING_RUN, recorded_run

TOKEN = "0123456789abcdef0123"


@pytest.mark.parametrize("token", [None, "change-me", "short"])
def test_a_dashboard_on_the_network_refuses_to_start_without_a_real_token(token: str | None, run_cli,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    if token is None:
        monkeypatch.delenv("SEQARENA_DASHBOARD_TOKEN", raising=False)
    else:
        monkeypatch.setenv("SEQARENA_DASHBOARD_TOKEN", token)
    code, out, err = run_cli(["dashboard", "--host", "0.0.0.0", "--port", "8599"])
    assert code == 2 and out == ""
    (line,) = [line for line in err.splitlines() if line.strip()]
    assert line.startswith("error: SEQARENA_DASHBOARD_TOKEN: got ") and "0.0.0.0" in line
    assert token is None or token not in line.split("allowed:")[1]


def test_on_loopback_or_with_a_real_token_it_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEQARENA_DASHBOARD_TOKEN", raising=False)
    check_token("127.0.0.1")
    with pytest.raises(BadInput):
        check_token("0.0.0.0")
    monkeypatch.setenv("SEQARENA_DASHBOARD_TOKEN", TOKEN)
    check_token("0.0.0.0")


def test_the_trace_page_asks_for_the_token_and_bounds_t(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from streamlit.testing.v1 import AppTest

    from seqarena.dashboard.serve import APP

    monkeypatch.setenv("SEQARENA_HOME", str(tmp_path))
    monkeypatch.delenv("SEQARENA_DB_URL", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("SEQARENA_DASHBOARD_TOKEN", TOKEN)
    recorded_run(tmp_path, ADDING_RUN)
    app = AppTest.from_file(str(APP), default_timeout=120)
    app.run()
    app.switch_page("inside.py")
    app.run()
    assert not app.exception and not app.get("plotly_chart")  # nothing traced without the token
    trace_at = [box for box in app.number_input if box.key.startswith("inside_seq_len:")]  # its key names the run
    assert len(trace_at) == 1 and trace_at[0].proto.max == 4 * ADDING_RUN["seq_len"]
    app.text_input(key="inside_token").input("wrong-token-value").run()
    assert not app.get("plotly_chart") and any("wrong" in info.value for info in app.info)
    app.text_input(key="inside_token").input(TOKEN).run()
    assert not app.exception
    figure = json.loads(app.get("plotly_chart")[0].proto.spec)
    assert {"‖∂L/∂s_t‖ layer 1"} <= {trace["name"] for trace in figure["data"]}
