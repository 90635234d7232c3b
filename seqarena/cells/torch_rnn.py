"""Shared wrapper for the baselines that run on torch's own recurrent modules (nn.RNN, nn.LSTM, nn.GRU).

Users know these baselines as torch (cuDNN on GPU) runs them, so seqarena uses `torch.nn.RNN`,
`torch.nn.LSTM` and `torch.nn.GRU` unchanged, with PyTorch's default initialisation
U(-1/sqrt(m), 1/sqrt(m)) for every weight and bias (docs/reference/models.md §1-3).
Stacking is torch's: layer l+1 reads layer l's hidden sequence; dropout acts between layers.

Under `probing()` (the diagnostics of `seqarena trace`) the same weights run step by step through
each model's `probe_step` — PyTorch's documented equations for `nn.RNN`, `nn.LSTM`, `nn.GRU` —
so that every step's state and gates can be read; outside it torch's module runs.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from seqarena.cells.base import SequenceModel, State, StepProbe, active_probe


class TorchRecurrent(SequenceModel):
    """A torch recurrent module (nn.RNN, nn.LSTM, nn.GRU) behind the `SequenceModel` interface."""

    module_type: ClassVar[type[nn.RNNBase]]

    def __init__(self, input_size: int, hidden_size: int, num_layers: int, dropout: float = 0.0,
                 **module_kwargs: object) -> None:
        super().__init__(input_size, hidden_size, num_layers)
        self.rnn = self.module_type(
            input_size, hidden_size, num_layers, batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0, **module_kwargs,
        )

    state_size: ClassVar[int] = 1

    def forward(self, x: Tensor) -> Tensor:
        probe = active_probe()
        if probe is not None:
            return self._probed_forward(x, probe)
        features, _ = self.rnn(x)
        return features

    def probe_step(self, x_t: Tensor, hidden: Tensor, state: State) -> tuple[State, dict[str, Tensor]]:
        """One step from the input terms `x_t = W_ih u_t + b_ih` and `hidden = W_hh h_{t-1} + b_hh`:
        the new state (h first) and the gates, as torch's documentation writes the module."""
        raise NotImplementedError

    def _probed_forward(self, x: Tensor, probe: StepProbe) -> Tensor:
        """The torch module's computation, one step at a time, reported to `probe`."""
        layer_input = x
        for layer in range(self.num_layers):
            w_ih, w_hh = getattr(self.rnn, f"weight_ih_l{layer}"), getattr(self.rnn, f"weight_hh_l{layer}")
            b_ih, b_hh = getattr(self.rnn, f"bias_ih_l{layer}", None), getattr(self.rnn, f"bias_hh_l{layer}", None)
            index = probe.start_layer()
            state: State = tuple(x.new_zeros(x.shape[0], self.hidden_size) for _ in range(self.state_size))
            outputs = []
            for x_t in nn.functional.linear(layer_input, w_ih, b_ih).unbind(1):
                state, gates = self.probe_step(x_t, nn.functional.linear(state[0], w_hh, b_hh), state)
                probe.record(index, state, gates)
                outputs.append(state[0])
            layer_input = torch.stack(outputs, dim=1)
            if layer < self.num_layers - 1:
                layer_input = nn.functional.dropout(layer_input, self.rnn.dropout, self.training)
        return layer_input
