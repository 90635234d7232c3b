"""Downloads against a real HTTP server on 127.0.0.1 serving the MNIST subset in tests/data."""

from __future__ import annotations

import functools
import gzip
import http.server
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from seqarena import tasks
from seqarena.errors import DataError
from seqarena.tasks import mnist
from seqarena.tasks.data import DownloadError, RemoteFile, content_sha256, ensure


def labels() -> list[RemoteFile]:
    """MNIST's two label files with the digests pinned at call time (`small_data` pins the subset's)."""
    return [mnist.FILES["train_labels"], mnist.FILES["test_labels"]]


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[callable]:
    """Start a static HTTP server on 127.0.0.1 for a folder; return its base URL."""
    servers: list[http.server.ThreadingHTTPServer] = []

    def start(folder: Path) -> str:
        handler = functools.partial(_QuietHandler, directory=str(folder))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def online(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEQARENA_OFFLINE", raising=False)


def _only_the_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_downloads_verify_and_land_in_the_dataset_folder(small_data: Path, tmp_path: Path, serve,
                                                         online: None) -> None:
    url = serve(small_data / "mnist")
    folder = ensure("mnist", labels(), [url], root=tmp_path / "data")
    assert _only_the_files(folder) == sorted(f.name for f in labels())
    for remote in labels():
        assert content_sha256(folder / remote.name) == remote.sha256


def test_a_downloaded_mnist_builds_the_task(small_data: Path, tmp_path: Path, serve, online: None) -> None:
    url = serve(small_data / "mnist")
    ensure("mnist", list(mnist.FILES.values()), [url], root=tmp_path)
    task = tasks.build("smnist", 784, data_dir=tmp_path, n_test=100)
    assert task.eval_set("test")[0].shape == (100, 784, 1)


def test_a_wrong_checksum_is_refused_and_leaves_no_file(tmp_path: Path, serve, online: None) -> None:
    served = tmp_path / "served"
    served.mkdir()
    with gzip.open(served / labels()[0].name, "wb") as out:
        out.write(b"not the MNIST labels")
    dest_root = tmp_path / "data"
    with pytest.raises(DownloadError, match="sha256"):
        ensure("mnist", labels()[:1], [serve(served)], root=dest_root)
    assert _only_the_files(dest_root / "mnist") == []


def test_a_non_gzip_download_is_refused_and_leaves_no_file(tmp_path: Path, serve, online: None) -> None:
    served = tmp_path / "served"
    served.mkdir()
    (served / labels()[0].name).write_bytes(b"<html>not found</html>")
    with pytest.raises(DownloadError, match="unreadable"):
        ensure("mnist", labels()[:1], [serve(served)], root=tmp_path / "data")
    assert _only_the_files(tmp_path / "data" / "mnist") == []


def test_the_next_mirror_is_tried_when_one_fails(small_data: Path, tmp_path: Path, serve,
                                                 online: None) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    good = serve(small_data / "mnist")
    folder = ensure("mnist", labels()[:1], [serve(empty), good], root=tmp_path / "data")
    assert (folder / labels()[0].name).exists()


def test_present_files_are_used_without_the_network(small_data: Path) -> None:
    unreachable = ["http://127.0.0.1:9/"]  # the discard port: any request would fail
    assert ensure("mnist", list(mnist.FILES.values()), unreachable, root=small_data) == small_data / "mnist"


def test_a_missing_file_offline_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"missing file.*SEQARENA_OFFLINE"):
        ensure("mnist", labels()[:1], ["http://127.0.0.1:9/"], root=tmp_path)


def test_a_corrupt_local_file_is_a_data_error(small_data: Path, tmp_path: Path) -> None:
    folder = tmp_path / "mnist"
    folder.mkdir()
    for remote in mnist.FILES.values():
        shutil.copy(small_data / "mnist" / remote.name, folder / remote.name)
    target = folder / mnist.FILES["test_labels"].name
    target.write_bytes(target.read_bytes()[:-100])  # a truncated gzip
    with pytest.raises(DataError, match="t10k-labels"):
        tasks.build("smnist", 784, data_dir=tmp_path)
    other = RemoteFile(mnist.FILES["train_labels"].name, "0" * 64)
    with pytest.raises(DataError, match="sha256 does not match"):
        ensure("mnist", [other], [], root=tmp_path)
