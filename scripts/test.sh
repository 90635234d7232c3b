#!/usr/bin/env bash
# Set up, then run the linter and the whole test suite (tests read tests/data, never the network).
# Usage: bash scripts/test.sh [PYTEST ARGS]; the edit-test loop: bash scripts/test.sh -m 'not slow' -x
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
# The browser test drives Debian's Chromium with Playwright (Playwright's own browser download
# fails here); install it once.
if ! command -v chromium >/dev/null 2>&1; then
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium
fi
# The integration tests use the local PostgreSQL (trust auth, database `test`); start it if stopped.
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start || true
fi
export SEQARENA_OFFLINE=1
# The 25 slowest tests are listed at the end, to keep the suite within its 30-minute aim.
exec .venv/bin/python -m pytest --durations=25 "$@"
