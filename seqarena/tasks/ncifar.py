"""Noise-padded CIFAR-10 (Chang et al. 2019, AntisymmetricRNN; used by coRNN, UnICORNN and LEM).

Each 32×32×3 image is fed row by row, then followed by Gaussian noise (docs/reference/tasks.md §5):

* Steps 0..31: image row h, all three channels, as in the Rusch scripts' `(B, C, H, W) ->
  permute(0, 2, 1, 3) -> (B, 32, 96)`: a step is [R row h, G row h, B row h], 96 values in [0, 1]
  (`ToTensor()` scaling, no mean/std normalisation).
* Steps 32..T-1: i.i.d. N(0, 1) noise of dimension 96. At the published T = 1000 that is 968
  noise steps; in general `T - 32` (`seq_len` must be at least 32; T = 32 is plain row-by-row
  CIFAR-10 without noise). Only the first 32 steps carry information.

Noise (option `noise`), which makes two different tasks; `describe()` records the choice:

* `fixed` (default): one noise tensor `[T - 32, 96]`, drawn once from `noise_seed` and repeated
  for every sample of train, validation and test, as in all three Rusch scripts (their
  `rands = torch.randn(1, 968, 96)`); this is the setting of the numbers in
  docs/reference/results.md §4 (coRNN 59.0, LEM 60.5, UnICORNN 62.4).
* `per_sample`: independent noise for every sample, as the AntisymmetricRNN paper describes:
  fresh for every training batch, from a generator seeded by the trial's seed and saved with the
  stream's state; fixed for the validation and test sets (sample i's noise drawn from its own
  generator, seeded by `noise_seed`, the split and i, independent of the trial's seed), so every
  trial is scored on the same sequences and any batch of them can be drawn alone.

Evaluation sets are `LazyRows`: a batch's inputs are built when evaluation asks for it, since the
whole test set at T = 1000 would be 10 000 × 1000 × 96 floats (3.8 GB).

Split as the Rusch scripts: the 50 000 training images become 47 000 train / 3 000 validation (a
fixed split drawn with `split_seed`); the official 10 000 test images are the test set. 10 classes,
cross-entropy, readout at the last step. Baseline: the majority share of the test labels (0.1).

Data: the CIFAR-10 python archive `cifar-10-python.tar.gz` (Krizhevsky 2009), pickled batches
`data_batch_1..5` and `test_batch` with `b"data"` uint8 `[10000, 3072]` (channel-major, each channel
row-major) and `b"labels"`. The batches are unpickled by `ArrayUnpickler`, which only resolves
numpy's array-reconstruction globals, so a tampered archive cannot run code (the pinned sha256
already refuses one).

Memory: evaluation sets are float tensors of `N × T × 96 × 4` bytes: at T = 1000, 1.1 GB for the
3 000 validation images and 3.8 GB for the full test set (`n_test` bounds it).
"""

from __future__ import annotations

import functools
import io
import pickle
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field
from torch import Tensor

from seqarena.errors import BadInput, DataError
from seqarena.tasks.archives import Archive, Source, archive_path, ensure_archive, tar_members
from seqarena.tasks.base import (
    BatchStream,
    DatasetOptions,
    LazyRows,
    ShuffledStream,
    SolvedWhen,
    Split,
    Task,
    TaskShape,
)
from seqarena.tasks.data import DataFiles

try:
    from numpy._core.multiarray import _reconstruct
except ImportError:  # numpy < 2
    from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]

#: sha256 of the archive file as served (170 498 071 bytes; md5 c58f30108f718f92721af3b95e74349a):
#: the digest Keras' `cifar10.load_data` pins. Not recomputed by us (no network here).
CIFAR_SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
ARCHIVE = Archive(dataset="cifar10", name="cifar-10-python.tar.gz", sha256=CIFAR_SHA256,
                  sources=(Source("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"),))
FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"{FOLDER}/data_batch_{i}" for i in range(1, 6))
TEST_BATCH = f"{FOLDER}/test_batch"
ROWS, ROW_SIZE, PIXELS, CLASSES = 32, 96, 3072, 10
DEFAULT_SEQ_LEN = 1000
#: Generator seeds of the noise: training streams and evaluation sets use disjoint ranges.
_TRAIN_NOISE_BASE = 2**41
_EVAL_NOISE_BASE = 2**42
_SPLIT_OFFSET = {"val": 1, "test": 2}
#: Seeds reserved per (noise_seed, split) for the evaluation samples' generators.
_EVAL_SAMPLES = 2**24
Noise = Literal["fixed", "per_sample"]


