"""Shared wrapper for the baselines that run on torch's fused recurrent modules (RNN, LSTM, GRU).

Users know these baselines as torch (cuDNN on GPU) runs them, so seqarena uses `torch.nn.RNN`,
`torch.nn.LSTM` and `torch.nn.GRU` unchanged, with PyTorch's default initialisation
U(-1/sqrt(m), 1/sqrt(m)) for every weight and bias (shared/reference/models.md §1-3).
Stacking is torch's: layer l+1 reads layer l's hidden sequence; dropout acts between layers.
"""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor, nn

from seqarena.cells.base import SequenceModel


class TorchRecurrent(SequenceModel):
    """A torch fused recurrent module behind the `SequenceModel` interface."""

    module_type: ClassVar[type[nn.RNNBase]]

    def __init__(self, input_size: int, hidden_size: int, num_layers: int, dropout: float = 0.0,
                 **module_kwargs: object) -> None:
        super().__init__(input_size, hidden_size, num_layers)
        self.rnn = self.module_type(
            input_size, hidden_size, num_layers, batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0, **module_kwargs,
        )

    def forward(self, x: Tensor) -> Tensor:
        features, _ = self.rnn(x)
        return features
