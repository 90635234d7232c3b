"""How many trials fit at once, and the warning when a spec asks for GPUs the cluster lacks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from seqarena.platform.capacity import Cluster, capacity
from seqarena.platform.spec import load_spec

SPEC = "name: fit\ntask: adding\nseq_lens: [20]\nmodels: [gru]\n"


def spec(resources: str = "", search: str = "") -> Any:
    extra = (f"resources: {resources}\n" if resources else "") + (f"search: {search}\n" if search else "")
    return load_spec(SPEC + extra)


@pytest.mark.parametrize(("resources", "search", "cluster", "at_once"), [
    ("", "", Cluster(16, 0, "m"), 16),                                         # one CPU each
    ("{cpus_per_trial: 2}", "", Cluster(16, 0, "m"), 8),
    ("{cpus_per_trial: 1, gpus_per_trial: 0.25}", "", Cluster(16, 1, "m"), 4),  # four per GPU
    ("{cpus_per_trial: 1, gpus_per_trial: 0.25}", "", Cluster(16, 8, "m"), 16),  # CPUs bound it
    ("{cpus_per_trial: 1, gpus_per_trial: 0.5}", "{max_concurrent_trials: 3}", Cluster(16, 8, "m"), 3),
])
def test_trials_at_once_is_the_tightest_bound(resources: str, search: str, cluster: Cluster, at_once: int) -> None:
    fits = capacity(spec(resources, search), cluster)
    assert fits.at_once == at_once and fits.warning is None


def test_gpus_the_cluster_lacks_are_a_warning_not_an_error() -> None:
    fits = capacity(spec("{gpus_per_trial: 1}"), Cluster(16, 0, "this machine"))
    assert fits.at_once == 0
    assert "gpus_per_trial is 1 but this machine has 0 GPUs" in fits.line()


def test_validate_prints_the_capacity_and_warns_on_this_cpu_machine(tmp_path: Path, run_cli: Any,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    path = tmp_path / "gpu.yaml"
    path.write_text(SPEC + "resources: {gpus_per_trial: 0.5}\n")
    code, out, err = run_cli(["validate", str(path)])
    import torch

    assert code == 0
    if torch.cuda.device_count() == 0:
        assert "0 trial(s) at once on this machine" in err and "warning" in err
    else:
        assert "trial(s) at once on this machine" in out
