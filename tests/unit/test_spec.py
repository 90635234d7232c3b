"""Search specs: the example files, trial counts by hand, search spaces, grids, fixed values,
param_budget against independently built models, and bad specs refused with the field's path."""

from __future__ import annotations

import math
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from seqarena import cells, tasks
from seqarena.cells.space import resolve
from seqarena.errors import BadInput
from seqarena.platform.domains import fixed_hparams, grid, search_space
from seqarena.platform.search import DEMO_SPEC
from seqarena.platform.spec import Arm, Spec, describe, load_spec, parse_spec

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.yaml"))
#: Every spec file a user can run: the examples and the demo that `seqarena demo` runs.
SPEC_FILES = [*EXAMPLES, DEMO_SPEC]

pytestmark = pytest.mark.usefixtures("one_thread")


def spec_data(**changes: Any) -> dict[str, Any]:
    """A small valid spec (adding, two lengths, three models) with top-level `changes`."""
    data: dict[str, Any] = {"name": "unit", "task": "adding", "seq_lens": [20, 40],
                            "models": ["lstm", "janet", "cornn"]}
    data.update(changes)
    return data


def param_count(arm: Arm, hparams: dict[str, Any]) -> int:
    """Parameters of the arm's model with `hparams` (over the task defaults), plus the task's head."""
    task = tasks.build(arm.task, arm.seq_len)
    values = resolve(cells.space(arm.model), hparams, task=arm.task)
    kwargs = {name: values[name] for name in cells.model_hparams(arm.model)}
    hidden = int(values["hidden_size"])
    model = cells.build(arm.model, task.input_size, hidden, int(values["num_layers"]), **kwargs)
    return sum(p.numel() for p in (*model.parameters(), *task.head(hidden).parameters()))


# --- the example files -------------------------------------------------------------------------


def test_there_are_the_examples_of_every_study() -> None:
    assert {path.stem for path in EXAMPLES} >= {"adding", "adding_long", "smnist", "psmnist", "copy", "param_budget",
                                                 "char_ptb", "ecg", "imdb"}


@pytest.mark.parametrize("path", [path for path in EXAMPLES if path.read_text().startswith("# Reproduction")],
                         ids=lambda path: path.stem)
