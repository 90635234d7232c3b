"""Models page: each model's equations (LaTeX), its declared hyperparameters and where it ranks.

Equations and hyperparameters come from the model zoo (`seqarena.cells`: each model module's
`EQUATIONS` and declared space, from its paper); the ranking from the leaderboard under the
current filters: arms entered, arms won (best mean at its T), arms solved, mean rank.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from seqarena import cells
from seqarena.dashboard import data, filters
from seqarena.platform.leaderboard import model_ranks


def render() -> None:
    st.title("Models")
    current = filters.current()
    ranks = model_ranks(current.board())
    if not ranks.empty:
        st.subheader(f"Ranking on {current.task}")
        st.dataframe(ranks, hide_index=True, key="model_ranks", column_config={
            "mean_rank": st.column_config.NumberColumn("mean rank", format="%.2f")})
    names = cells.names()
    name = st.selectbox("Model", names, key="models_choice")
    st.subheader(name)
    st.caption(cells.paper(name))
    for line in cells.equations(name):
        st.latex(line)
    table = pd.DataFrame([hp.summary() for hp in cells.space(name)]).astype({"default": str})
    st.dataframe(table, hide_index=True, key="models_hparams")
    row = ranks[ranks["model"] == name]
    if not row.empty:
        place = int(row.index[0]) + 1
        st.markdown(f"**Rank {place} of {len(ranks)}** on {current.task}: {int(row['wins'].iloc[0])} of "
                    f"{int(row['arms'].iloc[0])} arms won, {int(row['solved'].iloc[0])} solved, "
                    f"mean rank {float(row['mean_rank'].iloc[0]):.2f}.")
    elif current.models and name in data.options(current.url).models.get(current.task, ()):
        st.markdown(f"{name} is filtered out (the sidebar's Models shows only {', '.join(current.models)}): "
                    f"remove the filter to see its rank on {current.task}.")
    elif current.task:
        st.markdown(f"No results of {name} on {current.task} yet.")


if __name__ == "__main__":
    render()
