"""A search's trial is one typed value: built by the arm's plan, carried by Tune as JSON, read back whole."""

from __future__ import annotations

import json

import optuna
import pytest

from seqarena.errors import BadInput
from seqarena.platform.arms import ArmPlan
from seqarena.workers.config import SearchTrial, TrialConfig, TrialResources


def plan() -> ArmPlan:
    template = TrialConfig(model="gru", task="adding", seq_len=50, task_options={"n_val": 32}, steps=40,
                           eval_every=20)
    return ArmPlan(key="adding/T=50/gru", template=template, fixed={"hidden_size": 8},
                   space={"lr": optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True)}, grid={},
                   n_search=2, repeats=1, seed=3, metric_name="mse", higher_is_better=False, baseline=0.167,
                   resources=TrialResources(cpu=2, gpu=0.5))


def test_a_trial_survives_tune_s_config_as_json_unchanged() -> None:
    planned = plan().trial({"lr": 0.003}, "search", seed=4)
    carried = json.loads(json.dumps(planned.to_tune()))  # what Tune stores with its experiment
    assert SearchTrial.from_tune(carried) == planned
    assert planned.trial.hparams == {"hidden_size": 8, "lr": 0.003} and planned.trial.seed == 4
    assert (planned.trial.steps, planned.trial.eval_every, planned.trial.task_options) == (40, 20, {"n_val": 32})
    assert planned.resources == TrialResources(cpu=2, gpu=0.5) and planned.trial.device == "cpu"


def test_a_searched_value_overrides_a_fixed_one_and_the_template_is_untouched() -> None:
    arm = plan()
    planned = arm.trial({"hidden_size": 16}, "repeat", seed=5)
    assert planned.trial.hparams == {"hidden_size": 16} and planned.role == "repeat"
    assert arm.template.hparams == {} and arm.template.seed == 0


@pytest.mark.parametrize(("change", "field"), [
    ({"role": "extra"}, "role"),
    ({"colour": "red"}, "colour"),
    ({"trial": {"model": "gru", "task": "adding", "seq_len": 0}}, "trial.seq_len"),
])
def test_a_bad_tune_config_names_its_field(change: dict, field: str) -> None:
    config = {**plan().trial({}, "search", seed=0).to_tune(), **change}
    with pytest.raises(BadInput) as caught:
        SearchTrial.from_tune(config)
    assert caught.value.field == field