def test_a_reproduction_searches_only_what_its_header_says(path: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A reproduction runs the authors' settings: every arm searches nothing, except a grid that the
    header names (char PTB's learning rates of the LSTM and GRU, whose settings the table does not give)."""
    spec = load_example(path, tmp_path, monkeypatch)
    for arm in spec.arms():
        searched = set(search_space(spec, arm))
        assert searched <= {"lr"}, f"{path.name}: {arm} searches {sorted(searched)}"
        if searched:
            assert spec.search.algorithm == "grid" and "grid" in path.read_text().split("name:")[0]


def load_example(path: Path, folder: Path, monkeypatch: pytest.MonkeyPatch) -> Spec:
    """The example as written, validated with an empty data folder (validation reads no data)."""
    monkeypatch.setenv("SEQARENA_DATA", str(folder))
    spec = load_spec(path)
    assert list(folder.iterdir()) == []
    return spec


@pytest.mark.parametrize("path", SPEC_FILES, ids=lambda path: path.stem)
def test_every_example_validates_with_its_documented_trial_count(path: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    spec = load_example(path, tmp_path, monkeypatch)
    documented = re.search(r"^# Trials:.*= (\d+)\.$", path.read_text(), re.MULTILINE)
    assert documented, f"{path.name} should say its trial count in a '# Trials: ... = N.' line"
    assert spec.trial_count() == int(documented.group(1))
    assert len(describe(spec)) == len(spec.arms()) > 0


def test_the_adding_example_is_what_the_readme_promises() -> None:
    spec = load_spec(next(path for path in EXAMPLES if path.stem == "adding"))
    assert spec.seq_lens == [100, 500] and spec.models == ["lstm", "gru", "cornn", "lem"]
    assert (spec.search.algorithm, spec.search.scheduler) == ("tpe", "asha")


# --- arms and trial counts ---------------------------------------------------------------------


def test_arms_are_length_major_in_listed_order() -> None:
    spec = parse_spec(spec_data())
    assert [arm.key for arm in spec.arms()] == [
        "adding/T=20/lstm", "adding/T=20/janet", "adding/T=20/cornn",
        "adding/T=40/lstm", "adding/T=40/janet", "adding/T=40/cornn",
    ]
    assert spec.arms()[4] == Arm("adding", 40, "janet")


def test_trial_count_of_a_sampled_search() -> None:
    spec = parse_spec(spec_data(search={"num_samples": 4}, repeats=3))
    assert spec.repeat_top_k == 3  # the default: the 3 best configurations get 2 more seeds each
    assert spec.trials_per_arm("cornn") == 4 + 3 * (3 - 1)
    assert spec.trial_count() == 2 * 3 * (4 + 3 * 2)
    one = parse_spec(spec_data(search={"num_samples": 4}, repeats=3, repeat_top_k=1))
    assert one.trials_per_arm("cornn") == 4 + 3 - 1
    few = parse_spec(spec_data(search={"num_samples": 2}, repeats=3, repeat_top_k=5))
    assert few.trials_per_arm("cornn") == 2 + 2 * 2  # no more configurations re-run than were searched


def test_grid_sizes_values_and_trial_count() -> None:
    spec = parse_spec(spec_data(
        models=["lstm", "tcn"], repeats=2, search={"algorithm": "grid", "grid_points": 4, "num_samples": 99},
        space={"tcn": {"kernel_size": [2, 3], "lr": [1e-4, 1e-1, "log"]}},
        fixed={"tcn": {"dropout": 0.0}},
    ))
    lstm = grid(spec, Arm("adding", 20, "lstm"))
    assert lstm["hidden_size"] == [64, 128, 256]
    assert lstm["lr"] == pytest.approx([1e-4, 1e-4 * 10 ** (2 / 3), 1e-4 * 10 ** (4 / 3), 1e-2])
    assert set(lstm) == {"hidden_size", "lr"}
    tcn = grid(spec, Arm("adding", 20, "tcn"))
    assert tcn["kernel_size"] == [2, 3]  # 2, 2.33, 2.67, 3 rounded and de-duplicated
    assert tcn["hidden_size"] == [16, 61, 105, 150]  # 16..150 in 4 points, rounded
    assert tcn["lr"] == pytest.approx([1e-4, 1e-3, 1e-2, 1e-1])
    assert set(tcn) == {"hidden_size", "kernel_size", "lr"}
    assert spec.trials_per_arm("lstm") == 3 * 4 + 3 * (2 - 1)  # the 3 best re-run with one more seed
    assert spec.trials_per_arm("tcn") == 4 * 2 * 4 + 3 * (2 - 1)
    assert spec.trial_count() == 2 * (15 + 35)


# --- search spaces and fixed values ------------------------------------------------------------


def test_cornn_search_space_follows_the_overrides() -> None:
    spec = parse_spec(spec_data(space={"cornn": {"dt": [0.01, 0.1, "log"], "gamma": [0.5, 50],
                                                 "hidden_size": {"choices": [64, 128]},
                                                 "optimizer": {"choices": ["adam", "rmsprop"]}}}))
    space = search_space(spec, Arm("adding", 20, "cornn"))
    assert space["dt"] == FloatDistribution(0.01, 0.1, log=True)
    assert space["gamma"] == FloatDistribution(0.5, 50.0, log=False)
    assert space["hidden_size"] == CategoricalDistribution((64, 128))
    assert space["optimizer"] == CategoricalDistribution(("adam", "rmsprop"))  # searched=False, overridden
    assert space["epsilon"] == FloatDistribution(1.0, 20.0)  # declared domain
    assert space["lr"] == FloatDistribution(0.0005, 0.02, log=True)
    assert not {"batch_size", "grad_clip", "num_layers", "dropout", "weight_decay"} & set(space)


def test_int_hparams_give_int_distributions() -> None:
    spec = parse_spec(spec_data(models=["tcn"], space={"tcn": {"num_layers": [2, 6]}}))
    space = search_space(spec, Arm("adding", 20, "tcn"))
    assert space["num_layers"] == IntDistribution(2, 6)
    assert space["kernel_size"] == IntDistribution(2, 8)
    assert spec.space["tcn"]["num_layers"].low == 2 and isinstance(spec.space["tcn"]["num_layers"].low, int)


def test_fixed_values_are_checked_applied_and_not_searched() -> None:
    spec = parse_spec(spec_data(fixed={"all": {"batch_size": 50, "lr": "1e-3"},
                                       "lstm": {"chrono": "true", "batch_size": 25}}))
    lstm, cornn = Arm("adding", 20, "lstm"), Arm("adding", 40, "cornn")
    assert fixed_hparams(spec, lstm) == {"batch_size": 25, "lr": 0.001, "chrono": True}  # model beats all
    assert fixed_hparams(spec, cornn) == {"batch_size": 50, "lr": 0.001}  # chrono: lstm only
    assert "lr" not in search_space(spec, cornn) and "lr" not in grid(spec, cornn)
    assert spec.fixed["lstm"]["chrono"] is True  # stored canonically


def test_describe_lists_each_arm() -> None:
    spec = parse_spec(spec_data(models=["cornn"], seq_lens=[30], search={"num_samples": 5},
                                space={"cornn": {"dt": [0.01, 0.1, "log"]}}, fixed={"all": {"batch_size": 50}}))
    (row,) = describe(spec)
    assert row["arm"] == "adding/T=30/cornn" and row["trials"] == 5
    assert row["searched"]["dt"] == "float in [0.01, 0.1] log"
    assert row["fixed"] == {"batch_size": 50} and "batch_size" not in row["searched"]


# --- round trips -------------------------------------------------------------------------------


def test_yaml_round_trip_and_hash(tmp_path: Path) -> None:
    spec = parse_spec(spec_data(space={"cornn": {"dt": [0.01, 0.1, "log"], "hidden_size": {"choices": [64]}}},
                                fixed={"lstm": {"chrono": True}}, budget={"max_steps": 500, "eval_every": 50}))
    assert spec.search.grace_period == 100  # 2 * eval_every
    path = tmp_path / "spec.yaml"
    path.write_text(spec.to_yaml())
    again = load_spec(path)
    assert again == spec and again.spec_hash() == spec.spec_hash() == load_spec(spec.to_yaml()).spec_hash()
    assert "dt: [0.01, 0.1, log]" in spec.to_yaml()
    assert parse_spec(spec_data(repeats=2)).spec_hash() != parse_spec(spec_data()).spec_hash()


# --- param_budget ------------------------------------------------------------------------------


def test_param_budget_gives_every_model_its_share() -> None:
    models = ["lstm", "gru", "cornn", "lem", "tcn", "transformer"]
    rng = torch.get_rng_state()
    spec = parse_spec(spec_data(models=models, seq_lens=[30], param_budget=20_000,
                                fixed={"tcn": {"kernel_size": 5}, "transformer": {"nhead": 4}}))
    assert torch.equal(torch.get_rng_state(), rng)  # building models to count them left the RNG alone
    for arm in spec.arms():
        fixed = fixed_hparams(spec, arm)
        assert "hidden_size" not in search_space(spec, arm)
        assert abs(param_count(arm, fixed) - 20_000) <= 2_000, arm.key
    assert [row["params"] for row in describe(spec)] == [
        param_count(arm, fixed_hparams(spec, arm)) for arm in spec.arms()]


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"param_budget": 10}, "lstm"),  # even hidden_size=1 is far above
        ({"param_budget": 20_000, "models": ["transformer"]}, "steps of 8"),  # every searched nhead must divide
    ],
)
def test_an_unreachable_param_budget_names_the_model(changes: dict[str, Any], words: str) -> None:
    with pytest.raises(BadInput) as caught:
        parse_spec(spec_data(**changes))
    assert caught.value.field == "param_budget" and words in str(caught.value)


