"""The `char` task on real public-domain texts (tests/data/canterbury_text): windows, splits,
bits per character against independently computed unigram figures, sampling, options, PTB files."""

from __future__ import annotations

import collections
import functools
import gzip
import hashlib
import http.server
import math
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from seqarena import cells
from seqarena.errors import BadInput, DataError
from seqarena.tasks import char
from seqarena.tasks.base import parse_options
from seqarena.tasks.char import CharLM, CharOptions, sample_text
from tests.conftest import TEST_DATA
from tests.helpers import assert_stream_resumes, recorded_run

pytestmark = pytest.mark.usefixtures("one_thread")

TEXTS = TEST_DATA / "canterbury_text"
ALICE = TEXTS / "alice29.txt"  # CRLF; one character of its test split never occurs in training
AS_YOU_LIKE_IT = TEXTS / "asyoulik.txt"  # LF; every test character occurs in training


def build(seq_len: int, **options: Any) -> CharLM:
    return CharLM(seq_len, parse_options(CharOptions, options))


def from_text(path: Path, seq_len: int = 100, **options: Any) -> CharLM:
    return build(seq_len, corpus="path", path=str(path), **options)


def splits_of(path: Path) -> tuple[str, str, str]:
    """The 90/5/5 positional split, computed here from the file (CRLF -> LF)."""
    text = path.read_bytes().decode("utf-8").replace("\r\n", "\n")
    n_valid = n_test = int(len(text) * 0.05)
    n_train = len(text) - n_valid - n_test
    return text[:n_train], text[n_train:n_train + n_valid], text[n_train + n_valid:]


def unigram(train: str) -> dict[str, float]:
    counts = collections.Counter(train)
    return {c: k / len(train) for c, k in counts.items()}


def unigram_logits(task: CharLM, p: dict[str, float], steps: int, batch: int) -> torch.Tensor:
    """Logits `[B, T, V]` of the predictor that always answers the unigram distribution `p`."""
    unused = task.output_size - len(task.alphabet)  # <unk> and the symbols after it
    row = torch.tensor([math.log(p[c]) for c in task.alphabet] + [-1e9] * unused, dtype=torch.float64)
    return row.expand(batch, steps, -1)


# ---------------------------------------------------------------------------------------------
# Windows and splits


def test_batches_are_one_hot_windows_whose_targets_are_the_next_characters() -> None:
    task = from_text(ALICE, 64)
    train, _valid, _test = splits_of(ALICE)
    assert task.input_size == task.output_size == CharOptions().vocab_size == 128
    x, y = task.train_stream(0).next(32)
    assert x.shape == (32, 64, task.input_size) and x.dtype == torch.float32
    assert y.shape == (32, 64) and y.dtype == torch.int64
    assert torch.equal(x.sum(dim=2), torch.ones(32, 64))
    assert torch.equal(x.argmax(dim=2)[:, 1:], y[:, :-1])
    for inputs, targets in zip(x, y, strict=True):
        assert task.decode(inputs.argmax(dim=1)) + task.decode(targets[-1:]) in train
    assert int(y.max()) < task.unk  # training never sees <unk>


def test_the_splits_are_consecutive_disjoint_pieces_of_the_text() -> None:
    task = from_text(ALICE, 100)
    train, valid, test = splits_of(ALICE)
    assert [task.decode(task.splits[s]).replace(char.UNK_CHAR, "?") for s in ("train", "val")] == [train, valid]
    assert len(task.splits["test"]) == len(test)
    assert task.alphabet == tuple(sorted(set(train)))


def test_evaluation_windows_tile_their_split_and_never_occur_in_training() -> None:
    seq_len = 100
    task = from_text(AS_YOU_LIKE_IT, seq_len, n_val=20)
    train, valid, test = splits_of(AS_YOU_LIKE_IT)
    val_x, val_y = task.eval_set("val")
    test_x, test_y = task.eval_set("test")
    assert val_x.shape == (20, seq_len, task.input_size) and val_y.shape == (20, seq_len)
    assert len(test_x) == (len(test) - 1) // seq_len  # n_test (1000) exceeds what the split holds
    for i, (inputs, targets) in enumerate(zip(test_x, test_y, strict=True)):
        window = task.decode(inputs.argmax(dim=1)) + task.decode(targets[-1:])
        assert window == test[i * seq_len:i * seq_len + seq_len + 1]
        assert window not in train
    assert task.decode(val_x[0].argmax(dim=1)) == valid[:seq_len]
    assert torch.equal(test_x, from_text(AS_YOU_LIKE_IT, seq_len, n_val=5).eval_set("test")[0])


