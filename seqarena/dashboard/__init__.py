"""The Streamlit dashboard: leaderboards, metric / memory / throughput against sequence length,
Pareto fronts, per-arm trials, the job queue and the model zoo.

`seqarena dashboard` serves `app.py` (bound to 127.0.0.1 unless told otherwise); each page is one
module here, run by Streamlit as a script. The app reads the platform database (SQL aggregates,
cached) and MLflow (learning curves of chosen runs), and changes jobs only through
`seqarena.platform.jobs`.
"""
