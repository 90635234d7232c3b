#!/usr/bin/env bash
# Create .venv and install seqarena with its test tools. Idempotent; torch is installed first as a
# CPU build (torch==2.13.0) so that the project's torch range never pulls a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v -i "warning" || true
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  .venv/bin/python -m pip install -q "torch==2.13.0" 2>&1 | grep -v -i "warning" || true
fi
.venv/bin/python -m pip install -q -e ".[dev]" 2>&1 | grep -v -i "warning" || true
.venv/bin/python -c "import seqarena, torch; print(f'seqarena {seqarena.__version__} with torch {torch.__version__} ready in .venv')"
