#!/usr/bin/env bash
# Set up, then run the main job on the embedded defaults: the demo search (`seqarena demo`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/seqarena demo "$@"
