"""The dashboard's entrypoint: `streamlit run seqarena/dashboard/app.py` (what `seqarena dashboard` does).

Draws the page menu and the shared sidebar filters, then the chosen page. Every page has its own
stable address (`PAGES`: `/leaderboard`, `/trials`, ...) that can be shared; the root address opens
the leaderboard at `/leaderboard`. (Streamlit serves its default page only at the root, so the root is a
page of its own that moves on to the leaderboard, and the menu is drawn here with `st.page_link`.)
A failure is shown as one redacted line, never as a traceback that could carry a secret.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from seqarena.dashboard import filters, timing
from seqarena.dashboard.safety import redact

HERE = Path(__file__).resolve().parent
# (file, title, icon) of each page; its address is "/" + the file's name without ".py". (A comment, not a
# docstring: Streamlit would draw a bare string of the main script on every page.)
PAGES = (
    ("leaderboard.py", "Leaderboard", ":material/leaderboard:"),
    ("compare.py", "Compare", ":material/compare_arrows:"),
    ("accuracy.py", "Metric vs T", ":material/show_chart:"),
    ("cost.py", "Memory & throughput", ":material/speed:"),
    ("pareto.py", "Pareto", ":material/scatter_plot:"),
    ("trials.py", "Trials", ":material/science:"),
    ("inside.py", "Inside the model", ":material/biotech:"),
    ("jobs.py", "Jobs", ":material/work:"),
    ("models.py", "Models", ":material/functions:"),
)


def url_path(file: str) -> str:
    """The page's address below the dashboard's root: its file's name (`leaderboard.py` -> `leaderboard`)."""
    return file.removesuffix(".py")


def main() -> None:
    st.set_page_config(page_title="seqarena", page_icon=":material/timeline:", layout="wide")
    pages = [st.Page(HERE / file, title=title, icon=icon, url_path=url_path(file)) for file, title, icon in PAGES]
    root = st.Page(lambda: st.switch_page(pages[0]), title=PAGES[0][1], url_path="home", default=True)
    page = st.navigation([root, *pages], position="hidden")
    with timing.timed(page.url_path or "home"):
        try:
            with st.sidebar:
                for shown in pages:
                    st.page_link(shown)
            filters.sidebar()
            page.run()
        except Exception as error:
            st.error(f"{type(error).__name__}: {redact(str(error))}")


main()
