"""After a GPU search: did every trial's MLflow run train on `cuda`, the fused models on their
`fused-cuda` path? Prints one line per run and a verdict, writes them as JSON; exit 1 if not.

    python3 scripts/check_gpu_runs.py SEARCH_NAME OUT.json   # MLFLOW_TRACKING_URI: the search's store
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from mlflow.tracking import MlflowClient

FUSED = {"cornn", "unicornn", "lem", "janet"}


def check(name: str, uri: str) -> list[dict[str, str]]:
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(f"seqarena/{name}")
    if experiment is None:
        raise SystemExit(f"no MLflow experiment seqarena/{name} at {uri}")
    runs = client.search_runs([experiment.experiment_id], filter_string="tags.`mlflow.parentRunId` != ''",
                              max_results=10_000)
    rows = []
    for run in runs:
        tags = run.data.tags
        model = tags.get("model", "?")
        want = "fused-cuda" if model in FUSED else tags.get("implementation", "?")
        ok = tags.get("device") == "cuda" and tags.get("implementation") == want and tags.get("status") == "completed"
        rows.append({"run_id": run.info.run_id, "model": model, "status": tags.get("status", "?"),
                     "device": tags.get("device", "?"), "gpu_name": tags.get("gpu_name", "?"),
                     "implementation": tags.get("implementation", "?"), "error": tags.get("error", ""),
                     "ok": str(ok)})
    return rows


def main() -> None:
    name, out = sys.argv[1], Path(sys.argv[2])
    rows = check(name, os.environ["MLFLOW_TRACKING_URI"])
    for row in sorted(rows, key=lambda r: r["model"]):
        print(f"{row['model']:10s} {row['status']:10s} {row['device']:5s} {row['implementation']:12s} "
              f"{row['gpu_name']} {row['error']}")
    good = bool(rows) and all(row["ok"] == "True" for row in rows)
    verdict = "every run on cuda (fused-cuda for fused models)" if good else "NOT ALL ON CUDA"
    print(f"gpu search: {len(rows)} runs, {verdict}")
    out.write_text(json.dumps({"ok": good, "runs": rows}, indent=2))
    sys.exit(0 if good else 1)


if __name__ == "__main__":
    main()
