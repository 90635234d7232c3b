#!/usr/bin/env bash
# Usage: scripts/deploy_images.sh [--cuda]
# Build the images of infra/docker on a machine that cannot pull public images: the Debian base
# (scripts/deploy_base.sh, unless it exists), seqarena-postgres:15, seqarena-moto:5.2.6 (the S3 server
# of the checked stack) and seqarena-cpu:0.1.0 from it, and with --cuda seqarena-cuda:0.1.0.
# Everything machine-specific is found at run time, never written in the repository: the Debian
# mirror (apt sources), the CA bundle pip must trust (the machine's), and where torch's CPU build
# comes from (PyTorch's CPU index when reachable, else the wheel the host's pip finds, served on
# 127.0.0.1 for the build only). Builds use host networking.
# Environment: BASE_IMAGE (default seqarena-base:bookworm), PIP_INDEX_URL (default: the host pip's
# index, else PyPI), CA_BUNDLE (default /etc/ssl/certs/ca-certificates.crt), PYTHON (host python3),
# TORCH_WHEEL_PORT (default 28999: where the torch wheel is served while the build runs).
set -euo pipefail
cd "$(dirname "$0")/.."
CUDA=0
[ "${1:-}" = "--cuda" ] && CUDA=1
BASE_IMAGE=${BASE_IMAGE:-seqarena-base:bookworm}
PYTHON=${PYTHON:-python3}
TORCH_VERSION=$(sed -n 's/^ARG TORCH_VERSION=//p' infra/docker/Dockerfile.cpu)
CPU_INDEX=$(sed -n 's/^ARG TORCH_INDEX_URL=//p' infra/docker/Dockerfile.cpu)
DOCKER=$(scripts/deploy_docker_cli.sh)
export DOCKER_BUILDKIT=1

log() { echo "deploy_images: $*" >&2; }

if ! $DOCKER image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  log "building the base image $BASE_IMAGE"
  scripts/deploy_base.sh "$BASE_IMAGE" >/dev/null
fi
# pip's index: the host pip's own (a mirror, if the machine has one), else PyPI. Local file:// indexes
# of the host are useless inside a build, so only http(s) ones count.
if [ -z "${PIP_INDEX_URL:-}" ]; then
  PIP_INDEX_URL=$("$PYTHON" -m pip config get global.index-url 2>/dev/null || true)
  case "$PIP_INDEX_URL" in http://*|https://*) ;; *) PIP_INDEX_URL=https://pypi.org/simple ;; esac
fi

build() {  # build DOCKERFILE TAG [--build-arg ...]
  local file=$1 tag=$2
  shift 2
  log "building $tag ($file)"
  $DOCKER build --network host -f "infra/docker/$file" -t "$tag" \
    --build-arg BASE_IMAGE="$BASE_IMAGE" "$@" . >&2
}

# torch's CPU wheel: from PyTorch's index if it answers, else through the host's pip (its index,
# find-links or cache), served as a one-package PEP 503 index on 127.0.0.1 while the build runs.
torch_index() {
  if curl -sf --max-time 15 -o /dev/null "$CPU_INDEX/torch/"; then echo "$CPU_INDEX"; return; fi
  WHEELS=$(mktemp -d "${TMPDIR:-/tmp}/seqarena-wheels.XXXXXX")
  mkdir "$WHEELS/torch"
  "$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.11 --platform manylinux_2_28_x86_64 \
    -d "$WHEELS/torch" "torch==${TORCH_VERSION}+cpu" >&2
  # A fixed port: the index URL is a build argument, and a new one each run would defeat the layer cache.
  PORT=${TORCH_WHEEL_PORT:-28999}
  "$PYTHON" -m http.server --bind 127.0.0.1 --directory "$WHEELS" "$PORT" >/dev/null 2>&1 &
  SERVER=$!
  sleep 1
  echo "http://127.0.0.1:$PORT"
}
SERVER=
WHEELS=
cleanup() { [ -z "$SERVER" ] || kill "$SERVER" 2>/dev/null || true; [ -z "$WHEELS" ] || rm -rf "$WHEELS"; }
trap cleanup EXIT

PIP_ARGS=(--build-arg PIP_INDEX_URL="$PIP_INDEX_URL" --build-arg PIP_CERT=/etc/ssl/certs/ca-certificates.crt)
build Dockerfile.postgres seqarena-postgres:15
build Dockerfile.s3 "seqarena-moto:$(sed -n 's/^ARG MOTO_VERSION=//p' infra/docker/Dockerfile.s3)" "${PIP_ARGS[@]}"
torch_index > "${TMPDIR:-/tmp}/seqarena-torch-index.$$"
TORCH_INDEX=$(cat "${TMPDIR:-/tmp}/seqarena-torch-index.$$"); rm -f "${TMPDIR:-/tmp}/seqarena-torch-index.$$"
build Dockerfile.cpu seqarena-cpu:0.1.0 "${PIP_ARGS[@]}" --build-arg TORCH_INDEX_URL="$TORCH_INDEX"
if [ "$CUDA" = 1 ]; then
  build Dockerfile.cuda seqarena-cuda:0.1.0 "${PIP_ARGS[@]}"
fi
