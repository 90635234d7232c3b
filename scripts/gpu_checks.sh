#!/usr/bin/env bash
# The GPU checks of the Triton kernels (issue 8), for a machine with a CUDA GPU, torch and Triton
# (seqarena needs no install there: the kernels and their tests import torch and Triton only):
# benchmarks/fused_gpu.py tune (every BPTT kernel configuration, timed and checked; skipped with
# TUNE=0) and measure (with the tuned configuration, else the committed one), profile (UnICORNN's
# step under torch.profiler), then tests/unit/test_fused_gpu.py compiled and run on the GPU in float32
# (with the configuration in seqarena/cells/kernels/triton_common.py). Logs and the benchmark's JSON go
# to OUT_DIR; `benchmarks/fused_gpu.py report OUT_DIR/fused_gpu.json` writes the figures into
# benchmarks/RESULTS.md on the development machine.
#
# Then a real search sharing the GPU (examples/gpu_smoke.yaml: six models, gpus_per_trial 0.25, MLflow
# and the results database under OUT_DIR/home), scripts/check_gpu_runs.py checking that every child
# run recorded device cuda (and fused-cuda for the fused models; OUT_DIR/gpu_runs.json), and the
# concurrency benchmark (benchmarks/gpu_concurrency.py: 1, 2, 4, 8 processes on the GPU;
# OUT_DIR/gpu_concurrency.json, reported here with `benchmarks/gpu_concurrency.py report`). Needs ray,
# mlflow, optuna, sqlalchemy, alembic, pydantic importable (PYTHONPATH); KERNELS=0 skips the kernel
# part, SEARCH=0 the search and the concurrency benchmark.
#
#   bash scripts/gpu_checks.sh OUT_DIR [python]
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: scripts/gpu_checks.sh OUT_DIR [python]}
python=${2:-python3}
mkdir -p "$out"
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv | tee "$out/nvidia-smi.txt"
bench=0 tests=0 search=0 concurrency=0
if [ "${KERNELS:-1}" != 0 ]; then
  config=()
  if [ "${TUNE:-1}" != 0 ]; then
    "$python" benchmarks/fused_gpu.py tune --json "$out/tune.json" 2>&1 | tee "$out/tune.log"
    config=(--config "$out/tune.json")
  fi
  "$python" benchmarks/fused_gpu.py measure --json "$out/fused_gpu.json" "${config[@]}" 2>&1 | tee "$out/bench.log"
  bench=${PIPESTATUS[0]}
  "$python" benchmarks/fused_gpu.py profile --json "$out/profile.txt" 2>&1 | tail -n 45
  "$python" -m pytest --noconftest -p no:cacheprovider -q -ra tests/unit/test_fused_gpu.py 2>&1 | tail -n 40 | tee "$out/tests.log"
  tests=${PIPESTATUS[0]}
fi
if [ "${SEARCH:-1}" != 0 ]; then
  home="$(cd "$out" && pwd)/home"
  mkdir -p "$home"
  (export SEQARENA_HOME="$home" MLFLOW_TRACKING_URI="sqlite:///$home/mlflow.db" SEQARENA_DB_URL="sqlite:///$home/seqarena.db"
   unset RAY_ADDRESS
   "$python" -m seqarena.cli validate examples/gpu_smoke.yaml 2>&1 | tail -n 3
   timeout 300 "$python" -m seqarena.cli run examples/gpu_smoke.yaml --json > "$out/search.json" 2> "$out/search.log"
   echo "search exit $?"; tail -n 5 "$out/search.log"
   "$python" scripts/check_gpu_runs.py gpu_smoke "$out/gpu_runs.json") 2>&1 | tee "$out/gpu_runs.log"
  search=${PIPESTATUS[0]}
  timeout 240 "$python" benchmarks/gpu_concurrency.py measure --json "$out/gpu_concurrency.json" 2>&1 \
    | tee "$out/gpu_concurrency.log"
  concurrency=${PIPESTATUS[0]}
fi
echo "gpu checks: tests exit $tests, benchmark exit $bench, search check exit $search, concurrency exit $concurrency"
exit $((tests != 0 || bench != 0 || search != 0 || concurrency != 0))
