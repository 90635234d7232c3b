#!/usr/bin/env bash
# Every GPU check of the repository in one run, for a device machine lent for a few minutes: the kernels'
# tests compiled on the GPU (tests/unit/test_fused_gpu.py, the committed launch configuration; the kernel
# benchmark is `scripts/gpu_checks.sh` alone), the state-space scan's tests and benchmark
# (scripts/gpu_ssm_checks.sh), then a search sharing the GPU and the concurrency benchmark
# (scripts/gpu_checks.sh with KERNELS=0). Each part has its own time limit so one stuck part leaves the
# others their time; a part's log and JSON land in OUT_DIR/<part>/.
#
# Packages the machine lacks travel as .gpusite/site.tar.xz (scripts/gpu_bundle.sh builds it) and are put on
# the path of every Python the scripts start, through a wrapper passed as their `python` argument.
#
#   bash scripts/gpu_all.sh OUT_DIR
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: scripts/gpu_all.sh OUT_DIR}
mkdir -p "$out"
. scripts/gpu_env.sh  # sets $python: python3 with the unpacked .gpusite on its path
"$python" -c "import torch, triton; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'triton', triton.__version__, torch.cuda.get_device_name())"
status=0
run_part() {  # run_part NAME SECONDS COMMAND...: one part, its output in OUT_DIR/NAME/log
  local name=$1 seconds=$2; shift 2
  mkdir -p "$out/$name"
  echo "== $name (limit ${seconds} s)"
  SECONDS=0
  timeout "$seconds" "$@" 2>&1 | tee "$out/$name/log" | tail -n 25
  local rc=${PIPESTATUS[0]}
  echo "== $name: exit $rc after ${SECONDS} s"
  [ "$rc" = 0 ] || status=1
}
run_part kernels "${KERNELS_S:-90}" env PYTHONPATH=. "$python" -m pytest --noconftest -p no:cacheprovider -q -ra \
  tests/unit/test_fused_gpu.py
run_part ssm "${SSM_S:-140}" bash scripts/gpu_ssm_checks.sh "$out/ssm" "$python"
run_part search "${SEARCH_S:-330}" env KERNELS=0 bash scripts/gpu_checks.sh "$out/search" "$python"
exit $status
