"""Tasks: generators against hand-computed facts, baselines against their closed forms, MNIST data."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from seqarena import tasks
from seqarena.tasks import mnist
from seqarena.tasks.adding import adding_batch
from seqarena.tasks.copy import copy_batch
from seqarena.tasks.psmnist import permutation
from tests.conftest import TEST_DATA
from tests.helpers import assert_stream_resumes


def test_registry_lists_the_tasks() -> None:
    assert tasks.names()[:4] == ["adding", "copy", "smnist", "psmnist"]
    assert tasks.names()[4:] == ["char", "ecg", "imdb", "har2", "ncifar"]


@pytest.mark.parametrize("markers", ["half", "anywhere"])
def test_adding_sequences_have_two_markers_and_the_masked_sum(markers: str) -> None:
    x, y = adding_batch(101, 500, torch.Generator().manual_seed(1), markers)
    assert x.shape == (500, 101, 2) and y.shape == (500, 1)
    marks = x[:, :, 1]
    assert torch.equal(marks.sum(dim=1), torch.full((500,), 2.0))
    assert torch.allclose(y[:, 0], (x[:, :, 0] * marks).sum(dim=1))
    assert float(x[:, :, 0].min()) >= 0.0 and float(x[:, :, 0].max()) <= 1.0
    if markers == "half":
        first, second = marks.nonzero()[:, 1].view(500, 2).unbind(1)
        assert bool((first < 50).all()) and bool((second >= 50).all())


def test_adding_constant_predictor_scores_one_sixth() -> None:
    task = tasks.build("adding", 200)
    _x, y = adding_batch(200, 10_000, torch.Generator().manual_seed(7))
    mse = float(task.metrics(torch.ones_like(y), y)["mse"].mean())
    assert abs(mse - 1 / 6) < 0.005
    assert task.baseline == pytest.approx(1 / 6)
    assert abs(float(y.mean()) - 1.0) < 0.02


def test_generators_are_pure_functions_of_the_seed() -> None:
    for generate in (adding_batch, copy_batch):
        a = generate(30, 8, torch.Generator().manual_seed(3))
        b = generate(30, 8, torch.Generator().manual_seed(3))
        c = generate(30, 8, torch.Generator().manual_seed(4))
        assert all(torch.equal(p, q) for p, q in zip(a, b, strict=True))
        assert not torch.equal(a[0], c[0])


def test_evaluation_sets_do_not_depend_on_the_trial_seed() -> None:
    task = tasks.build("adding", 40, n_val=50, n_test=60)
    val_x, _ = task.eval_set("val")
    test_x, _ = task.eval_set("test")
    assert val_x.shape[0] == 50 and test_x.shape[0] == 60
    assert torch.equal(val_x, tasks.build("adding", 40, n_val=50).eval_set("val")[0])
    assert not torch.equal(val_x[:50], test_x[:50])
    other = tasks.build("adding", 40, n_val=50, data_seed=1).eval_set("val")[0]
    assert not torch.equal(val_x, other)


def test_copy_sequences_follow_the_tcn_layout() -> None:
    x, y = copy_batch(25, 4, torch.Generator().manual_seed(0))
    symbols = x.argmax(dim=2)
    assert x.shape == (4, 45, 10) and y.shape == (4, 45)
    assert bool(((symbols[:, :10] >= 1) & (symbols[:, :10] <= 8)).all())
    assert bool((symbols[:, 10:34] == 0).all()) and bool((symbols[:, 34:] == 9).all())
    assert bool((y[:, :35] == 0).all()) and torch.equal(y[:, 35:], symbols[:, :10])


@pytest.mark.parametrize("blank", [100, 1000])
def test_copy_baseline_matches_its_closed_form(blank: int) -> None:
    task = tasks.build("copy", blank)
    assert task.baseline == pytest.approx(10 * math.log(8) / (blank + 20))
    # The memoryless predictor: blank with certainty for T + 10 steps, uniform over 1..8 after.
    _x, y = task.eval_set("test")
    logits = torch.full((len(y), blank + 20, 10), -1e9)
    logits[:, : blank + 10, 0] = 0.0
    logits[:, blank + 10 :, 1:9] = 0.0
    assert float(task.metrics(logits, y)["ce"].mean()) == pytest.approx(task.baseline, rel=1e-6)
    assert float(task.loss(logits, y)) == pytest.approx(task.baseline, rel=1e-6)


def test_published_copy_baseline_at_t_1000() -> None:
    assert tasks.build("copy", 1000).baseline == pytest.approx(0.020387, abs=1e-6)


def test_smnist_batches_have_the_right_shapes_labels_and_pixels(small_data: Path) -> None:
    task = tasks.build("smnist", 784, n_val=1000)
    x, y = task.train_stream(0).next(64)
    assert x.shape == (64, 784, 1) and x.dtype == torch.float32 and y.shape == (64,)
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0 and float(x.max()) > 0.99
    assert set(y.tolist()) <= set(range(10))
    val_x, _val_y = task.eval_set("val")
    test_x, test_y = task.eval_set("test")
    assert val_x.shape == (1000, 784, 1) and test_x.shape == (1000, 784, 1)
    # class counts and mean pixel of the first 1 000 official test images (tests/data/README.md)
    assert test_y.bincount().tolist() == [85, 126, 116, 107, 110, 87, 87, 99, 89, 94]
    assert task.baseline == pytest.approx(0.126)
    assert float(test_x.mean()) == pytest.approx(31.1775 / 255, abs=1e-4)
    assert len(task.train_index) == 3000
    assert not set(task.train_index.tolist()) & set(task.val_index.tolist())


def test_smnist_on_the_full_mnist_has_the_published_split_and_counts(full_mnist: Path) -> None:
    task = tasks.build("smnist", 784)
    val_x, _val_y = task.eval_set("val")
    test_x, test_y = task.eval_set("test")
    assert val_x.shape == (3000, 784, 1) and test_x.shape == (10_000, 784, 1)
    assert test_y.bincount().tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert task.baseline == pytest.approx(0.1135)
    assert float(test_x.mean()) == pytest.approx(33.7912 / 255, abs=1e-4)  # LeCun's test set
    assert len(task.train_index) == 57_000
    # the subset in tests/data is the first images of these files
    subset = mnist.load(TEST_DATA / "mnist")
    for key, array in subset.items():
        assert torch.equal(array, task.arrays[key][: len(array)])
    assert [len(subset[key]) for key in ("train_images", "test_labels")] == [4000, 1000]


def test_psmnist_permutation_is_a_fixed_seeded_permutation(small_data: Path) -> None:
    perm = permutation(5544)
    assert sorted(perm.tolist()) == list(range(784))
    assert torch.equal(perm, torch.randperm(784, generator=torch.Generator().manual_seed(5544)))
    assert not torch.equal(perm, permutation(12008))
    plain = tasks.build("smnist", 784, n_test=5)
    permuted = tasks.build("psmnist", 784, n_test=5)
    assert torch.equal(permuted.eval_set("test")[0][:, :, 0], plain.eval_set("test")[0][:, perm, 0])
    assert not torch.equal(permuted.eval_set("test")[0], plain.eval_set("test")[0])


def test_training_streams_resume_exactly_from_their_state(small_data: Path) -> None:
    for task in (tasks.build("adding", 20), tasks.build("smnist", 784, n_test=10)):
        assert_stream_resumes(task, seed=5, batch_size=16)


@pytest.mark.parametrize(
    ("name", "seq_len", "options", "field"),
    [
        ("adding", 0, {}, "seq_len"),
        ("adding", 1, {}, "seq_len"),
        ("adding", 10, {"markers": "middle"}, "option.markers"),
        ("adding", 10, {"n_val": 0}, "option.n_val"),
        ("copy", 10, {"colour": 1}, "option.colour"),
        ("smnist", 100, {}, "seq_len"),
        ("smnist", 784, {"n_val": 4000}, "option.n_val"),
        ("sorting", 10, {}, "task"),
    ],
)
def test_bad_task_input_names_the_field(name: str, seq_len: int, options: dict, field: str,
                                        small_data: Path) -> None:
    with pytest.raises(ValueError, match=rf"^{field}: got") as error:
        tasks.build(name, seq_len, **options)
    assert "allowed" in str(error.value)


def test_an_epoch_is_one_pass_over_a_fixed_training_set_and_fresh_data_has_none():
    from seqarena.tasks.base import GeneratedStream, ShuffledStream

    stream = ShuffledStream(torch.zeros(1000, 3, 1), torch.zeros(1000), 0, lambda rows: rows)
    assert stream.epoch_size() == 1000
    assert stream.steps_per_epoch(120) == 8  # 1000 // 120: the ragged 40 are dropped
    fresh = GeneratedStream(lambda seq_len, n, g: (torch.zeros(n, seq_len, 1), torch.zeros(n)), 5, 0)
    assert fresh.epoch_size() is None and fresh.steps_per_epoch(50) is None
