"""How figures appear on a page: interactive, downloadable as PNG (Plotly's toolbar) and CSV.

The PNG comes from Plotly's own toolbar (the camera button, rendered in the browser; no server-side
image engine needed); the CSV is the figure's data behind a download button.
"""

from __future__ import annotations

import re

import pandas as pd
import plotly.graph_objects as go
import streamlit as st


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "figure"


def show(figure: go.Figure, frame: pd.DataFrame, name: str) -> None:
    """Draw `figure` (PNG from its toolbar, named `name`) and offer `frame` as CSV."""
    config = {"displaylogo": False, "toImageButtonOptions": {"format": "png", "filename": slug(name), "scale": 2}}
    st.plotly_chart(figure, config=config, key=f"chart_{slug(name)}")
    st.download_button(f"Download {name} data (CSV)", frame.to_csv(index=False).encode(), file_name=f"{slug(name)}.csv",
                       mime="text/csv", key=f"csv_{slug(name)}")
