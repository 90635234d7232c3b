#!/usr/bin/env bash
# Prints the docker CLI that builds with BuildKit (needed for the Dockerfile-specific ignore files of
# infra/docker): the first `docker` on PATH whose buildx plugin works, or whose client is older than 23
# (BuildKit built in, DOCKER_BUILDKIT=1). Exit 2 if there is none.
set -euo pipefail
IFS=: read -r -a dirs <<< "$PATH"
for dir in "${dirs[@]}"; do
  cli="$dir/docker"
  [ -x "$cli" ] || continue
  if "$cli" buildx version >/dev/null 2>&1; then echo "$cli"; exit 0; fi
  major=$("$cli" version --format '{{.Client.Version}}' 2>/dev/null | cut -d. -f1 || true)
  if [ -n "$major" ] && [ "$major" -lt 23 ] 2>/dev/null; then echo "$cli"; exit 0; fi
done
echo "deploy: no docker CLI that builds with BuildKit (install the buildx plugin)" >&2
exit 2
