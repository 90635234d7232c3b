"""`seqarena report`: a leaderboard you can publish (issue 17 §5): a static HTML page, its Markdown and JSON twins.

The content is `seqarena.platform.publication`'s (read from the database alone: the leaderboard's one
ranking rule, bootstrap intervals, solve statistics, max T solved, cost, data protocols, spec hashes and
the provenance of every number); this module adds the dashboard's Plotly figures
(`seqarena.dashboard.figures`: metric, peak memory and throughput against T) to the HTML page, with
plotly.js inlined once so that the page opens offline, and writes the three files. No Streamlit here.

Every text written passes through the dashboard's `redact` (`seqarena.dashboard.safety`): no database
password, token or other secret of the environment reaches a published file. Bad input (a task with no
arm, a search not found, an output path that is a file) raises `BadInput` before anything is written.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
from sqlalchemy import Engine

from seqarena.dashboard import figures
from seqarena.dashboard.safety import redact
from seqarena.errors import BadInput
from seqarena.platform.leaderboard import board_frame
from seqarena.platform.lengths import points_frame
from seqarena.platform.publication import Publication, Section, headline, publication, sections, to_json, to_markdown

NAMES = ("report.html", "report.md", "report.json")
_STYLE = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px}
table{border-collapse:collapse;margin:.5em 0 1.5em}th,td{border:1px solid #ccc;padding:3px 8px;text-align:left}
th{background:#f3f3f3}caption{caption-side:top;text-align:left;color:#555;padding:4px 0;max-width:1100px}
pre{background:#f6f6f6;padding:8px;overflow:auto}"""


@dataclass(frozen=True)
class Written:
    """The files a report wrote, and what it covered."""

    html: Path
    markdown: Path
    json: Path
    arms: int


def write_report(engine: Engine, task: str, search: str | None, out: Path) -> Written:
    """Write report.html, report.md and report.json of `task` (and of search `search`) into folder `out`."""
    if out.exists() and not out.is_dir():
        raise BadInput("out", str(out), "a folder (existing or to create), not a file")
    pub = publication(engine, task, search)
    texts = {"report.html": page(pub), "report.md": redact(to_markdown(pub)),
             "report.json": redact(json.dumps(to_json(pub), indent=1, default=str))}
    out.mkdir(parents=True, exist_ok=True)
    for name in NAMES:
        (out / name).write_text(texts[name], encoding="utf-8")
    return Written(out / NAMES[0], out / NAMES[1], out / NAMES[2], len(pub.arms))


def report_figures(pub: Publication) -> list[go.Figure]:
    """The dashboard's figures of the report's arms: test metric (with its failed cells marked), peak memory and
    throughput of each arm's best trial, against T."""
    rows = [arm.board for arm in pub.arms]
    every = board_frame(rows)
    ranked = every[every["mean"].notna()]
    if ranked.empty:
        return []
    metric = rows[0].metric_name
    direction = "higher is better" if rows[0].higher_is_better else "lower is better"
    shown = [figures.versus_seq_len(ranked, "mean", f"{pub.task}: test {metric} against T ({direction})",
                                    f"test {metric}", spread="std", baseline=ranked[["seq_len", "baseline"]],
                                    marked=every[every["failure"].notna()])]
    memory = every[every["peak_mem_mb"].notna()]
    if not memory.empty:
        shown.append(figures.versus_seq_len(memory, "peak_mem_mb", f"{pub.task}: peak memory of a training step",
                                            "peak memory (MB)", log_y=True))
    speed = pd.concat([every.assign(phase="training", seq_per_s=every["train_seq_per_s"]),
                       every.assign(phase="inference", seq_per_s=every["infer_seq_per_s"])])
    speed = speed[speed["seq_per_s"].notna()]
    if not speed.empty:
        shown.append(figures.versus_seq_len(speed, "seq_per_s", f"{pub.task}: throughput (solid: training, dashed: "
                                            "inference)", "throughput (sequences/s)", log_y=True, dash_by="phase"))
    if pub.lengths:
        shown.append(figures.versus_other_lengths(points_frame(pub.lengths), f"{pub.task}: test {metric} at the "
                                                  "length T′ tested at", f"test {metric}"))
    return shown


def _text(text: str) -> str:
    """Text of the report as HTML: secrets redacted first (`redact`), then escaped."""
    return html.escape(redact(text))


def html_table(section: Section) -> str:
    head = "".join(f"<th>{_text(name)}</th>" for name in section.header)
    body = "".join("<tr>" + "".join(f"<td>{_text(cell)}</td>" for cell in row) + "</tr>" for row in section.rows)
    return (f'<table class="seqarena-report-{section.key}"><caption>{_text(section.caption)}</caption>'
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


def page(pub: Publication) -> str:
    """The report as one self-contained HTML page (plotly.js inlined once, before the first figure); its text
    redacted (`redact`), the figures (numbers and model names, and plotly.js, which a replacement would break)
    as Plotly writes them."""
    plots = [figure.to_html(full_html=False, include_plotlyjs=index == 0, config={"displaylogo": False})
             for index, figure in enumerate(report_figures(pub))]
    parts = [f"<h1>seqarena report: {_text(pub.task)}</h1>",
             "<ul>" + "".join(f"<li>{_text(line)}</li>" for line in headline(pub)) + "</ul>"]
    for index, section in enumerate(sections(pub)):
        parts += [f"<h2>{_text(section.title)}</h2>", html_table(section)]
        if index == 0:
            parts += [f'<div class="seqarena-report-plot">{plot}</div>' for plot in plots]
    for s in pub.searches:
        parts += [f"<h3>{_text(f'Spec of search {s.name} ({s.id}, hash {s.spec_hash})')}</h3>",
                  f"<pre>{_text(s.spec_yaml)}</pre>"]
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>seqarena report: '
            f"{_text(pub.task)}</title><style>{_STYLE}</style></head><body>{''.join(parts)}</body></html>")
