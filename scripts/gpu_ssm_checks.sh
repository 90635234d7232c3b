#!/usr/bin/env bash
# The GPU checks of the state-space models' scan, for a machine with a CUDA GPU, torch and Triton (seqarena
# needs no install there): tests/unit/test_scan_gpu.py (the Triton scan compiled, float32/complex64 against
# the float64 loop, T up to 10,000; LinOSS, LRU, minGRU on the GPU against float64 on the CPU), then
# benchmarks/ssm_scan.py gpu (LinOSS and LRU against cuDNN's LSTM at B = 64, H = 128, T = 10,000). Logs and
# the benchmark's JSON go to OUT_DIR; `benchmarks/ssm_scan.py report --files ... OUT_DIR/ssm_gpu.json`
# writes the figures into benchmarks/RESULTS.md on the development machine. No Ray, MLflow or database.
#
#   bash scripts/gpu_ssm_checks.sh OUT_DIR [python]
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: scripts/gpu_ssm_checks.sh OUT_DIR [python]}
python=${2:-python3}
mkdir -p "$out"
export PYTHONPATH=. PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/nvidia-smi.txt"
timeout 240 "$python" -m pytest --noconftest -p no:cacheprovider -q -ra -m gpu tests/unit/test_scan_gpu.py 2>&1 \
  | tail -n 40 | tee "$out/tests.log"
tests=${PIPESTATUS[0]}
timeout 240 "$python" benchmarks/ssm_scan.py gpu --json "$out/ssm_gpu.json" --repeats 5 2>&1 | tee "$out/bench.log"
bench=${PIPESTATUS[0]}
echo "gpu ssm checks: tests exit $tests, benchmark exit $bench"
exit $((tests != 0 || bench != 0))
