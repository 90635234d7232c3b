"""HAR-2 on a small zip written here in the layout of UCI's `UCI HAR Dataset.zip` (no network)."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import io
import re
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from seqarena.errors import DataError
from seqarena.tasks import har2
from seqarena.tasks.archives import Source
from seqarena.tasks.base import parse_options
from seqarena.tasks.data import DownloadError
from seqarena.tasks.har2 import HAR2, HAR2Options
from tests.helpers import assert_stream_resumes

ROOT = "UCI HAR Dataset"
# Activities 1..6 = walking, upstairs, downstairs, sitting, standing, laying, per subject.
TRAIN = {1: [1, 2, 3, 4, 5, 6], 3: [1, 2, 3, 4, 5, 6], 5: [1, 2, 3, 4, 5, 6], 6: [1, 2, 3, 4, 5, 6],
         7: [1, 2, 3, 4, 5, 6]}
TEST = {2: [1, 2, 3, 4, 5, 6, 4, 5], 4: [4, 5, 6, 1]}  # moving: 4 of 12; sitting/laying/upstairs: 6 of 12


def _uci_number(value: float) -> str:
    """A value as UCI writes it: `2.5717778e-001` (three exponent digits)."""
    return re.sub(r"e([+-])(\d\d)$", r"e\g<1>0\2", f"{value:.7e}")


def _windows(split: str) -> tuple[np.ndarray, list[int], list[int]]:
    """Windows `[N, 128, 9]` (channel c has mean c and standard deviation c + 1), activities, subjects."""
    table = TRAIN if split == "train" else TEST
    subjects = [s for s, acts in table.items() for _ in acts]
    activities = [a for acts in table.values() for a in acts]
    rng = np.random.default_rng(0 if split == "train" else 1)
    windows = rng.normal(np.arange(9), np.arange(9) + 1.0, size=(len(subjects), 128, 9))
    return windows, activities, subjects


def _lines(rows: np.ndarray) -> str:
    return "".join("  " + "  ".join(_uci_number(v) for v in row) + "\n" for row in rows)


@functools.cache
def _zip_bytes(bad_member: str | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{ROOT}/README.txt", "Human Activity Recognition Using Smartphones Dataset")
        for split in ("train", "test"):
            windows, activities, subjects = _windows(split)
            archive.writestr(f"{ROOT}/{split}/X_{split}.txt", "ignored features\n")
            archive.writestr(f"{ROOT}/{split}/y_{split}.txt", "".join(f"{a}\n" for a in activities))
            archive.writestr(f"{ROOT}/{split}/subject_{split}.txt", "".join(f"{s}\n" for s in subjects))
            for c, signal in enumerate(har2.SIGNALS):
                name = f"{ROOT}/{split}/Inertial Signals/{signal}_{split}.txt"
                rows = windows[:, :, c] if name != bad_member else windows[:, :127, c]
                archive.writestr(name, _lines(rows))
    return buffer.getvalue()


def _pin(monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    digest = hashlib.sha256(data).hexdigest()
    monkeypatch.setattr(har2, "ARCHIVE", dataclasses.replace(har2.ARCHIVE, sha256=digest))


@pytest.fixture
def data_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`$SEQARENA_DATA` holding the small zip, pinned by its sha256."""
    root = tmp_path / "data"
    (root / "har").mkdir(parents=True)
    (root / "har" / har2.ARCHIVE.name).write_bytes(_zip_bytes())
    _pin(monkeypatch, _zip_bytes())
    monkeypatch.setenv("SEQARENA_DATA", str(root))
    return root


def _task(**options: object) -> HAR2:
    return HAR2(128, parse_options(HAR2Options, {"val_subjects": 2, **options}))


def test_windows_are_9_channels_by_128_steps_with_merged_labels(data_root: Path) -> None:
    task = _task()
    assert (task.seq_len, task.length, task.input_size, task.output_size) == (128, 128, 9, 1)
    x, y = task.train_stream(0).next(4)
    assert x.shape == (4, 128, 9) and x.dtype == torch.float32 and y.shape == (4,) and y.dtype == torch.float32
    test_x, test_y = task.eval_set("test")
    val_x, val_y = task.eval_set("val")
    assert test_x.shape == (12, 128, 9) and val_x.shape == (12, 128, 9)  # 2 subjects x 6 windows
    assert int(test_y.sum()) == 4  # walking, upstairs, downstairs -> 1
    assert int(task.labels["train"].sum()) == 15 and set(val_y.tolist()) == {0.0, 1.0}
    grouped = _task(grouping="sit_lay_up").eval_set("test")[1]
    expected = [float(a in (2, 4, 6)) for acts in TEST.values() for a in acts]
    assert grouped.tolist() == expected


def test_validation_holds_out_whole_training_subjects(data_root: Path) -> None:
    task = _task()
    subjects = np.array([s for s, acts in TRAIN.items() for _ in acts])
    train_subjects, val_subjects = set(subjects[task.train_index]), set(subjects[task.val_index])
    assert len(val_subjects) == 2 and not train_subjects & val_subjects
    assert train_subjects | val_subjects == set(TRAIN)
    assert np.array_equal(_task().val_index, task.val_index)
    assert any(set(subjects[_task(split_seed=s).val_index]) != val_subjects for s in range(1, 6))


