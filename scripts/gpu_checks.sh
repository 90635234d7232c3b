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
#   bash scripts/gpu_checks.sh OUT_DIR [python]
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: scripts/gpu_checks.sh OUT_DIR [python]}
python=${2:-python3}
mkdir -p "$out"
export PYTHONPATH=. PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv | tee "$out/nvidia-smi.txt"
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
echo "gpu checks: tests exit $tests, benchmark exit $bench"
exit $((tests != 0 || bench != 0))