def test_characters_unseen_in_training_map_to_unk() -> None:
    task = from_text(ALICE)
    train, _valid, test = splits_of(ALICE)
    seen = set(train)
    unseen = [i for i, c in enumerate(test) if c not in seen]
    assert unseen  # alice29's test split holds a character its training split lacks
    assert (task.splits["test"] == task.unk).nonzero().flatten().tolist() == unseen
    assert task.encode("ab\u00e9").tolist() == [task.alphabet.index("a"), task.alphabet.index("b"), task.unk]
    assert task.decode(task.encode("Alice was")) == "Alice was"
    assert task.decode([task.unk]) == char.UNK_CHAR


# ---------------------------------------------------------------------------------------------
# Streams


def test_training_streams_are_seeded_and_resume_from_their_state() -> None:
    task = from_text(ALICE, 50)
    a, b, c = task.train_stream(3), task.train_stream(3), task.train_stream(4)
    first = a.next(8)
    assert all(torch.equal(p, q) for p, q in zip(first, b.next(8), strict=True))
    assert not torch.equal(first[1], c.next(8)[1])
    assert_stream_resumes(task, seed=3, batch_size=8)


# ---------------------------------------------------------------------------------------------
# Baseline and metrics


def test_baseline_is_the_unigram_entropy_of_the_training_split() -> None:
    task = from_text(ALICE)
    train, _valid, _test = splits_of(ALICE)
    p = unigram(train)
    entropy = -sum(q * math.log2(q) for q in p.values())
    assert task.baseline == pytest.approx(entropy, abs=1e-9)
    # The unigram predictor scores exactly that entropy on the whole training split.
    target = task.splits["train"][None]
    bpc = task.metrics(unigram_logits(task, p, target.shape[1], 1), target)["bpc"]
    assert float(bpc[0]) == pytest.approx(entropy, abs=1e-9)


