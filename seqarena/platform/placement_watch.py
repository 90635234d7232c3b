"""A search whose trials cannot be placed for too long ends `failed` with the reason.

`check_placeable` refuses a reservation no node can hold before Tune starts; this watch covers what
it cannot see: nodes that left, or resources held by others for good. Tune itself only logs "no
trial is running" every minute and waits for ever, so a job would block its worker. The watch is a
Tune callback: when the experiment has pending trials and none running for
`SEQARENA_PLACEMENT_TIMEOUT_S` seconds (default 600), it raises `PlacementTimeout`, which ends the
search `failed` (`search.drive`) with the reservation and the cluster's free resources in one line.
"""

from __future__ import annotations

import os
import time
from typing import Any

from ray.tune import Callback

#: Seconds a search may wait with pending trials and none running.
DEFAULT_TIMEOUT_S = 600.0


class PlacementTimeout(RuntimeError):
    """No trial of the search could be started for the configured time."""


def timeout_s() -> float:
    """`$SEQARENA_PLACEMENT_TIMEOUT_S`, or 600 s."""
    try:
        return max(float(os.environ.get("SEQARENA_PLACEMENT_TIMEOUT_S", DEFAULT_TIMEOUT_S)), 1.0)
    except ValueError:
        return DEFAULT_TIMEOUT_S


class PlacementWatch(Callback):
    """Raises `PlacementTimeout` once trials have waited `timeout` seconds with none running."""

    def __init__(self, cpus_per_trial: float, gpus_per_trial: float, timeout: float | None = None) -> None:
        self.reservation = f"{cpus_per_trial:g} CPUs and {gpus_per_trial:g} GPUs per trial"
        self.timeout = timeout if timeout is not None else timeout_s()
        self.waiting_since: float | None = None

    def on_step_begin(self, iteration: int, trials: list[Any], **info: Any) -> None:
        statuses = {trial.status for trial in trials}
        if "RUNNING" in statuses or "PENDING" not in statuses:
            self.waiting_since = None
            return
        now = time.monotonic()
        self.waiting_since = self.waiting_since or now
        if now - self.waiting_since >= self.timeout:
            raise PlacementTimeout(f"no trial could be placed for {self.timeout:g} s ({self.reservation}; "
                                   f"free now: {_free()}); set SEQARENA_PLACEMENT_TIMEOUT_S to wait longer")


def _free() -> str:
    import ray

    free = ray.available_resources()
    return f"{free.get('CPU', 0.0):g} CPUs, {free.get('GPU', 0.0):g} GPUs"