# --- bad specs ---------------------------------------------------------------------------------

BAD = [
    ("unknown model", {"models": ["lstm", "corn"]}, "models[1]"),
    ("repeated model", {"models": ["lstm", "lstm"]}, "models[1]"),
    ("unknown task", {"task": "adder"}, "task"),
    ("empty seq_lens", {"seq_lens": []}, "seq_lens"),
    ("negative seq_len", {"seq_lens": [20, -5]}, "seq_lens[1]"),
    ("zero seq_len", {"seq_lens": [0]}, "seq_lens[0]"),
    ("seq_len the task refuses", {"seq_lens": [1]}, "seq_lens[0]"),
    ("range outside valid bounds", {"space": {"cornn": {"dt": [0.01, 5.0]}}}, "space.cornn.dt"),
    ("range with low >= high", {"space": {"cornn": {"dt": [0.1, 0.01]}}}, "space.cornn.dt"),
    ("range on a choice", {"space": {"cornn": {"hidden_size": [64, 128]}}}, "space.cornn.hidden_size"),
    ("malformed range", {"space": {"cornn": {"dt": [0.01, 0.1, "linear"]}}}, "space.cornn.dt"),
    ("log range with low 0", {"space": {"cornn": {"gamma": [0, 50, "log"]}}}, "space.cornn.gamma"),
    ("choice out of range", {"space": {"lstm": {"optimizer": {"choices": ["adam", "lbfgs"]}}}},
     "space.lstm.optimizer"),
    ("unknown hparam", {"space": {"cornn": {"beta": [1, 2]}}}, "space.cornn.beta"),
    ("override for a model not in models", {"space": {"gru": {"lr": [1e-4, 1e-2]}}}, "space.gru"),
    ("override for an unknown model", {"space": {"gruu": {"lr": [1e-4, 1e-2]}}}, "space.gruu"),
    ("fixed and overridden", {"fixed": {"all": {"lr": 0.001}}, "space": {"cornn": {"lr": [1e-4, 1e-2]}}},
     "space.cornn.lr"),
    ("fixed value out of range", {"fixed": {"all": {"batch_size": 0}}}, "fixed.all.batch_size"),
    ("fixed key no model declares", {"fixed": {"all": {"nhead": 2}}}, "fixed.all.nhead"),
    ("hidden_size fixed under param_budget", {"param_budget": 20_000, "fixed": {"lstm": {"hidden_size": 64}}},
     "fixed.lstm.hidden_size"),
    ("negative max_steps", {"budget": {"max_steps": -1}}, "budget.max_steps"),
    ("eval_every above max_steps", {"budget": {"max_steps": 10, "eval_every": 100}}, "budget.eval_every"),
    ("grace period below eval_every", {"search": {"grace_period": 50}}, "search.grace_period"),
    ("unknown top-level key", {"seed": 1}, "seed"),
    ("unknown key inside search", {"search": {"algo": "tpe"}}, "search.algo"),
    ("bad algorithm", {"search": {"algorithm": "bayes"}}, "search.algorithm"),
    ("zero reduction factor", {"search": {"reduction_factor": 1}}, "search.reduction_factor"),
    ("zero cpus", {"resources": {"cpus_per_trial": 0}}, "resources.cpus_per_trial"),
    ("zero repeats", {"repeats": 0}, "repeats"),
    ("name with a space", {"name": "my spec"}, "name"),
    ("unknown task option", {"task_options": {"colour": "red"}}, "task_options.colour"),
]


