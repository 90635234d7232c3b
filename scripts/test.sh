#!/usr/bin/env bash
# Set up, then run the linter and the whole test suite (tests read ../shared/data, never the network).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
# The integration tests use the local PostgreSQL (trust auth, database `test`); start it if stopped.
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start || true
fi
export SEQARENA_OFFLINE=1
exec .venv/bin/python -m pytest "$@"
