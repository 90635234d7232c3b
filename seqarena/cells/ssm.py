"""What the state-space models of the zoo share: their residual block, their stack, and the states they report.

The layered SSMs (LinOSS, D-LinOSS, LRU, S4D) follow one block, the one of the official LinOSS,
D-LinOSS and LRU code (`tk-rusch/linoss` `LinOSSBlock`, `jaredbmit/damped-linoss` `LRUBlock`) and of
S4D's standalone example (`state-spaces/s4` `example.py`, with the output `Conv1d(H, 2H, 1)` + GLU):

    x ← x + Dropout(GLU(Dropout(GELU(SSM(Norm(x))))))        GLU(v) = W₁ v ⊙ σ(W₂ v)
    (S4D, post-norm:  x ← Norm(x + Dropout(GLU(Dropout(GELU(SSM(x))))))), its dropout masks tied over time)

preceded by one linear encoder `u ↦ W_enc u + b_enc` (d → H). `hidden_size` is the block width H; the
state size (P, N) is each model's own hyperparameter. Norm is the authors': batch norm without affine
parameters over (batch, time) for LinOSS, D-LinOSS and LRU, layer norm for S4D. In training mode the
batch norm's statistics span the whole batch and sequence (as in the official code), so a step's
features then depend on the batch's later steps through two scalars per channel; in evaluation mode
(running statistics) every feature is causal.

The recurrence of every model runs on `seqarena.cells.kernels.scan` (`scan`): `h_t = a_t ⊙ h_{t−1} + b_t`.

`report_states`: under `probing()` (the trace page) each layer reports its state `h_t` per step (complex
states as their real and imaginary parts), rebuilt from the reported steps so that their gradients fill in.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn

from seqarena.cells.base import SequenceModel, VariationalDropout, active_probe
from seqarena.cells.kernels import scan as scan_kernel
from seqarena.cells.kernels.dropout import Dropout

Norm = Literal["batch", "layer"]


def report_states(h: Tensor) -> Tensor:
    """`h [B, T, ...]` unchanged, or, under `probing()`, rebuilt from per-step states the probe records.

    Each step's state is `h_t` flattened to `[B, K]` (complex: real and imaginary parts side by side)."""
    probe = active_probe()
    if probe is None:
        return h
    layer = probe.start_layer()
    flat = torch.view_as_real(h) if h.is_complex() else h
    steps = []
    for state in flat.flatten(2).unbind(1):
        probe.record(layer, (state,))
        steps.append(state)
    rebuilt = torch.stack(steps, dim=1).reshape(flat.shape)
    return torch.view_as_complex(rebuilt) if h.is_complex() else rebuilt


class ScanModel(SequenceModel):
    """A model whose recurrences run on the scan; `implementation` names the scan's source that served the
    last forward pass ("scan-cpp", "scan-triton", "scan-parallel"; recorded with every trial)."""

    implementation: str = "not run"

    def note_backend(self, x: Tensor) -> None:
        """Record which source of the scan serves inputs like `x` (`scan.backend_for`)."""
        self.implementation = "scan-" + scan_kernel.backend_for(x)

    def extra_info(self) -> dict[str, Any]:
        return {"implementation": self.implementation}


class GLU(nn.Module):
    """`GLU(v) = W₁ v + b₁ ⊙ σ(W₂ v + b₂)` (`linoss` `GLU`; S4D's `Conv1d(H, 2H, 1)` + `nn.GLU`)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.w1 = nn.Linear(width, width)
        self.w2 = nn.Linear(width, width)

    def forward(self, x: Tensor) -> Tensor:
        return self.w1(x) * torch.sigmoid(self.w2(x))


class TimeBatchNorm(nn.Module):
    """Batch norm of `[B, T, H]` over batch and time, no affine parameters (`eqx.nn.BatchNorm`,
    `channelwise_affine=False`, as in the LinOSS / LRU blocks)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(width, affine=False)

    def forward(self, x: Tensor) -> Tensor:
        # [B·T, H] rows: the same statistics as over [B, H, T], read in place (channels contiguous), no transpose
        return self.norm(x.reshape(-1, x.shape[-1])).reshape(x.shape)


