"""Screenshots for the README: every page of the dashboard, and the published report, of the current
SEQARENA_HOME (after `seqarena demo`).

    SEQARENA_HOME=~/.seqarena .venv/bin/python scripts/dashboard_screenshots.py docs/images [TASK]

Starts `seqarena dashboard` on a free loopback port, opens it in Debian's headless Chromium through
Playwright, saves one full-page PNG per page (`PAGES`: `leaderboard.png`, `accuracy_vs_T.png`, ...) into the
given folder, and stops the server; then writes `seqarena report --task TASK` (default adding) into a temporary
folder, opens its HTML page from disk and saves the top of it as `report.png`.
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


PAGES = (  # (the sidebar link, the file name)
    ("Compare", "compare.png"),
    ("Metric vs T", "accuracy_vs_T.png"),
    ("Memory & throughput", "memory_throughput.png"),
    ("Pareto", "pareto.png"),
    ("Trials", "trials.png"),
    ("Inside the model", "inside.png"),
    ("Jobs", "jobs.png"),
    ("Models", "models.png"),
)


def shoot(url: str, folder: Path) -> list[Path]:
    """The leaderboard (the first page), then each of `PAGES` reached through the sidebar."""
    written = [folder / "leaderboard.png"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        # Streamlit scrolls inside its main element, so full_page adds nothing: a tall viewport shows more
        page = browser.new_page(viewport={"width": 1400, "height": 1500})
        page.goto(url)
        expect(page.locator("table.seqarena-board")).to_be_visible(timeout=60_000)
        page.wait_for_timeout(2500)
        page.screenshot(path=str(written[0]), full_page=True)
        for link, name in PAGES:
            page.get_by_role("link", name=link, exact=True).click()
            page.wait_for_load_state("networkidle")
            page.wait_for_timeout(6000)  # the page's figures and tables settle
            expect(page.locator("[data-testid='stException']")).to_have_count(0)
            page.screenshot(path=str(folder / name), full_page=True)
            written.append(folder / name)
        browser.close()
    return written


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
        written = shoot(url, folder)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    shoot_report(task, folder)
    print("wrote " + ", ".join(str(path) for path in [*written, folder / "report.png"]))


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/images"), *sys.argv[2:3])
