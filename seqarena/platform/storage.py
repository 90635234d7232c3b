"""Where searches keep their Tune experiments and trial checkpoints: `SEQARENA_STORAGE`.

* unset: `$SEQARENA_HOME/ray_results`, a folder of this machine (a cluster's nodes must all mount it);
* an absolute folder path: the same, somewhere else (a shared mount);
* `s3://bucket/prefix`: an S3-compatible object store (AWS S3, MinIO, Ceph), shared by every node
  without a common mount, through Tune's own storage support (`RunConfig(storage_path=...,
  storage_filesystem=pyarrow.fs.S3FileSystem(...))`, `Tuner.restore(..., storage_filesystem=...)`).

The store's address comes from the AWS SDK's own variables: the endpoint from `AWS_ENDPOINT_URL_S3`
or `AWS_ENDPOINT_URL` (e.g. `http://127.0.0.1:9000`; unset: AWS itself), the region from
`AWS_REGION` or `AWS_DEFAULT_REGION`. The credentials are left to the SDK's chain
(`AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`, a profile, an instance role): seqarena never reads
or passes them, so the `S3FileSystem` that Tune pickles into its experiment (`tuner.pkl`) and ships
to every trial holds none, and each node finds its own in its environment.

`check()` writes and deletes one small probe object (or file) where the experiments go, after a
TCP connection to the endpoint within `SEQARENA_CONNECT_TIMEOUT_S` (`reachable`): `run`, `submit`
and `worker` refuse an unreachable or read-only store at start, in one line, exit 2.
"""

from __future__ import annotations

import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import SplitResult, urlsplit

import pyarrow
import pyarrow.fs as pafs

from seqarena.errors import BadInput
from seqarena.platform import reachable
from seqarena.platform.home import seqarena_home

FIELD = "SEQARENA_STORAGE"
ALLOWED = ("s3://bucket/prefix (an S3-compatible store; endpoint from AWS_ENDPOINT_URL, credentials from "
           "the AWS environment variables), an absolute folder path every node mounts, or unset "
           "($SEQARENA_HOME/ray_results)")
ENDPOINT_ENVS = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
#: S3's rule for bucket names (3-63 lowercase letters, digits, dots and hyphens).
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
PROBE_PREFIX = ".seqarena-probe-"


@dataclass(frozen=True)
class Storage:
    """Where Tune experiments live: a local folder (`bucket` None) or a bucket and key prefix."""

    root: str
    """the local folder, or `bucket/prefix` inside the S3 filesystem (no trailing slash)"""
    bucket: str | None = None

    @property
    def is_s3(self) -> bool:
        return self.bucket is not None

    def filesystem(self, timeout_s: float | None = None) -> pafs.FileSystem | None:
        """What Tune writes through: an `S3FileSystem` without credentials (None for a local folder, which
        Tune opens itself). With `timeout_s`, requests time out and are not retried (the start probe)."""
        if not self.is_s3:
            return None
        return s3_filesystem(timeout_s)

    def experiment(self, name: str) -> str:
        """The path of Tune experiment `name` (inside `filesystem()`)."""
        return f"{self.root}/{name}"

    def location(self, name: str) -> str:
        """Where experiment `name` is, as recorded with its search (`s3://...` or a folder path)."""
        return f"s3://{self.experiment(name)}" if self.is_s3 else self.experiment(name)

    def names(self, prefix: str) -> list[str]:
        """The experiments (entries at the root) whose name starts with `prefix`."""
        return sorted(name for name in (path.rsplit("/", 1)[-1] for path in self.entries(self.root))
                      if name.startswith(prefix))

    def entries(self, folder: str) -> list[str]:
        """The paths of the entries right inside `folder` (a path of this storage; none if it is absent)."""
        selector = pafs.FileSelector(folder, allow_not_found=True)
        return sorted(info.path for info in self._fs().get_file_info(selector))

    def check(self) -> None:
        """Write and delete one probe where experiments go, or raise the one-line `BadInput` naming
        `SEQARENA_STORAGE` (an S3 endpoint that does not answer is refused within the connect timeout)."""
        if self.is_s3 and (endpoint := endpoint_url()):
            parts = urlsplit(endpoint)
            reachable.connect(endpoint_env(), endpoint, parts.hostname or "", _port(parts),
                              "the URL of a running S3-compatible server")
        fs = self.filesystem(reachable.timeout_s()) or pafs.LocalFileSystem()
        probe = f"{self.root}/{PROBE_PREFIX}{uuid.uuid4().hex}"
        try:
            if not self.is_s3:
                fs.create_dir(self.root, recursive=True)
            with fs.open_output_stream(probe) as out:
                out.write(b"seqarena storage probe\n")
            fs.delete_file(probe)
        except (OSError, pyarrow.ArrowException) as error:
            reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
            raise BadInput(FIELD, self.location("").rstrip("/"), f"a store seqarena can write to ({reason})") from None

    def download(self, path: str, target: Path) -> Path:
        """Copy the file at `path` (inside this storage's filesystem) to `target`; return `target`."""
        with self._fs().open_input_stream(path) as source:
            target.write_bytes(source.read())
        return target

    def _fs(self) -> pafs.FileSystem:
        return self.filesystem() or pafs.LocalFileSystem()


