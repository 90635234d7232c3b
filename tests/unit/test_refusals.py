"""Bad input refused early (issue 18 §6, §7): each case one line on stderr, exit 2, nothing written."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from seqarena.errors import BadInput

TINY = ["--task", "adding", "--seq-len", "12", "--steps", "4", "--eval-every", "2", "--hidden", "4",
        "--option", "n_val=8", "--option", "n_test=8"]


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_an_error_quotes_a_short_excerpt_of_a_huge_value() -> None:
    """An 820 MB error line came from echoing a whole alias-bombed list; now 100 characters and the length."""
    nested: list = [1] * 10
    for _ in range(12):  # 10**12 items when written out; the excerpt never writes them out
        nested = [nested] * 10
    for value in ("x" * 100_000, nested, {str(i): i for i in range(10_000)}):
        text = str(BadInput("seq_lens", value, "allowed\nvalues"))
        assert len(text) < 400 and "\n" not in text
    assert "(100,002 characters)" in str(BadInput("name", "x" * 100_000, "short"))


def test_a_usage_error_exits_2_in_one_line(run_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQARENA_HOME", str(tmp_path / "home"))
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: x\ntask: adding\nseq_lens: [10]\nmodels: [gru]\n")
    code, out, err = run_cli(["submit", str(spec), "--priority", "high"])
    assert code == 2 and "--priority" in _one_line(err) and out == ""
    code, _, err = run_cli(["train", "--model", "gru"])
    assert code == 2 and "--task" in _one_line(err)
    assert not (tmp_path / "home" / "seqarena.db").exists()


def test_seqarena_home_on_a_file_is_refused(run_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file = tmp_path / "home"
    file.write_text("not a folder")
    for home in (file, file / "below"):
        monkeypatch.setenv("SEQARENA_HOME", str(home))
        code, _, err = run_cli(["jobs"])
        assert code == 2 and _one_line(err).startswith(f"error: SEQARENA_HOME: got '{home}'")
    assert file.read_text() == "not a folder"


def test_a_database_url_whose_driver_is_missing_is_refused(run_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    for url in ("mysql+nosuchdriver://user:hunter2@localhost/db", "mysql+pymysql://user:hunter2@localhost/db"):
        monkeypatch.setenv("SEQARENA_DB_URL", url)
        code, out, err = run_cli(["jobs"])
        line = _one_line(err)
        assert code == 2 and line.startswith("error: SEQARENA_DB_URL: got ") and "driver" in line
        assert "hunter2" not in err + out


@pytest.mark.parametrize(("content", "what"), [(b"", "empty"), (b"foo bar", "not a file of tensors"),
                                               (b"PK\x03\x04 truncated zip", "not a file of tensors")])
def test_an_empty_or_corrupt_checkpoint_is_named_in_one_line(content: bytes, what: str, run_cli,
                                                             tmp_path: Path) -> None:
    """An empty checkpoint.pt printed 'aborted' and exited 130; a corrupt one did not name the file."""
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "checkpoint.pt").write_bytes(content)
    code, out, err = run_cli(["train", "--model", "gru", *TINY, "--checkpoint-dir", str(folder)])
    line = _one_line(err)
    assert code == 2 and out == ""
    assert line.startswith(f"error: checkpoint_dir: got '{folder / 'checkpoint.pt'}'") and what in line
    assert [p.name for p in folder.iterdir()] == ["checkpoint.pt"]
    assert (folder / "checkpoint.pt").read_bytes() == content


GOOD = "name: x\ntask: adding\nseq_lens: [10]\nmodels: [gru]\n"
#: An alias bomb: nine levels of ten aliases each make seq_lens a list of 10**9 items when expanded.
BOMB = ("a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n"
        + "".join(f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n" for i in range(8))
        + "name: x\ntask: adding\nmodels: [gru]\nseq_lens: *i\n")


@pytest.mark.parametrize(("text", "start", "says"), [
    (BOMB, "spec: got 'alias *a at line 2'", "without YAML aliases"),
    (GOOD + "budget: " + "[" * 20_000 + "]" * 20_000 + "\n", "spec: got 'nesting deeper than 12", "nested"),
    (GOOD + "name: y\n", "spec: got \"key 'name' twice (lines 1 and 5)\"", "each key once"),
    (GOOD + "budget: {max_steps: 10, max_steps: 20}\n", "spec: got \"key 'max_steps' twice", "each key once"),
    (GOOD.replace("name: x", "name: " + "n" * 10_000), "name: got 'nnnn", "at most 100 characters"),
    (GOOD.replace("[10]", "[1000000000]"), "seq_lens[0]: got 1000000000", "less than or equal to 100000"),
    (GOOD + "param_budget: 1.0e+12\n", "param_budget: got 1000000000000.0", "less than or equal to 20000000"),
    (GOOD + "param_budget: 1000000000000\n", "param_budget: got 1000000000000", "less than or equal to 20000000"),
    (GOOD.replace("[gru]", "[gru, lstm, rnn]") + "search: {num_samples: 5000}\n", "search.num_samples: got 5000",
     "at most 10,000 trials (this one has 15,000"),
    (GOOD + "search: {num_samples: 100000}\n", "search.num_samples: got 100000", "less than or equal to 10000"),
    (GOOD + "seq_lens_note: '" + "x" * 70_000 + "'\n", "spec: got '70,", "at most 65,536 bytes"),
    (GOOD + "seq: " + "9" * 5000 + "\n", "spec: got 'a value YAML cannot read", "YAML mapping"),
    (GOOD + "fixed: {all: {hidden_size: 16384, num_layers: 64}}\n", "models[0]: got 'gru'",
     "(gru with hidden_size=16384, num_layers=64 has 102,280,298,496"),
    (GOOD + "space: {gru: {hidden_size: {choices: [64, 8192]}}}\n", "models[0]: got 'gru'",
     "(gru with hidden_size=8192, num_layers=1 has 201,424,896: 16 bytes each in training) on adding/T=10/gru"),
])
def test_spec_limits_are_refused_quickly_in_one_line(text: str, start: str, says: str, run_cli, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Each took gigabytes, minutes or a traceback, or was accepted and failed later (issue 18 §6, §7)."""
    import time
    import tracemalloc

    monkeypatch.setenv("SEQARENA_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    spec = tmp_path / "spec.yaml"
    spec.write_text(text)
    tracemalloc.start()
    started = time.monotonic()
    code, out, err = run_cli(["validate", str(spec)])
    seconds, peak = time.monotonic() - started, tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    line = _one_line(err)
    assert code == 2 and out == "" and line.startswith(f"error: {start}") and says in line, line
    # bounds, not speed: the alias bomb took 8.4 GB and param_budget 1e12 took 94 s; 30 s holds on a loaded machine
    assert len(line) < 400 and seconds < 30 and peak < 50e6, (seconds, peak)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.yaml"]


def test_a_spec_file_that_is_not_utf8_is_refused(run_cli, tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_bytes(GOOD.encode() + b"note: \xff\xfe\n")
    code, _, err = run_cli(["validate", str(spec)])
    assert code == 2 and _one_line(err) == f"error: spec: got '{spec}'; allowed: a readable UTF-8 YAML file " \
                                           "(not UTF-8 at byte 56)"


def test_limits_within_bounds_still_validate(run_cli, tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(GOOD.replace("name: x", "name: " + "n" * 100).replace("[10]", "[10, 100000]"))
    code, out, err = run_cli(["validate", str(spec), "--json"])
    assert code == 0, err
    assert [row["arm"] for row in json.loads(out)["arms"]] == ["adding/T=10/gru", "adding/T=100000/gru"]


@pytest.fixture
def data_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`SEQARENA_DATA` = tmp_path/data holding book.txt, no other folder allowed."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "book.txt").write_text("the quick brown fox jumps over the lazy dog. " * 400)
    monkeypatch.setenv("SEQARENA_DATA", str(data))
    monkeypatch.delenv("SEQARENA_DATA_ALLOW", raising=False)
    monkeypatch.setenv("SEQARENA_HOME", str(tmp_path / "home"))
    return data


def _char_spec(tmp_path: Path, path: Path | str) -> Path:
    spec = tmp_path / "char.yaml"
    spec.write_text(f"name: c\ntask: char\ntask_options: {{corpus: path, path: '{path}', n_val: 4, n_test: 4}}\n"
                    "seq_lens: [20]\nmodels: [gru]\n")
    return spec


def test_a_path_outside_the_data_folder_is_refused(data_only: Path, tmp_path: Path, run_cli) -> None:
    """`task_options: {corpus: path, path: /etc/passwd}` validated and a job trained on it (issue 18 §5)."""
    link = data_only / "innocent.txt"
    link.symlink_to("/etc/passwd")
    for path, resolves in (("/etc/passwd", ""), (link, "resolves to /etc/passwd"),
                           (data_only / ".." / "elsewhere.txt", "")):
        code, out, err = run_cli(["validate", str(_char_spec(tmp_path, path))])
        line = _one_line(err)
        assert code == 2 and out == "" and line.startswith("error: task_options.path: got "), line
        assert f"inside $SEQARENA_DATA ({data_only})" in line and resolves in line
    code, _, err = run_cli(["validate", str(_char_spec(tmp_path, data_only / "book.txt"))])
    assert code == 0, err


def test_a_data_dir_outside_is_refused_and_validate_makes_no_folder(data_only: Path, tmp_path: Path,
                                                                    run_cli) -> None:
    spec = tmp_path / "smnist.yaml"
    for task, seq_len in (("smnist", 784), ("char", 20), ("ecg", 256), ("imdb", 500)):
        spec.write_text(f"name: s\ntask: {task}\ntask_options: {{data_dir: {tmp_path / 'made' / 'here'}}}\n"
                        f"seq_lens: [{seq_len}]\nmodels: [gru]\n")
        code, _, err = run_cli(["validate", "--check-data", str(spec)])
        assert code == 2 and _one_line(err).startswith("error: task_options.data_dir: got "), err
    inside = data_only / "sub" / "deeper"
    spec.write_text(f"name: s\ntask: smnist\ntask_options: {{data_dir: {inside}}}\nseq_lens: [784]\nmodels: [gru]\n")
    code, _, err = run_cli(["validate", "--check-data", str(spec)])
    assert code == 1 and "data missing" in err
    assert not (tmp_path / "made").exists() and not (data_only / "sub").exists() and not (tmp_path / "home").exists()


def test_an_allowed_folder_validates_and_the_worker_checks_again(data_only: Path, tmp_path: Path, run_cli,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Allowed at submit, refused where the trial is prepared when the worker does not allow it."""
    from seqarena import tasks
    from seqarena.platform.spec import load_spec
    from seqarena.workers import make_config, prepare

    shelf = tmp_path / "shelf"
    shelf.mkdir()
    book = shelf / "book.txt"
    book.write_text((data_only / "book.txt").read_text())
    monkeypatch.setenv("SEQARENA_DATA_ALLOW", f"/nonexistent{__import__('os').pathsep}{shelf}")
    spec = _char_spec(tmp_path, book)
    assert run_cli(["validate", str(spec)])[0] == 0
    stored = load_spec(spec).to_yaml()

    monkeypatch.delenv("SEQARENA_DATA_ALLOW")  # the worker's environment allows only its data folder
    with pytest.raises(BadInput) as refused:
        load_spec(stored)
    assert refused.value.field == "task_options.path"
    with pytest.raises(BadInput) as refused:
        tasks.build("char", 20, corpus="path", path=str(book), n_val=4, n_test=4)
    assert refused.value.field == "option.path"
    with pytest.raises(BadInput) as refused:
        prepare(make_config(model="gru", task="char", seq_len=20, hparams={"hidden_size": 4},
                            task_options={"corpus": "path", "path": str(book)}, steps=2, eval_every=1))
    assert refused.value.field == "option.path"


@pytest.mark.parametrize(("command", "env", "start"), [
    (["run"], {"RAY_ADDRESS": "127.0.0.1:1"}, "error: RAY_ADDRESS: got '127.0.0.1:1'"),
    (["run"], {"RAY_ADDRESS": "ray://127.0.0.1:1"}, "error: RAY_ADDRESS: got 'ray://127.0.0.1:1'"),
    (["run"], {"MLFLOW_TRACKING_URI": "http://user:hunter2@127.0.0.1:1/mlflow"},
     "error: MLFLOW_TRACKING_URI: got 'http://127.0.0.1:1/mlflow'"),
    (["worker", "--once"], {"RAY_ADDRESS": "127.0.0.1:1"}, "error: RAY_ADDRESS: got '127.0.0.1:1'"),
    (["worker", "--once"], {"MLFLOW_TRACKING_URI": "http://127.0.0.1:1"}, "error: MLFLOW_TRACKING_URI: got "),
])
def test_an_unreachable_ray_or_mlflow_fails_within_seconds(command: list[str], env: dict[str, str], start: str,
                                                           run_cli, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """`run` and `worker` retried an unreachable RAY_ADDRESS for ever, and MLflow for 250 s."""
    import time

    monkeypatch.setenv("SEQARENA_HOME", str(tmp_path / "home"))
    for name in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI", "SEQARENA_DB_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    spec = tmp_path / "spec.yaml"
    spec.write_text(GOOD)
    started = time.monotonic()
    code, out, err = run_cli([*command, *([str(spec)] if command == ["run"] else [])])
    line = _one_line(err)
    assert code == 2 and line.startswith(start) and "nothing answers at 127.0.0.1:1" in line, line
    assert time.monotonic() - started < 30 and "hunter2" not in out + err
    assert not (tmp_path / "home").exists()


@pytest.mark.parametrize(("resources", "start"), [
    ("{cpus_per_trial: 1000}", "error: resources.cpus_per_trial: got 1000.0; allowed: a reservation one node "
                               "of this machine can hold"),
    ("{gpus_per_trial: 64}", "error: resources.gpus_per_trial: got 64.0; allowed: a reservation one node "
                             "of this machine can hold"),
])
def test_run_refuses_a_trial_this_machine_cannot_hold(resources: str, start: str, run_cli, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """`run` waited for ever (Tune's 'no trial is running' every 60 s)."""
    monkeypatch.setenv("SEQARENA_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    spec = tmp_path / "spec.yaml"
    spec.write_text(GOOD + f"resources: {resources}\n")
    code, out, err = run_cli(["run", str(spec)])
    assert code == 2 and out == "" and _one_line(err).startswith(start)
    assert not (tmp_path / "home").exists()


def test_placement_needs_one_node_that_holds_the_whole_reservation() -> None:
    from seqarena.platform.capacity import Cluster, check_placeable
    from seqarena.platform.spec import Resources

    two_nodes = Cluster(16, 1, "c", nodes=((8, 0), (8, 1)))
    check_placeable(Resources(cpus_per_trial=8, gpus_per_trial=1), two_nodes)
    with pytest.raises(BadInput) as refused:  # 16 CPUs in all, but no node has 9
        check_placeable(Resources(cpus_per_trial=9), two_nodes)
    assert refused.value.field == "resources.cpus_per_trial" and "8 CPUs 0 GPUs, 8 CPUs 1 GPUs" in str(refused.value)
    with pytest.raises(BadInput) as refused:
        check_placeable(Resources(cpus_per_trial=1, gpus_per_trial=2), two_nodes)
    assert refused.value.field == "resources.gpus_per_trial"
    check_placeable(Resources(cpus_per_trial=1000), Cluster(0, 0, "no Ray cluster at x", reachable=False))


def test_train_refuses_a_model_over_the_parameter_limit(run_cli, tmp_path: Path) -> None:
    """`--hidden 16384 --layers 64` built a 10^11-parameter GRU (hours, then out of memory)."""
    import time

    started = time.monotonic()
    code, out, err = run_cli(["train", "--model", "gru", *TINY[:4], "--hidden", "16384", "--layers", "64",
                              "--checkpoint-dir", str(tmp_path / "ckpt")])
    assert code == 2 and out == "" and time.monotonic() - started < 10
    assert _one_line(err).startswith("error: hidden_size: got 16384; allowed: a model of at most 20,000,000 "
                                     "parameters (gru with hidden_size=16384, num_layers=64 has 102,280,298,496")
    assert not (tmp_path / "ckpt").exists()


def _damaged_copy(source: Path, target: Path, table: str) -> bytes:
    """A consistent copy of the SQLite file `source` at `target` with the root page of `table` overwritten
    (as a bad disk sector or a torn write leaves it); returns the damaged file's bytes."""
    target.parent.mkdir(parents=True)
    with sqlite3.connect(source) as original, sqlite3.connect(target) as copy:
        original.backup(copy)
        page_size = copy.execute("PRAGMA page_size").fetchone()[0]
        (root,) = copy.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()
    copy.close()
    with target.open("r+b") as file:
        file.seek((root - 1) * page_size)
        file.write(b"\xde\xad\xbe\xef" * 64)
    return target.read_bytes()


@pytest.mark.parametrize("table", ["searches", "jobs"])
def test_submit_into_a_damaged_sqlite_file_is_refused(table: str, run_cli, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # searches: a table submit never reads, so the write went through and submit exited 0 (issue 18 §7);
    # jobs: the table it writes, which raised a DatabaseError quoting the whole statement, exit 1
    monkeypatch.delenv("SEQARENA_DB_URL", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: x\ntask: adding\nseq_lens: [10]\nmodels: [gru]\n")
    monkeypatch.setenv("SEQARENA_HOME", str(tmp_path / "good"))
    assert run_cli(["submit", str(spec)])[0] == 0
    damaged = _damaged_copy(tmp_path / "good" / "seqarena.db", tmp_path / "bad" / "seqarena.db", table)
    monkeypatch.setenv("SEQARENA_HOME", str(tmp_path / "bad"))
    code, out, err = run_cli(["submit", str(spec)])
    line = _one_line(err)
    assert code == 2 and out == "" and line.startswith("error: SEQARENA_DB_URL: got ")
    assert "malformed" in line or "damaged" in line
    assert (tmp_path / "bad" / "seqarena.db").read_bytes() == damaged