#: The only globals a pickled numpy array refers to (the batches hold arrays, lists, bytes and ints).
ALLOWED_GLOBALS: Mapping[tuple[str, str], Any] = MappingProxyType({
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,  # the name in the original (numpy 1) pickles
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
})


class ArrayUnpickler(pickle.Unpickler):
    """An unpickler that resolves only `ALLOWED_GLOBALS`, so a pickle cannot call anything else."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR batch") from None


def read_batch(raw: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    """One pickled CIFAR-10 batch -> images `[N, 3072]` uint8 and labels `[N]` int64."""
    try:
        batch = ArrayUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as error:
        raise DataError(name, "an unreadable batch", f"a pickled CIFAR-10 batch ({error})") from None
    images = batch.get(b"data") if isinstance(batch, dict) else None
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 2 or images.shape[1] != PIXELS:
        raise DataError(name, "a batch without uint8 b'data' [N, 3072]", "a pickled CIFAR-10 batch")
    labels = np.asarray(batch.get(b"labels", []), dtype=np.int64)
    if labels.shape != (len(images),) or ((labels < 0) | (labels >= CLASSES)).any():
        raise DataError(name, "labels that are not one class 0..9 per image", "a pickled CIFAR-10 batch")
    return images, labels


@functools.lru_cache(maxsize=1)
def load(path: Path, sha256: str) -> dict[str, Tensor]:
    """Images `[N, 3072]` uint8 and labels `[N]` int64 of train and test (cached per process and content)."""
    raw = tar_members(path, lambda name: name in (*TRAIN_BATCHES, TEST_BATCH))
    for name in (*TRAIN_BATCHES, TEST_BATCH):
        if name not in raw:
            raise DataError(str(path), f"an archive without {name}", "the cifar-10-python archive")
    train = [read_batch(raw[name], name) for name in TRAIN_BATCHES]
    test_images, test_labels = read_batch(raw[TEST_BATCH], TEST_BATCH)
    return {
        "train_images": torch.from_numpy(np.concatenate([images for images, _ in train])),
        "train_labels": torch.from_numpy(np.concatenate([labels for _, labels in train])),
        "test_images": torch.from_numpy(test_images.copy()),
        "test_labels": torch.from_numpy(test_labels),
    }


def image_rows(images: Tensor) -> Tensor:
    """uint8 images `[B, 3072]` -> rows `[B, 32, 96]` in [0, 1]; step h is [R row h, G row h, B row h]."""
    return images.view(-1, 3, ROWS, ROWS).permute(0, 2, 1, 3).reshape(-1, ROWS, ROW_SIZE).float() / 255.0


def noisy_inputs(images: Tensor, noise: Tensor) -> Tensor:
    """Image rows followed by `noise` (`[B, T - 32, 96]`, or `[1, T - 32, 96]` shared): `[B, T, 96]`."""
    return torch.cat((image_rows(images), noise.expand(len(images), -1, -1)), dim=1)


class FreshNoiseStream(ShuffledStream):
    """Epochs over the training images; every batch gets new N(0, 1) noise from its own seeded generator."""

    def __init__(self, images: Tensor, labels: Tensor, seed: int, noise_steps: int) -> None:
        self.noise_steps = noise_steps
        self.noise_generator = torch.Generator().manual_seed(_TRAIN_NOISE_BASE + seed)
        super().__init__(images, labels, seed, self.with_noise)

    def with_noise(self, images: Tensor) -> Tensor:
        noise = torch.randn(len(images), self.noise_steps, ROW_SIZE, generator=self.noise_generator)
        return noisy_inputs(images, noise)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "noise_generator": self.noise_generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.noise_generator.set_state(state["noise_generator"])


class NoisyCIFAROptions(DatasetOptions):
    """Options of noise-padded CIFAR-10."""

    noise: Noise = Field("fixed", description="fixed: one noise tensor for all samples (Rusch); per_sample")
    noise_seed: int = Field(0, ge=0, le=2**31 - 1,
                            description="seed of the fixed noise and of the evaluation sets' noise")
    n_val: int = Field(3000, ge=1, le=25_000, description="validation images carved from training")
    n_test: int = Field(10_000, ge=1, le=10_000, description="test images used (the first n)")


class NoisyCIFAR(Task):
    """CIFAR-10 row by row, then `T - 32` steps of noise; many-to-one classification."""

    name = "ncifar"
    metric_name = "accuracy"
    higher_is_better = True
    solved_when = SolvedWhen(
        "absolute", 0.4,
        "accuracy of at least 40 % [ours]: the task is whether the first 32 rows are kept through 968 noise "
        "steps; the LSTM that loses them sits at chance (11.6 %), every model that keeps them is at 43 % or "
        "more (GRU 43-44, antisymmetric RNN 48.3, coRNN 59.0, UnICORNN 62.4); docs/reference/results.md §4")
    per_step = False
    options_model = NoisyCIFAROptions
    options: NoisyCIFAROptions

    def __init__(self, seq_len: int | None, options: NoisyCIFAROptions) -> None:
        super().__init__(seq_len, options)
        self.noise_steps = self.seq_len - ROWS
        self.arrays = load(ensure_archive(ARCHIVE, options.data_dir), ARCHIVE.sha256)
        self.train_index, self.val_index = self._split(len(self.arrays["train_labels"]))
        test_labels = self.arrays["test_labels"][: options.n_test]
        self.baseline = float(test_labels.bincount(minlength=CLASSES).max()) / len(test_labels)
        self.fixed_noise = torch.randn(1, self.noise_steps, ROW_SIZE,
                                       generator=torch.Generator().manual_seed(options.noise_seed))

    @classmethod
    def shape_of(cls, seq_len: int | None, options: NoisyCIFAROptions) -> TaskShape:
        seq_len = DEFAULT_SEQ_LEN if seq_len is None else seq_len
        if seq_len < ROWS:
            raise BadInput("seq_len", seq_len, f"at least {ROWS} (the image rows); {DEFAULT_SEQ_LEN} as published")
        return TaskShape(cls.name, seq_len, seq_len, input_size=ROW_SIZE, output_size=CLASSES, per_step=cls.per_step)

    @classmethod
    def data_files(cls, options: NoisyCIFAROptions) -> DataFiles:
        return DataFiles((archive_path(ARCHIVE, options.data_dir),))

    def _split(self, n: int) -> tuple[Tensor, Tensor]:
        """Indices of the training and validation parts of the official training images."""
        if self.options.n_val >= n:
            raise BadInput("option.n_val", self.options.n_val, f"fewer than the {n} training images")
        order = torch.randperm(n, generator=torch.Generator().manual_seed(self.options.split_seed))
        return order[self.options.n_val:], order[: self.options.n_val]

    def with_fixed_noise(self, images: Tensor) -> Tensor:
        """uint8 images `[B, 3072]` -> inputs `[B, T, 96]` with the shared noise tensor."""
        return noisy_inputs(images, self.fixed_noise)

    def eval_noise(self, split: Split, start: int, stop: int) -> Tensor:
        """The evaluation noise of samples start..stop-1 of `split`: shared, or each sample's own
        (a generator per sample, seeded by `noise_seed`, the split and the sample's index)."""
        if self.options.noise == "fixed":
            return self.fixed_noise
        first = _EVAL_NOISE_BASE + (8 * self.options.noise_seed + _SPLIT_OFFSET[split]) * _EVAL_SAMPLES
        return torch.stack([torch.randn(self.noise_steps, ROW_SIZE, generator=torch.Generator().manual_seed(first + i))
                            for i in range(start, stop)]) if stop > start else self.fixed_noise[:0]

    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        return torch.nn.functional.cross_entropy(output, target)

    def metrics(self, output: Tensor, target: Tensor) -> dict[str, Tensor]:
        return {
            "accuracy": (output.argmax(dim=1) == target).float(),
            "ce": torch.nn.functional.cross_entropy(output, target, reduction="none"),
        }

    def train_stream(self, seed: int) -> BatchStream:
        images = self.arrays["train_images"][self.train_index]
        labels = self.arrays["train_labels"][self.train_index]
        if self.options.noise == "fixed":
            return ShuffledStream(images, labels, seed, self.with_fixed_noise)
        return FreshNoiseStream(images, labels, seed, self.noise_steps)

    def eval_set(self, split: Split) -> tuple[LazyRows, Tensor]:
        part, index = ("train", self.val_index) if split == "val" else ("test", slice(self.options.n_test))
        images, labels = self.arrays[f"{part}_images"][index], self.arrays[f"{part}_labels"][index]
        rows = LazyRows(len(images), lambda start, stop: noisy_inputs(images[start:stop],
                                                                      self.eval_noise(split, start, stop)))
        return rows, labels
