"""The dashboard's entrypoint: `streamlit run seqarena/dashboard/app.py` (what `seqarena dashboard` does).

Draws the shared sidebar filters, then the chosen page. A failure is shown as one redacted line,
never as a traceback that could carry a secret.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from seqarena.dashboard import filters
from seqarena.dashboard.safety import redact

HERE = Path(__file__).resolve().parent
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


def main() -> None:
    st.set_page_config(page_title="seqarena", page_icon=":material/timeline:", layout="wide")
    pages = [st.Page(HERE / file, title=title, icon=icon, default=i == 0)
             for i, (file, title, icon) in enumerate(PAGES)]
    page = st.navigation(pages)
    try:
        filters.sidebar()
        page.run()
    except Exception as error:
        st.error(f"{type(error).__name__}: {redact(str(error))}")


main()
