"""A results database (and MLflow store) seeded with known trials, for the dashboard's tests.

Everything is written through the platform's own API (`searches.create_search`, `searches.record_trial`, the
`Tracker`), under the current `SEQARENA_HOME`. The numbers are chosen so that the expected
leaderboard is known by hand:

adding (MSE, lower is better, baseline 0.167), search "adding-study":
    T=100:  gru 0.002 (best) with a repeat 0.004 -> mean 0.003 ± 0.0014 (★), both seeds solve (mse < 0.0167):
            their validation curves first fall under 0.0167 at steps 20 and 30 (median 25); trained on
            cpu (torch-cpu, steady-state timing);  lstm 0.05 (trained on cuda, torch-cudnn, timing from before
            the warm-up was left out);  rnn 0.160 (not solved: above 0.1503)
    T=1000: lstm 0.03 (★);  gru 0.09;  rnn: one diverged trial and one stopped at 0.166 (not solved)
smnist (accuracy, higher is better, baseline 0.1), search "smnist-study":
    T=784:  lstm 0.97 (★);  gru 0.95
One adding trial (gru T=100) is still running in MLflow, with a curve of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from seqarena.platform import database, searches
from seqarena.platform.tracking import SEARCH_TAG, TRIAL_TAG, Tracker
from seqarena.workers.measure import STEADY

ADDING_SPEC = "name: adding-study\ntask: adding\nseq_lens: [100, 1000]\nmodels: [gru, lstm, rnn]\n"
SMNIST_SPEC = "name: smnist-study\ntask: smnist\nseq_lens: [784]\nmodels: [gru, lstm]\n"


@dataclass
class Seeded:
    """Ids of what was written: searches by name, MLflow experiment and run ids by trial id."""

    searches: dict[str, str] = field(default_factory=dict)
    experiments: dict[str, str] = field(default_factory=dict)
    runs: dict[str, str] = field(default_factory=dict)
    running_trial: str = "gru100_live"


def _trial(trial_id: str, metric: float | None, lr: float, *, status: str = "completed", role: str = "search",
           seed: int = 1, hidden: int = 64, params: int = 10_000, speed: float = 100.0, mem: float = 5.0) -> dict:
    return {"trial_id": trial_id, "role": role, "seed": seed, "status": status, "metric": metric,
            "best_val_metric": metric, "hparams": {"learning_rate": lr, "hidden_size": hidden}, "steps": 40,
            "params": params, "train_seq_per_s": speed, "infer_seq_per_s": speed * 3, "peak_mem_mb": mem,
            "wall_s": 1.5, "test_metrics": {} if metric is None else {"mse": metric}}


def _curve(*points: tuple[int, float]) -> list[dict[str, float]]:
    return [{"step": float(step), "train_loss": value, "val_mse": value} for step, value in points]


CPU_FACTS = {"device": "cpu", "implementation": "torch-cpu", "timing": STEADY}
CUDA_FACTS_BEFORE_STEADY = {"device": "cuda", "implementation": "torch-cudnn"}


ADDING_TRIALS = {
    "adding/T=100/gru": [{**_trial("gru100_a", 0.002, 0.01, speed=200.0, mem=4.0), "facts": CPU_FACTS,
                          "curve": _curve((10, 0.167), (20, 0.012), (30, 0.002))},
                         _trial("gru100_b", 0.010, 0.001, speed=150.0, hidden=128, params=40_000, mem=8.0),
                         {**_trial("gru100_r", 0.004, 0.01, role="repeat", seed=2, speed=210.0, mem=4.0),
                          "curve": _curve((10, 0.167), (20, 0.1), (30, 0.004))}],
    "adding/T=100/lstm": [{**_trial("lstm100_a", 0.05, 0.003, speed=120.0, params=13_000, mem=6.0),
                           "facts": CUDA_FACTS_BEFORE_STEADY}],
    "adding/T=100/rnn": [_trial("rnn100_a", 0.160, 0.001, speed=400.0, params=4_000, mem=2.0)],
    "adding/T=1000/gru": [_trial("gru1000_a", 0.09, 0.01, speed=20.0, mem=40.0)],
    "adding/T=1000/lstm": [_trial("lstm1000_a", 0.03, 0.002, speed=12.0, params=13_000, mem=60.0)],
    "adding/T=1000/rnn": [_trial("rnn1000_a", None, 0.1, status="diverged", speed=40.0, params=4_000, mem=20.0),
                          _trial("rnn1000_b", 0.166, 0.001, status="stopped", speed=40.0, params=4_000, mem=20.0)],
}
SMNIST_TRIALS = {
    "smnist/T=784/gru": [_trial("gru784_a", 0.95, 0.001)],
    "smnist/T=784/lstm": [_trial("lstm784_a", 0.97, 0.001), _trial("lstm784_b", 0.90, 0.01)],
}


def _arm(key: str, metric_name: str, higher: bool, baseline: float) -> dict:
    task, seq_len, model = key.split("/")
    return {"task": task, "seq_len": int(seq_len.removeprefix("T=")), "model": model, "key": key,
            "metric_name": metric_name, "higher_is_better": higher, "baseline": baseline}


def seed() -> Seeded:
    """Write both searches, their trials and their MLflow runs; return the ids."""
    engine, tracker, seeded = database.get_engine(), Tracker(), Seeded()
    for name, spec, trials, metric, higher, baseline in (
            ("adding-study", ADDING_SPEC, ADDING_TRIALS, "mse", False, 0.167),
            ("smnist-study", SMNIST_SPEC, SMNIST_TRIALS, "accuracy", True, 0.1)):
        experiment = tracker.experiment_id(f"seqarena/{name}")
        search_id = searches.create_search(engine, name=name, spec_yaml=spec, spec_hash=name,
                                       mlflow_experiment_id=experiment,
                                     arms=[_arm(key, metric, higher, baseline) for key in trials])
        parent = tracker.start_parent(experiment, search_id, name, spec)
        seeded.searches[name], seeded.experiments[name] = search_id, experiment
        for key, rows in trials.items():
            for row in rows:
                run = _child(tracker, experiment, parent, search_id, key, row["trial_id"], row["role"])
                curve = [0.167, 0.1, row["metric"]] if row["metric"] is not None else [0.167, float("nan")]
                if "curve" in row:
                    curve = [point[f"val_{metric}"] for point in row["curve"]]
                for step, value in enumerate(curve):
                    tracker.log_metrics(run, {f"val_{metric}": value, "train_loss": value}, step=(step + 1) * 10)
                tracker.finish(run, "FINISHED")
                seeded.runs[row["trial_id"]] = run
                searches.record_trial(engine, search_id, key, {**row, "mlflow_run_id": run})
        searches.set_search_status(engine, search_id, "running" if name == "adding-study" else "succeeded",
                                   mlflow_parent_run_id=parent)
    live = _child(tracker, seeded.experiments["adding-study"], parent_of(seeded, "adding-study"),
                  seeded.searches["adding-study"], "adding/T=100/gru", seeded.running_trial, "search")
    tracker.log_metrics(live, {"val_mse": 0.15, "train_loss": 0.16}, step=10)
    seeded.runs[seeded.running_trial] = live
    return seeded


def parent_of(seeded: Seeded, name: str) -> str:
    return searches.get_search(database.get_engine(), seeded.searches[name]).mlflow_parent_run_id


def _child(tracker: Tracker, experiment: str, parent: str, search_id: str, key: str, trial_id: str, role: str) -> str:
    task, seq_len, model = key.split("/")
    tags = {SEARCH_TAG: search_id, TRIAL_TAG: trial_id, "task": task, "seq_len": seq_len.removeprefix("T="),
            "model": model, "arm": key, "role": role, "seed": 1}
    return tracker.start_child(experiment, parent, f"{key} {trial_id}", tags, {"learning_rate": 0.01})


#: Two small adding trials trained for real (`tests.helpers.recorded_run`), with their checkpoints, for the
#: Inside the model page: they add the arms T=20/gru and T=30/rnn (no gates, as coRNN; torch's fused RNN needs no
#: kernel build) to the adding board.
TRACEABLE = {"gru": {"model": "gru", "task": "adding", "seq_len": 20, "task_options": {"n_val": 16, "n_test": 16},
                     "hparams": {"hidden_size": 8, "batch_size": 16}, "steps": 20, "eval_every": 10},
             "rnn": {"model": "rnn", "task": "adding", "seq_len": 30, "task_options": {"n_val": 16, "n_test": 16},
                     "hparams": {"hidden_size": 8, "batch_size": 16}, "steps": 20, "eval_every": 10}}


def seed_traceable(home: Path) -> dict[str, str]:
    """Train and record the `TRACEABLE` trials under `home`; their MLflow run ids by model."""
    from .helpers import recorded_run

    return {model: recorded_run(home / model, trial) for model, trial in TRACEABLE.items()}