def test_the_unigram_predictor_scores_the_test_cross_entropy() -> None:
    seq_len = 100
    task = from_text(AS_YOU_LIKE_IT, seq_len)
    train, _valid, test = splits_of(AS_YOU_LIKE_IT)
    p = unigram(train)
    scored = test[1:1 + (len(test) - 1) // seq_len * seq_len]  # the characters the windows predict
    cross_entropy = -sum(math.log2(p[c]) for c in scored) / len(scored)
    _x, y = task.eval_set("test")
    values = task.metrics(unigram_logits(task, p, seq_len, len(y)).float(), y)
    assert float(values["bpc"].mean()) == pytest.approx(cross_entropy, abs=1e-4)
    assert values["bpc"].shape == values["accuracy"].shape == (len(y),)
    most_common = collections.Counter(train).most_common(1)[0][0]
    assert float(values["accuracy"].mean()) == pytest.approx(scored.count(most_common) / len(scored))
    loss = task.loss(unigram_logits(task, p, seq_len, len(y)).float(), y)
    assert float(loss) / math.log(2) == pytest.approx(cross_entropy, abs=1e-4)


# ---------------------------------------------------------------------------------------------
# Sampling


def tiny_net(task: CharLM) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(cells.build("gru", task.input_size, 16), task.head(16))


def test_sampling_returns_the_prime_and_length_characters_of_the_alphabet() -> None:
    task = from_text(ALICE, 20)
    net = tiny_net(task)
    text = sample_text(net, task, "Alice ", 40, generator=torch.Generator().manual_seed(1))
    assert text.startswith("Alice ") and len(text) == len("Alice ") + 40
    assert set(text) <= set(task.alphabet)
    again = sample_text(net, task, "Alice ", 40, generator=torch.Generator().manual_seed(1))
    other = sample_text(net, task, "Alice ", 40, generator=torch.Generator().manual_seed(2))
    assert again == text and other != text
    assert sample_text(net, task, "Alice", 0) == "Alice"
    assert net.training  # the mode is restored


def test_sampling_never_draws_unk() -> None:
    task = from_text(ALICE, 10)
    head = nn.Linear(task.input_size, task.output_size)
    with torch.no_grad():  # logits favour <unk> overwhelmingly
        head.weight.zero_()
        head.bias.zero_()
        head.bias[task.unk] = 50.0
    text = sample_text(head, task, "a", 30, generator=torch.Generator().manual_seed(0))
    assert len(text) == 31 and char.UNK_CHAR not in text and set(text) <= set(task.alphabet)


@pytest.mark.parametrize(("prime", "length", "temperature", "field"), [
    ("Alice\u00e9", 5, 1.0, "prime"),
    ("", 5, 1.0, "prime"),
    ("Alice", -1, 1.0, "length"),
    ("Alice", 5, 0.0, "temperature"),
])
def test_bad_sampling_arguments_name_the_field(prime: str, length: int, temperature: float, field: str) -> None:
    task = from_text(ALICE, 10)
    with pytest.raises(BadInput, match=rf"^{field}: got .*allowed") as error:
        sample_text(tiny_net(task), task, prime, length, temperature)
    if field == "prime":  # the message lists the allowed characters
        assert "abcdefghijklmnopqrstuvwxyz" in str(error.value)


# ---------------------------------------------------------------------------------------------
# Options


@pytest.mark.parametrize(("options", "field"), [
    ({"corpus": "path"}, "option.path"),
    ({"corpus": "novel"}, "option.corpus"),
    ({"corpus": "path", "path": "/nonexistent/book.txt"}, "option.path"),
    ({"corpus": "path", "path": str(TEXTS)}, "option.path"),
    ({"corpus": "ptb", "path": str(ALICE)}, "option.path"),
    ({"corpus": "path", "path": str(ALICE), "n_val": 0}, "option.n_val"),
    ({"corpus": "path", "path": str(ALICE), "test_fraction": 0.7}, "option.test_fraction"),
    ({"corpus": "path", "path": str(ALICE), "vocab": 10}, "option.vocab"),
])
def test_bad_options_name_the_field(options: dict[str, Any], field: str) -> None:
    with pytest.raises(BadInput, match=rf"^{field}: got .*allowed"):
        build(50, **options)


def test_a_binary_file_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "book.txt.gz"
    archive.write_bytes(gzip.compress(ALICE.read_bytes()))
    with pytest.raises(BadInput, match=r"^option.path: got .*UTF-8"):
        from_text(archive)
    nul = tmp_path / "nul.bin"
    nul.write_bytes(b"abc\x00def" * 1000)
    with pytest.raises(BadInput, match=r"^option.path: got .*NUL"):
        from_text(nul)


def test_a_text_too_short_for_one_window_per_split_is_refused(tmp_path: Path) -> None:
    short = tmp_path / "short.txt"
    short.write_text(ALICE.read_text()[:1000])  # 50 characters each for validation and test
    assert from_text(short, 49).eval_set("test")[0].shape[0] == 1
    with pytest.raises(BadInput, match=r"^option.path: got .*seq_len \+ 1 = 51"):
        from_text(short, 50)


def test_a_relative_path_is_recorded_as_absolute(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(TEXTS)
    task = from_text(Path("alice29.txt"))
    assert task.describe()["options"]["path"] == str(ALICE)


def test_the_one_hot_width_is_the_declared_vocab_size_and_must_hold_the_alphabet() -> None:
    """V is an option (the task's sizes are known before the text is read); the exact fit
    (the training split's characters + <unk>) works, one symbol less is refused."""
    train, _valid, _test = splits_of(ALICE)
    exact = from_text(ALICE, 64, vocab_size=len(set(train)) + 1)
    assert exact.input_size == exact.output_size == exact.unk + 1 == 73
    assert exact.train_stream(0).next(4)[0].shape == (4, 64, 73)
    with pytest.raises(BadInput, match=r"^option.vocab_size: got 72; allowed: at least 73: the 72 distinct"):
        from_text(ALICE, 64, vocab_size=72)


def test_a_text_with_a_huge_alphabet_is_refused(tmp_path: Path) -> None:
    ideographs = tmp_path / "ideographs.txt"
    ideographs.write_text("".join(chr(0x4E00 + i) for i in range(char.MAX_ALPHABET + 1)) * 3)
    with pytest.raises(BadInput, match=rf"^option.path: got .*at most {char.MAX_ALPHABET} distinct"):
        from_text(ideographs)


# ---------------------------------------------------------------------------------------------
# Penn Treebank files

PTB_LINES = {
    "train": " a e r _ b a n k n o t e _ b e r l i t z \n c a l l o w a y _ < u n k > \n\n",
    "valid": " c o n s u m e r s _ m a y \n",
    "test": " n o _ i t _ w a s n ' t _ b l a c k _ m o n d a y \n",
}


def write_ptb(folder: Path) -> dict[str, char.RemoteFile]:
    """Small files in the PTB char format; their RemoteFiles with the true sha256."""
    folder.mkdir(parents=True)
    files = {}
    for split, content in PTB_LINES.items():
        name = f"ptb.char.{split}.txt"
        (folder / name).write_text(content)
        files[split] = char.RemoteFile(name, hashlib.sha256(content.encode()).hexdigest())
    return files


def test_ptb_offline_without_files_is_a_data_error_and_writes_nothing(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQARENA_DATA", str(tmp_path))
    with pytest.raises(DataError, match=r"missing file.*ptb\.char\.train\.txt.*SEQARENA_OFFLINE"):
        build(50)
    assert list(tmp_path.iterdir()) == []


def test_ptb_files_become_one_character_stream_per_split(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(char, "PTB_FILES", write_ptb(tmp_path / "ptb_char"))
    task = build(5, corpus="ptb", data_dir=tmp_path)
    assert task.decode(task.splits["train"]) == "aer_banknote_berlitz\ncalloway_<unk>\n"
    seen = set("aer_banknote_berlitz\ncalloway_<unk>\n")
    expected_test = "".join(c if c in seen else char.UNK_CHAR for c in "no_it_wasn't_black_monday\n")
    assert task.decode(task.splits["test"]) == expected_test
    assert task.alphabet[0] == "\n" and "_" in task.alphabet and " " not in task.alphabet


def test_ptb_files_failing_the_unverified_checksums_are_refused(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    write_ptb(tmp_path / "ptb_char")
    monkeypatch.setattr(char, "PTB_PINNED", False)
    with pytest.raises(DataError, match=r"^option.corpus: got 'ptb'.*still to be verified"):
        build(5, corpus="ptb", data_dir=tmp_path)


def test_ptb_files_are_verified_against_digests_the_user_gives(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """While the built-in digests are unpinned, `ptb_sha256` pins the files (as a mapping or as the
    command line's train=HEX,valid=HEX,test=HEX); a file that differs is refused by its digest."""
    files = write_ptb(tmp_path / "ptb_char")
    monkeypatch.setattr(char, "PTB_PINNED", False)
    digests = {split: remote.sha256 for split, remote in files.items()}
    text = ",".join(f"{split}={digest.upper()}" for split, digest in digests.items())
    for given in (digests, text):
        task = build(5, corpus="ptb", data_dir=tmp_path, ptb_sha256=given)
        assert task.options.ptb_sha256 == digests
        assert task.decode(task.splits["train"]) == "aer_banknote_berlitz\ncalloway_<unk>\n"
    wrong = {**digests, "valid": hashlib.sha256(b"another text").hexdigest()}
    with pytest.raises(DataError, match="sha256"):
        build(5, corpus="ptb", data_dir=tmp_path, ptb_sha256=wrong)


@pytest.mark.parametrize("given", ["train=" + "a" * 64, {"train": "a" * 64, "valid": "a" * 64, "test": "xyz"},
                                   {"train": "a" * 64, "valid": "a" * 64, "test": "a" * 64, "extra": "a" * 64}])
def test_bad_ptb_digests_name_the_option(given: object) -> None:
    with pytest.raises(BadInput) as caught:
        build(5, corpus="ptb", ptb_sha256=given)
    assert caught.value.field == "option.ptb_sha256"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[str]:
    """A local HTTP server for `tmp_path/served` (PTB-format files with the wrong content)."""
    write_ptb(tmp_path / "served")
    handler = functools.partial(_QuietHandler, directory=str(tmp_path / "served"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_a_ptb_download_with_another_checksum_is_not_kept(tmp_path: Path, mirror: str,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEQARENA_OFFLINE")
    monkeypatch.setattr(char, "PTB_MIRRORS", (mirror,))
    with pytest.raises((DataError, char.DownloadError), match="sha256 of the content is"):
        build(5, corpus="ptb", data_dir=tmp_path / "data")
    assert list((tmp_path / "data" / "ptb_char").iterdir()) == []


def test_sample_command_generates_text_from_a_trained_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          run_cli: Any) -> None:
    """`seqarena sample` on a real trained-and-recorded char trial: the prime, then `length` characters
    of the training alphabet; the same seed gives the same text."""

    monkeypatch.setenv("SEQARENA_HOME", str(tmp_path))
    monkeypatch.delenv("SEQARENA_DB_URL", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    book = str(TEST_DATA / "canterbury_text" / "alice29.txt")
    run_id = recorded_run(tmp_path, {"model": "gru", "task": "char", "seq_len": 40,
                                     "task_options": {"corpus": "path", "path": book, "n_val": 8, "n_test": 8},
                                     "hparams": {"hidden_size": 16, "batch_size": 8}, "steps": 10, "eval_every": 5})
    code, out, err = run_cli(["sample", "--run", run_id, "--prime", "The ", "--length", "120", "--seed", "3"])
    assert code == 0, err
    text = out.rstrip("\n")
    alphabet = set(CharLM(40, parse_options(CharOptions, {"corpus": "path", "path": book})).alphabet)
    assert text.startswith("The ") and len(text) == 4 + 120 and set(text) <= alphabet
    assert run_cli(["sample", "--run", run_id, "--prime", "The ", "--length", "120", "--seed", "3"])[1] == out
    code, _, err = run_cli(["sample", "--run", run_id, "--prime", "\u2603"])
    assert code == 2 and "prime" in err
