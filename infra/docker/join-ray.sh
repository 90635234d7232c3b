#!/bin/sh
# Usage: join-ray COMMAND [ARGS...]
# Join the Ray cluster at $RAY_ADDRESS (host:port of the head's GCS) as a node with no CPUs and no
# GPUs, then exec COMMAND. A Ray driver, such as the Ray Tune search that `seqarena worker` runs,
# attaches to a raylet on its own host (ray.init with a host:port address), so the container that
# runs it must be a Ray node; with zero resources, no trial is ever scheduled on it.
# $RAY_AUTH_MODE and $RAY_AUTH_TOKEN, when set, are read by `ray start` and by the driver alike.
# $RAY_JOIN_ARGS, when set, adds options to `ray start` (on host networking, where several Ray nodes
# share one address: --node-ip-address=127.0.0.1 and a --dashboard-agent-listen-port of its own).
set -eu
: "${RAY_ADDRESS:?RAY_ADDRESS must name the Ray head, e.g. ray-head:6379}"
# shellcheck disable=SC2086  # RAY_JOIN_ARGS is a list of options, split on spaces
ray start --address="$RAY_ADDRESS" --num-cpus=0 --num-gpus=0 --disable-usage-stats ${RAY_JOIN_ARGS:-}
exec "$@"
