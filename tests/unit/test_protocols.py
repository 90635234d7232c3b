"""The tasks' data protocols: a fixed training set against fresh data, the scalar copy encoding by hand,
and the resolution of a protocol name (a task's own, `authors`, explicit options over it)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import torch

from seqarena import tasks
from seqarena.errors import BadInput
from seqarena.platform import database, searches
from seqarena.platform.leaderboard import leaderboard
from seqarena.platform.search import arm_plans, register_search
from seqarena.platform.spec import Spec, describe, load_spec, parse_spec
from seqarena.platform.tracking import Tracker
from seqarena.tasks.copy import copy_batch
from seqarena.workers.config import prepare


def _rows(batches: list[tuple[torch.Tensor, torch.Tensor]]) -> set[tuple[float, ...]]:
    """The sequences of `batches`, each as a tuple of its inputs' numbers (order-free)."""
    return {tuple(row.flatten().tolist()) for inputs, _ in batches for row in inputs}


def test_a_fixed_adding_training_set_repeats_its_sequences_every_epoch() -> None:
    task = tasks.build("adding", 12, train_size=6)
    stream = task.train_stream(seed=3)
    assert stream.epoch_size() == 6 and stream.steps_per_epoch(3) == 2
    epochs = [[stream.next(3) for _ in range(2)] for _ in range(3)]
    first = _rows(epochs[0])
    assert len(first) == 6  # one epoch visits every sequence once
    assert _rows(epochs[1]) == first and _rows(epochs[2]) == first
    for inputs, targets in (batch for epoch in epochs for batch in epoch):  # targets are the masked sums
        assert torch.allclose(targets[:, 0], (inputs[:, :, 0] * inputs[:, :, 1]).sum(dim=1))
        assert torch.equal(inputs[:, :, 1].sum(dim=1), torch.full((3,), 2.0))
    # the same seed draws the same set; another seed, and fresh data, other sequences
    assert _rows([tasks.build("adding", 12, train_size=6).train_stream(seed=3).next(6)]) == first
    assert not _rows([task.train_stream(seed=4).next(6)]) & first
    fresh = tasks.build("adding", 12).train_stream(seed=3)
    assert fresh.epoch_size() is None
    assert not _rows([fresh.next(3) for _ in range(6)]) & first


def test_a_fixed_training_set_resumes_where_it_stopped() -> None:
    task = tasks.build("copy", 10, train_size=7, encoding="scalar")
    stream = task.train_stream(seed=1)
    for _ in range(3):  # into the second epoch
        stream.next(3)
    saved = stream.state_dict()
    expected = [stream.next(3) for _ in range(3)]
    resumed = task.train_stream(seed=1)  # a trial resumes with its own seed, so its own set
    resumed.load_state_dict(saved)
    for (inputs, targets), (want_inputs, want_targets) in zip((resumed.next(3) for _ in range(3)), expected,
                                                              strict=True):
        assert torch.equal(inputs, want_inputs) and torch.equal(targets, want_targets)


def test_the_fixed_set_holds_markers_anywhere_under_tcn_s_protocol() -> None:
    options = tasks.protocol("adding", "tcn").options
    task = tasks.build("adding", 40, **{**options, "train_size": 400})
    inputs, _ = task.train_stream(seed=0).next(400)
    first, second = inputs[:, :, 1].nonzero()[:, 1].view(400, 2).unbind(1)
    assert bool((second < 20).any()) and bool((first >= 20).any())  # `half` never puts both in one half


def test_scalar_copy_inputs_are_the_symbols_in_one_channel() -> None:
    onehot, target = copy_batch(3, 2, torch.Generator().manual_seed(5))
    scalar, same_target = copy_batch(3, 2, torch.Generator().manual_seed(5), "scalar")
    assert scalar.shape == (2, 23, 1) and scalar.dtype == torch.float32
    assert torch.equal(target, same_target)
    data = scalar[:, :10, 0]
    assert bool(((data >= 1) & (data <= 8)).all()) and torch.equal(data, data.round())
    assert torch.equal(scalar[:, 10:12, 0], torch.zeros(2, 2))  # T - 1 = 2 blanks
    assert torch.equal(scalar[:, 12:, 0], torch.full((2, 11), 9.0))  # 11 markers
    assert torch.equal(scalar[:, :, 0], onehot.argmax(dim=2).float())
    assert torch.equal(target[:, 13:].float(), data)  # the data symbols are the last 10 targets


