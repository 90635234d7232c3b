"""IMDB sentiment (Maas et al. 2011, "Learning word vectors for sentiment analysis", ACL): one review, one label.

Data: the Stanford archive `aclImdb_v1.tar.gz`: 25 000 training and 25 000 test reviews, half
positive, as `aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt` (the unlabelled `train/unsup`
reviews and the shipped `imdb.vocab` are not used). Protocol of coRNN's `IMDB/utils.py`
(docs/reference/tasks.md §7) where this framework allows it:

* Split: the 25 000 training reviews become 17 500 train / 7 500 validation (`n_val`, a fixed
  split drawn with `split_seed`, as torchtext's default 70/30 `split()`); the official 25 000 test
  reviews are the test set (in a fixed shuffled order, so `n_test < 25 000` is a fair sample).
* Vocabulary: the `vocab_size` (25 000) most frequent words of the *training part* (validation
  and test reviews do not vote; ties go alphabetically), plus id 0 `<pad>` and id 1 `<unk>`.
* Labels: positive = 1. One logit, `BCEWithLogitsLoss`, accuracy of `sigmoid(logit) > 0.5`.
  Baseline: the majority share of the test labels (0.5 on the balanced test set).

Deviations, all forced by models that take `[B, T, input_size]` floats and by fixed-size batches:

* Tokens (`tokenize`): lower-cased text, `<br />` tags replaced by spaces, then runs of letters
  (any script) with apostrophes *inside* a word kept ("didn't", "director's"); digits and
  punctuation are dropped. coRNN used spaCy, which keeps punctuation and numbers as tokens.
* Length: every review becomes exactly `seq_len` tokens: the first `seq_len` are kept, shorter
  reviews are padded. coRNN fed full reviews in bucketed batches, padded at the end, and read the
  state after the last pad. `padding="left"` (default) puts the pads first, so that a last-step
  readout comes right after the review's last word instead of after up to hundreds of pad steps;
  `padding="right"` is coRNN's placement.
* Embedding: coRNN trains a 100-d embedding initialised from GloVe 6B. Here the task owns a
  *fixed* table of `embedding_dim` (100) random N(0, 1) rows drawn with `embedding_seed` (the
  `unk_init=normal_` of coRNN's words missing from GloVe), with the `<pad>` and `<unk>` rows zero
  as coRNN zeroes them, applied in the input pipeline: inputs are `table[ids]`, `[B, T, 100]`.
  It is not trained, and GloVe is not loaded (no pinned checksum for its 822 MB archive here).

Memory: evaluation sets are float tensors of `N × seq_len × embedding_dim × 4` bytes; the full
test set at `seq_len = 200` takes 2 GB (use `n_test` to bound it).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import Field
from torch import Tensor

from seqarena.errors import BadInput, DataError
from seqarena.tasks.archives import Archive, Source, archive_path, ensure_archive, tar_members
from seqarena.tasks.base import (
    BatchStream,
    DatasetOptions,
    LazyRows,
    ShuffledStream,
    SolvedWhen,
    Split,
    Task,
    TaskShape,
)
from seqarena.tasks.data import DataFiles
from seqarena.tasks.har2 import binary_loss, binary_metrics, majority_share

#: sha256 of the archive file as served (84 125 825 bytes): the digest TensorFlow Datasets and
#: several other loaders pin. Not recomputed by us (no network here); any other file is refused.
IMDB_SHA256 = "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe"
ARCHIVE = Archive(dataset="imdb", name="aclImdb_v1.tar.gz", sha256=IMDB_SHA256,
                  sources=(Source("https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"),))
PAD, UNK = 0, 1
#: The official test reviews are stored by label; this fixed order shuffles them once for everyone.
TEST_ORDER_SEED = 0
_REVIEW = re.compile(r"aclImdb/(train|test)/(pos|neg)/(\d+)_(\d+)\.txt")
_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)*")


def tokenize(text: str) -> list[str]:
    """Lower-case words: runs of letters, apostrophes inside a word kept; `<br />` separates."""
    return _WORD.findall(_BREAK.sub(" ", text.lower()))


@dataclass(frozen=True)
class Reviews:
    """Tokenised reviews: review `i` is `tokens[offsets[i]:offsets[i + 1]]` (indices into `Corpus.words`)."""

    tokens: np.ndarray
    offsets: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def review(self, i: int) -> np.ndarray:
        return self.tokens[self.offsets[i]:self.offsets[i + 1]]


@dataclass(frozen=True)
class Corpus:
    """Both splits; `words` is the sorted list of every word of the archive."""

    words: tuple[str, ...]
    train: Reviews
    test: Reviews


def _sorted_reviews(raw: dict[str, bytes], split: str) -> list[tuple[int, str]]:
    """`(label, text)` of one split, ordered by label then review id (independent of the tar order)."""
    keyed = []
    for name, data in raw.items():
        match = _REVIEW.fullmatch(name)
        if match and match[1] == split:
            keyed.append(((match[2] == "pos", int(match[3])), data.decode("utf-8", errors="replace")))
    keyed.sort(key=lambda item: item[0])
    return [(int(positive), text) for (positive, _id), text in keyed]


def _index(reviews: list[tuple[int, str]], vocabulary: dict[str, int]) -> Reviews:
    """Tokenise `reviews`, numbering new words in order of first appearance in `vocabulary`."""
    pieces, lengths = [], []
    for _label, text in reviews:
        ids = [vocabulary.setdefault(word, len(vocabulary)) for word in tokenize(text)]
        pieces.append(np.asarray(ids, dtype=np.int32))
        lengths.append(len(ids))
    offsets = np.zeros(len(reviews) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    tokens = np.concatenate(pieces) if pieces else np.zeros(0, np.int32)
    return Reviews(tokens, offsets, np.array([label for label, _text in reviews], dtype=np.int64))


@functools.lru_cache(maxsize=1)
def load(path: Path, sha256: str) -> Corpus:
    """Read and tokenise the verified archive `path` (cached per process and content)."""
    raw = tar_members(path, lambda name: _REVIEW.fullmatch(name) is not None)
    splits = {split: _sorted_reviews(raw, split) for split in ("train", "test")}
    for split, reviews in splits.items():
        if not reviews:
            raise DataError(str(path), f"an archive without aclImdb/{split}/{{pos,neg}}/*.txt reviews",
                            "the aclImdb_v1 layout")
    first_seen: dict[str, int] = {}
    indexed = {split: _index(reviews, first_seen) for split, reviews in splits.items()}
    words = sorted(first_seen)
    renumber = np.empty(len(words), dtype=np.int32)  # first-seen number -> alphabetical number
    renumber[[first_seen[word] for word in words]] = np.arange(len(words), dtype=np.int32)
    train, test = (Reviews(renumber[r.tokens], r.offsets, r.labels) for r in (indexed["train"], indexed["test"]))
    return Corpus(tuple(words), train, test)


def build_vocabulary(reviews: Reviews, index: np.ndarray, n_words: int, size: int) -> np.ndarray:
    """Map from word number to id: the `size` most frequent words of `reviews[index]` get ids 2, 3, …
    by falling frequency (ties alphabetically); every other word gets `UNK`."""
    chosen = np.zeros(len(reviews), dtype=bool)
    chosen[index] = True
    counts = np.bincount(reviews.tokens[np.repeat(chosen, np.diff(reviews.offsets))], minlength=n_words)
    ranked = np.lexsort((np.arange(n_words), -counts))
    kept = ranked[: min(size, int((counts > 0).sum()))]
    ids = np.full(n_words, UNK, dtype=np.int64)
    ids[kept] = np.arange(2, 2 + len(kept))
    return ids


def pad_reviews(reviews: Reviews, index: np.ndarray, ids: np.ndarray, seq_len: int,
                padding: Literal["left", "right"]) -> Tensor:
    """Token ids `[len(index), seq_len]` int64: the first `seq_len` tokens of each review, `PAD` elsewhere."""
    out = np.full((len(index), seq_len), PAD, dtype=np.int64)
    for row, i in enumerate(index):
        tokens = ids[reviews.review(i)[:seq_len]]
        if padding == "left":
            out[row, seq_len - len(tokens):] = tokens
        else:
            out[row, :len(tokens)] = tokens
    return torch.from_numpy(out)


def embedding_table(rows: int, dim: int, seed: int) -> Tensor:
    """The fixed input embedding `[rows, dim]`: N(0, 1) rows from `seed`, `PAD` and `UNK` rows zero."""
    table = torch.randn(rows, dim, generator=torch.Generator().manual_seed(seed))
    table[[PAD, UNK]] = 0.0
    return table


class IMDBOptions(DatasetOptions):
    """Options of the IMDB sentiment task."""

    vocab_size: int = Field(25_000, ge=1, le=1_000_000, description="most frequent training words kept")
    embedding_dim: int = Field(100, ge=1, le=1024, description="size of the fixed random word vectors")
    embedding_seed: int = Field(0, ge=0, description="seed of the word vectors")
    padding: Literal["left", "right"] = Field("left", description="where short reviews get their pads")
    n_val: int = Field(7500, ge=1, le=12_500, description="validation reviews carved from training")
    n_test: int = Field(25_000, ge=1, le=25_000, description="test reviews used (the first n, fixed order)")


class IMDBSentiment(Task):
    """IMDB reviews as `seq_len` fixed word vectors; many-to-one binary classification."""

    name = "imdb"
    metric_name = "accuracy"
    higher_is_better = True
    solved_when = SolvedWhen(
        "absolute", 0.8,
        "accuracy of at least 80 % [ours]: every recurrent model of the coRNN and UnICORNN tables reaches "
        "84.3-88.4 % (expRNN 84.3, LSTM 86.8, UnICORNN 88.4; docs/reference/results.md §6)")
    per_step = False
    options_model = IMDBOptions
    options: IMDBOptions

    def __init__(self, seq_len: int | None, options: IMDBOptions) -> None:
        super().__init__(seq_len, options)
        corpus = load(ensure_archive(ARCHIVE, options.data_dir), ARCHIVE.sha256)
        self.train_index, self.val_index = self._split(len(corpus.train))
        self.test_index = torch.randperm(len(corpus.test), generator=torch.Generator().manual_seed(TEST_ORDER_SEED))
        self.test_index = self.test_index[: options.n_test].numpy()
        ids = build_vocabulary(corpus.train, self.train_index, len(corpus.words), options.vocab_size)
        self.vocab_size = int(ids.max()) - 1  # words with their own id
        self.embedding = embedding_table(self.vocab_size + 2, options.embedding_dim, options.embedding_seed)
        self.rows = {part: self._rows(reviews, index, ids) for part, reviews, index in (
            ("train", corpus.train, self.train_index), ("val", corpus.train, self.val_index),
            ("test", corpus.test, self.test_index))}
        self.baseline = majority_share(self.rows["test"][1])

    @classmethod
    def shape_of(cls, seq_len: int | None, options: IMDBOptions) -> TaskShape:
        if seq_len is None or seq_len < 1:
            raise BadInput("seq_len", seq_len, "a positive number of tokens per review (e.g. 200 or 500)")
        return TaskShape(cls.name, seq_len, seq_len, input_size=options.embedding_dim, output_size=1,
                         per_step=cls.per_step)

    @classmethod
    def data_files(cls, options: IMDBOptions) -> DataFiles:
        return DataFiles((archive_path(ARCHIVE, options.data_dir),))

    def _split(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Indices of the training and validation parts of the official training reviews."""
        if self.options.n_val >= n:
            raise BadInput("option.n_val", self.options.n_val, f"fewer than the {n} training reviews")
        order = torch.randperm(n, generator=torch.Generator().manual_seed(self.options.split_seed)).numpy()
        return np.sort(order[self.options.n_val:]), np.sort(order[: self.options.n_val])

    def _rows(self, reviews: Reviews, index: np.ndarray, ids: np.ndarray) -> tuple[Tensor, Tensor]:
        """Token ids `[N, T]` and float labels `[N]` of `reviews[index]`."""
        tokens = pad_reviews(reviews, index, ids, self.seq_len, self.options.padding)
        return tokens, torch.from_numpy(reviews.labels[index].astype(np.float32))

    def to_inputs(self, tokens: Tensor) -> Tensor:
        """Token ids `[B, T]` -> fixed word vectors `[B, T, embedding_dim]`."""
        return self.embedding[tokens]

    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        return binary_loss(output, target)

    def metrics(self, output: Tensor, target: Tensor) -> dict[str, Tensor]:
        return binary_metrics(output, target)

    def train_stream(self, seed: int) -> BatchStream:
        tokens, labels = self.rows["train"]
        return ShuffledStream(tokens, labels, seed, self.to_inputs)

    def eval_set(self, split: Split) -> tuple[LazyRows, Tensor]:
        """Word vectors looked up a batch at a time (`LazyRows`): the whole test set would be 5 GB."""
        tokens, labels = self.rows[split]
        return LazyRows(len(tokens), lambda start, stop: self.to_inputs(tokens[start:stop])), labels
