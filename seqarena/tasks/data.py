"""Real data on disk: where it lives, download with progress, sha256 verification.

Files live in `$SEQARENA_DATA/<dataset>/<name>` (default `~/.cache/seqarena/data`). A file that
is already there is verified and used without touching the network; a missing one is downloaded
from the first mirror that answers, into a temporary file beside its destination, verified, and
only then renamed into place, so a failed or corrupt download leaves nothing behind. With
`SEQARENA_OFFLINE=1` a missing file is an error instead of a download.

Checksums are of the *content*: for a `.gz` file, of its decompressed bytes. Two gzip files of
the same data differ in their headers (e.g. an archive recompressed with `gzip -9 -n`), but
their content hashes agree.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import logging
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

from seqarena.errors import DataError

log = logging.getLogger(__name__)
_CHUNK = 1 << 20


@dataclass(frozen=True)
class RemoteFile:
    """One file of a dataset: its name, the sha256 of its content, and where to get it.

    Attributes:
        name: file name, also the last path part of its URL on every mirror.
        sha256: hex digest of the content (decompressed for `.gz`).
    """

    name: str
    sha256: str


@dataclass(frozen=True)
class DataFiles:
    """The files a task reads when it is built, known from its options (nothing is read to list them).

    Attributes:
        files: their paths, present or not.
        downloadable: a missing file is downloaded (unless offline); else the user must provide it.
    """

    files: tuple[Path, ...] = ()
    downloadable: bool = True


@dataclass(frozen=True)
class DataCheck:
    """Which of a task's files are on this machine (`seqarena validate --check-data`)."""

    task: str
    needed: DataFiles
    missing: tuple[Path, ...]

    @property
    def ok(self) -> bool:
        """Every file is present (or the task needs none)."""
        return not self.missing

    def line(self) -> str:
        """One line saying what a trial of the task will find."""
        files = self.needed.files
        if not files:
            return f"{self.task}: generated data, no files needed"
        if self.ok:
            return f"{self.task}: data present ({len(files)} file(s), e.g. {files[0]})"
        if not self.needed.downloadable:
            fate = "provide it: its trials fail without it"
        elif offline():
            fate = "SEQARENA_OFFLINE is set: its trials fail unless it is put there"
        else:
            fate = "a trial downloads it first"
        count = f"{len(self.missing)} of {len(files)} file(s)"
        return f"{self.task}: data missing ({count}, e.g. {self.missing[0]}); {fate}"


def check(task: str, needed: DataFiles) -> DataCheck:
    """Look for each file of `needed` (existence only: nothing is read or downloaded)."""
    return DataCheck(task, needed, tuple(path for path in needed.files if not path.exists()))


def data_root() -> Path:
    """`$SEQARENA_DATA`, or `~/.cache/seqarena/data`."""
    return Path(os.environ.get("SEQARENA_DATA") or Path.home() / ".cache" / "seqarena" / "data")


#: Environment variable: further folders (separated by `os.pathsep`) that task options may name.
ALLOW_ENV = "SEQARENA_DATA_ALLOW"


def allowed_roots() -> tuple[Path, ...]:
    """The folders a path in a spec or task option may lie in: `data_root()` and `$SEQARENA_DATA_ALLOW`'s."""
    extra = [part for part in os.environ.get(ALLOW_ENV, "").split(os.pathsep) if part.strip()]
    return (data_root(), *(Path(part) for part in extra))


def confined(path: str | Path) -> Path:
    """`path` made absolute, when it resolves (symlinks followed) inside one of `allowed_roots()`.

    A spec names files and folders that a worker reads (and downloads into): without this, `task:
    char` with `path: /etc/passwd` trained on that file (issue 18 §5). Checked when the task's options
    are parsed: by `validate`/`submit` and again on the worker that prepares the trial.

    Raises:
        ValueError: the path resolves outside every allowed folder (or cannot be resolved).
    """
    absolute = Path(os.path.abspath(Path(path).expanduser()))
    try:
        resolved = absolute.resolve()
        roots = [Path(os.path.abspath(root.expanduser())).resolve() for root in allowed_roots()]
    except (OSError, RuntimeError) as error:  # a symlink loop
        raise ValueError(f"a path that resolves ({error})") from None
    if not any(resolved == root or resolved.is_relative_to(root) for root in roots):
        where = f"resolves to {resolved}; " if resolved != absolute else ""
        raise ValueError(f"a path inside $SEQARENA_DATA ({roots[0]}) or a folder listed in ${ALLOW_ENV} "
                         f"({where}set {ALLOW_ENV} to allow another folder)")
    return absolute


