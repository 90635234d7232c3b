"""Fused recurrences: compiled time loops with their own backward, checked against the eager unroll.

`unicornn_layer` runs one UnICORNN layer (Rusch & Mishra 2021, ICML) through a C++ CPU kernel built
by torch's `cpp_extension` on first use and cached on disk (`build`); `available()` says whether the
kernel can be loaded in this process. Every fused path has the eager path (`cells.base.unroll`) as
its reference (`tests/unit/test_fused.py`).
"""

from __future__ import annotations

from seqarena.cells.kernels.build import extension_error, load
from seqarena.cells.kernels.unicornn import UnICORNNRecurrence, supported, unicornn_layer

__all__ = ["UnICORNNRecurrence", "available", "extension_error", "supported", "unicornn_layer"]


def available() -> bool:
    """Whether the UnICORNN CPU kernel is loaded (building it on the first call; never raises)."""
    return load("unicornn") is not None
