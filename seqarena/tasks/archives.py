"""Published dataset archives: pinned by the sha256 of the archive file, read in place.

`data.py` pins the *content* of a file (for `.gz`, its decompressed bytes), which suits MNIST's
single IDX files. The IMDB, CIFAR-10 and UCI HAR datasets come as one archive each
(`aclImdb_v1.tar.gz`, `cifar-10-python.tar.gz`, `UCI HAR Dataset.zip`), and the digests that
loaders publish for them (Keras, TensorFlow Datasets, ...) are of the archive file as served. So an
`Archive` pins the sha256 of the file's bytes. Everything else follows `data.py`: the file lives in
`$SEQARENA_DATA/<dataset>/<name>`; a present file is verified and used without the network; a
missing one is downloaded (with a progress bar) into a temporary file beside its destination,
verified, and only then renamed into place, so a failed or corrupt download leaves nothing; with
`SEQARENA_OFFLINE=1` a missing file is a `DataError` and nothing is written.

A `Source` may name a `member`: the URL then serves a zip that holds the archive as that member
(the current UCI page wraps `UCI HAR Dataset.zip` in another zip). The member is what is pinned, so
the wrapper needs no digest of its own.

Members are read straight from the archive into memory (`tar_members`, `zip_members`); nothing is
extracted to disk, so member names cannot write outside the data folder.
"""

from __future__ import annotations

import functools
import http.client
import logging
import os
import shutil
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from seqarena.errors import DataError
from seqarena.tasks.data import DownloadError, _stream_to, content_sha256, data_root, offline

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Source:
    """Where an archive can be fetched.

    Attributes:
        url: the full URL (already percent-encoded).
        member: if set, the URL serves a zip and the archive is this member of it.
    """

    url: str
    member: str | None = None


@dataclass(frozen=True)
class Archive:
    """One published archive of a dataset.

    Attributes:
        dataset: folder under the data root.
        name: file name on disk.
        sha256: hex digest of the archive file's bytes (not of its decompressed content).
        sources: where to fetch it, tried in order.
    """

    dataset: str
    name: str
    sha256: str
    sources: tuple[Source, ...]


def archive_path(archive: Archive, root: Path | None = None) -> Path:
    """Where `archive` lives: `<root or $SEQARENA_DATA>/<dataset>/<name>`."""
    return (root or data_root()) / archive.dataset / archive.name


def ensure_archive(archive: Archive, root: Path | None = None) -> Path:
    """Make sure `archive` is present and verified; return its path.

    Raises:
        DataError: the file is corrupt, or missing while offline.
        DownloadError: no source delivered a file with the pinned sha256.
    """
    path = archive_path(archive, root)
    if not path.exists():
        if offline():
            raise DataError(str(path), "missing file",
                            f"the {archive.dataset} archive {archive.name} in $SEQARENA_DATA/{archive.dataset} "
                            "(or unset SEQARENA_OFFLINE to download it)")
        download_archive(archive, path)
    verify_archive(path, archive.sha256)
    return path


@functools.lru_cache(maxsize=16)
def _verified(path: Path, size: int, mtime_ns: int, sha256: str) -> bool:
    """Cache of successful verifications, keyed by the file's size and modification time."""
    return content_sha256(path, compressed=False) == sha256


def verify_archive(path: Path, sha256: str) -> None:
    """Raise `DataError` unless the bytes of `path` have the sha256 `sha256`."""
    stat = path.stat()
    if not _verified(path, stat.st_size, stat.st_mtime_ns, sha256):
        raise DataError(str(path), "a file whose sha256 does not match",
                        f"file sha256 {sha256}; delete the file to download it again")


def download_archive(archive: Archive, dest: Path) -> None:
    """Fetch `archive` into `dest` from the first source that delivers the pinned bytes."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    problems = []
    for source in archive.sources:
        try:
            _fetch_verified(source, archive, dest)
            return
        except (OSError, http.client.HTTPException, DownloadError, zipfile.BadZipFile) as error:  # URLError: OSError
            log.warning("download of %s failed: %s", source.url, error)
            problems.append(f"{source.url}: {error}")
    raise DownloadError(f"could not download {archive.name}; " + "; ".join(problems))


def _fetch_verified(source: Source, archive: Archive, dest: Path) -> None:
    tmp = _temp_beside(dest)
    try:
        with open(tmp, "wb") as out:
            _stream_to(source.url, out, archive.name)
        if source.member is not None:
            _keep_member(tmp, source.member)
        got = content_sha256(tmp, compressed=False)
        if got != archive.sha256:
            raise DownloadError(f"sha256 of the file is {got}, expected {archive.sha256}; not kept")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _temp_beside(dest: Path) -> Path:
    handle, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    os.close(handle)
    return Path(name)


def _keep_member(path: Path, member: str) -> None:
    """Replace the zip at `path` by its member `member`."""
    inner = _temp_beside(path)
    try:
        with zipfile.ZipFile(path) as wrapper:
            if member not in wrapper.namelist():
                raise DownloadError(f"the downloaded zip has no member {member!r}")
            with wrapper.open(member) as stream, open(inner, "wb") as out:
                shutil.copyfileobj(stream, out, 1 << 20)
        os.replace(inner, path)
    finally:
        inner.unlink(missing_ok=True)


def tar_members(path: Path, wanted: Callable[[str], bool]) -> dict[str, bytes]:
    """The bytes of every regular file of the tar archive `path` (any compression) whose name is `wanted`.

    One sequential pass, so a `.tar.gz` is decompressed once.
    """
    found = {}
    try:
        with tarfile.open(path, "r:*") as archive:
            for member in archive:
                if member.isfile() and wanted(member.name):
                    stream = archive.extractfile(member)
                    if stream is not None:
                        found[member.name] = stream.read()
    except (tarfile.TarError, OSError, EOFError) as error:
        raise DataError(str(path), "an unreadable archive", f"a tar archive ({error})") from None
    return found


def zip_members(path: Path, names: Sequence[str]) -> dict[str, bytes]:
    """The bytes of the members `names` of the zip archive `path`; `DataError` names a missing one."""
    try:
        with zipfile.ZipFile(path) as archive:
            present = set(archive.namelist())
            for name in names:
                if name not in present:
                    raise DataError(str(path), "an archive without " + name, f"a zip holding {name}")
            return {name: archive.read(name) for name in names}
    except (zipfile.BadZipFile, OSError) as error:
        raise DataError(str(path), "an unreadable archive", f"a zip archive ({error})") from None