def test_the_copy_encoding_sets_the_input_size_without_data() -> None:
    assert tasks.shape("copy", 30).input_size == 10
    assert tasks.shape("copy", 30, encoding="scalar").input_size == 1
    task = tasks.build("copy", 30, encoding="scalar", n_val=4)
    assert task.input_size == 1 and task.eval_set("val")[0].shape == (4, 50, 1)
    with pytest.raises(BadInput, match=r"option\.encoding"):
        tasks.shape("copy", 30, encoding="binary")


@pytest.mark.parametrize("name", tasks.names())
def test_every_protocol_is_valid_options_and_the_default_is_the_options_defaults(name: str) -> None:
    cls = tasks.task_class(name)
    assert cls.default_protocol in cls.protocols
    for values in cls.protocols.values():
        cls.options_model(**values)
    defaults = cls.options_model().model_dump()
    assert all(defaults[key] == value for key, value in cls.protocols[cls.default_protocol].items())


def test_each_paper_s_protocol_is_its_code_s() -> None:
    assert tasks.protocols("adding") == {
        "cornn": {"markers": "half", "train_size": 0}, "lem": {"markers": "half", "train_size": 0},
        "janet": {"markers": "half", "train_size": 105_000}, "tcn": {"markers": "anywhere", "train_size": 50_000}}
    assert tasks.protocols("psmnist") == {"unicornn": {"permutation_seed": 5544}, "lem": {"permutation_seed": 5544},
                                          "cornn": {"permutation_seed": 12008}}
    assert tasks.protocols("copy")["tcn"] == {"encoding": "scalar", "train_size": 10_000}
    assert tasks.protocols("smnist") == {"default": {}}


def test_a_protocol_resolves_by_name_by_model_and_under_explicit_options() -> None:
    assert tasks.protocol("psmnist") == tasks.Protocol("unicornn", {"permutation_seed": 5544})
    assert tasks.protocol("psmnist", "cornn", model="lem").options == {"permutation_seed": 12008}
    assert tasks.protocol("psmnist", "authors", model="cornn") == tasks.Protocol("cornn", {"permutation_seed": 12008})
    assert tasks.protocol("psmnist", "authors", model="lem").options == {"permutation_seed": 5544}
    assert tasks.protocol("psmnist", "authors", model="gru").name == "unicornn"  # no paper of its own: the default
    assert tasks.protocol("adding", "authors", model="tcn").options == {"markers": "anywhere", "train_size": 50_000}
    explicit = tasks.protocol("adding", "tcn", {"train_size": 100, "n_val": 10}, model="tcn")
    assert explicit == tasks.Protocol("tcn", {"markers": "anywhere", "train_size": 100, "n_val": 10})
    assert tasks.protocol("smnist", "authors", model="cornn").name == "default"


def test_an_unknown_protocol_is_one_line_naming_the_allowed_ones() -> None:
    with pytest.raises(BadInput) as error:
        tasks.protocol("psmnist", "corn")
    assert str(error.value) == ("protocol: got 'corn'; allowed: one of authors, cornn, lem, unicornn "
                                "(the data protocols of task psmnist)")


# --- specs: one protocol for a comparison, `authors` for a reproduction -------------------------------


def _spec(**changes: Any) -> Spec:
    data: dict[str, Any] = {"name": "unit", "task": "psmnist", "task_options": {"n_val": 1000, "n_test": 5},
                            "seq_lens": [784], "models": ["cornn", "lem", "gru"]}
    return parse_spec({**data, **changes})


def test_a_spec_names_its_protocol_and_defaults_to_the_task_s() -> None:
    assert _spec().protocol == "unicornn"
    assert parse_spec({"name": "u", "task": "smnist", "seq_lens": [784], "models": ["gru"]}).protocol == "default"
    shared = _spec(protocol="cornn")
    assert {model: shared.task_protocol(model).name for model in shared.models} == dict.fromkeys(shared.models,
                                                                                                  "cornn")
    assert load_spec(shared.to_yaml()).protocol == "cornn"


def test_a_spec_refuses_an_unknown_protocol_in_one_line() -> None:
    with pytest.raises(BadInput) as error:
        _spec(protocol="tcn")
    assert str(error.value) == ("protocol: got 'tcn'; allowed: one of authors, cornn, lem, unicornn "
                                "(the data protocols of task psmnist)")
    assert "\n" not in str(error.value)


