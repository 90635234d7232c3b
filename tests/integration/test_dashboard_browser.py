"""The dashboard in a real browser: `seqarena dashboard` on 127.0.0.1, headless Chromium driven by Playwright.

Debian's Chromium (`/usr/bin/chromium`, installed by scripts/test.sh) stands in for Playwright's
own browser download, which this machine cannot fetch. Screenshots land in `test-artifacts/`
(or `$SEQARENA_TEST_ARTIFACTS`).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..seed_results import seed
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


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture
def dashboard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, int]]:
    """A seeded SEQARENA_HOME served by `seqarena dashboard` on a free port; (url, server pid)."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: scripts/test.sh installs Debian's chromium")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    monkeypatch.setenv("SEQARENA_HOME", str(tmp_path))
    for name in ("SEQARENA_DB_URL", "MLFLOW_TRACKING_URI", "SEQARENA_DASHBOARD_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    seed()
    port = free_port()
    log = (tmp_path / "dashboard.log").open("w")
    server = subprocess.Popen([sys.executable, "-m", "seqarena.cli", "dashboard", "--port", str(port)],
                              env=dict(os.environ), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: healthy(url) or server.poll() is not None, 90, "the dashboard to answer")
        assert server.poll() is None, (tmp_path / "dashboard.log").read_text()[-3000:]
        yield url, server.pid
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


def test_the_dashboard_binds_to_loopback_and_serves_its_pages_to_chromium(dashboard: tuple[str, int]) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, _ = dashboard
    assert listening_addresses(int(url.rsplit(":", 1)[1])) == {"0100007F"}  # 127.0.0.1 only, no IPv6 / any
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url)
            board = page.locator("table.seqarena-board")
            expect(board).to_be_visible(timeout=60_000)
            expect(board).to_contain_text("★ 0.003 ± 0.0014")
            expect(board.locator("tr", has_text="rnn")).to_contain_text("not solved")
            link = board.locator("a", has_text="0.003 ± 0.0014")
            assert link.get_attribute("href").startswith("http://127.0.0.1:5000/#/experiments/")
            page.screenshot(path=str(ARTIFACTS / "leaderboard.png"), full_page=True)

            page.get_by_role("link", name="Metric vs T").click()
            expect(page.get_by_role("heading", name="Metric vs sequence length")).to_be_visible(timeout=60_000)
            chart = page.locator(".js-plotly-plot").first
            expect(chart).to_be_visible(timeout=60_000)
            expect(chart).to_contain_text("trivial baseline")
            page.screenshot(path=str(ARTIFACTS / "accuracy_vs_T.png"), full_page=True)
        finally:
            browser.close()
    assert (ARTIFACTS / "leaderboard.png").stat().st_size > 10_000


def test_the_published_report_opens_from_disk_with_its_table_and_plots(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """`seqarena report`'s HTML page, opened as a file:// URL in Chromium with the network off: its leaderboard
    table renders, its Plotly figures hold data (plotly.js is inline), and the console shows no error."""
    from playwright.sync_api import expect, sync_playwright

    from seqarena.platform import database
    from seqarena.report import write_report

    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    monkeypatch.setenv("SEQARENA_HOME", str(tmp_path))
    for name in ("SEQARENA_DB_URL", "MLFLOW_TRACKING_URI", "SEQARENA_DASHBOARD_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    seed()
    written = write_report(database.get_engine(), "adding", None, tmp_path / "report")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1100}, offline=True)
            page = context.new_page()
            page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(written.html.resolve().as_uri())
            board = page.locator("table.seqarena-report-leaderboard")
            expect(board).to_be_visible(timeout=30_000)
            expect(board).to_contain_text("0.003 [0.002, 0.004] n = 2")  # gru at T = 100, two seeds
            expect(board.locator("tr", has_text="rnn").first).to_contain_text("0 / 1")
            chart = page.locator(".js-plotly-plot").first
            expect(chart).to_be_visible(timeout=30_000)
            expect(chart).to_contain_text("trivial baseline")
            traces = page.evaluate("Array.from(document.querySelectorAll('.js-plotly-plot')).map(p => p.data.length)")
            assert len(traces) == 3 and min(traces) > 0, traces
            page.wait_for_timeout(500)
            page.screenshot(path=str(ARTIFACTS / "report.png"))
        finally:
            browser.close()
    assert not errors, errors
    assert (ARTIFACTS / "report.png").stat().st_size > 10_000
