"""The dashboard in a real browser: `seqarena dashboard` on 127.0.0.1, headless Chromium driven by Playwright.

Debian's Chromium (`/usr/bin/chromium`, installed by scripts/test.sh) stands in for Playwright's
own browser download, which this machine cannot fetch. Screenshots land in `test-artifacts/`
(or `$SEQARENA_TEST_ARTIFACTS`).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from seqarena.dashboard.figures import NOT_SOLVED_COLOR, model_colors
from seqarena.dashboard.serve import healthy

from ..seed_results import Seeded, seed, seed_traceable
from .conftest import wait_for

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ARTIFACTS = Path(os.environ.get("SEQARENA_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def listening_addresses(port: int) -> set[str]:
    """The local addresses (hex, as the kernel writes them) with a listening TCP socket on `port`."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, port_hex = local.split(":")
            if state == "0A" and int(port_hex, 16) == port:
                found.add(address)
    return found


@dataclass(frozen=True)
class Served:
    """The dashboard under test: its address, its server's pid and what was seeded into its home."""

    url: str
    pid: int
    seeded: Seeded
    traceable: dict[str, str]
    """MLflow run ids (with checkpoints) by model: `seed_results.TRACEABLE`"""


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A seeded SEQARENA_HOME served by `seqarena dashboard` on a free port, one for the module's tests."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: scripts/test.sh installs Debian's chromium")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    home = tmp_path_factory.mktemp("dashboard_browser")
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("SEQARENA_HOME", str(home))
        for name in ("SEQARENA_DB_URL", "MLFLOW_TRACKING_URI", "SEQARENA_DASHBOARD_TOKEN"):
            monkeypatch.delenv(name, raising=False)
        seeded, traceable = seed(), seed_traceable(home)
        port = free_port()
        log = (home / "dashboard.log").open("w")
        server = subprocess.Popen([sys.executable, "-m", "seqarena.cli", "dashboard", "--port", str(port)],
                                  env=dict(os.environ), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_for(lambda: healthy(url) or server.poll() is not None, 90, "the dashboard to answer")
            assert server.poll() is None, (home / "dashboard.log").read_text()[-3000:]
            yield Served(url, server.pid, seeded, traceable)
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
            log.close()


@pytest.fixture(scope="module")
def browser(dashboard: Served) -> Iterator[Any]:
    """Headless Chromium, one for the module's tests (a fresh page each)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    opened = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        yield opened
    finally:
        opened.close()


def choose(page: Any, label: str, option: str, where: Any = None) -> None:
    """Pick `option` in the Streamlit select box or multiselect labelled `label`."""
    box = (where or page).get_by_test_id(re.compile("stSelectbox|stMultiSelect")).filter(has_text=label)
    box.locator("input").click()
    page.get_by_role("option").filter(has_text=option).click()


def test_the_dashboard_binds_to_loopback_and_serves_its_pages_to_chromium(dashboard: Served, page: Any) -> None:
    from playwright.sync_api import expect

    url = dashboard.url
    assert listening_addresses(int(url.rsplit(":", 1)[1])) == {"0100007F"}  # 127.0.0.1 only, no IPv6 / any
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.goto(url)
    board = page.locator("table.seqarena-board")
    expect(board).to_be_visible(timeout=60_000)
    expect(page).to_have_url(f"{url}/leaderboard")  # the root moves on to the leaderboard's own address
    expect(board).to_contain_text("★ 0.003 ± 0.0014")
    expect(board.locator("tr", has=page.locator("th", has_text=re.compile("^rnn$")))).to_contain_text("not solved")
    link = board.locator("a", has_text="0.003 ± 0.0014")
    assert link.get_attribute("href").startswith("http://127.0.0.1:5000/#/experiments/")
    page.screenshot(path=str(ARTIFACTS / "leaderboard.png"), full_page=True)

    page.get_by_role("link", name="Metric vs T").click()
    expect(page.get_by_role("heading", name="Metric vs sequence length")).to_be_visible(timeout=60_000)
    expect(page).to_have_url(f"{url}/accuracy")
    chart = page.locator(".js-plotly-plot").first
    expect(chart).to_be_visible(timeout=60_000)
    expect(chart).to_contain_text("trivial baseline")
    page.screenshot(path=str(ARTIFACTS / "accuracy_vs_T.png"), full_page=True)
    assert (ARTIFACTS / "leaderboard.png").stat().st_size > 10_000


def test_a_page_s_own_address_opens_that_page(dashboard: Served, page: Any) -> None:
    """`/leaderboard` (was "Page not found") and `/trials` are the pages themselves, not the root's."""
    from playwright.sync_api import expect

    page.goto(f"{dashboard.url}/leaderboard")
    expect(page.locator("table.seqarena-board")).to_contain_text("★ 0.003 ± 0.0014", timeout=60_000)
    expect(page.get_by_text("Page not found")).to_have_count(0)
    page.goto(f"{dashboard.url}/trials")
    expect(page.get_by_role("heading", name="Trials of an arm")).to_be_visible(timeout=60_000)
    expect(page.get_by_text("Page not found")).to_have_count(0)


def test_inside_the_model_follows_the_arm_and_the_pasted_run(dashboard: Served, page: Any) -> None:
    """It opens on the first arm's best trial (gru, T = 20), traced; choosing T=30/rnn traces rnn at T = 30
    (it kept tracing gru at T = 20) and says rnn has no gates (as coRNN, it has none); a pasted run id is traced
    at its own T."""
    from playwright.sync_api import expect

    page.goto(f"{dashboard.url}/inside")
    heading = page.get_by_role("heading", name=re.compile(" on adding at T = "))
    expect(heading).to_have_text("gru on adding at T = 20", timeout=90_000)
    expect(page.get_by_label("Trace at T")).to_have_value("20")
    choose(page, "Arm", re.compile("^adding/T=30/rnn"))
    expect(heading).to_have_text("rnn on adding at T = 30", timeout=90_000)
    expect(page.get_by_label("Trace at T")).to_have_count(1, timeout=30_000)  # the first arm's goes at the end
    expect(page.get_by_label("Trace at T")).to_have_value("30")
    expect(page.locator(".js-plotly-plot")).to_contain_text("rnn has no gates", timeout=60_000)
    run_box = page.get_by_label("MLflow run id (default: the arm's best trial)")
    run_box.fill(dashboard.traceable["gru"])
    run_box.press("Enter")
    expect(heading).to_have_text("gru on adding at T = 20", timeout=90_000)


def test_the_trials_page_keeps_curves_and_says_why_a_plot_is_missing(dashboard: Served, page: Any) -> None:
    """Switching the arm draws the new arm's best trials' curves (the choice emptied), and the missing parallel
    coordinates of an arm with one ranked trial are explained."""
    from playwright.sync_api import expect

    page.goto(f"{dashboard.url}/trials")
    choose(page, "Arm", re.compile("^adding/T=1000/rnn"))
    curves = page.get_by_test_id("stMultiSelect").filter(has_text="Learning curves of")
    expect(curves.filter(has_text="rnn1000_b (stopped)")).to_be_visible(timeout=60_000)
    expect(curves).to_have_count(1, timeout=30_000)  # the first arm's choice is gone once the run ends
    expect(page.locator(".js-plotly-plot", has_text="adding/T=1000/rnn: validation mse")).to_be_visible(
        timeout=30_000)
    expect(page.get_by_text("it needs two or more trials with a test metric (it has 1)")).to_be_visible()


def test_the_models_page_says_a_model_is_filtered_out(dashboard: Served, page: Any) -> None:
    from playwright.sync_api import expect

    page.goto(f"{dashboard.url}/models")
    expect(page.get_by_role("heading", name="Models")).to_be_visible(timeout=60_000)
    choose(page, "Models", "gru", where=page.get_by_test_id("stSidebar"))
    page.keyboard.press("Escape")
    choose(page, "Model", re.compile("^lstm$"), where=page.get_by_test_id("stMain"))
    expect(page.get_by_text("lstm is filtered out")).to_be_visible(timeout=60_000)
    expect(page.get_by_text("No results of lstm")).to_have_count(0)


def test_the_jobs_page_says_whether_a_worker_is_alive_and_where_each_job_queues(dashboard: Served,
                                                                                page: Any) -> None:
    """Two jobs queued a minute ago and no worker: it says none is alive, how to start one, and the order (the
    urgent job, submitted last, first); once a worker holds that one, the worker is alive and the other is next."""
    from playwright.sync_api import expect

    from seqarena.platform import database, jobs
    from seqarena.platform.schema import Job

    engine = database.get_engine()  # the server's database (the module fixture set SEQARENA_HOME)
    spec = "name: {}\ntask: adding\nseq_lens: [20]\nmodels: [gru]\n"
    older = jobs.submit(engine, spec.format("older-job"))
    urgent = jobs.submit(engine, spec.format("urgent-job"), priority=1)
    with database.session_scope(engine) as session:
        for job in session.query(Job).filter(Job.id.in_((older, urgent))):
            job.created_at -= timedelta(minutes=1)
    page.goto(f"{dashboard.url}/jobs")
    expect(page.get_by_text("No worker is alive")).to_be_visible(timeout=60_000)
    expect(page.get_by_text("seqarena worker", exact=True)).to_be_visible()
    expect(page.get_by_text(f"1. urgent-job ({urgent[:8]}) · 2. older-job ({older[:8]})")).to_be_visible()
    assert jobs.claim(engine, "browser-worker", 600).id == urgent
    page.reload()
    expect(page.get_by_text("Workers alive: 1 (1 running a job, 0 idle): browser-worker.")).to_be_visible(
        timeout=60_000)
    expect(page.get_by_text(f"Next in the queue: 1. older-job ({older[:8]})")).to_be_visible()


CHARTS = "Array.from(document.querySelectorAll('.js-plotly-plot'))"


def comparison_table_in_the_browser(page: Any) -> None:
    """Issue 19: the Leaderboard page's comparison table, downloaded as its CSV: one row per (model, T) with the
    hand-computed numbers of the seed, solved k / n, steps to solve, cost, where it was measured, the run link."""
    from playwright.sync_api import expect

    expect(page.get_by_role("heading", name="Comparison table")).to_be_visible(timeout=60_000)
    expect(page.get_by_text("stopped early by ASHA")).to_be_visible()
    expect(page.get_by_text("Cost not measured alike (devices", exact=False)).to_be_visible()
    with page.expect_download() as download:
        page.get_by_role("button", name="Download comparison table (CSV)").click()
    table = pd.read_csv(download.value.path())
    gru = table[(table["model"] == "gru") & (table["T"] == 100)].iloc[0]
    assert gru["test mse mean"] == pytest.approx(0.003) and gru["test mse std"] == pytest.approx(0.0014142, rel=1e-4)
    assert (gru["solved"], gru["steps to solve"], gru["params"], gru["peak memory (MB)"]) == ("2 / 2", 25, 10_000, 4)
    assert (gru["training seq/s"], gru["inference seq/s"], gru["device"], gru["timing"]) == \
        (200, 600, "cpu", "steady state")
    assert gru["MLflow run"].startswith("http://127.0.0.1:5000/#/experiments/")
    assert table[(table["model"] == "rnn") & (table["T"] == 1000)]["stopped by ASHA"].tolist() == [1]
    page.screenshot(path=str(ARTIFACTS / "leaderboard_comparison.png"), full_page=True)


def charts_read_plainly(page: Any) -> None:
    """Every chart on the page: a title with a unit on each axis, whole-number ticks on log axes (0.002, never
    "2"), hover labels to 4 significant digits, at most one legend entry per model."""
    page.wait_for_function(f"{CHARTS}.length && {CHARTS}.every(p => p._fullLayout)", timeout=60_000)  # [] is every()
    layouts = page.evaluate(f"""{CHARTS}.map(p => ({{
        x: p._fullLayout.xaxis.title.text, xtype: p._fullLayout.xaxis.type, xticks: p._fullLayout.xaxis.tickformat,
        y: p._fullLayout.yaxis.title.text, ytype: p._fullLayout.yaxis.type, yticks: p._fullLayout.yaxis.tickformat,
        legend: p._fullData.filter(t => t.showlegend).map(t => t.name),
        hover: p._fullData.map(t => t.hovertemplate || "")}}))""")
    assert layouts
    for layout in layouts:
        assert "(" in layout["x"] and layout["y"], layout  # "sequence length T (time steps)"
        for axis in ("x", "y"):
            if layout[f"{axis}type"] == "log":
                assert layout[f"{axis}ticks"] == "~g", layout
        assert len(layout["legend"]) == len(set(layout["legend"])), layout["legend"]
        assert all(".4g" in text for text in layout["hover"] if "%{y" in text), layout["hover"]


def cost_page_says_where_figures_were_measured(page: Any) -> None:
    from playwright.sync_api import expect

    page.get_by_role("link", name="Memory & throughput").click()
    expect(page.get_by_role("heading", name="Each arm's best trial, measured during its search")).to_be_visible(
        timeout=60_000)
    expect(page.get_by_text("Not measured alike (devices", exact=False)).to_be_visible()
    expect(page.get_by_text("lstm T=100 (may include warm-up)", exact=False)).to_be_visible()
    charts_read_plainly(page)
    legends = page.evaluate(f"{CHARTS}.map(p => p._fullData.filter(t => t.showlegend).map(t => t.name))")
    assert legends[-1].count("gru") == 1  # throughput: training and inference are line styles of one entry
    page.screenshot(path=str(ARTIFACTS / "memory_throughput.png"), full_page=True)


def pareto_front_holds_only_solving_trials(page: Any) -> None:
    from playwright.sync_api import expect

    page.get_by_role("link", name="Pareto").click()
    expect(page.get_by_role("heading", name="Pareto: metric against cost")).to_be_visible(timeout=60_000)
    choose(page, "Sequence length T", re.compile("^100$"))
    expect(page.get_by_text("no trial solved it for lstm, rnn: not on the front")).to_be_visible(timeout=60_000)
    page.wait_for_function(f"{CHARTS}.length && {CHARTS}[0]._fullData", timeout=60_000)
    traces = page.evaluate(f"""{CHARTS}[0]._fullData.map(t => ({{name: t.name, color: t.marker.color,
        x: Array.from(t.x)}}))""")
    front = next(t for t in traces if t["name"] == "Pareto front")
    assert front["x"] == [200] and front["color"] == [model_colors([])["gru"]]  # keeps gru's colour
    assert next(t for t in traces if t["name"] == "rnn")["color"] == NOT_SOLVED_COLOR
    charts_read_plainly(page)
    page.screenshot(path=str(ARTIFACTS / "pareto.png"), full_page=True)


def test_the_comparison_table_answers_on_one_screen(dashboard: Served, page: Any) -> None:
    page.goto(f"{dashboard.url}/leaderboard")
    comparison_table_in_the_browser(page)


def test_charts_have_units_plain_log_ticks_and_one_legend_entry_per_model(dashboard: Served, page: Any) -> None:
    from playwright.sync_api import expect

    page.goto(f"{dashboard.url}/accuracy")
    expect(page.locator(".js-plotly-plot").first).to_be_visible(timeout=60_000)
    charts_read_plainly(page)
    cost_page_says_where_figures_were_measured(page)


def test_the_pareto_front_holds_only_trials_that_solve(dashboard: Served, page: Any) -> None:
    page.goto(f"{dashboard.url}/leaderboard")
    pareto_front_holds_only_solving_trials(page)
