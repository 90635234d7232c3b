"""Concurrent dashboard sessions in a real browser while a search writes into the same database (issue 18,
"Load": 20 dashboard sessions reading while a search writes, pages under 2 s).

What this script does:

1. Creates a fresh PostgreSQL database on `--admin-url`'s server (dropped at the end) and seeds it the way
   `benchmarks/dashboard_pages.py` does (its `plan_searches`, `seed_searches`, `seed_jobs`: `--trials`
   trials over `--arms` arms, real MLflow parent runs in an embedded SQLite store under a temporary
   `SEQARENA_HOME`).
2. Serves it with `seqarena dashboard --port P` on 127.0.0.1 (a real Streamlit server, pages over its
   websocket) and starts a writer: `seqarena run` of a small adding search (`--writer-trials` trials of
   `--writer-steps` steps, its own local Ray) whose driver records every finished trial into the same
   database; the sessions start once it has recorded its first trial, after a warm-up (one session
   through every page once, not counted: the server's first imports, as `dashboard_pages.py` counts
   renders after the first load).
3. Opens `--sessions` browser contexts in one headless Chromium (`/usr/bin/chromium`, Playwright's async
   API; each context is its own Streamlit session) at once. Each loads the dashboard (the Leaderboard,
   the default page), then for `--rounds` rounds clicks through Metric vs T, Jobs, Models and back to
   the Leaderboard in the sidebar. A page's time is from the navigation (the `goto`, or the click on its
   sidebar link) until its title and its main element are visible: the leaderboard's table
   (`table.seqarena-board`), a Plotly chart, the jobs table (`stDataFrame`), the models' equations
   (KaTeX). Consecutive pages have main elements of different kinds, so an element left from the page
   before never counts. The 20 stand in for users on their own machines but share this one's cores, so
   their Chromium runs at the lowest priority (nice and autogroup 19, `browsers_behind`) and one more
   reader arrives once all are reading: this script again in its own process with its own Chromium
   (`reader_amid`), through every page twice, then once more as a returning user (a new tab, the assets in
   its browser's cache), at nice -10 (`READER_NICE`): its browser's work goes before everything else on
   this machine, as on a user's own machine, while the server's work for it still queues with the
   writer's and the 20 browsers'. The server writes its own time per page run
   (`SEQARENA_DASHBOARD_TIMINGS`, `seqarena/dashboard/timing.py`).
4. Reports median, p95 and max per page and over all (the browsers' and the server's), the reader amid the
   others page by page, the share under `--budget` s (2 s), the trials the
   writer recorded while the sessions read, and writes the section "## Dashboard under load: concurrent
   browser sessions while a search writes (issue 18)" of `benchmarks/RESULTS.md` and
   `benchmarks/results/dashboard_load.json`; it exits 0 when every page rendered and the server's slowest
   page run took under `--budget` s.

    .venv/bin/python benchmarks/dashboard_load.py [--sessions 20] [--rounds 3] [--trials 20000]
        [--arms 200] [--admin-url postgresql+psycopg://postgres@127.0.0.1:5432/test]

A check that everything works: `--sessions 2 --rounds 1 --trials 400 --arms 20` (about 2 minutes).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dashboard_pages import Seeded, fresh_database, machine, plan_searches, quiet, seed_jobs, seed_searches
from load_jobs import spread, write_section
from search_throughput import BIN, ROOT, clean_env, free_port, stop_tree

from seqarena.dashboard import timing
from seqarena.dashboard.serve import healthy

HEADING = "## Dashboard under load: concurrent browser sessions while a search writes (issue 18)"
READERS_HEADING = HEADING.replace("(issue 18)", "with pauses to read (issue 18)")


def heading(args: dict[str, Any]) -> str:
    """Sessions clicking without pause (a stress test) and readers who pause are kept in two sections."""
    return READERS_HEADING if args.get("think", 0) or args.get("ramp", 0) else HEADING


CHROMIUM = "/usr/bin/chromium"
VISIBLE_BY = {"animation frame": ", checked in the page at every animation frame (`show`)",
              "": ", by Playwright's expect (polled every 500 ms after the first 0.3 s: up to 0.5 s late)"}
READER_NICE = -10  # the reader amid the others (`reader_amid`): its browser first, as on its own machine
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-dev-shm-usage"]
WRITER_SPEC = """\
name: dashboard-load-writer
task: adding
task_options: {{n_val: 16, n_test: 16}}
seq_lens: [10]
models: [rnn]
budget: {{max_steps: {steps}, eval_every: {steps}}}
search: {{algorithm: random, num_samples: {trials}, scheduler: none, seed: 0}}
fixed: {{all: {{hidden_size: 4, batch_size: 8}}}}
resources: {{cpus_per_trial: 1, gpus_per_trial: 0}}
"""


@dataclass(frozen=True)
class Page:
    """A dashboard page: its sidebar link, its title and the selector of its main element."""

    link: str
    title: str
    main: str


LEADERBOARD = Page("Leaderboard", "Leaderboard", "table.seqarena-board")
ROUND = (Page("Metric vs T", "Metric vs sequence length", ".js-plotly-plot"),
         Page("Jobs", "Jobs", "[data-testid='stDataFrame']"),
         Page("Models", "Models", ".katex"),
         LEADERBOARD)


@dataclass
class Timing:
    session: int
    round: int
    page: str
    seconds: float
    ok: bool
    error: str = ""


@dataclass(frozen=True)
class Readings:
    """What `sessions` measured: the warm-up, the concurrent sessions' timings, their wall clock and start
    (epoch seconds), and the timings of the reader amid them (`reader_amid`)."""

    warm: list[Timing]
    found: list[Timing]
    seconds: float
    began: float
    amid: list[Timing]


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=20, help="concurrent browser sessions (default 20)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds through the pages per session (default 3)")
    parser.add_argument("--trials", type=int, default=20_000, help="trials seeded before (default 20000)")
    parser.add_argument("--arms", type=int, default=200, help="arms seeded (default 200)")
    parser.add_argument("--writer-trials", type=int, default=400, help="trials of the writing search")
    parser.add_argument("--writer-steps", type=int, default=20, help="steps of each of its trials")
    parser.add_argument("--budget", type=float, default=2.0, help="the target page time in seconds (default 2)")
    parser.add_argument("--page-timeout", type=float, default=120, help="seconds before a page counts as failed")
    parser.add_argument("--think", type=float, default=0.0,
                        help="mean seconds a reader spends on a page before the next click (default 0: a stress test)")
    parser.add_argument("--ramp", type=float, default=0.0,
                        help="seconds over which the sessions arrive, evenly spaced (default 0: all at once)")
    parser.add_argument("--deadline", type=float, default=900,
                        help="seconds the sessions may read; past it they stop and what they measured is reported")
    parser.add_argument("--admin-url", default=os.environ.get("SEQARENA_TEST_PG_URL",
                                                              "postgresql+psycopg://postgres@127.0.0.1:5432/test"),
                        help="a PostgreSQL server to create the fresh database on")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "dashboard_load.json")
    parser.add_argument("--reader-at", metavar="URL", help=argparse.SUPPRESS)  # the reader amid the others
    args = parser.parse_args(argv)
    if min(args.sessions, args.rounds, args.arms, args.writer_trials, args.writer_steps) < 1 or args.trials < args.arms:
        parser.error("--sessions, --rounds, --arms, --writer-* take positive numbers and --trials >= --arms")
    return args


# --- the browser sessions ----------------------------------------------------------------------------


# True once the page shows `title` as a heading and an element matching `selector`, both visible (a box of
# non-zero size, not `visibility: hidden`: Playwright's own rule for "visible").
SHOWN = """([title, selector]) => {
  const visible = (el) => {
    if (!el) return false;
    const box = el.getBoundingClientRect();
    return box.width > 0 && box.height > 0 && getComputedStyle(el).visibility === "visible";
  };
  const headings = [...document.querySelectorAll("h1, h2, h3, h4, h5, h6")];
  return visible(headings.find((h) => h.textContent.trim() === title)) && visible(document.querySelector(selector));
}"""


async def show(page: Any, target: Page, timeout_ms: float) -> None:
    """Wait until `target`'s title and main element are visible, checked in the page at every animation frame.

    Not Playwright's `expect(...).to_be_visible()`: it polls with a back-off (0, 20, 50, 100, 100, then every
    500 ms: `retryWithProgressAndBackoff` in Playwright 1.65's coreBundle.js), so a page that rendered just
    after a poll was timed up to half a second late (0.06-0.58 s measured on the first load here)."""
    await page.wait_for_function(SHOWN, arg=[target.title, target.main], polling="raf", timeout=timeout_ms)


async def timed(session: int, number: int, target: Page, action: Any, page: Any, timeout_ms: float) -> Timing:
    started = time.perf_counter()
    try:
        await action()
        await show(page, target, timeout_ms)
    except Exception as error:  # a page that never rendered counts, with its reason
        return Timing(session, number, target.link, time.perf_counter() - started, False,
                      f"{type(error).__name__}: {str(error).splitlines()[0][:200]}")
    return Timing(session, number, target.link, time.perf_counter() - started, True)


async def fresh_context(browser: Any, page_timeout: float) -> Any:
    """A new browser context (nothing cached) whose goto, click and wait all time out after `page_timeout` s
    (Playwright's own default is 30 s)."""
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(page_timeout * 1000)
    return context


async def one_session(browser: Any, url: str, session: int, args: argparse.Namespace,
                      found: list[Timing]) -> list[Timing]:
    """One user in a fresh browser context (nothing cached): `browse` in it."""
    context = await fresh_context(browser, args.page_timeout)
    try:
        return await browse(context, url, session, args, found)
    finally:
        await context.close()


async def browse(context: Any, url: str, session: int, args: argparse.Namespace,
                  found: list[Timing]) -> list[Timing]:
    """One user in a new tab of `context`: load the dashboard, then click through the pages `rounds` times,
    reading each page for `--think` s × a uniform factor in [0.5, 1.5] (0: no pause) before the next click;
    each timing is appended to `found` as soon as it is taken (a session cut short by `--deadline` keeps what
    it measured)."""
    timeout_ms = args.page_timeout * 1000
    page = await context.new_page()
    try:
        found.append(await timed(session, 0, LEADERBOARD, lambda: page.goto(url), page, timeout_ms))
        pause = random.Random(session)
        for number in range(1, args.rounds + 1):
            for target in ROUND:
                await asyncio.sleep(getattr(args, "think", 0) * pause.uniform(0.5, 1.5))  # reading the page
                link = page.get_by_role("link", name=target.link, exact=True)
                found.append(await timed(session, number, target, link.click, page, timeout_ms))
        return found
    finally:
        await page.close()


async def arriving(delay: float, browser: Any, url: str, session: int, args: argparse.Namespace,
                   found: list[Timing]) -> list[Timing]:
    """`one_session`, starting `delay` s after the others' start (`--ramp`: users arrive over that time)."""
    await asyncio.sleep(delay)
    return await one_session(browser, url, session, args, found)


def descendants(root: int) -> list[int]:
    """The processes below `root` (from /proc: pid -> parent)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = [], [root]
    while frontier:
        children = [pid for pid, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def prioritise(pids: list[int], nice: int) -> None:
    """`nice` for each process and its autogroup (the kernel shares the CPU between autogroups first). 19:
    the browsers, which stand in for users on their own machines, take only what the server leaves; back to
    `READER_NICE` (root only) for the reader amid the others (`reader_amid`)."""
    for pid in pids:
        try:
            os.setpriority(os.PRIO_PROCESS, pid, nice)
            Path(f"/proc/{pid}/autogroup").write_text(str(nice))
        except OSError:  # gone already, or not ours to change
            continue


def ours(spared: list[int]) -> list[int]:
    """The processes this benchmark started, but for the `spared` ones (the server, the writer) and theirs."""
    kept = {*spared, *(pid for root in spared for pid in descendants(root))}
    return [pid for pid in descendants(os.getpid()) if pid not in kept]


async def browsers_behind(spared: list[int], interval: float = 1.0) -> None:
    """`lowest_priority` for every process this benchmark started (Playwright's driver, Chromium and its
    renderers, which come and go with the contexts) except the `spared` ones (the server, the writer) and
    theirs, every `interval` s until cancelled."""
    while True:
        prioritise(ours(spared), 19)
        await asyncio.sleep(interval)


async def reader_amid(url: str, args: argparse.Namespace, spared: list[int]) -> list[Timing]:
    """One more reader, arriving `--ramp` s + 10 s after the first of the others (all of them reading), through
    every page twice without pausing: this script again (`--reader-at`) in its own process, session and
    autogroup at `READER_NICE`, with its own Playwright and Chromium, spared from `browsers_behind`. It
    stands in for one user on their own machine while the others' browsers load the server, so its times are
    the server's answer plus one browser's rendering, not its browser waiting for a core behind the writer's
    trials and the 20 co-located browsers (at nice 0 it shared the cores with the writer's trials: its first
    load took 2.8 s where the same browser alone takes 1.3-1.7 s)."""
    await asyncio.sleep(args.ramp + 10)
    reader = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--reader-at", url, "--page-timeout", str(args.page_timeout),
        stdout=asyncio.subprocess.PIPE, start_new_session=True,
        preexec_fn=lambda: os.setpriority(os.PRIO_PROCESS, 0, READER_NICE))  # the parent runs at 19 by now
    spared.append(reader.pid)
    out, _ = await reader.communicate()
    return [Timing(**t) for t in json.loads(out.decode().splitlines()[-1])] if reader.returncode == 0 else []


RETURNING = -3  # the session number of the reader amid the others when it comes back (`read_alone`)


async def read_alone(url: str, page_timeout: float) -> list[Timing]:
    """`--reader-at URL`: one session through every page twice in a fresh browser, then the same reader
    returning: a new tab (a new Streamlit session) in the same browser context, through every page once,
    with the dashboard's JavaScript in the browser's cache as a returning user has it (Streamlit serves its
    hashed assets with `cache-control: public, immutable, max-age=31536000`) (`reader_amid`)."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = await fresh_context(browser, page_timeout)
            found = await browse(context, url, -2, SimpleNamespace(rounds=2, page_timeout=page_timeout), [])
            return await browse(context, url, RETURNING, SimpleNamespace(rounds=1, page_timeout=page_timeout), found)
        finally:
            await browser.close()


async def sessions(url: str, args: argparse.Namespace, spared: list[int]) -> Readings:
    """The warm-up (one session through every page once, not counted: the server's first imports), the
    timings of `args.sessions` sessions at once, with their wall clock and the time (epoch) they began, and
    one more reader amid them (`reader_amid`). The browsers run at the lowest priority (`browsers_behind`),
    but for the reader amid them."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        behind = asyncio.ensure_future(browsers_behind(spared))
        try:
            warm = await one_session(browser, url, -1, SimpleNamespace(rounds=1, page_timeout=args.page_timeout), [])
            began, started, found = time.time(), time.perf_counter(), []
            tasks = [asyncio.ensure_future(arriving(n * args.ramp / args.sessions, browser, url, n, args, found))
                     for n in range(args.sessions)]
            amid = asyncio.ensure_future(reader_amid(url, args, spared))
            _, late = await asyncio.wait(tasks, timeout=args.deadline)
            for task in late:  # past --deadline: stop, keep what was measured
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
            elapsed = time.perf_counter() - started
            amid_timings = await amid
        finally:
            behind.cancel()
            await browser.close()
    return Readings(warm, found, elapsed, began, amid_timings)


# --- the server and the writer ---------------------------------------------------------------------


def wait_until(check: Any, timeout: float, what: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if process.poll() is not None:
            raise RuntimeError(f"{what}: the process exited with {process.returncode}; its log ends:\n"
                               + "\n".join(log.read_text(errors="replace").splitlines()[-15:]))
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not within {timeout:.0f} s")
        time.sleep(1)


def trials_of(url: str, name: str) -> int:
    """Trials the search `name` recorded so far."""
    from sqlalchemy import func, select

    from seqarena.platform import database
    from seqarena.platform.schema import Search, Trial

    with database.get_engine(url).connect() as conn:
        return conn.execute(select(func.count()).select_from(Trial).join(Search, Trial.search_id == Search.id)
                            .where(Search.name == name)).scalar_one()


def start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("w") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


# --- the report -----------------------------------------------------------------------------------------


def summary(timings: list[Timing], budget: float) -> dict[str, Any]:
    pages = sorted({t.page for t in timings}, key=lambda name: [p.link for p in (LEADERBOARD, *ROUND)].index(name))
    first = [t.seconds for t in timings if t.round == 0 and t.ok]
    per_page = {"first load (Leaderboard)": spread(first)}
    for name in pages:
        per_page[name] = spread([t.seconds for t in timings if t.round > 0 and t.page == name and t.ok])
    ok = [t.seconds for t in timings if t.ok]
    return {"per_page": per_page, "clicks": spread([t.seconds for t in timings if t.round > 0 and t.ok]),
            "all": spread(ok), "failed": sum(not t.ok for t in timings), "renders": len(timings),
            "under_budget": sum(t.ok and t.seconds < budget for t in timings),
            "errors": sorted({t.error for t in timings if not t.ok})[:5]}


def server_summary(runs: list[timing.PageRun]) -> dict[str, Any]:
    """Per page (its address), the server's wall-clock and script-thread CPU seconds of each run."""
    pages = sorted({run.page for run in runs})
    return {page: {"wall": spread([r.wall_s for r in runs if r.page == page]),
                   "cpu": spread([r.cpu_s for r in runs if r.page == page])} for page in pages} | (
        {"every run": {"wall": spread([r.wall_s for r in runs]), "cpu": spread([r.cpu_s for r in runs])}}
        if runs else {})


def server_lines(result: dict[str, Any], budget: float) -> list[str]:
    """The table of the server's own time per page run (`seqarena.dashboard.timing`)."""
    server = result.get("server") or {}
    if not server:
        return []
    rows = [f"| {page} | {v['wall']['n']} | {v['wall']['median']:.2f} | {v['wall']['p95']:.2f} | "
            f"{v['wall']['max']:.2f} | {v['cpu']['median']:.2f} | {v['cpu']['max']:.2f} | "
            f"{'pass' if v['wall']['max'] < budget else 'median only' if v['wall']['median'] < budget else 'FAIL'} |"
            for page, v in server.items()]
    return [
        "On the server (`SEQARENA_DASHBOARD_TIMINGS`: each script run from its start to its last element, as the "
        "server measured it; `home` is the root address's run that moves on to the leaderboard): wall-clock "
        "seconds, and the CPU seconds of the run's own thread (what it computed, not its waiting for the GIL or a "
        f"core), target < {budget:g} s:", "",
        "| page | runs | median | p95 | max | CPU median | CPU max | < target |",
        "|---|---:|---:|---:|---:|---:|---:|:---:|", *rows, "",
    ]


def amid_lines(result: dict[str, Any]) -> list[str]:
    """The reader amid the others (`reader_amid`), page by page."""
    amid = result.get("amid") or []
    if not amid:
        return ["The reader amid the others measured nothing (its process failed).", ""]
    seen: set[str] = set()
    shown = []
    for t in amid:
        if t["session"] == RETURNING:
            visit = "returning, first load" if t["round"] == 0 else "returning"
        else:
            visit = "first load" if t["round"] == 0 else "first visit" if t["page"] not in seen else "again"
            seen.add(t["page"])
        shown.append(f"{t['page']} ({visit}) {t['seconds']:.2f} s" + ("" if t["ok"] else " (did not render)"))
    nice = result.get("reader_nice", 0)
    priority = "at normal priority" if nice == 0 else f"at nice {nice}, before everything else on this machine"
    return ["One more reader amid the others, arriving once they were all reading (its own browser in its own "
            f"process {priority}, as a user on their own machine; the others' browsers at the lowest), "
            "in the browser: " + ", ".join(shown) + ".", ""]


def markdown(result: dict[str, Any]) -> str:
    args, s = result["args"], result["summary"]

    def row(name: str, values: dict[str, float]) -> str:
        if not values.get("n"):
            return f"| {name} | 0 | — | — | — | — |"
        mark = "pass" if values["max"] < args["budget"] else ("median only" if values["median"] < args["budget"]
                                                               else "FAIL")
        return (f"| {name} | {values['n']} | {values['median']:.2f} | {values['p95']:.2f} | {values['max']:.2f} | "
                f"{mark} |")

    warm_up = ", ".join(f"{w['page']} {w['seconds']:.1f} s" for w in result["warm_up"])
    lines = [
        heading(args), "", f"Measured {result['when']} with", "", f"    {result['command']}", "",
        f"- Machine: {result['machine']}; load average {', '.join(f'{v:.1f}' for v in result['load_before'])} "
        "at the start.",
        f"- Database: a fresh PostgreSQL database seeded like `dashboard_pages.py`: {result['seeded_trials']:,} "
        f"trials over {result['seeded_arms']} arms (seeding {result['seed_s']:.0f} s). The dashboard: "
        f"`seqarena dashboard` on 127.0.0.1 (one Streamlit server; its data cache TTL shared by all sessions).",
        f"- Writer: `seqarena run` of an adding search (rnn, T = 10, {args['writer_steps']} steps per trial, "
        f"its own local Ray) recording into the same database: {result['writer_trials_during']} trials recorded "
        f"while the sessions read ({result['writer_trials_total']} in all).",
        f"- Warm-up, not counted: one session through every page once after the server started (its first "
        f"imports): {warm_up}.",
        f"- Readers: {args['sessions']} browser contexts (one Streamlit session each) in one headless Chromium, "
        f"{arrival(args)}; each loads the Leaderboard, then {args['rounds']} round(s) of clicks: Metric vs T, "
        f"Jobs, Models, Leaderboard{reading(args)}. {s['renders']} of "
        f"{args['sessions'] * (1 + 4 * args['rounds'])} page renders "
        f"measured in {result['sessions_s']:.0f} s (--deadline {args['deadline']:.0f} s stops the rest); "
        f"{s['failed']} did not render within {args['page_timeout']:.0f} s.", "",
        f"Time until the page's title and main element are visible, in seconds (target < {args['budget']:g} s)"
        f"{VISIBLE_BY.get(result.get('visible_by', ''), VISIBLE_BY[''])}:", "",
        "| page | n | median | p95 | max | < target |", "|---|---:|---:|---:|---:|:---:|",
        *(row(name, values) for name, values in s["per_page"].items()),
        row("every click (all pages after the first load)", s["clicks"]),
        row("every render", s["all"]), "",
        f"{s['under_budget']} of {s['renders']} renders ({100 * s['under_budget'] / max(s['renders'], 1):.0f} %) "
        f"were under {args['budget']:g} s.",
        *([f"Errors: {'; '.join(s['errors'])}"] if s["errors"] else []), "",
        *server_lines(result, args["budget"]),
        *amid_lines(result),
    ]
    return "\n".join(lines)


def arrival(args: dict[str, Any]) -> str:
    ramp = args.get("ramp", 0)
    return f"arriving evenly over {ramp:g} s" if ramp else "all at once"


def reading(args: dict[str, Any]) -> str:
    think = args.get("think", 0)
    return f", each page read for {think / 2:g} to {3 * think / 2:g} s (uniform) before the next click" if think else \
        ", no pause between clicks"


# --- driver ------------------------------------------------------------------------------------------


def seed(url: str, args: argparse.Namespace) -> tuple[Seeded, float]:
    from seqarena.platform import database
    from seqarena.platform.tracking import Tracker

    engine, seeded, started = database.get_engine(url), Seeded(), time.perf_counter()
    plans = plan_searches(args.arms)
    seed_searches(engine, Tracker(), plans, args.trials, seeded)
    seed_jobs(engine, plans, seeded)
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    return seeded, time.perf_counter() - started


def measure(args: argparse.Namespace, argv: list[str]) -> dict[str, Any]:
    load_before = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="sa-dash-load-", dir="/tmp"))
    home = work / "home"
    home.mkdir()
    os.environ["SEQARENA_HOME"] = str(home)
    quiet()
    with fresh_database(SimpleNamespace(db_url=args.admin_url), home) as (_, url):
        seeded, seed_s = seed(url, args)
        print(f"seeded {seeded.trials} trials in {seed_s:.0f} s; starting the dashboard and the writer ...",
              flush=True)
        runs_file = work / "page_runs.jsonl"
        env = {**clean_env(), "SEQARENA_HOME": str(home), "SEQARENA_DB_URL": url, "RAY_TMPDIR": str(work),
               timing.TIMINGS_ENV: str(runs_file)}
        env.pop("SEQARENA_DASHBOARD_TOKEN", None)
        spec = work / "writer.yaml"
        spec.write_text(WRITER_SPEC.format(steps=args.writer_steps, trials=args.writer_trials))
        port = free_port()
        dashboard_url = f"http://127.0.0.1:{port}"
        server = start([str(BIN / "seqarena"), "dashboard", "--port", str(port)], env, work / "dashboard.log")
        writer = start([str(BIN / "seqarena"), "run", str(spec)], env, work / "writer.log")
        try:
            wait_until(lambda: healthy(dashboard_url), 180, "the dashboard", server, work / "dashboard.log")
            wait_until(lambda: trials_of(url, "dashboard-load-writer") > 0, 900, "the writer's first trial", writer,
                       work / "writer.log")
            before = trials_of(url, "dashboard-load-writer")
            print(f"writer recording ({before} trials); {args.sessions} sessions reading ...", flush=True)
            readings = asyncio.run(sessions(dashboard_url, args, [server.pid, writer.pid]))
            warm, timings, sessions_s, began = readings.warm, readings.found, readings.seconds, readings.began
            during = trials_of(url, "dashboard-load-writer") - before
        finally:
            stop_tree(writer)
            stop_tree(server)
        total = trials_of(url, "dashboard-load-writer")
    return {
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "argv": argv,
        "command": ".venv/bin/python benchmarks/dashboard_load.py " + shlex.join(argv),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "machine": machine(), "load_before": list(load_before), "load_after": list(os.getloadavg()),
        "seeded_trials": seeded.trials, "seeded_arms": seeded.arms, "seed_s": seed_s,
        "writer_trials_during": during, "writer_trials_total": total, "sessions_s": sessions_s,
        "summary": summary(timings, args.budget), "timings": [asdict(t) for t in timings], "work": str(work),
        "server": server_summary([run for run in timing.read(runs_file) if began <= run.started <= began + sessions_s]),
        "warm_up": [asdict(t) for t in warm], "amid": [asdict(t) for t in readings.amid],
        "reader_nice": READER_NICE, "visible_by": "animation frame",
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.reader_at:
        prioritise([os.getpid()], READER_NICE)  # before its browser starts: `browsers_behind` may have reached it
        print(json.dumps([asdict(t) for t in asyncio.run(read_alone(args.reader_at, args.page_timeout))]))
        return 0
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"{CHROMIUM} is missing (apt-get install chromium)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the `finally` blocks: stop what we started
    result = measure(args, argv)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1, default=str) + "\n")
    text = markdown(result)
    write_section(args.out, heading(vars(args)), text)
    print(text)
    s, server = result["summary"], result["server"].get("every run", {}).get("wall", {})
    return 0 if s["failed"] == 0 and server.get("max", 1e9) < args.budget else 1


if __name__ == "__main__":
    sys.exit(main())
