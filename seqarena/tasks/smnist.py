"""Sequential MNIST (sMNIST): each 28×28 image read pixel by pixel, row-major, T = 784, d = 1.

Protocol of the coRNN, UnICORNN and LEM scripts (docs/reference/tasks.md §3): pixel values
scaled to [0, 1] (`ToTensor()` only, no normalisation), 57 000 train / 3 000 validation images
from the official training set, the official 10 000 test images; 10 classes, cross-entropy,
readout from the last step. Metric: accuracy (a fraction). Baseline: the accuracy of always
answering the most frequent class of the test set (0.1135 on the full test set).
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import Tensor

from seqarena.errors import BadInput
from seqarena.tasks import mnist
from seqarena.tasks.base import Batch, BatchStream, DatasetOptions, ShuffledStream, SolvedWhen, Split, Task, TaskShape
from seqarena.tasks.data import DataFiles


class MNISTOptions(DatasetOptions):
    """Options of the MNIST tasks."""

    n_val: int = Field(3000, ge=1, le=30_000, description="validation images carved from training")
    n_test: int = Field(10_000, ge=1, le=10_000, description="test images used (the first n)")


class SequentialMNIST(Task):
    """Pixel-by-pixel MNIST; many-to-one classification."""

    name = "smnist"
    metric_name = "accuracy"
    higher_is_better = True
    solved_when = SolvedWhen(
        "absolute", 0.98,
        "accuracy of at least 98 % (docs/reference/tasks.md §12): the recurrent models that learn sMNIST "
        "reach 98.5-99.5 % (JANET paper's LSTM 98.5, coRNN's log 99.35, LEM's 99.45), one that fails stays "
        "far lower (TCN paper, Table 1: Elman RNN 21.5 %)")
    per_step = False
    options_model = MNISTOptions
    options: MNISTOptions

    def __init__(self, seq_len: int | None, options: MNISTOptions) -> None:
        super().__init__(seq_len, options)
        self.arrays = mnist.load(mnist.mnist_folder(options.data_dir))
        self.train_index, self.val_index = mnist.split_train(
            options.n_val, options.split_seed, total=len(self.arrays["train_labels"]))
        test_labels = self.arrays["test_labels"][: options.n_test]
        self.baseline = float(test_labels.bincount(minlength=mnist.CLASSES).max()) / len(test_labels)

    @classmethod
    def shape_of(cls, seq_len: int | None, options: MNISTOptions) -> TaskShape:
        if seq_len not in (None, mnist.PIXELS):
            raise BadInput("seq_len", seq_len, f"{mnist.PIXELS} (an MNIST image has 784 pixels)")
        return TaskShape(cls.name, mnist.PIXELS, mnist.PIXELS, input_size=1, output_size=mnist.CLASSES,
                         per_step=cls.per_step)

    @classmethod
    def data_files(cls, options: MNISTOptions) -> DataFiles:
        return DataFiles(mnist.files(options.data_dir))

    def pixel_order(self) -> Tensor | None:
        """The order in which pixels are fed; None for the natural row-major order."""
        return None

    def to_inputs(self, images: Tensor) -> Tensor:
        """uint8 images `[B, 784]` -> inputs `[B, 784, 1]` in [0, 1], in `pixel_order`."""
        order = self.pixel_order()
        pixels = images if order is None else images[:, order]
        return (pixels.float() / 255.0).unsqueeze(2)

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
        return ShuffledStream(images, labels, seed, self.to_inputs)

    def eval_set(self, split: Split) -> Batch:
        if split == "val":
            index = self.val_index
            return self.to_inputs(self.arrays["train_images"][index]), self.arrays["train_labels"][index]
        n = self.options.n_test
        return self.to_inputs(self.arrays["test_images"][:n]), self.arrays["test_labels"][:n]
