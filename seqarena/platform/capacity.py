"""How many trials of a spec fit at once on the cluster a command can see, told before it runs.

Ray starts a trial when its reservation (`cpus_per_trial` CPUs, `gpus_per_trial` GPUs) fits in
what is free, so at most `floor(CPUs / cpus_per_trial)` trials run at once, and with GPUs also at
most `floor(GPUs / gpus_per_trial)` (`gpus_per_trial: 0.25` puts four trials on each GPU); the
spec's `max_concurrent_trials` caps it further. GPU memory is not a Ray resource: trials that share
a GPU must fit in its memory together, or the late ones end `oom`. The cluster is the one at
`RAY_ADDRESS` (`ray.cluster_resources()`), else this machine (its CPUs and the GPUs torch sees).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from seqarena.errors import BadInput, excerpt
from seqarena.platform import reachable
from seqarena.platform.spec import Resources, Spec


@dataclass(frozen=True)
class Cluster:
    """The CPUs and GPUs a search could use, and where that was read.

    `nodes` holds each node's (CPUs, GPUs) when they were read (a trial's reservation must fit on one
    node); `reachable` is False when `RAY_ADDRESS` named a cluster that did not answer.
    """

    cpus: float
    gpus: float
    source: str
    nodes: tuple[tuple[float, float], ...] = ()
    reachable: bool = True

    def node_list(self) -> tuple[tuple[float, float], ...]:
        """Each node's (CPUs, GPUs); the whole cluster as one node when they were not read."""
        return self.nodes or ((self.cpus, self.gpus),)


@dataclass(frozen=True)
class Capacity:
    """How many trials of a spec run at once, and a warning when its GPUs are not there."""

    cluster: Cluster
    at_once: int
    warning: str | None

    def line(self) -> str:
        """One line for `validate` / `submit`."""
        c = self.cluster
        return (f"{self.at_once} trial(s) at once on {c.source} ({c.cpus:g} CPUs, {c.gpus:g} GPUs)"
                + (f"; warning: {self.warning}" if self.warning else ""))


def visible_cluster() -> Cluster:
    """The cluster at `RAY_ADDRESS` when one is set and reachable, else this machine."""
    address = os.environ.get("RAY_ADDRESS")
    if address:
        import ray

        try:
            reachable.check_ray_address(address)
            started = not ray.is_initialized()
            if started:
                ray.init(address=address, log_to_driver=False)
            cluster = ray_cluster(f"the Ray cluster at {address}")
            if started:
                ray.shutdown()
            return cluster
        except (BadInput, ConnectionError, RuntimeError) as error:
            return Cluster(0.0, 0.0, f"no Ray cluster at {address} ({excerpt(str(error), 160, quote=False)})",
                           reachable=False)
    import torch

    return Cluster(float(os.cpu_count() or 1), float(torch.cuda.device_count()), "this machine")


def ray_cluster(source: str) -> Cluster:
    """The cluster Ray is connected to (`ray.init` done): its totals and each live node's resources."""
    import ray

    resources = ray.cluster_resources()
    nodes = tuple((float(node["Resources"].get("CPU", 0.0)), float(node["Resources"].get("GPU", 0.0)))
                  for node in ray.nodes() if node.get("Alive"))
    return Cluster(resources.get("CPU", 0.0), resources.get("GPU", 0.0), source, nodes)


def check_placeable(resources: Resources, cluster: Cluster) -> None:
    """`BadInput` when no node of a reachable `cluster` can hold one trial's reservation: its search
    would wait for ever (Tune's "no trial is running" every minute) and a job would block its worker."""
    if not cluster.reachable:
        return
    cpt, gpt = resources.cpus_per_trial, resources.gpus_per_trial
    nodes = cluster.node_list()
    if any(cpus + 1e-9 >= cpt and gpus + 1e-9 >= gpt for cpus, gpus in nodes):
        return
    shown = ", ".join(f"{cpus:g} CPUs {gpus:g} GPUs" for cpus, gpus in nodes[:8]) + (" ..." if len(nodes) > 8 else "")
    if not any(gpus + 1e-9 >= gpt for _, gpus in nodes):
        field, value = "resources.gpus_per_trial", gpt
    else:
        field, value = "resources.cpus_per_trial", cpt
    raise BadInput(field, value, f"a reservation one node of {cluster.source} can hold (its nodes: {shown})")


def capacity(spec: Spec, cluster: Cluster) -> Capacity:
    """How many trials of `spec` fit at once on `cluster` (module doc), with a warning when the spec
    asks for GPUs the cluster lacks (the search would wait for them; nothing is refused)."""
    cpt, gpt = spec.resources.cpus_per_trial, spec.resources.gpus_per_trial
    limits = [math.floor(cluster.cpus / cpt + 1e-9)]
    if gpt > 0:
        limits.append(math.floor(cluster.gpus / gpt + 1e-9))
    if spec.search.max_concurrent_trials is not None:
        limits.append(spec.search.max_concurrent_trials)
    warning = None
    if gpt > cluster.gpus:
        warning = (f"resources.gpus_per_trial is {gpt:g} but {cluster.source} has {cluster.gpus:g} GPUs now: "
                   "its trials wait until GPUs join the cluster")
    return Capacity(cluster, max(min(limits), 0), warning)
