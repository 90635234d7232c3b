#!/usr/bin/env bash
# Injected faults against a whole platform on this machine: private PostgreSQL, an MLflow server, two Ray
# nodes, three seqarena workers, small real jobs; one fault at a time, each job audited; a table, exit 1 on
# any failed check. Needs root. See docs/RELIABILITY.md, "Faults (scripts/fault_check.sh)".
#   scripts/fault_check.sh                        # every scenario
#   scripts/fault_check.sh --only "worker SIGKILL" --keep
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
exec "$PYTHON" -m scripts.fault_check "$@"