def test_the_arms_of_an_authors_spec_follow_each_paper_s_protocol(small_data: Path) -> None:
    spec = _spec(protocol="authors", task_options={"n_val": 1000, "n_test": 5, "split_seed": 2})
    plans = {plan.template.model: plan for plan in arm_plans(spec)}
    seeds = {model: plan.trial({}, "search", seed=0).trial.task_options["permutation_seed"]
             for model, plan in plans.items()}
    assert seeds == {"cornn": 12008, "lem": 5544, "gru": 5544}
    assert {model: plan.template.protocol for model, plan in plans.items()} == {
        "cornn": "cornn", "lem": "lem", "gru": "unicornn"}
    assert all(plan.template.task_options["split_seed"] == 2 for plan in plans.values())  # explicit options stay
    assert [row["protocol"] for row in describe(spec)] == ["cornn", "lem", "unicornn"]
    # each trial's task is built with its own permutation
    cornn = prepare(plans["cornn"].trial({"hidden_size": 4}, "search", seed=0).trial)
    assert cornn.protocol == "cornn" and cornn.task.options.permutation_seed == 12008


def test_explicit_task_options_override_the_protocol_s_values() -> None:
    spec = parse_spec({"name": "u", "task": "adding", "protocol": "tcn", "task_options": {"train_size": 500},
                       "seq_lens": [50], "models": ["tcn", "gru"]})
    assert spec.task_protocol("gru") == tasks.Protocol("tcn", {"markers": "anywhere", "train_size": 500})


def test_a_comparison_and_a_reproduction_size_their_arms_with_their_own_encoding() -> None:
    data = {"name": "u", "task": "copy", "seq_lens": [30], "models": ["tcn", "lstm"], "param_budget": 20_000,
            "fixed": {"tcn": {"kernel_size": 7}}}
    authors = parse_spec({**data, "protocol": "authors"})
    shared = parse_spec({**data, "protocol": "tcn"})
    plain = parse_spec(data)
    arm_tcn, arm_lstm = authors.arms()
    # an LSTM's input weights grow with the input size: one-hot (10 channels) or scalar (1)
    assert authors.budget_size(arm_lstm) == plain.budget_size(arm_lstm) != shared.budget_size(arm_lstm)
    assert authors.budget_size(arm_tcn) == shared.budget_size(arm_tcn)


def test_a_registered_search_stores_each_arm_s_protocol_for_the_leaderboard(
        small_data: Path, tmp_path: Path, url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQARENA_HOME", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("SEQARENA_DB_URL", url)  # the fixture's SQLite file, its engine closed afterwards
    spec = _spec(protocol="authors")
    target = register_search(spec, Tracker(), arm_plans(spec))
    board = leaderboard(database.get_engine(), search_id=target.search_id)
    assert {row.model: row.protocol for row in board} == {"cornn": "cornn", "lem": "lem", "gru": "unicornn"}


def test_seqarena_leaderboard_prints_each_arm_s_protocol(run_cli: Any, url: str,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQARENA_DB_URL", url)
    engine = database.get_engine(url)
    arms = [{"task": "adding", "seq_len": 100, "model": model, "key": f"adding/T=100/{model}", "metric_name": "mse",
             "higher_is_better": False, "baseline": 0.167, "protocol": protocol}
            for model, protocol in (("tcn", "tcn"), ("cornn", "cornn"))]
    search_id = searches.create_search(engine, name="p", spec_yaml="name: p\n", spec_hash="p",
                                       mlflow_experiment_id="1", arms=arms)
    for model in ("tcn", "cornn"):
        searches.record_trial(engine, search_id, f"adding/T=100/{model}",
                              {"trial_id": model, "role": "search", "seed": 0, "status": "completed",
                               "metric": 0.01, "hparams": {}, "steps": 10})
    code, out, _ = run_cli(["leaderboard", "--search", "p"])
    assert code == 0 and "protocol" in out
    for model in ("tcn", "cornn"):  # the model's column, then its protocol's
        assert re.search(rf"│ adding │ 100 │ {model}\s+│ {model}\s+│", out)
    code, out, _ = run_cli(["leaderboard", "--search", "p", "--json"])
    assert {row["model"]: row["protocol"] for row in json.loads(out)} == {"tcn": "tcn", "cornn": "cornn"}
