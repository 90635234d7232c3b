#!/usr/bin/env bash
# The issue 22 campaign on a GPU machine: the published comparisons (adding T = 500/2000/5000, sMNIST,
# psMNIST, copy T = 1000) through `seqarena run` on a local Ray holding the GPU, within one 9-minute
# command; scripts/gpu_campaign.py says what runs, the budgets and the wall-time box.
#
# Once, on the development machine, in the checkout the device tool sends (the lead's):
#   bash scripts/gpu_campaign.sh --prepare     # .gpudata/mnist: the full MNIST (from $SEQARENA_FULL_DATA or
#                                              # /work/shared/data, checked against the pinned sha256);
#                                              # .gpusite/site.tar.xz: Ray, MLflow, ... (scripts/gpu_bundle.sh)
#   bash scripts/gpu_campaign.sh /tmp/dry --dry-run   # the same path on the CPU, tiny budgets (minutes)
# Then on the GPU machine (device tool: carry [".gpusite", ".gpudata"], timeout_s 600): the campaign in the
# ignored .gpurun/ of the repository's copy there (kept between calls while the machine stays warm, so a second
# call can add --resume), the tarball and the JSON files copied into $OUT (EXPORT), which comes back:
#   EXPORT=$OUT bash scripts/gpu_campaign.sh .gpurun/campaign
# Back here: .venv/bin/python scripts/import_campaign.py OUT/campaign/campaign.tar.gz
set -uo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = --prepare ]; then
  set -e
  source_dir=${SEQARENA_FULL_DATA:-/work/shared/data}
  mkdir -p .gpudata/mnist
  cp "$source_dir"/mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz .gpudata/mnist/
  SEQARENA_DATA=$PWD/.gpudata .venv/bin/python -c "from seqarena.tasks import mnist; print('MNIST verified in', mnist.mnist_folder())"
  # what the device image already holds (the device tool's KINDS.md) is left out of the bundle
  have=${HAVE:-$(grep -o 'Packages: .*' /work/.library/device/KINDS.md | head -n 1 | sed 's/^Packages: //; s/,//g; s/\.$//')}
  [ -f .gpusite/site.tar.xz ] || HAVE="$have" bash scripts/gpu_bundle.sh
  du -sh .gpudata .gpusite
  exit 0
fi
out=${1:?usage: scripts/gpu_campaign.sh OUT_DIR [--dry-run] [--resume] [--box-s S] | --prepare}
shift
. scripts/gpu_env.sh  # sets $python: python3 with the unpacked .gpusite on its path
"$python" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available() and torch.cuda.get_device_name())"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
SECONDS=0
"$python" scripts/gpu_campaign.py "$out" "$@"
status=$?
echo "campaign: exit $status after ${SECONDS} s"
if [ -n "${EXPORT:-}" ]; then  # the few files the device tool brings back (8 files, 16 MiB each, at most)
  mkdir -p "$EXPORT"
  for f in campaign.tar.gz campaign.json leaderboard.json; do [ -f "$out/$f" ] && cp "$out/$f" "$EXPORT/"; done
  [ -f "$out/profile/section.md" ] && cp "$out/profile/section.md" "$EXPORT/profile_section.md"
  ls -la "$EXPORT"
fi
exit $status
