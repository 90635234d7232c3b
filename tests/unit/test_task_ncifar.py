"""Noise-padded CIFAR-10 on a tiny archive written here in the format of `cifar-10-python.tar.gz` (no network)."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from seqarena.errors import DataError
from seqarena.tasks import ncifar
from seqarena.tasks.base import parse_options
from seqarena.tasks.ncifar import NoisyCIFAR, NoisyCIFAROptions
from tests.helpers import assert_stream_resumes

PER_BATCH, N_TEST = 6, 10
TEST_LABELS = [3, 3, 3, 3, 1, 2, 5, 7, 9, 0]  # majority 4 of 10


def _images(seed: int, n: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 3072), dtype=np.uint8)


def _batch_pickle(images: np.ndarray, labels: list[int]) -> bytes:
    """A batch as the archive holds it: Python 2 cPickle, protocol 2, of a dict of str keys holding a
    uint8 array under 'data' and a list of ints under 'labels', opcode by opcode."""
    rows, columns = images.shape
    ints = b"".join(b"K" + bytes([label]) for label in labels)
    dtype = (b"cnumpy\ndtype\nU\x02u1K\x00K\x01\x87R"  # dtype('u1', 0, 1), then its state:
             b"(K\x03U\x01|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb")
    array = (b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85U\x01b\x87R"
             b"(K\x01J" + rows.to_bytes(4, "little") + b"J" + columns.to_bytes(4, "little") + b"\x86" + dtype
             + b"\x89T" + images.nbytes.to_bytes(4, "little") + images.tobytes() + b"tb")
    return (b"\x80\x02}(U\x0bbatch_labelU\x07a batchU\x04data" + array
            + b"U\x06labels](" + ints + b"eu.")


def _train_labels(i: int) -> list[int]:
    return [(i + k) % 10 for k in range(PER_BATCH)]


@functools.cache
def _archive_bytes(test_batch: bytes | None = None) -> bytes:
    members = {f"cifar-10-batches-py/data_batch_{i}": _batch_pickle(_images(i, PER_BATCH), _train_labels(i))
               for i in range(1, 6)}
    members["cifar-10-batches-py/test_batch"] = test_batch or _batch_pickle(_images(0, N_TEST), TEST_LABELS)
    members["cifar-10-batches-py/batches.meta"] = pickle.dumps({b"label_names": [b"airplane"]}, protocol=3)
    members["cifar-10-batches-py/readme.html"] = b"<html></html>"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _store(root: Path, data: bytes, monkeypatch: pytest.MonkeyPatch | None = None) -> None:
    (root / "cifar10").mkdir(parents=True)
    (root / "cifar10" / ncifar.ARCHIVE.name).write_bytes(data)
    if monkeypatch is not None:
        digest = hashlib.sha256(data).hexdigest()
        monkeypatch.setattr(ncifar, "ARCHIVE", dataclasses.replace(ncifar.ARCHIVE, sha256=digest))


@pytest.fixture
def data_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`$SEQARENA_DATA` holding the tiny archive, pinned by its sha256."""
    _store(tmp_path, _archive_bytes(), monkeypatch)
    monkeypatch.setenv("SEQARENA_DATA", str(tmp_path))
    return tmp_path


def _task(seq_len: int | None = 40, **options: object) -> NoisyCIFAR:
    return NoisyCIFAR(seq_len, parse_options(NoisyCIFAROptions, {"n_val": 8, **options}))


