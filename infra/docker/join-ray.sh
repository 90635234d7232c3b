#!/bin/sh
# Usage: join-ray COMMAND [ARGS...]
# Join the Ray cluster at $RAY_ADDRESS (host:port of the head's GCS) as a node with no CPUs and no
# GPUs, then exec COMMAND. A Ray driver, such as the Ray Tune search that `seqarena worker` runs,
# attaches to a raylet on its own host (ray.init with a host:port address), so the container that
# runs it must be a Ray node; with zero resources, no trial is ever scheduled on it.
# $RAY_AUTH_MODE and $RAY_AUTH_TOKEN, when set, are read by `ray start` and by the driver alike.
set -eu
: "${RAY_ADDRESS:?RAY_ADDRESS must name the Ray head, e.g. ray-head:6379}"
ray start --address="$RAY_ADDRESS" --num-cpus=0 --num-gpus=0 --disable-usage-stats
exec "$@"
