"""The `seqarena` command line: results as JSON, and bad input refused with exit 2, writing nothing."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

TINY = ["--task", "adding", "--seq-len", "12", "--steps", "4", "--eval-every", "2", "--hidden", "4",
        "--option", "n_val=8", "--option", "n_test=8"]


@pytest.mark.slow  # a subprocess that builds the coRNN kernel on a cold cache
def test_train_json_is_the_last_stdout_line(tmp_path: Path) -> None:
    """A real subprocess of the console entry point, as a user runs it."""
    args = [sys.executable, "-m", "seqarena.cli", "train", "--model", "cornn", *TINY,
            "--hp", "dt=0.05", "--seed", "2", "--json"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["model"] == "cornn" and result["seq_len"] == 12 and result["steps"] == 4
    assert result["hparams"]["dt"] == 0.05 and result["hparams"]["hidden_size"] == 4
    assert result["status"] == "completed" and result["metric"] is not None


def test_train_prints_a_table_without_json(run_cli) -> None:
    code, out, _ = run_cli(["train", "--model", "gru", *TINY])
    assert code == 0
    assert "test mse" in out and "baseline" in out and "0.16667" in out


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--model", "corn"], "model"),
        (["--model", "cornn", "--task", "sorting"], "task"),
        (["--model", "cornn", "--hp", "beta=1"], "hp"),
        (["--model", "cornn", "--hp", "dt=-0.1"], "dt"),
        (["--model", "lem", "--hp", "dt=1.5"], "dt"),
        (["--model", "cornn", "--hp", "dt"], "hp"),
        (["--model", "cornn", "--hp", "dt=fast"], "dt"),
        (["--model", "cornn", "--seq-len", "0"], "seq_len"),
        (["--model", "cornn", "--hidden", "0"], "hidden_size"),
        (["--model", "cornn", "--hidden", "4", "--hp", "hidden_size=8"], "hp"),
        (["--model", "transformer", "--hidden", "6", "--hp", "nhead=4"], "nhead"),
        (["--model", "cornn", "--option", "flavour=x"], "option.flavour"),
        (["--model", "cornn", "--steps", "0"], "steps"),
        (["--model", "cornn", "--device", "tpu"], "device"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(args: list[str], field: str, tmp_path: Path,
                                                         run_cli) -> None:
    checkpoints = tmp_path / "ckpt"
    base = ["train", *TINY, "--checkpoint-dir", str(checkpoints)]
    code, out, err = run_cli([*base, *args])
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {field}: got ") and "allowed" in lines[0]
    assert not checkpoints.exists()
    assert out == ""


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_refused(run_cli) -> None:
    code, _, err = run_cli(["train", "--model", "lstm", *TINY, "--device", "cuda"])
    assert code == 2 and err.startswith("error: device: got 'cuda'; allowed: cpu")


def test_missing_mnist_offline_is_refused(tmp_path: Path, run_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQARENA_DATA", str(tmp_path))
    code, _, err = run_cli(["train", "--model", "lstm", "--task", "smnist", "--seq-len", "784"])
    assert code == 2 and "missing file" in err and "train-images-idx3-ubyte.gz" in err
    assert list(tmp_path.iterdir()) == []


MNIST_SPEC = "name: mnist-check\ntask: smnist\nseq_lens: [784]\nmodels: [lstm]\n"


def test_validate_reads_no_data_and_check_data_names_a_missing_dataset(tmp_path: Path, run_cli,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    spec = tmp_path / "mnist.yaml"
    spec.write_text(MNIST_SPEC)
    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setenv("SEQARENA_DATA", str(data))
    code, out, err = run_cli(["validate", str(spec)])
    assert code == 0 and "smnist/T=784/lstm" in out and err == ""
    code, out, err = run_cli(["validate", "--check-data", str(spec)])
    assert code == 1 and "smnist/T=784/lstm" in out
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("smnist: data missing (4 of 4 file(s), e.g. ")
    assert str(data / "mnist" / "train-images-idx3-ubyte.gz") in lines[0]
    code, out, _ = run_cli(["validate", "--check-data", "--json", str(spec)])
    assert code == 1 and json.loads(out)["data"]["ok"] is False
    assert list(data.iterdir()) == []


def test_check_data_finds_present_files(small_data: Path, tmp_path: Path, run_cli) -> None:
    spec = tmp_path / "mnist.yaml"
    spec.write_text(MNIST_SPEC)
    code, out, err = run_cli(["validate", "--check-data", str(spec)])
    assert code == 0 and err == ""
    assert f"smnist: data present (4 file(s), e.g. {small_data / 'mnist'}" in out.replace("\n", "")


def test_corrupt_mnist_is_refused(tmp_path: Path, small_data: Path, run_cli,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "mnist"
    folder.mkdir()
    for source in (small_data / "mnist").iterdir():
        (folder / source.name).write_bytes(source.read_bytes())
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8b garbage")
    monkeypatch.setenv("SEQARENA_DATA", str(tmp_path))
    code, _, err = run_cli(["train", "--model", "lstm", "--task", "psmnist", "--seq-len", "784"])
    assert code == 2 and "t10k-labels-idx1-ubyte.gz" in err and len(err.strip().splitlines()) == 1


def test_models_lists_every_declared_space(run_cli) -> None:
    code, out, _ = run_cli(["models", "--json"])
    spaces = json.loads(out)
    assert code == 0 and set(spaces) >= {"cornn", "unicornn", "lem", "tcn", "transformer"}
    cornn = {row["name"]: row for row in spaces["cornn"]}
    assert cornn["dt"]["search"] == "[0.01, 0.1] log" and {"gamma", "epsilon", "lr"} <= set(cornn)


def test_models_shows_one_models_protocol_per_task(run_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "300")
    code, out, _ = run_cli(["models", "--model", "janet"])
    assert code == 0 and "unicornn" not in out
    decay = next(line for line in out.splitlines() if "weight_decay " in line)
    assert "smnist: 1e-05, psmnist: 1e-05" in decay  # JANET's README: 1e-5 on MNIST and pMNIST only
    code, _, err = run_cli(["models", "--model", "jan"])
    assert code == 2 and "model" in err and "janet" in err


def _train_json(args: list[str]) -> dict:
    done = subprocess.run([sys.executable, "-m", "seqarena.cli", "train", *args, "--json"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_train_into_a_log_says_each_validation_in_one_line() -> None:
    """Off a terminal (a log, a pipe) `train` cannot redraw a bar: it says each validation in a line on stderr."""
    done = subprocess.run([sys.executable, "-m", "seqarena.cli", "train", "--model", "lstm", "--task", "adding",
                           "--seq-len", "20", "--steps", "20", "--eval-every", "10", "--hidden", "8", "--json"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["step 10/20", "step 20/20"]
    curve = json.loads(done.stdout.strip().splitlines()[-1])["curve"]
    for line, point in zip(lines, curve, strict=True):
        assert line == f"step {int(point['step'])}/20: loss {point['train_loss']:.4g} val_mse {point['val_mse']:.4g}"


@pytest.mark.slow  # three subprocesses training LEM (its kernel builds on a cold cache)
def test_a_trial_killed_after_a_checkpoint_resumes_to_the_same_numbers(tmp_path: Path) -> None:
    """SIGKILL a real `seqarena train` once it has checkpointed, rerun it, compare with a straight run."""
    args = ["--model", "lem", "--task", "adding", "--seq-len", "30", "--steps", "100", "--eval-every", "10",
            "--hidden", "8", "--batch-size", "16", "--option", "n_val=64", "--option", "n_test=64",
            "--seed", "5"]
    ckpt_dir = tmp_path / "ckpt"
    process = subprocess.Popen([sys.executable, "-m", "seqarena.cli", "train", *args,
                                "--checkpoint-dir", str(ckpt_dir)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (ckpt_dir / "checkpoint.pt").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL
    killed_at = torch.load(ckpt_dir / "checkpoint.pt", weights_only=False)["state"]["step"]
    assert 0 < killed_at < 100

    resumed = _train_json([*args, "--checkpoint-dir", str(ckpt_dir)])
    straight = _train_json(args)
    for key in ("metric", "best_step", "steps", "status", "params", "curve"):
        assert resumed[key] == straight[key], key


def test_job_commands_refuse_bad_input_and_write_nothing(tmp_path: Path, run_cli,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from seqarena.platform import database
    from seqarena.platform.leaderboard import trials_frame

    monkeypatch.setenv("SEQARENA_HOME", str(tmp_path / "home"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ntask: adding\nseq_lens: [10]\nmodels: [lsmt]\n")
    code, _, err = run_cli(["submit", str(bad)])
    assert code == 2 and err.startswith("error: models") and "allowed" in err
    code, _, err = run_cli(["status", "0123456789abcdef"])
    assert code == 2 and err.startswith("error: job: got ")
    assert trials_frame(database.get_engine()).empty and run_cli(["jobs", "--json"])[1].strip() == "[]"

    monkeypatch.setenv("SEQARENA_DB_URL", "postgresql+psycopg://seqarena:topsecret@127.0.0.1:1/nowhere")
    code, out, err = run_cli(["jobs"])
    assert code == 2 and err.startswith("error: SEQARENA_DB_URL: got ") and "topsecret" not in err + out
