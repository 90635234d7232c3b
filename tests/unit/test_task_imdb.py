"""IMDB sentiment on a small archive written here in the aclImdb_v1 layout (no network)."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import io
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from seqarena.errors import DataError
from seqarena.tasks import imdb
from seqarena.tasks.archives import Source
from seqarena.tasks.base import parse_options
from seqarena.tasks.data import DownloadError
from seqarena.tasks.imdb import IMDBOptions, IMDBSentiment
from tests.helpers import assert_stream_resumes

# Train: 12 positive and 12 negative reviews; test: 12 positive and 9 negative (a 12/21 majority).
# "film" is the most frequent training word (once per positive, twice per negative review); each
# review also has a word of its own ("aaa", "bbbb", ...).
POS_TRAIN = [f"A great film,<br /><br />the film's cast {chr(97 + i) * 3}." for i in range(12)]
NEG_TRAIN = [f"An AWFUL film. The film didn't work {chr(97 + i) * 4}!" for i in range(12)]
POS_TEST = [f"great great film film zebra {i}" for i in range(12)]
NEG_TEST = [f"awful film film zebra {i}" for i in range(9)]


#: The training reviews in the task's order: by label (negative first), then by review id.
SORTED_TRAIN = NEG_TRAIN[::-1] + POS_TRAIN[::-1]


@functools.cache
def _archive_bytes() -> bytes:
    members = {"aclImdb/imdb.vocab": "the\nfilm\n", "aclImdb/README": "readme",
               "aclImdb/train/unsup/0_0.txt": "unlabelled unicorn text"}
    for split, label, texts in (("train", "pos", POS_TRAIN), ("train", "neg", NEG_TRAIN),
                                ("test", "pos", POS_TEST), ("test", "neg", NEG_TEST)):
        for i, text in enumerate(texts):
            rating = 8 if label == "pos" else 2
            members[f"aclImdb/{split}/{label}/{100 - i}_{rating}.txt"] = text
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, text in reversed(members.items()):  # the reader must not rely on the tar order
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture
def data_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`$SEQARENA_DATA` holding the small archive, pinned by its sha256."""
    root = tmp_path / "data"
    path = root / "imdb" / imdb.ARCHIVE.name
    path.parent.mkdir(parents=True)
    path.write_bytes(_archive_bytes())
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    monkeypatch.setattr(imdb, "ARCHIVE", dataclasses.replace(imdb.ARCHIVE, sha256=digest))
    monkeypatch.setenv("SEQARENA_DATA", str(root))
    return root


def _task(seq_len: int = 12, **options: object) -> IMDBSentiment:
    return IMDBSentiment(seq_len, parse_options(IMDBOptions, {"n_val": 6, **options}))


def test_tokenizer_keeps_letters_and_inner_apostrophes() -> None:
    assert imdb.tokenize("I didn't LIKE it.<br /><br />10/10 -- Café's 'best' film_x") == [
        "i", "didn't", "like", "it", "café's", "best", "film", "x"]


def test_batches_have_the_right_shapes_labels_and_counts(data_root: Path) -> None:
    task = _task(seq_len=12)
    assert (task.seq_len, task.length, task.input_size, task.output_size) == (12, 12, 100, 1)
    x, y = task.train_stream(0).next(5)
    assert x.shape == (5, 12, 100) and x.dtype == torch.float32
    assert y.shape == (5,) and y.dtype == torch.float32 and set(y.tolist()) <= {0.0, 1.0}
    val_x, val_y = task.eval_set("val")
    test_x, test_y = task.eval_set("test")
    assert val_x.shape == (6, 12, 100) and test_x.shape == (21, 12, 100)
    assert int(test_y.sum()) == 12 and len(test_y) == 21
    train_labels = task.rows["train"][1]
    assert int(train_labels.sum() + val_y.sum()) == 12 and len(train_labels) + len(val_y) == 24


