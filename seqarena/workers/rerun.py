"""The `seqarena train` command that reruns one trial alone, in this process, without Ray.

Every field of a `TrialConfig` that determines its numbers becomes a flag: the model, task and T,
each hyperparameter (`--hp NAME=VALUE`, the resolved defaults included), each task option
(`--option NAME=VALUE`), the task's data protocol (`--protocol`, when named), the budget
(`--steps`, `--eval-every`, `--eval-batch-size`), the seed, the device and the other lengths the trained
model is tested at (`--eval-length`, one per T′). Floats are written with
`repr`, which reads back to the same float, so the rerun trains exactly the recorded configuration:
same seed, same steps, same numbers on the same device.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from typing import Any

from seqarena.workers.config import TrialConfig


def _text(value: Any) -> str:
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str | int | bool):
        return str(value)
    return json.dumps(value, sort_keys=True)


def _assignments(flag: str, values: Mapping[str, Any]) -> list[str]:
    return [part for name in sorted(values) for part in (flag, f"{name}={_text(values[name])}")]


def train_argv(config: TrialConfig, hparams: Mapping[str, Any] | None = None) -> list[str]:
    """The arguments of `seqarena train` for `config` (`hparams`: the resolved ones, else its own)."""
    return ["seqarena", "train", "--model", config.model, "--task", config.task, "--seq-len", str(config.seq_len),
            *_assignments("--hp", config.hparams if hparams is None else hparams),
            *_assignments("--option", config.task_options),
            *(["--protocol", config.protocol] if config.protocol else []),
            "--steps", str(config.steps), "--eval-every", str(config.eval_every),
            "--eval-batch-size", str(config.eval_batch_size), "--seed", str(config.seed),
            "--device", config.device,
            *[part for length in config.eval_lengths for part in ("--eval-length", str(length))], "--json"]


def train_command(config: TrialConfig, hparams: Mapping[str, Any] | None = None) -> str:
    """`train_argv` as one shell line."""
    return shlex.join(train_argv(config, hparams))
