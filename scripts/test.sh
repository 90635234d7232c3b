#!/usr/bin/env bash
# Set up, then run the linter and the whole test suite (tests read ../shared/data, never the network).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
export SEQARENA_OFFLINE=1
exec .venv/bin/python -m pytest "$@"