def test_validation_is_a_fixed_seeded_part_of_training(data_root: Path) -> None:
    task = _task()
    train, val = set(task.train_index.tolist()), set(task.val_index.tolist())
    assert not train & val and train | val == set(range(24)) and len(val) == 6
    assert torch.equal(torch.from_numpy(_task().val_index), torch.from_numpy(task.val_index))
    assert set(_task(split_seed=1).val_index.tolist()) != val
    assert not torch.equal(task.eval_set("val")[0][:], task.eval_set("test")[0][:][:6])


def test_vocabulary_comes_from_the_training_part_by_frequency(data_root: Path) -> None:
    task = _task(vocab_size=3)
    corpus = imdb.load(imdb.ensure_archive(imdb.ARCHIVE), imdb.ARCHIVE.sha256)
    words = {word: i for i, word in enumerate(corpus.words)}
    ids = imdb.build_vocabulary(corpus.train, task.train_index, len(corpus.words), 3)
    assert ids[words["film"]] == 2  # the most frequent word
    assert ids[words["zebra"]] == imdb.UNK  # a test-only word never gets an id
    assert ids[words["aaa"]] == imdb.UNK and sorted(ids[ids > imdb.UNK].tolist()) == [2, 3, 4]
    assert task.vocab_size == 3 and task.embedding.shape == (5, 100)
    seen = {word for i in task.train_index for word in imdb.tokenize(SORTED_TRAIN[i])}
    everything = imdb.build_vocabulary(corpus.train, task.train_index, len(corpus.words), 10**6)
    assert everything.max() - 1 == len(seen) and "zebra" not in seen


def test_reviews_keep_their_first_tokens_and_are_padded_on_the_chosen_side(data_root: Path) -> None:
    left, right, short = _task(seq_len=8), _task(seq_len=8, padding="right"), _task(seq_len=2)
    lengths = (left.rows["test"][0] != imdb.PAD).sum(dim=1)
    assert sorted(lengths.tolist()) == [4] * 9 + [5] * 12  # digits are dropped; zebra is <unk>, not a pad
    row = int((lengths == 4).nonzero()[0, 0])  # "awful film film zebra"
    awful, film, zebra = left.rows["test"][0][row, 4:].tolist()[0], left.rows["test"][0][row, 5], imdb.UNK
    assert left.rows["test"][0][row].tolist() == [imdb.PAD] * 4 + [awful, film, film, zebra]
    assert right.rows["test"][0][row].tolist() == [awful, film, film, zebra] + [imdb.PAD] * 4
    assert short.rows["test"][0][row].tolist() == [awful, film]
    assert film == 2 and awful > 2  # "film" is the most frequent training word
    inputs = left.eval_set("test")[0][:]
    assert torch.equal(inputs[row, :4], torch.zeros(4, 100)) and torch.equal(inputs[row, -1], torch.zeros(100))
    assert torch.equal(inputs[row, -2], inputs[row, -3]) and torch.equal(inputs[row, -2], left.embedding[film])


def test_embedding_is_fixed_by_its_seed(data_root: Path) -> None:
    a, b, c = _task(), _task(), _task(embedding_seed=1)
    assert torch.equal(a.embedding, b.embedding) and not torch.equal(a.embedding, c.embedding)
    assert torch.equal(a.embedding[:2], torch.zeros(2, 100))
    assert _task(embedding_dim=16).eval_set("test")[0][:].shape == (21, 12, 16)


def test_training_stream_is_seeded_and_resumes_exactly(data_root: Path) -> None:
    task = _task()
    first, again, other = task.train_stream(3), task.train_stream(3), task.train_stream(4)
    a, b, c = first.next(4), again.next(4), other.next(4)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and not torch.equal(a[0], c[0])
    assert_stream_resumes(task, seed=3, batch_size=4, advance=5)  # crosses an epoch boundary (18 training reviews)


