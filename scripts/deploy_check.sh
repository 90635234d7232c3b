#!/usr/bin/env bash
# Usage: scripts/deploy_check.sh [--keep]
# The deployment, built and run on this machine (docs/DEPLOY.md, "Checked on one machine"): starts
# dockerd if none answers, builds the images (scripts/deploy_images.sh: the Debian base, PostgreSQL,
# the S3 server and the CPU image; cached ones are reused), then scripts/deploy_check.py starts
# infra/compose/compose.hostnet.yaml (every service on 127.0.0.1), runs the checks and the faults, and
# tears everything down (unless --keep). One verdict line per check, a total; exit 1 on any failure.
# Needs root (dockerd, debootstrap), Docker with BuildKit, docker compose or docker-compose, the
# project's .venv (or PYTHON=...) with its dev extras, and Chromium at /usr/bin/chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$PWD/.venv/bin/python}
START=$(date +%s)
if ! docker info >/dev/null 2>&1; then
  LOG=${DOCKERD_LOG:-${TMPDIR:-/tmp}/seqarena-dockerd.log}
  echo "deploy_check: starting dockerd (log: $LOG)"
  nohup dockerd >"$LOG" 2>&1 &
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { echo "[FAIL] dockerd did not start (see $LOG)"; exit 1; }
fi
if scripts/deploy_images.sh > "${TMPDIR:-/tmp}/seqarena-deploy-images.log" 2>&1; then
  echo "[PASS] images built: seqarena-base, seqarena-postgres:15, seqarena-moto:5.2.6, seqarena-cpu:0.1.0 ($(( $(date +%s) - START )) s)"
else
  echo "[FAIL] image build (see ${TMPDIR:-/tmp}/seqarena-deploy-images.log)"; exit 1
fi
set +e
PYTHON_RUN_START=$(date +%s)
"$PYTHON" scripts/deploy_check.py "$@"
RC=$?
echo "deploy_check: total $(( $(date +%s) - START )) s (images $(( PYTHON_RUN_START - START )) s, stack and checks $(( $(date +%s) - PYTHON_RUN_START )) s), exit $RC"
exit $RC