def test_inputs_are_z_scored_with_training_statistics(data_root: Path) -> None:
    task = _task()
    raw = {split: torch.from_numpy(_windows(split)[0]).float() for split in ("train", "test")}
    train_raw = raw["train"][torch.from_numpy(task.train_index)]
    mean, std = train_raw.mean(dim=0), train_raw.std(dim=0, correction=0)
    assert torch.allclose(task.eval_set("test")[0], (raw["test"] - mean) / std, atol=1e-4)
    train_inputs = task.inputs["train"][torch.from_numpy(task.train_index)]
    assert torch.allclose(train_inputs.mean(dim=0), torch.zeros(128, 9), atol=1e-4)
    plain = _task(normalise=False).eval_set("val")[0]
    assert torch.allclose(plain, raw["train"][torch.from_numpy(task.val_index)], atol=1e-5)


def test_training_stream_is_seeded_and_resumes_exactly(data_root: Path) -> None:
    task = _task()
    a, b, c = (task.train_stream(seed).next(5) for seed in (1, 1, 2))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and not torch.equal(a[0], c[0])
    assert_stream_resumes(task, seed=7, batch_size=5, advance=4)  # 18 training windows: the fourth starts an epoch


def test_baseline_is_the_test_majority_share(data_root: Path) -> None:
    task = _task()
    assert task.baseline == pytest.approx(8 / 12)
    _x, y = task.eval_set("test")
    always_static = torch.full((len(y), 1), -2.0)
    assert float(task.metrics(always_static, y)["accuracy"].mean()) == pytest.approx(task.baseline)
    assert _task(grouping="sit_lay_up").baseline == pytest.approx(0.5)
    assert task.describe()["options"]["grouping"] == "moving_static"


@pytest.mark.parametrize(
    ("seq_len", "options", "field", "allowed"),
    [
        (100, {}, "seq_len", "128"),
        (128, {"grouping": "sporty"}, "option.grouping", "'moving_static' or 'sit_lay_up'"),
        (128, {"val_subjects": 5}, "option.val_subjects", "fewer than the 5 training subjects"),
        (128, {"val_subjects": 0}, "option.val_subjects", "greater than or equal to 1"),
        (128, {"channels": 3}, "option.channels", "one of grouping, val_subjects"),
    ],
)
def test_bad_input_names_the_field_and_what_is_allowed(data_root: Path, seq_len: int, options: dict, field: str,
                                                         allowed: str) -> None:
    with pytest.raises(ValueError, match=rf"^{field}: got .*allowed: .*{allowed}"):
        HAR2(seq_len, parse_options(HAR2Options, options))


def test_offline_without_the_archive_is_a_clear_error_and_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"UCI HAR Dataset.zip: got 'missing file'.*SEQARENA_OFFLINE"):
        _task(data_dir=tmp_path / "data")
    assert not (tmp_path / "data").exists()


def test_an_archive_with_another_checksum_is_refused(tmp_path: Path) -> None:
    (tmp_path / "har").mkdir()
    (tmp_path / "har" / har2.ARCHIVE.name).write_bytes(_zip_bytes())
    with pytest.raises(DataError, match="sha256 does not match"):
        _task(data_dir=tmp_path)


def test_a_malformed_signal_file_is_a_data_error_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = f"{ROOT}/test/Inertial Signals/body_gyro_y_test.txt"
    (tmp_path / "har").mkdir()
    (tmp_path / "har" / har2.ARCHIVE.name).write_bytes(_zip_bytes(bad))
    _pin(monkeypatch, _zip_bytes(bad))
    with pytest.raises(DataError, match=r"body_gyro_y_test.txt: got 'shape \(12, 127\)'"):
        _task(data_dir=tmp_path)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A local HTTP server: yields the folder it serves and its base URL."""
    folder = tmp_path / "served"
    folder.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(folder)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield folder, f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


def test_downloads_try_each_source_and_keep_only_the_pinned_archive(tmp_path: Path, server: tuple[Path, str],
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEQARENA_OFFLINE")
    folder, url = server
    wrapper = io.BytesIO()
    with zipfile.ZipFile(wrapper, "w") as outer:  # UCI's current download wraps the zip in another zip
        outer.writestr("UCI HAR Dataset.names", "notes")
        outer.writestr("UCI HAR Dataset.zip", _zip_bytes())
    (folder / "wrapper.zip").write_bytes(wrapper.getvalue())
    (folder / "UCI HAR Dataset.zip").write_bytes(b"<html>a page, not the archive</html>")
    sources = (Source(url + "UCI%20HAR%20Dataset.zip"), Source(url + "missing.zip"),
               Source(url + "wrapper.zip", member="no such member"), Source(url + "wrapper.zip", member=f"{ROOT}.zip"))
    digest = hashlib.sha256(_zip_bytes()).hexdigest()
    monkeypatch.setattr(har2, "ARCHIVE", dataclasses.replace(har2.ARCHIVE, sha256=digest, sources=sources[:3]))
    with pytest.raises(DownloadError, match=r"sha256 of the file is .*404.*no member 'no such member'"):
        _task(data_dir=tmp_path / "data")
    assert list((tmp_path / "data" / "har").iterdir()) == []
    monkeypatch.setattr(har2, "ARCHIVE", dataclasses.replace(har2.ARCHIVE, sources=sources))
    assert _task(data_dir=tmp_path / "data").eval_set("test")[0].shape == (12, 128, 9)
    kept = tmp_path / "data" / "har" / "UCI HAR Dataset.zip"
    assert [p.name for p in kept.parent.iterdir()] == [kept.name] and kept.read_bytes() == _zip_bytes()