def test_images_are_fed_row_by_row_then_noise(data_root: Path) -> None:
    task = _task(40)
    assert (task.seq_len, task.length, task.input_size, task.output_size, task.noise_steps) == (40, 40, 96, 10, 8)
    rows, y = task.eval_set("test")
    x = rows[:]
    assert rows.shape == x.shape == (10, 40, 96) and x.dtype == torch.float32 and y.dtype == torch.int64
    image = torch.from_numpy(_images(0, N_TEST)[4]).view(3, 32, 32).float() / 255  # [channel, row, column]
    for h in (0, 17, 31):  # step h = [R row h, G row h, B row h]
        assert torch.equal(x[4, h], torch.cat([image[0, h], image[1, h], image[2, h]]))
    assert float(x[:, :32].min()) >= 0.0 and float(x[:, :32].max()) <= 1.0
    noise = x[:, 32:]
    assert abs(float(noise.mean())) < 0.3 and 0.7 < float(noise.std()) < 1.3  # N(0, 1)
    assert _task(32).eval_set("val")[0][:].shape == (8, 32, 96)  # T = 32: the image alone
    assert NoisyCIFAR(None, parse_options(NoisyCIFAROptions, {"n_val": 8, "n_test": 2})).seq_len == 1000


def test_fixed_noise_is_one_tensor_for_every_sample_and_split(data_root: Path) -> None:
    task = _task()
    val_x, test_x = task.eval_set("val")[0][:], task.eval_set("test")[0][:]
    train_x = task.train_stream(5).next(4)[0]
    shared = test_x[0, 32:]
    for inputs in (val_x, test_x, train_x, _task().train_stream(6).next(3)[0]):
        assert torch.equal(inputs[:, 32:], shared.expand(len(inputs), -1, -1))
    assert not torch.equal(_task(noise_seed=1).eval_set("test")[0][:][0, 32:], shared)


def test_per_sample_noise_is_fresh_in_training_and_fixed_in_evaluation(data_root: Path) -> None:
    task = _task(noise="per_sample")
    test_x = task.eval_set("test")[0][:]
    assert not torch.equal(test_x[0, 32:], test_x[1, 32:])
    assert torch.equal(test_x, _task(noise="per_sample").eval_set("test")[0][:])  # same for every trial
    assert not torch.equal(task.eval_set("val")[0][:][:, 32:], test_x[:8, 32:])
    assert not torch.equal(_task(noise="per_sample", noise_seed=1).eval_set("test")[0][:], test_x)
    stream = task.train_stream(0)
    first, second = stream.next(4)[0], stream.next(4)[0]
    assert not torch.equal(first[0, 32:], first[1, 32:]) and not torch.equal(first[:, 32:], second[:, 32:])
    assert torch.equal(first, task.train_stream(0).next(4)[0])


@pytest.mark.parametrize("noise", ["fixed", "per_sample"])
def test_training_streams_resume_exactly(data_root: Path, noise: str) -> None:
    task = _task(noise=noise)
    assert_stream_resumes(task, seed=3, batch_size=4, advance=5)  # 22 training images: the sixth batch starts an epoch
    assert not torch.equal(task.train_stream(4).next(4)[0], task.train_stream(3).next(4)[0])


def test_labels_and_splits(data_root: Path) -> None:
    task = _task()
    all_train = [label for i in range(1, 6) for label in _train_labels(i)]
    val_y = task.eval_set("val")[1]
    train_labels = task.arrays["train_labels"][task.train_index]
    assert sorted(train_labels.tolist() + val_y.tolist()) == sorted(all_train)
    assert task.eval_set("test")[1].tolist() == TEST_LABELS
    train, val = set(task.train_index.tolist()), set(task.val_index.tolist())
    assert len(val) == 8 and not train & val and train | val == set(range(30))
    assert torch.equal(_task().val_index, task.val_index) and not torch.equal(_task(split_seed=1).val_index,
                                                                              task.val_index)
    assert _task(n_test=3).eval_set("test")[1].tolist() == TEST_LABELS[:3]


def test_baseline_is_the_test_majority_share(data_root: Path) -> None:
    task = _task()
    assert task.baseline == pytest.approx(0.4)
    _x, y = task.eval_set("test")
    always_3 = torch.zeros(len(y), 10)
    always_3[:, 3] = 1.0
    assert float(task.metrics(always_3, y)["accuracy"].mean()) == pytest.approx(task.baseline)
    assert _task(n_test=4).baseline == 1.0
    assert task.describe()["options"]["noise"] == "fixed"