def storage() -> Storage:
    """The storage `SEQARENA_STORAGE` names (see the module docstring); `BadInput` for any other form."""
    raw = os.environ.get(FIELD, "").strip()
    if not raw:
        return Storage(str(seqarena_home() / "ray_results"))
    return parse(raw)


def parse(raw: str) -> Storage:
    """`s3://bucket/prefix` or an absolute folder path, as a `Storage`; `BadInput` naming
    `SEQARENA_STORAGE` and the allowed forms otherwise (a value with credentials in it is not echoed)."""
    if raw.startswith("/"):
        return Storage(str(Path(raw)).rstrip("/") or "/")
    parts = urlsplit(raw)
    if parts.scheme != "s3":
        shown = f"{parts.scheme}://..." if parts.scheme else raw
        raise BadInput(FIELD, shown, ALLOWED)
    if "@" in parts.netloc or parts.query or parts.fragment:
        raise BadInput(FIELD, "s3://...", f"{ALLOWED}; no credentials, query or fragment in it")
    if not _BUCKET.match(parts.netloc):
        raise BadInput(FIELD, raw, f"{ALLOWED}; a bucket name of 3-63 lowercase letters, digits, dots or hyphens")
    prefix = parts.path.strip("/")
    return Storage(f"{parts.netloc}/{prefix}" if prefix else parts.netloc, bucket=parts.netloc)


def at(location: str) -> tuple[Storage, str]:
    """The storage holding a recorded experiment `location` (`Storage.location`) and the experiment's name."""
    parent, _, name = location.rstrip("/").rpartition("/")
    if location.startswith("s3://"):
        return parse(parent), name
    return Storage(parent), name


def endpoint_env() -> str:
    """The variable the S3 endpoint is read from (the first of `ENDPOINT_ENVS` that is set)."""
    return next((name for name in ENDPOINT_ENVS if os.environ.get(name)), ENDPOINT_ENVS[-1])


def endpoint_url() -> str | None:
    """The S3 endpoint URL (`AWS_ENDPOINT_URL_S3`, else `AWS_ENDPOINT_URL`), or None: AWS itself."""
    return next((os.environ[name].strip() for name in ENDPOINT_ENVS if os.environ.get(name, "").strip()), None)


def s3_filesystem(timeout_s: float | None = None) -> pafs.S3FileSystem:
    """pyarrow's `S3FileSystem` at the endpoint and region of the environment, credentials left to the
    AWS SDK (so none is inside it when pickled)."""
    options: dict[str, object] = {}
    if endpoint := endpoint_url():
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise BadInput(endpoint_env(), endpoint, "an http(s) URL of an S3-compatible server, such as "
                                                    "http://127.0.0.1:9000")
        options.update(endpoint_override=f"{parts.hostname}:{_port(parts)}", scheme=parts.scheme)
    if region := os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"):
        options["region"] = region
    if timeout_s is not None:
        options.update(connect_timeout=timeout_s, request_timeout=timeout_s,
                       retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=1))
    return pafs.S3FileSystem(**options)


def _port(parts: SplitResult) -> int:
    try:
        port = parts.port
    except ValueError:
        return -1
    return port or (443 if parts.scheme == "https" else 80)
