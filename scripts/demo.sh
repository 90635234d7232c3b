#!/usr/bin/env bash
# Set up, then run the main job on the embedded defaults: a short coRNN trial on the adding problem.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/seqarena train --model cornn --task adding --seq-len 100 --steps 500 --eval-every 100 "$@"