@pytest.mark.parametrize(("changes", "field"), [case[1:] for case in BAD], ids=[case[0] for case in BAD])
def test_a_bad_spec_names_the_field_and_what_is_allowed(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(BadInput) as caught:
        parse_spec(spec_data(**changes))
    assert caught.value.field.startswith(field)
    assert "allowed" in str(caught.value) and "\n" not in str(caught.value)


def test_an_unknown_model_error_lists_the_known_ones() -> None:
    with pytest.raises(BadInput, match="corn") as caught:
        parse_spec(spec_data(models=["corn"]))
    assert all(name in str(caught.value) for name in cells.names())


@pytest.mark.parametrize(
    "text",
    ["name: [unit\ntask: adding\n", "name: unit\n  task: adding\n", "- unit\n- adding\n", "", "missing.yaml"],
    ids=["unclosed list", "bad indentation", "a list", "empty", "no such file"],
)
def test_unreadable_yaml_is_bad_input_on_spec(text: str) -> None:
    with pytest.raises(BadInput) as caught:
        load_spec(text)
    assert caught.value.field == "spec" and "allowed" in str(caught.value)


def test_a_missing_path_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInput) as caught:
        load_spec(tmp_path / "absent.yaml")
    assert caught.value.field == "spec"


#: Files opened (audit event `open`) while `_recording` holds a list; `sys.addaudithook` is public
#: and cannot be removed, so one hook serves every test of this module.
_recording: list[list[str]] = []


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if _recording and event in ("open", "os.listdir", "os.scandir"):
        _recording[-1].append(f"{event} {args[0]}")


