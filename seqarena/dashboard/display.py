"""How figures appear on a page: interactive, downloadable as PNG (Plotly's toolbar) and CSV.

The PNG comes from Plotly's own toolbar (the camera button, rendered in the browser; no server-side
image engine needed); the CSV is the figure's data behind a download button.
"""

from __future__ import annotations

import math
import re
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "figure"


def show(figure: go.Figure, frame: pd.DataFrame, name: str) -> None:
    """Draw `figure` (PNG from its toolbar, named `name`) and offer `frame` as CSV."""
    config = {"displaylogo": False, "toImageButtonOptions": {"format": "png", "filename": slug(name), "scale": 2}}
    st.plotly_chart(figure, config=config, key=f"chart_{slug(name)}")
    csv_download(f"Download {name} data (CSV)", frame, f"{slug(name)}.csv", key=f"csv_{slug(name)}")


def csv_download(label: str, frame: pd.DataFrame, file_name: str, key: str) -> None:
    """A button that downloads `frame` as CSV, written only when clicked (Streamlit runs the callable then),
    not on every render of the page: `to_csv` of the tables was 4 % of the server's time under load."""
    st.download_button(label, lambda: frame.to_csv(index=False).encode(), file_name=file_name, mime="text/csv",
                       key=key)


SIGNIFICANT = 4
"""Significant digits of every number the dashboard shows (tables and hover labels: Plotly's `.4g`)."""
NUMBER_FORMAT = "%g"
"""How a table shows a float column already rounded by `rounded`: as it is (0.001414, 22010). Streamlit's default
cuts to 4 decimals (0.0014) and its "plain" prints 4000 as 3999.9999999999995."""


def significant(value: Any, digits: int = SIGNIFICANT) -> Any:
    """`value` rounded to `digits` significant digits (0.0014142 -> 0.001414, 22013.7 -> 22010); anything that
    is not a finite float is returned as it is."""
    if isinstance(value, bool) or not isinstance(value, float) or not math.isfinite(value) or value == 0:
        return value
    return float(f"{value:.{digits}g}")


def rounded(frame: pd.DataFrame, digits: int = SIGNIFICANT) -> pd.DataFrame:
    """`frame` with every float column rounded to `digits` significant digits (for display, not for CSV)."""
    floats = [name for name in frame.columns if pd.api.types.is_float_dtype(frame[name])]
    return frame.assign(**{name: frame[name].map(lambda v: significant(v, digits)) for name in floats})