class SSMBlock(nn.Module):
    """One residual block around a sequence layer `ssm: [B, T, H] -> [B, T, H]` (module docstring)."""

    def __init__(self, ssm: nn.Module, width: int, dropout: float, norm: Norm, prenorm: bool,
                 tied_dropout: bool = False) -> None:
        super().__init__()
        self.ssm = ssm
        self.norm = TimeBatchNorm(width) if norm == "batch" else nn.LayerNorm(width)
        self.glu = GLU(width)
        # nn.Dropout's distribution, its mask hashed in C++ on the CPU; or one mask per sequence and channel
        self.drop = VariationalDropout(dropout) if tied_dropout else Dropout(dropout)
        self.prenorm = prenorm

    def forward(self, x: Tensor) -> Tensor:
        z = self.norm(x) if self.prenorm else x
        z = self.drop(self.glu(self.drop(nn.functional.gelu(self.ssm(z)))))
        return x + z if self.prenorm else self.norm(x + z)


class SSMStack(ScanModel):
    """Encoder `Linear(d, H)` and `num_layers` `SSMBlock`s around the layers `make_layer` builds."""

    #: The block's normalisation and its place (the authors' choice per model).
    norm: ClassVar[Norm] = "batch"
    prenorm: ClassVar[bool] = True
    #: Whether the block's dropout masks are tied over time (one per sequence and channel; S4D's code).
    tied_dropout: ClassVar[bool] = False

    def __init__(self, input_size: int, hidden_size: int, num_layers: int, dropout: float) -> None:
        super().__init__(input_size, hidden_size, num_layers)
        self.encoder = nn.Linear(input_size, hidden_size)
        self.blocks = nn.ModuleList(
            SSMBlock(self.make_layer(), hidden_size, dropout, self.norm, self.prenorm, self.tied_dropout)
            for _ in range(num_layers))

    @abstractmethod
    def make_layer(self) -> nn.Module:
        """One sequence layer `[B, T, H] -> [B, T, H]` of this model."""

    def forward(self, x: Tensor) -> Tensor:
        self.note_backend(x)
        x = self.encoder(x)
        for block in self.blocks:
            x = block(x)
        return x


def project_in(u: Tensor, B_re: Tensor, B_im: Tensor) -> Tensor:
    """`B u` for a real input `u [.., H]` and a complex `B = B_re + i B_im [P, H]`, split (`scan.split_complex`:
    `[.., 2P]`, real parts then imaginary parts): one real product by `[B_re; B_im]` (a complex product with a
    zero imaginary part would cost four, and no complex tensor is formed)."""
    return u @ torch.cat((B_re, B_im)).t()


def read_out(h: Tensor, C_re: Tensor, C_im: Tensor, D: Tensor, u: Tensor) -> Tensor:
    """`Re(C h) + D ⊙ u` for a split complex `h [.., 2P]` (`project_in`), `C = C_re + i C_im [H, P]` and a real
    `u [.., H]`: `C_re Re h − C_im Im h`, one real product by `[C_re, −C_im]` that adds `D ⊙ u` as it writes."""
    weight = torch.cat((C_re, -C_im), dim=1)
    flat = torch.addmm((D * u).reshape(-1, u.shape[-1]), h.reshape(-1, h.shape[-1]), weight.t())
    return flat.reshape(*h.shape[:-1], weight.shape[0])


def report_split_states(h: Tensor) -> Tensor:
    """`report_states` for split complex states `h [B, T, 2N]` (`project_in`): the probe sees the complex
    states `h_t` as `report_states` shows them."""
    if active_probe() is None:
        return h
    return scan_kernel.split_complex(report_states(scan_kernel.join_complex(h)))


def complex_uniform(rows: int, cols: int, std: float) -> nn.Parameter:
    """`[rows, cols, 2]` (real, imaginary) uniform on [−std, std]: `simple_uniform_init` of the LinOSS code."""
    return nn.Parameter(torch.empty(rows, cols, 2).uniform_(-std, std))


