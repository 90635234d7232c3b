"""What runs on the cluster for one trial: the training loop, metrics, checkpoints.

Depends on `seqarena.cells` and `seqarena.tasks`, never on `seqarena.platform`.
"""

from seqarena.workers.config import TrialConfig, make_config, prepare
from seqarena.workers.results import EvalReport, TrialResult
from seqarena.workers.trial import Observer, run_trial

__all__ = ["EvalReport", "Observer", "TrialConfig", "TrialResult", "make_config", "prepare", "run_trial"]