def offline() -> bool:
    """Whether downloads are forbidden (`SEQARENA_OFFLINE=1`)."""
    return os.environ.get("SEQARENA_OFFLINE", "").lower() in ("1", "true", "yes")


def content_sha256(path: Path, compressed: bool | None = None) -> str:
    """sha256 of the file's content, decompressing gzip files (by default those named `.gz`)."""
    if compressed is None:
        compressed = path.suffix == ".gz"
    opener = gzip.open if compressed else open
    digest = hashlib.sha256()
    try:
        with opener(path, "rb") as stream:
            while chunk := stream.read(_CHUNK):
                digest.update(chunk)
    except (OSError, EOFError, gzip.BadGzipFile) as error:
        kind = "gzip" if compressed else "readable"
        raise DataError(str(path), "an unreadable file", f"a {kind} file ({error})") from None
    return digest.hexdigest()


@functools.lru_cache(maxsize=64)
def _verified(path: Path, size: int, mtime_ns: int, sha256: str) -> bool:
    """Cache of successful verifications, keyed by the file's size and modification time."""
    return content_sha256(path) == sha256


def verify(path: Path, remote: RemoteFile) -> None:
    """Raise `DataError` unless `path`'s content has the expected sha256."""
    stat = path.stat()
    if not _verified(path, stat.st_size, stat.st_mtime_ns, remote.sha256):
        raise DataError(str(path), "a file whose sha256 does not match",
                        f"content sha256 {remote.sha256}; delete the file to download it again")


def ensure(dataset: str, files: Sequence[RemoteFile], mirrors: Sequence[str],
           root: Path | None = None) -> Path:
    """Make sure every file of `dataset` is present and verified under `root`; return its folder.

    Raises:
        DataError: a present file is corrupt, or a file is missing while offline.
        DownloadError: no mirror delivered a file with the right checksum.
    """
    folder = (root or data_root()) / dataset
    for remote in files:
        path = folder / remote.name
        if not path.exists():
            if offline():
                raise DataError(str(path), "missing file",
                                f"the {dataset} file {remote.name} in $SEQARENA_DATA/{dataset} "
                                "(or unset SEQARENA_OFFLINE to download it)")
            download(remote, path, mirrors)
        verify(path, remote)
    return folder


class DownloadError(RuntimeError):
    """No mirror delivered a file (network failure or wrong checksum); nothing was kept."""


def download(remote: RemoteFile, dest: Path, mirrors: Sequence[str]) -> None:
    """Fetch `remote` into `dest` from the first mirror that delivers the right content."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    from_mirrors(remote.name, mirrors, lambda url: _fetch_verified(url, remote, dest))


def from_mirrors(name: str, mirrors: Sequence[str], fetch: Callable[[str], None]) -> None:
    """Call `fetch(url)` for `name` on each mirror in turn until one succeeds; `DownloadError` naming
    every mirror's problem if none does (`fetch` raises `DownloadError` for content it refuses)."""
    problems = []
    for mirror in mirrors:
        url = mirror.rstrip("/") + "/" + name
        try:
            fetch(url)
            return
        except (urllib.error.URLError, OSError, DownloadError) as error:
            log.warning("download of %s failed: %s", url, error)
            problems.append(f"{url}: {error}")
    raise DownloadError(f"could not download {name}; " + "; ".join(problems))


def _fetch_verified(url: str, remote: RemoteFile, dest: Path) -> None:
    handle, tmp_name = tempfile.mkstemp(prefix=f".{remote.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(handle, "wb") as out:
            _stream_to(url, out, remote.name)
        try:
            got = content_sha256(tmp, compressed=remote.name.endswith(".gz"))
        except DataError as error:
            raise DownloadError(f"{url} delivered an unreadable file ({error})") from None
        if got != remote.sha256:
            raise DownloadError(f"sha256 of the content is {got}, expected {remote.sha256}; not kept")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _stream_to(url: str, out: BinaryIO, label: str) -> None:
    with urllib.request.urlopen(url, timeout=60) as response:
        total = int(response.headers.get("Content-Length") or 0) or None
        columns = (TextColumn(f"[bold]{label}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
        with Progress(*columns, transient=True) as progress:
            task = progress.add_task("download", total=total)
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                progress.advance(task, len(chunk))