@pytest.mark.parametrize(
    ("seq_len", "options", "field", "allowed"),
    [
        (31, {}, "seq_len", "at least 32"),
        (40, {"noise": "pink"}, "option.noise", "'fixed' or 'per_sample'"),
        (40, {"n_val": 30}, "option.n_val", "fewer than the 30 training images"),
        (40, {"n_test": 10_001}, "option.n_test", "less than or equal to 10000"),
        (40, {"colour": "grey"}, "option.colour", "one of noise, noise_seed"),
    ],
)
def test_bad_input_names_the_field_and_what_is_allowed(data_root: Path, seq_len: int, options: dict, field: str,
                                                         allowed: str) -> None:
    with pytest.raises(ValueError, match=rf"^{field}: got .*allowed: .*{allowed}"):
        NoisyCIFAR(seq_len, parse_options(NoisyCIFAROptions, options))


def test_offline_without_the_archive_is_a_clear_error_and_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"cifar-10-python.tar.gz: got 'missing file'.*SEQARENA_OFFLINE"):
        _task(data_dir=tmp_path / "data")
    assert not (tmp_path / "data").exists()


def test_an_archive_with_another_checksum_is_refused(tmp_path: Path) -> None:
    _store(tmp_path, _archive_bytes())
    with pytest.raises(DataError, match="sha256 does not match"):
        _task(data_dir=tmp_path)


class _MakeDir:
    """A pickle payload that would create a folder if its global (`os.mkdir`) were resolved."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple:
        return os.mkdir, (str(self.path),)


def test_a_pickle_calling_anything_but_numpy_is_refused_without_running(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "pwned"
    evil = pickle.dumps({b"data": _MakeDir(marker), b"labels": [0]}, protocol=3)
    with pytest.raises(DataError, match=r"test_batch: got 'an unreadable batch'.*mkdir is not allowed"):
        ncifar.read_batch(evil, "cifar-10-batches-py/test_batch")
    _store(tmp_path / "data", _archive_bytes(evil), monkeypatch)
    with pytest.raises(DataError, match="is not allowed in a CIFAR batch"):
        _task(data_dir=tmp_path / "data")
    assert not marker.exists()


def test_batches_pickled_by_numpy_2_are_read_too() -> None:
    images = _images(9, 3)
    images_out, labels_out = ncifar.read_batch(pickle.dumps({b"data": images, b"labels": [1, 2, 3]}), "batch")
    assert np.array_equal(images_out, images) and labels_out.tolist() == [1, 2, 3]
    original = ncifar.read_batch(_batch_pickle(images, [1, 2, 3]), "batch")
    assert np.array_equal(original[0], images) and original[0].dtype == np.uint8


def test_a_batch_of_the_wrong_shape_is_a_data_error() -> None:
    wrong = _batch_pickle(np.zeros((2, 1024), np.uint8), [0, 1])
    with pytest.raises(DataError, match="uint8 b'data'"):
        ncifar.read_batch(wrong, "data_batch_1")
    bad_labels = _batch_pickle(np.zeros((2, 3072), np.uint8), [0, 10])
    with pytest.raises(DataError, match=r"one class 0\.\.9"):
        ncifar.read_batch(bad_labels, "data_batch_1")


@pytest.mark.parametrize("noise", ["fixed", "per_sample"])
def test_evaluation_batches_drawn_alone_equal_the_whole_set(data_root: Path, noise: str) -> None:
    """Evaluation builds one batch at a time (the whole test set at T = 1000 is 3.8 GB): any slice,
    drawn on its own, holds exactly those rows of the whole set."""
    rows, labels = _task(noise=noise).eval_set("test")
    whole = rows[:]
    assert len(rows) == len(labels) == len(whole) == N_TEST
    for start, stop in ((0, 3), (3, 7), (7, N_TEST), (5, 5)):
        assert torch.equal(rows[start:stop], whole[start:stop])
    assert torch.equal(torch.cat([rows[0:4], rows[4:N_TEST]]), whole)
