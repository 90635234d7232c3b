"""What a trial's MLflow child run records so that it can be compared and rerun on its own.

Params: every hyperparameter the trial ran with (model and training, the declared defaults
resolved), every task option as `task.<name>` (the task's defaults resolved), and `model`, `task`,
`seq_len`, `seed`, `steps`, `eval_every`, `eval_batch_size`, `protocol` (the task's data protocol the
trial followed, also the tag `PROTOCOL_TAG`). Tags: where and how it ran
(`seqarena.workers.placement.RunFacts`: device, GPU name, implementation, torch, CUDA, seqarena
version, git commit; the database keeps them too, with the driver's ray, optuna and mlflow versions:
`recorded_facts`), the `TrialConfig` as JSON (`CONFIG_TAG`, read back by `seqarena.load_run`)
and the `seqarena train ...` command that reruns it alone (`COMMAND_TAG`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from importlib import metadata
from typing import Any

from seqarena import tasks
from seqarena.platform.tracking import COMMAND_TAG, CONFIG_TAG, PROTOCOL_TAG
from seqarena.workers.config import TrialConfig
from seqarena.workers.placement import RunFacts
from seqarena.workers.rerun import train_command


def resolved_config(config: TrialConfig, hparams: Mapping[str, Any], task_options: Mapping[str, Any],
                    protocol: str | None = None) -> TrialConfig:
    """`config` with every hyperparameter and task option spelled out and its data protocol named (the
    trial's resolved values; `protocol`: the name the trial reported, else the one `config` asks for)."""
    name = protocol or tasks.protocol_name(config.task, config.protocol, config.model)
    return config.model_copy(update={"hparams": dict(hparams), "task_options": dict(task_options),
                                     "protocol": name, "checkpoint_dir": None})


def run_params(config: TrialConfig) -> dict[str, Any]:
    """The MLflow params of a trial whose `config` is resolved (`resolved_config`)."""
    budget = {"model": config.model, "task": config.task, "seq_len": config.seq_len, "seed": config.seed,
              "steps": config.steps, "eval_every": config.eval_every, "eval_batch_size": config.eval_batch_size,
              "protocol": config.protocol}
    options = {f"task.{name}": value for name, value in config.task_options.items()}
    return {**config.hparams, **options, **budget}


def run_tags(config: TrialConfig, facts: RunFacts) -> dict[str, str]:
    """The MLflow tags of a trial whose `config` is resolved: where it ran, its config, its rerun command."""
    rerun = config.model_copy(update={"device": facts.device})
    return {**facts.tags(), PROTOCOL_TAG: str(config.protocol),
            CONFIG_TAG: json.dumps(rerun.model_dump(mode="json", exclude={"checkpoint_dir"}), sort_keys=True),
            COMMAND_TAG: train_command(rerun)}


#: The key of a trial's final Tune report holding its `RunFacts` as JSON.
FACTS_KEY = "run_facts"


#: The packages of the driver (which searches and records) whose versions each trial's facts name.
DRIVER_PACKAGES = ("ray", "optuna", "mlflow")


def recorded_facts(last: Mapping[str, Any]) -> dict[str, str]:
    """What the database keeps of where and how a trial ran (`Trial.facts`): its `RunFacts` from its last
    report (absent when it reported none: failed before training) and `<package>_version` of each of
    `DRIVER_PACKAGES` in this process, the driver that searched and recorded it."""
    facts = RunFacts(**json.loads(last[FACTS_KEY])).tags() if last.get(FACTS_KEY) else {}
    return {**facts, **{f"{name}_version": metadata.version(name) for name in DRIVER_PACKAGES}}


def finished_record(trial: TrialConfig, last: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The params and tags of a finished trial's run, from its `TrialConfig` and its last report: its
    resolved values when it trained, else the declared defaults resolved here; its facts when it
    reported them; its one-line error when it failed."""
    config = trial.model_copy(update={"checkpoint_dir": None})
    result = json.loads(last["trial_result"]) if last.get("trial_result") else None
    if result is not None:
        config = resolved_config(config, result["hparams"], result["task_options"], result.get("protocol"))
    else:
        from seqarena import cells
        from seqarena.cells.space import resolve

        config = resolved_config(config, resolve(cells.space(config.model), config.hparams, task=config.task),
                                 config.task_options)
    tags = {PROTOCOL_TAG: str(config.protocol)}
    if last.get(FACTS_KEY):
        tags = run_tags(config, RunFacts(**json.loads(last[FACTS_KEY])))
    if last.get("error"):
        tags["error"] = str(last["error"]).splitlines()[0][:500]
    return run_params(config), tags
