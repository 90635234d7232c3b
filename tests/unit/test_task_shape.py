"""Every task says its sizes from its options alone (`tasks.shape`), and they are the sizes of the
task built on its data; `tasks.check_data` finds its files without reading them."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from seqarena import tasks
from seqarena.errors import BadInput
from seqarena.tasks import har2, imdb, mnist
from seqarena.tasks.base import TaskShape
from tests.conftest import MNIST_SUBSET_SHA256, TEST_DATA

pytestmark = pytest.mark.usefixtures("one_thread")

Options = Callable[[Path, pytest.MonkeyPatch], dict[str, Any]]


def _none(root: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    return {"n_val": 4, "n_test": 4}


def _mnist(root: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    for key, digest in MNIST_SUBSET_SHA256.items():
        monkeypatch.setitem(mnist.FILES, key, dataclasses.replace(mnist.FILES[key], sha256=digest))
    return {"data_dir": str(TEST_DATA), "n_val": 100, "n_test": 100}


def _text(root: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    book = TEST_DATA / "canterbury_text" / "alice29.txt"
    return {"corpus": "path", "path": str(book), "n_val": 4, "n_test": 4}


def _ecg(root: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    from tests.unit.test_task_ecg import _real_mv, _write

    _write(root, "208", _real_mv(), 0, False)
    return {"path": str(root), "records": "208"}


def _imdb(root: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    from tests.unit.test_task_imdb import _archive_bytes

    _pin(monkeypatch, imdb, root / "imdb", _archive_bytes())
    return {"data_dir": str(root), "n_val": 6, "embedding_dim": 12}


def _har2(root: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    from tests.unit.test_task_har2 import _zip_bytes

    _pin(monkeypatch, har2, root / "har", _zip_bytes())
    return {"data_dir": str(root), "val_subjects": 2}


def _ncifar(root: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    from seqarena.tasks import ncifar
    from tests.unit.test_task_ncifar import _archive_bytes

    _pin(monkeypatch, ncifar, root / "cifar10", _archive_bytes())
    return {"data_dir": str(root), "n_val": 8}


def _pin(monkeypatch: pytest.MonkeyPatch, module: Any, folder: Path, data: bytes) -> None:
    """Store a small archive as `module.ARCHIVE` and pin its sha256."""
    folder.mkdir(parents=True)
    (folder / module.ARCHIVE.name).write_bytes(data)
    monkeypatch.setattr(module, "ARCHIVE", dataclasses.replace(module.ARCHIVE, sha256=hashlib.sha256(data).hexdigest()))


#: (task, seq_len, options on small data in the task's own format, the expected shape's sizes).
CASES: list[tuple[str, int, Options, tuple[int, int, int, bool]]] = [
    ("adding", 30, _none, (30, 2, 1, False)),
    ("copy", 30, _none, (50, 10, 10, True)),
    ("smnist", 784, _mnist, (784, 1, 10, False)),
    ("psmnist", 784, _mnist, (784, 1, 10, False)),
    ("char", 40, _text, (40, 128, 128, True)),
    ("ecg", 90, _ecg, (90, 1, 5, False)),
    ("imdb", 12, _imdb, (12, 12, 1, False)),
    ("har2", 128, _har2, (128, 9, 1, False)),
    ("ncifar", 40, _ncifar, (40, 96, 10, False)),
]


def test_every_task_has_a_case() -> None:
    assert sorted(name for name, *_ in CASES) == sorted(tasks.names())


@pytest.mark.filterwarnings("ignore:The inplace keyword")  # wfdb 4.3 on pandas 3
@pytest.mark.parametrize(("name", "seq_len", "options", "sizes"), CASES, ids=[case[0] for case in CASES])
def test_the_shape_from_options_is_the_shape_of_the_built_task(name: str, seq_len: int, options: Options,
                                                              sizes: tuple[int, int, int, bool], tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    given = options(tmp_path, monkeypatch)
    shape = tasks.shape(name, seq_len, **given)
    assert shape == TaskShape(name, seq_len, *sizes)
    built = tasks.build(name, seq_len, **given)
    assert built.shape == shape
    x, _y = built.train_stream(0).next(2)
    assert x.shape == (2, shape.length, shape.input_size)
    assert tuple(built.head(3)(x[..., :1].expand(-1, -1, 3)).shape) == (
        (2, shape.length, shape.output_size) if shape.per_step else (2, shape.output_size))
    assert tasks.check_data(name, **given).ok


@pytest.mark.parametrize(("name", "seq_len", "options", "field"), [
    ("adding", 1, {}, "seq_len"),
    ("smnist", 100, {}, "seq_len"),
    ("har2", 64, {}, "seq_len"),
    ("ncifar", 31, {}, "seq_len"),
    ("char", 50, {"corpus": "path"}, "option.path"),
    ("char", 50, {"path": "book.txt"}, "option.path"),
    ("ecg", 90, {"records": "100,100"}, "option.records"),
    ("ecg", 90, {"records": "999"}, "option.records"),
    ("ecg", 90, {"train_frac": 0.8, "val_frac": 0.3}, "option.val_frac"),
])
def test_what_needs_no_data_is_refused_by_the_shape(name: str, seq_len: int, options: dict, field: str,
                                                    tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQARENA_DATA", str(tmp_path))
    with pytest.raises(BadInput, match=rf"^{field}: got .*allowed"):
        tasks.shape(name, seq_len, **options)
    assert list(tmp_path.iterdir()) == []


def test_check_data_names_a_missing_dataset_in_one_line_and_writes_nothing(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQARENA_DATA", str(tmp_path))
    check = tasks.check_data("smnist")
    assert not check.ok and len(check.missing) == 4
    line = check.line()
    assert "\n" not in line and line.startswith("smnist: data missing (4 of 4 file(s)")
    assert str(tmp_path / "mnist" / "train-images-idx3-ubyte.gz") in line and "SEQARENA_OFFLINE" in line
    monkeypatch.delenv("SEQARENA_OFFLINE")
    assert tasks.check_data("smnist").line().endswith("a trial downloads it first")
    assert tasks.check_data("adding").ok and list(tmp_path.iterdir()) == []
    text = tasks.check_data("char", corpus="path", path=str(tmp_path / "absent.txt"))
    assert not text.ok and text.line().endswith("provide it: its trials fail without it")
