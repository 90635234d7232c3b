"""Screenshots for the README: the dashboard's leaderboard and metric vs T, and the published report, of the
current SEQARENA_HOME.

    SEQARENA_HOME=~/.seqarena .venv/bin/python scripts/dashboard_screenshots.py docs/images [TASK]

Starts `seqarena dashboard` on a free loopback port, opens it in Debian's headless Chromium through
Playwright, saves `leaderboard.png` and `accuracy_vs_T.png` into the given folder, and stops the server;
then writes `seqarena report --task TASK` (default adding) into a temporary folder, opens its HTML page from
disk and saves the top of it as `report.png`.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_healthy(url: str, timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout_s:.0f} s")


def shoot(url: str, folder: Path) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(url)
        expect(page.locator("table.seqarena-board")).to_be_visible(timeout=60_000)
        page.wait_for_timeout(1500)
        page.screenshot(path=str(folder / "leaderboard.png"), full_page=True)
        page.get_by_role("link", name="Metric vs T").click()
        expect(page.locator(".js-plotly-plot").first).to_be_visible(timeout=60_000)
        page.wait_for_timeout(1500)
        page.screenshot(path=str(folder / "accuracy_vs_T.png"), full_page=True)
        browser.close()


def shoot_report(task: str, folder: Path) -> None:
    """The top of `seqarena report --task TASK`'s HTML page (its leaderboard and first figure), offline."""
    from seqarena.platform import database
    from seqarena.report import write_report

    with tempfile.TemporaryDirectory() as out, sync_playwright() as playwright:
        written = write_report(database.get_engine(), task, None, Path(out))
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_context(viewport={"width": 1400, "height": 1100}, offline=True).new_page()
        page.goto(written.html.resolve().as_uri())
        expect(page.locator(".js-plotly-plot").first).to_be_visible(timeout=30_000)
        page.wait_for_timeout(1000)
        page.screenshot(path=str(folder / "report.png"))
        browser.close()


def main(folder: Path, task: str = "adding") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "seqarena.cli", "dashboard", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url)
        shoot(url, folder)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    shoot_report(task, folder)
    print(f"wrote {folder / 'leaderboard.png'}, {folder / 'accuracy_vs_T.png'} and {folder / 'report.png'}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/images"), *sys.argv[2:3])
