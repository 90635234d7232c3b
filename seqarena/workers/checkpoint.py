"""Trial checkpoints: one file per trial directory, written atomically, refused if foreign.

The file holds the model, optimiser and learning-rate scheduler state, the training stream's
position, torch's global RNG state (dropout draws from it), the best weights so far and the trial's
bookkeeping. It is written to a temporary file and renamed, so a trial killed mid-write leaves the
previous checkpoint intact.
The file holds tensors and plain values only and is read with `weights_only=True`: loading it
never unpickles an object (`read`): a file that is not such a checkpoint (a crafted pickle, an
empty or corrupt file) is refused in one line naming it, before anything in it runs.
A checkpoint records the fingerprint of the trial's configuration;
resuming a different trial from it is refused.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from seqarena.errors import BadInput
from seqarena.workers.measure import Stopwatch

if TYPE_CHECKING:
    from seqarena.workers.trial import Trainer

FILE_NAME = "checkpoint.pt"
#: The entries every seqarena checkpoint holds (what `read` checks before handing it out).
ENTRIES = frozenset({"fingerprint", "model", "state"})


def save(directory: Path, fingerprint: str, trainer: Trainer) -> Path:
    """Write `trainer`'s state to `directory/checkpoint.pt` atomically; return the path."""
    directory.mkdir(parents=True, exist_ok=True)
    payload = {
        "fingerprint": fingerprint,
        "model": trainer.model.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "scheduler": trainer.scheduler.state_dict(),
        "stream": trainer.stream.state_dict(),
        "rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "state": dataclasses.asdict(trainer.state),
    }
    handle, tmp = tempfile.mkstemp(prefix=".checkpoint.", suffix=".tmp", dir=directory)
    os.close(handle)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, directory / FILE_NAME)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return directory / FILE_NAME


def load(directory: Path, fingerprint: str, trainer: Trainer) -> bool:
    """Restore `trainer` from `directory` if it holds a checkpoint; return whether it did.

    Raises:
        BadInput: the checkpoint belongs to a trial with a different configuration.
    """
    path = directory / FILE_NAME
    if not path.exists():
        return False
    payload = read(path, trainer.setup.device)
    if payload.get("fingerprint") != fingerprint:
        raise BadInput("checkpoint_dir", str(directory),
                       "an empty directory or one holding a checkpoint of this same trial configuration")
    trainer.model.load_state_dict(payload["model"])
    trainer.optimizer.load_state_dict(payload["optimizer"])
    trainer.scheduler.load_state_dict(payload["scheduler"])
    trainer.stream.load_state_dict(payload["stream"])
    torch.set_rng_state(payload["rng"])
    if payload["cuda_rng"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(payload["cuda_rng"])
    trainer.state = _restore_state(payload["state"], type(trainer.state))
    return True


class CheckpointRefused(BadInput):
    """A file read as a checkpoint is not one of ours: empty, unreadable, or holding more than tensors and
    plain values (a crafted pickle: refused before anything in it runs)."""

    def __init__(self, field: str, path: Path, what: str) -> None:
        super().__init__(field, str(path), f"a checkpoint.pt written by seqarena, or none (this one is {what})")


def read(path: Path, device: Any = "cpu", field: str = "checkpoint_dir") -> dict[str, Any]:
    """The payload of checkpoint file `path`, read with `weights_only=True`: nothing in the file is
    unpickled as an object. An empty, truncated or foreign file (a crafted pickle among them) is a
    `CheckpointRefused` naming it in one line (`field`: what the user gave, for the message); an empty
    file made torch raise EOFError, which the CLI took for an interrupt."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notes on pickle protocols: the refusal says it all
            payload = torch.load(path, map_location=device, weights_only=True)
    except (EOFError, OSError, RuntimeError, ValueError, TypeError, IndexError, pickle.UnpicklingError,
            AttributeError, KeyError) as error:
        what = "empty" if _empty(path) else f"not a file of tensors and plain values ({_reason(error)})"
        raise CheckpointRefused(field, path, what) from None
    if not isinstance(payload, dict):
        raise CheckpointRefused(field, path, f"a file holding a {type(payload).__name__}")
    if missing := sorted(ENTRIES - set(payload)):
        raise CheckpointRefused(field, path, f"a file without {', '.join(missing)}")
    return payload


def _reason(error: BaseException) -> str:
    """One short line of why torch refused a file: the weights-only unpickler's own reason when it gave
    one (never its advice to load the file with `weights_only=False`)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    for index, line in enumerate(lines):
        if "WeightsUnpickler error:" in line:
            rest = [line.split("WeightsUnpickler error:", 1)[1].strip(), *lines[index + 1:index + 2]]
            detail = next((part for part in rest if part), "")
            return f"it holds objects that are not tensors: {detail[:200]}"
    if lines and lines[0].startswith("Weights only load failed"):
        return "it holds objects that are not tensors"
    return type(error).__name__


def _empty(path: Path) -> bool:
    try:
        return path.stat().st_size == 0
    except OSError:
        return False


def _restore_state(data: dict[str, Any], state_type: type) -> Any:
    data = dict(data)
    data["train_watch"] = Stopwatch(**data["train_watch"])
    data["infer_watch"] = Stopwatch(**data["infer_watch"])
    return state_type(**data)
