"""Write the measured rows of docs/REPRODUCTIONS.md from the JSON results of `seqarena train --json`.

    .venv/bin/python scripts/reproductions_table.py docs/reproductions

Each `<row>.json` is the last stdout line of one `seqarena train ... --json` run (the command is in
`runs.log` beside it); `<row>.wall` its wall time in seconds. Prints a Markdown table.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

LEM_ADDING_LOG = (
    "LEM leaves the 0.167 plateau after ≈ 1 700 steps at T = 2000 and reaches MSE < 0.01 at ≈ 1 900 "
    "(30 000-step budget) [log]"
)
LSTM_TCN_TABLE = "fails at T = 600: 0.164 (TCN paper, Table 1) [paper]"
CORNN_FIG1 = "solves T = 500 (MSE → ≈ 0, coRNN Fig. 1; up to 60 000 steps) [paper]"

#: Row name -> what the papers report for it (docs/reference/results.md), as text.
PUBLISHED = {
    "adding500_lem": LEM_ADDING_LOG,
    "adding500_lem_4000": LEM_ADDING_LOG,
    "adding500_cornn": CORNN_FIG1,
    "adding500_cornn_4000": CORNN_FIG1,
    "adding500_lstm": LSTM_TCN_TABLE,
    "adding500_lstm_4000": LSTM_TCN_TABLE,
    "adding500_unicornn": "not reported for adding",
    "adding500_janet": "not reported for adding at T = 500",
    "adding500_mingru": (
        "not reported for adding (minGRU: selective copying, RL, language; docs/reference/ssm.md §3); declared "
        "defaults: 3 layers as in the paper's selective-copying runs, H 128, lr 1e-3 (ssm.md §2)"
    ),
    "adding500_minlstm": (
        "not reported for adding (minLSTM: selective copying, RL, language; docs/reference/ssm.md §3); declared "
        "defaults: 3 layers as in the paper's selective-copying runs, H 128, lr 1e-3 (ssm.md §2)"
    ),
    "adding500_lru": (
        "not reported for adding (LRU: Long Range Arena; docs/reference/ssm.md §3); declared defaults: Appendix "
        "A's ring initialisation r_min 0, r_max 1, max phase 6.28, N 256, H 128, 4 blocks (ssm.md §2)"
    ),
    "adding500_linoss": (
        "not reported for adding (LinOSS: UEA, PPG-DaLiA, weather; docs/reference/ssm.md §3); declared defaults: "
        "LinOSS-IM, H 64, P 64, 2 blocks, lr 1e-3 from the paper's grid (ssm.md §2)"
    ),
    "adding500_dlinoss": (
        "not reported for adding (D-LinOSS: UEA, PPG-DaLiA; docs/reference/ssm.md §3); declared defaults: the "
        "authors' sweep, H 128, P 128, 4 blocks, r ∈ [0.9, 1], θ_max = π, lr 1e-3 (ssm.md §2)"
    ),
    "adding500_s4d": (
        "not reported for adding (S4D: Long Range Arena; docs/reference/ssm.md §3); declared defaults: the "
        "authors' example.py, S4D-Lin, N 64, Δ ∈ [0.001, 0.1], d_model 128, 4 layers, lr 0.01 (A, Δ at 0.001) "
        "(ssm.md §2)"
    ),
    "adding500_mamba": (
        "not reported for adding (Mamba: selective copying, induction heads, language; docs/reference/ssm.md §3); "
        "declared defaults: mamba_simple.Mamba's N 16, conv 4, expand 2, H 64, 2 blocks (ssm.md §2)"
    ),
    "smnist_lstm": "98.5 % (JANET paper, 2 × 128) to 98.9 % (coRNN/LEM tables), full budgets [paper]",
    "smnist_cornn": "99.35 % (256 units, 120 epochs) [log]",
    "smnist_lem": "99.45 % (128 units, 120 epochs = 53 400 steps) [log]",
    "smnist_unicornn": "sMNIST not reported (psMNIST 98.4 %, 3 × 256) [log]",
}


def command_of(name: str, runs_log: str) -> str:
    """The row's command: the last start of that row in `runs.log` (an earlier start of the same row was
    stopped before it gave a result; the log says so)."""
    found = re.findall(rf"start {re.escape(name)}: (seqarena train .*)$", runs_log, re.MULTILINE)
    return (found[-1] + " --json") if found else "?"


def milestones(result: dict) -> str:
    """For MSE tasks: the first evaluation whose validation MSE fell below 0.1 (off the 1/6 plateau)
    and below 0.01 (the reference's "solved"), or that it never did."""
    if result["metric_name"] != "mse":
        return ""
    curve = [(int(point["step"]), point["val_mse"]) for point in result.get("curve", [])]
    parts = []
    for threshold in (0.1, 0.01):
        step = next((step for step, mse in curve if mse < threshold), None)
        parts.append(f"val < {threshold:g} from step {step}" if step else f"never val < {threshold:g}")
        if step is None:
            break
    return "; " + ", ".join(parts)


#: Suffix of the rows rerun at the authors' full protocols (issue 16: readout initialisations, weight decay
#: scope, learning-rate schedules); the rows without it ran before, on torch's default readout and JANET's
#: weight decay of 1e-5 on every parameter.
PROTOCOL_16 = "_p16"


def protocol_of(result: dict) -> str:
    """Which training protocol a stored result ran under: the authors' full protocol records its pieces
    (`readout_init` among them) with its hyperparameters; the earlier runs do not."""
    return "authors' (issue 16)" if "readout_init" in result["hparams"] else "before issue 16"


#: The models of issue 21 (state-space models and minimal RNNs): their adding rows have a budget of 1 500 steps;
#: a row with fewer steps was lowered so that it ended before its session's deadline (`runs.log`).
ISSUE_21_MODELS = ("mingru", "minlstm", "lru", "linoss", "dlinoss", "s4d", "mamba")
ISSUE_21_STEPS = 1500


def published_of(name: str) -> str:
    """What the papers report for row `name`: the entry of its run without the protocol suffix, or of its
    1 500-step run for an issue-21 row whose steps were lowered (`adding500_lru_600` -> `adding500_lru`)."""
    base = name.removesuffix(PROTOCOL_16)
    return PUBLISHED.get(base, PUBLISHED.get(re.sub(r"_\d+$", "", base), ""))


def budget_of(result: dict) -> str:
    steps = f"{result['steps']} steps"
    if result["model"] in ISSUE_21_MODELS and result["steps"] < ISSUE_21_STEPS:
        return f"{steps} (lowered from {ISSUE_21_STEPS} to end before the session's deadline)"
    return steps


def row(folder: Path, name: str, runs_log: str) -> str:
    result = json.loads((folder / f"{name}.json").read_text())
    wall = float((folder / f"{name}.wall").read_text().split()[-1])
    metric = result["metric"]
    shown = f"{100 * metric:.2f} %" if result["metric_name"] == "accuracy" else f"{metric:.4g}"
    start = result["curve"][0][f"val_{result['metric_name']}"] if result.get("curve") else None
    best = result["best_val_metric"]
    return (
        f"| {result['task']} T={result['seq_len']} | {result['model']} ({result['params']:,} params) | "
        f"{budget_of(result)} | {shown} (baseline {result['baseline']:.4g}; val {start:.4g} at the first "
        f"evaluation, best {best:.4g} at step {result['best_step']}{milestones(result)}) | "
        f"{published_of(name)} | {protocol_of(result)} | "
        f"{wall / 60:.0f} min | `{command_of(name, runs_log)}` |"
    )


def main(folder: Path) -> None:
    runs_log = (folder / "runs.log").read_text()
    print("| task | model | budget | measured test metric | published | protocol | wall | command |")
    print("|---|---|---|---|---|---|---|---|")
    for path in sorted(folder.glob("*.json")):
        if path.stat().st_size:
            print(row(folder, path.stem, runs_log))


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/reproductions"))
