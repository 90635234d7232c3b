"""Bad input refused early (issue 18 §6, §7): each case one line on stderr, exit 2, nothing written."""

from __future__ import annotations

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
