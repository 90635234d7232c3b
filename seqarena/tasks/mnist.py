"""MNIST on disk (LeCun, Cortes & Burges): the IDX files, their checksums and the standard split.

Shared by `smnist` and `psmnist`. The four files are the canonical `*-ubyte.gz` names; their
checksums are of the decompressed IDX content, so the original archives
and recompressed copies both verify. Split as in the coRNN, UnICORNN and LEM scripts
(docs/reference/tasks.md §3): the 60 000 training images become 57 000 train / 3 000 validation
(a fixed seeded split), the official 10 000 test images are the test set.
"""

from __future__ import annotations

import functools
import gzip
import struct
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from seqarena.errors import BadInput, DataError
from seqarena.tasks.data import RemoteFile, data_root, ensure

MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
FILES = {
    "train_images": RemoteFile("train-images-idx3-ubyte.gz",
                               "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
    "train_labels": RemoteFile("train-labels-idx1-ubyte.gz",
                               "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
    "test_images": RemoteFile("t10k-images-idx3-ubyte.gz",
                              "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
    "test_labels": RemoteFile("t10k-labels-idx1-ubyte.gz",
                              "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
}
PIXELS, CLASSES = 784, 10


def read_idx(path: Path) -> np.ndarray:
    """Read a gzipped IDX file (uint8 data): magic, `nd` big-endian uint32 sizes, then the bytes."""
    with gzip.open(path, "rb") as stream:
        raw = stream.read()
    if raw[2] != 0x08:
        raise DataError(str(path), f"IDX type code {raw[2]:#x}", "0x08 (uint8)")
    ndim = raw[3]
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


@functools.lru_cache(maxsize=2)
def load(folder: Path) -> dict[str, Tensor]:
    """The four arrays as tensors: images `[N, 784]` uint8, labels `[N]` int64 (cached per process)."""
    arrays = {key: read_idx(folder / remote.name) for key, remote in FILES.items()}
    return {
        key: torch.from_numpy(array.reshape(len(array), PIXELS).copy()) if "images" in key
        else torch.from_numpy(array.astype(np.int64))
        for key, array in arrays.items()
    }


def mnist_folder(root: Path | None = None) -> Path:
    """Verify (downloading if needed) the MNIST files; return their folder."""
    return ensure("mnist", list(FILES.values()), MIRRORS, root)


def files(root: Path | None = None) -> tuple[Path, ...]:
    """Where the four MNIST files live (present or not)."""
    return tuple((root or data_root()) / "mnist" / remote.name for remote in FILES.values())


def split_train(n_val: int, split_seed: int, total: int) -> tuple[Tensor, Tensor]:
    """Indices of the train and validation parts of the `total` training images (60 000 in MNIST)."""
    if n_val >= total:
        raise BadInput("option.n_val", n_val, f"fewer than the {total} training images")
    order = torch.randperm(total, generator=torch.Generator().manual_seed(split_seed))
    return order[n_val:], order[:n_val]