def test_baseline_is_the_test_majority_share_and_metrics_score_it(data_root: Path) -> None:
    task = _task()
    _x, y = task.eval_set("test")
    assert task.baseline == pytest.approx(12 / 21)
    always_positive = torch.full((len(y), 1), 3.0)
    assert float(task.metrics(always_positive, y)["accuracy"].mean()) == pytest.approx(12 / 21)
    assert float(task.loss(torch.zeros(len(y), 1), y)) == pytest.approx(0.693147, abs=1e-5)
    assert task.describe()["options"]["padding"] == "left"
    assert _task(n_test=5).eval_set("test")[0][:].shape[0] == 5


@pytest.mark.parametrize(
    ("seq_len", "options", "field", "allowed"),
    [
        (None, {}, "seq_len", "positive number of tokens"),
        (10, {"padding": "middle"}, "option.padding", "'left' or 'right'"),
        (10, {"vocab_size": 0}, "option.vocab_size", "greater than or equal to 1"),
        (10, {"n_val": 24}, "option.n_val", "fewer than the 24 training reviews"),
        (10, {"glove": True}, "option.glove", "one of vocab_size, embedding_dim"),
    ],
)
def test_bad_input_names_the_field_and_what_is_allowed(data_root: Path, seq_len: int | None, options: dict,
                                                         field: str, allowed: str) -> None:
    with pytest.raises(ValueError, match=rf"^{field}: got .*allowed: .*{allowed}"):
        IMDBSentiment(seq_len, parse_options(IMDBOptions, options))


def test_offline_without_the_archive_is_a_clear_error_and_writes_nothing(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQARENA_DATA", str(tmp_path / "data"))
    with pytest.raises(DataError, match=r"aclImdb_v1.tar.gz: got 'missing file'.*SEQARENA_OFFLINE"):
        _task()
    assert not (tmp_path / "data").exists()


def test_an_archive_with_another_checksum_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "imdb" / imdb.ARCHIVE.name
    path.parent.mkdir()
    path.write_bytes(_archive_bytes())  # the real pinned digest is not this file's
    with pytest.raises(DataError, match="sha256 does not match"):
        _task(data_dir=tmp_path)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    """The small archive on a local HTTP server; yields its URL."""
    folder = tmp_path / "served"
    folder.mkdir()
    (folder / imdb.ARCHIVE.name).write_bytes(_archive_bytes())
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/{imdb.ARCHIVE.name}"
    server.shutdown()
    server.server_close()


def test_a_download_is_verified_by_the_archive_bytes(tmp_path: Path, served: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEQARENA_OFFLINE")
    root = tmp_path / "data"
    wrong = dataclasses.replace(imdb.ARCHIVE, sources=(Source(served),))
    monkeypatch.setattr(imdb, "ARCHIVE", wrong)
    with pytest.raises(DownloadError, match="sha256 of the file"):
        _task(data_dir=root)
    assert list((root / "imdb").iterdir()) == []
    digest = hashlib.sha256(_archive_bytes()).hexdigest()
    monkeypatch.setattr(imdb, "ARCHIVE", dataclasses.replace(wrong, sha256=digest))
    assert _task(data_dir=root).eval_set("test")[0][:].shape == (21, 12, 100)
    assert [p.name for p in (root / "imdb").iterdir()] == [imdb.ARCHIVE.name]


def test_a_trial_evaluates_the_lazily_built_sets(data_root: Path) -> None:
    """A whole trial on the task: evaluation reads the sets a batch at a time (`LazyRows`), and its
    test accuracy is a mean over all 21 test reviews (a multiple of 1/21)."""
    from seqarena.workers import make_config, run_trial

    config = make_config(model="gru", task="imdb", seq_len=12, steps=3, eval_every=1, seed=0,
                         hparams={"hidden_size": 8, "batch_size": 4}, task_options={"n_val": 6}, eval_batch_size=5)
    result = run_trial(config)
    assert result.status == "completed" and result.baseline == pytest.approx(12 / 21)
    assert round(result.metric * 21) == pytest.approx(result.metric * 21, abs=1e-9)
