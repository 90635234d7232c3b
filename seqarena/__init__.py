"""seqarena: compare sequence models on long-range-memory benchmarks.

Subpackages: `cells` (the model zoo), `tasks` (benchmarks), `workers` (one training trial),
`platform` (searches, tracking, jobs) and `dashboard` (the Streamlit app).
"""

__version__ = "0.1.0"