sys.addaudithook(_audit)


def opened_while(fn: Any) -> list[str]:
    """The files and folders `fn()` opens or lists."""
    _recording.append([])
    try:
        fn()
    finally:
        seen = _recording.pop()
    return seen


@pytest.mark.parametrize("task", ["smnist", "char", "ecg", "imdb", "har2", "ncifar"])
def test_validation_reads_and_downloads_no_data(task: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty data folder: the spec validates, nothing is opened or written, and param_budget
    chooses the same hidden sizes as the task built on its data would give (its shape)."""
    monkeypatch.setenv("SEQARENA_DATA", str(tmp_path))
    seq_len = {"smnist": 784, "har2": 128}.get(task, 100)
    data = spec_data(task=task, seq_lens=[seq_len], models=["lstm", "cornn"], param_budget=20_000)
    parse_spec(data)  # the first parse imports what the models and tasks need
    seen = opened_while(lambda: describe(parse_spec(data)))
    assert seen == [] and list(tmp_path.iterdir()) == []
    shape = tasks.shape(task, seq_len)
    for row, model in zip(describe(parse_spec(data)), ["lstm", "cornn"], strict=True):
        hidden = row["fixed"]["hidden_size"]
        net = cells.build(model, shape.input_size, hidden, 1, seq_len=shape.length)
        assert row["params"] == sum(p.numel() for p in (*net.parameters(), *shape.head(hidden).parameters()))
        assert abs(row["params"] - 20_000) <= 2_000


def test_validation_with_and_without_the_data_agree(small_data: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    data = spec_data(task="smnist", seq_lens=[784], models=["lstm", "cornn"], param_budget=20_000)
    with_data = describe(parse_spec(data))
    monkeypatch.setenv("SEQARENA_DATA", str(tmp_path))
    assert describe(parse_spec(data)) == with_data
    assert [row["fixed"]["hidden_size"] for row in with_data] == [68, 97]


def test_grid_trial_count_is_finite_and_positive() -> None:
    spec = parse_spec(spec_data(models=["janet"], search={"algorithm": "grid"}, fixed={"janet": {"dropout": 0.1}}))
    assert spec.trials_per_arm("janet") == math.prod(len(v) for v in grid(spec, Arm("adding", 20, "janet")).values())
