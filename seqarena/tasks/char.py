"""Character-level language modelling (`char`): predict the next character at every step.

Corpora (option `corpus`):

* `ptb`: the Penn Treebank (Marcus et al. 1993) at character level, in the split and
  preprocessing of Mikolov et al. 2012 ("Subword language modeling with neural networks";
  the `ptb.char.{train,valid,test}.txt` files of Mikolov's `simple-examples` archive;
  docs/reference/tasks.md §8: ≈ 5.0M / 0.39M / 0.44M characters, alphabet ≈ 50). In those
  files each character is a space-separated token, `_` marks a word boundary and a line is a
  sentence; we drop the separating spaces and end every sentence with `\\n`, so the stream is
  "the characters, one end-of-sentence symbol per line" as in the usual loaders.
* `path`: any plain UTF-8 text file (`path=...`, e.g. a public-domain novel). `\\r\\n` becomes
  `\\n`; the text is split by position into train / validation / test (default 90 / 5 / 5,
  contiguous, in that order, no overlap), so no test window is ever seen in training.

The alphabet is the sorted set of the training split's characters followed by one `<unk>` symbol;
characters of the validation or test split that training never saw map to `<unk>`. The one-hot
width `V` is the option `vocab_size` (default 128: room for every character of a printable-ASCII
text), declared rather than counted so that the task's sizes are known before its text is read;
symbols past `<unk>` never occur, and a training split with `V` or more distinct characters is
refused when the task is built. Inputs are one-hot `[B, T, V]` floats, targets the next characters'
indices `[B, T]` (a window of `T + 1` characters gives both). Training windows start at uniformly
random positions of the training split (a seeded, resumable stream); the validation and test sets
are the first `n_val` / `n_test` consecutive non-overlapping windows of their split (every
character of a covered stretch is scored once), independent of the trial's seed.

Loss: cross-entropy in nats, averaged over all steps. Metric: bits per character,
`bpc = mean cross-entropy / ln 2` (Graves 2013, "Generating sequences with recurrent neural
networks", §3; docs/reference/tasks.md §8), per window; also next-character top-1 `accuracy`.
Baseline: the unigram entropy (bits) of the training split, the bpc of a predictor that ignores
all context (exactly its bpc on the training text).
"""

from __future__ import annotations

import functools
import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field, field_validator
from torch import Tensor, nn

from seqarena.errors import BadInput, DataError
from seqarena.tasks.base import (
    Batch,
    BatchStream,
    DataPath,
    GeneratedStream,
    SolvedWhen,
    Split,
    Task,
    TaskOptions,
    TaskShape,
)
from seqarena.tasks.data import DataFiles, DownloadError, RemoteFile, confined, data_root, ensure

log = logging.getLogger(__name__)

UNK = "<unk>"
#: What `decode` writes for the `<unk>` index.
UNK_CHAR = "\N{REPLACEMENT CHARACTER}"
#: Inputs are one-hot, so a huge alphabet (e.g. a CJK text) would make every batch huge.
MAX_ALPHABET = 1024
#: One-hot width by default: 95 printable ASCII characters, tab, newline and `<unk>` fit.
DEFAULT_VOCAB_SIZE = 128

PTB_DATASET = "ptb_char"
#: Raw copies of Mikolov's `simple-examples/data/` folder on GitHub, as other projects' loaders
#: use them (not reachable from where this was written, so unchecked here; the second may lack the
#: test file, and `download` tries the next mirror for each file the first does not deliver).
PTB_MIRRORS = (
    "https://raw.githubusercontent.com/townie/PTB-dataset-from-Tomas-Mikolov-s-webpage/master/data/",
    "https://raw.githubusercontent.com/tomsercu/lstm/master/data/",
)
#: TO BE VERIFIED. No copy of the PTB character files was reachable when this module was written
#: (no network, and no package ships them), so their sha256 could not be
#: computed, and we refuse to pin numbers we did not check. Until real digests replace these
#: all-zero placeholders, every download is refused (data.py keeps nothing whose content hash
#: differs) and the refusal prints the digest of what the mirror delivered. To pin them: download
#: the three files from two independent sources (e.g. the mirrors above and the `simple-examples`
#: archive), check that `sha256sum` agrees, paste the digests here and set `PTB_PINNED = True`.
PTB_PINNED = False
_UNPINNED = "0" * 64
PTB_FILES = {
    "train": RemoteFile("ptb.char.train.txt", _UNPINNED),
    "valid": RemoteFile("ptb.char.valid.txt", _UNPINNED),
    "test": RemoteFile("ptb.char.test.txt", _UNPINNED),
}


class CharOptions(TaskOptions):
    """Options of the character-level language-modelling task."""

    corpus: Literal["ptb", "path"] = Field("ptb", description="ptb (Mikolov's PTB characters) or path (a text)")
    path: str | None = Field(None, description="the UTF-8 text file of corpus=path")
    vocab_size: int = Field(DEFAULT_VOCAB_SIZE, ge=2, le=MAX_ALPHABET + 1,
                            description="one-hot width V: at least the training split's distinct characters + 1")
    n_val: int = Field(1000, ge=1, le=1_000_000, description="validation windows (at most; the split may hold fewer)")
    n_test: int = Field(1000, ge=1, le=1_000_000, description="test windows (at most; the split may hold fewer)")
    valid_fraction: float = Field(0.05, gt=0.0, lt=0.5, description="corpus=path: share of the text for validation")
    test_fraction: float = Field(0.05, gt=0.0, lt=0.5, description="corpus=path: share of the text for test (the end)")
    data_dir: DataPath | None = Field(None, description="data root for ptb; default $SEQARENA_DATA")
    ptb_sha256: dict[Literal["train", "valid", "test"], str] | None = Field(
        None, description="sha256 of the three PTB char files that you verified yourself, "
                          "{train: hex, valid: hex, test: hex}; used while the built-in ones are unpinned")

    @field_validator("ptb_sha256", mode="before")
    @classmethod
    def _digests(cls, value: Any) -> Any:
        """A mapping, or `train=HEX,valid=HEX,test=HEX` from the command line; three lowercase digests."""
        if isinstance(value, str):
            value = dict(part.split("=", 1) if "=" in part else (part, "") for part in value.split(","))
        if value is None:
            return None
        if not isinstance(value, dict) or set(value) != {"train", "valid", "test"}:
            raise ValueError("the sha256 of each of train, valid and test (train=HEX,valid=HEX,test=HEX)")
        digests = {split: str(digest).strip().lower() for split, digest in value.items()}
        if not all(re.fullmatch(r"[0-9a-f]{64}", digest) for digest in digests.values()):
            raise ValueError("64 hexadecimal digits per file (a sha256)")
        return digests

    @field_validator("path")
    @classmethod
    def _absolute(cls, path: str | None) -> str | None:
        """Record an absolute path, so a worker started elsewhere reads the same file; it must lie inside
        `$SEQARENA_DATA` or `$SEQARENA_DATA_ALLOW` (`data.confined`)."""
        return None if path is None else str(confined(path))


@dataclass(frozen=True)
class Corpus:
    """The three splits of a text, as strings (for `path`, consecutive pieces of one text)."""

    train: str
    valid: str
    test: str


# ---------------------------------------------------------------------------------------------
# Corpora on disk


def ptb_text(path: Path) -> str:
    """One PTB char file as a character stream: tokens of a line joined, `\\n` after each line."""
    with open(path, encoding="utf-8") as stream:
        lines = ("".join(line.split()) for line in stream)
        return "".join(line + "\n" for line in lines if line)


def ptb_folder(root: Path | None = None, user_sha256: Mapping[str, str] | None = None) -> Path:
    """Verify (downloading if needed) the three PTB char files; return their folder.

    While the built-in digests are unpinned, `user_sha256` (the `ptb_sha256` option: digests the
    user checked against a copy they trust) takes their place, so files are still verified.

    Raises:
        DataError: a file is missing while offline, or fails (or cannot have) its checksum.
        DownloadError: no mirror delivered a file with the pinned checksum.
    """
    files = PTB_FILES
    if user_sha256 is not None and not PTB_PINNED:
        files = {split: RemoteFile(remote.name, user_sha256[split]) for split, remote in PTB_FILES.items()}
    try:
        return ensure(PTB_DATASET, list(files.values()), PTB_MIRRORS, root)
    except (DataError, DownloadError) as error:
        missing_offline = isinstance(error, DataError) and error.value == "missing file"
        if PTB_PINNED or missing_offline or files is not PTB_FILES:
            raise
        raise DataError("option.corpus", "ptb", "PTB char files whose sha256 is pinned in seqarena/tasks/char.py "
                        "or given as option ptb_sha256 (train=HEX,valid=HEX,test=HEX, digests you verified); "
                        f"the built-in checksums are still to be verified ({error})") from None


@functools.lru_cache(maxsize=2)
def load_ptb(folder: Path) -> Corpus:
    """The PTB char splits (cached per process)."""
    return Corpus(*(ptb_text(folder / PTB_FILES[split].name) for split in ("train", "valid", "test")))


def read_text(path: Path) -> str:
    """A plain UTF-8 text file (BOM dropped, `\\r\\n` -> `\\n`); `BadInput` on `option.path` otherwise."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise BadInput("option.path", str(path), f"a readable text file ({error.strerror})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise BadInput("option.path", str(path),
                       f"a plain UTF-8 text file (byte {error.start} is not UTF-8: a binary file?)") from None
    if "\x00" in text:
        raise BadInput("option.path", str(path), "a plain text file (it holds NUL bytes: a binary file?)")
    return text.replace("\r\n", "\n")


def split_text(text: str, valid_fraction: float, test_fraction: float) -> Corpus:
    """Consecutive train / valid / test pieces of `text`: the last `test_fraction`, before it
    `valid_fraction`, the rest first (sizes rounded down for valid and test)."""
    n_valid, n_test = int(len(text) * valid_fraction), int(len(text) * test_fraction)
    n_train = len(text) - n_valid - n_test
    return Corpus(text[:n_train], text[n_train:n_train + n_valid], text[n_train + n_valid:])


@functools.lru_cache(maxsize=4)
def _load_path(path: Path, size: int, mtime_ns: int, valid_fraction: float, test_fraction: float) -> Corpus:
    return split_text(read_text(path), valid_fraction, test_fraction)


def load_path(path: Path, valid_fraction: float, test_fraction: float) -> Corpus:
    """The splits of a user's text file (cached per process while the file is unchanged)."""
    try:
        stat = path.stat()
    except OSError as error:
        raise BadInput("option.path", str(path), f"a readable text file ({error.strerror})") from None
    if not path.is_file():
        raise BadInput("option.path", str(path), "a readable text file (this is not a regular file)")
    return _load_path(path, stat.st_size, stat.st_mtime_ns, valid_fraction, test_fraction)


def check_source(options: CharOptions) -> None:
    """A `path` exactly when `corpus=path`."""
    if options.corpus == "ptb" and options.path is not None:
        raise BadInput("option.path", options.path, "no path with corpus=ptb (set corpus=path to use a text)")
    if options.corpus == "path" and options.path is None:
        raise BadInput("option.path", None, "the path of a plain UTF-8 text file (required with corpus=path)")


def corpus_files(options: CharOptions) -> tuple[Path, ...]:
    """The files the corpus is read from (present or not)."""
    if options.corpus == "path":
        return (Path(str(options.path)),)
    return tuple((options.data_dir or data_root()) / PTB_DATASET / remote.name for remote in PTB_FILES.values())


def load_corpus(options: CharOptions) -> Corpus:
    """The corpus the options name."""
    check_source(options)
    if options.corpus == "ptb":
        return load_ptb(ptb_folder(options.data_dir, options.ptb_sha256))
    return load_path(Path(str(options.path)), options.valid_fraction, options.test_fraction)


# ---------------------------------------------------------------------------------------------
# Windows


def one_hot(codes: Tensor, vocab_size: int) -> Tensor:
    """Indices `[..., T]` -> one-hot float inputs `[..., T, V]`."""
    return nn.functional.one_hot(codes, vocab_size).float()


def windows_to_batch(windows: Tensor, vocab_size: int) -> Batch:
    """Windows of `T + 1` codes `[B, T + 1]` -> (one-hot inputs `[B, T, V]`, next codes `[B, T]`)."""
    return one_hot(windows[:, :-1], vocab_size), windows[:, 1:].clone()


def random_windows(codes: Tensor, vocab_size: int, seq_len: int, n: int, generator: torch.Generator) -> Batch:
    """`n` windows of `seq_len + 1` characters starting at uniformly random positions of `codes`."""
    starts = torch.randint(0, len(codes) - seq_len, (n,), generator=generator)
    return windows_to_batch(codes[starts[:, None] + torch.arange(seq_len + 1)], vocab_size)


def consecutive_windows(codes: Tensor, vocab_size: int, seq_len: int, n: int) -> Batch:
    """The first `n` (or as many as fit) windows starting at 0, T, 2T, …: window i predicts
    characters `iT + 1 … (i + 1)T`, so no character is scored twice."""
    count = min(n, (len(codes) - 1) // seq_len)
    starts = torch.arange(count) * seq_len
    return windows_to_batch(codes[starts[:, None] + torch.arange(seq_len + 1)], vocab_size)


def unigram_entropy_bits(codes: Tensor, vocab_size: int) -> float:
    """`H = -Σ p log2 p` of the empirical character distribution of `codes`."""
    p = torch.bincount(codes, minlength=vocab_size).double() / len(codes)
    p = p[p > 0]
    return float(-(p * torch.log2(p)).sum())


# ---------------------------------------------------------------------------------------------
# The task


class CharLM(Task):
    """Next-character prediction on a text; many-to-many classification over the alphabet."""

    name = "char"
    metric_name = "bpc"
    higher_is_better = False
    other_lengths = True  # generated (adding, copy) or cut (char) at any length
    solved_when = SolvedWhen(
        "fraction_of_baseline", 0.5,
        "under half the unigram entropy in bits per character [ours]: a model must use the context; on PTB "
        "every model of the TCN paper's Table 1 (1.31-1.48 bpc) is well under it")
    per_step = True
    options_model = CharOptions
    options: CharOptions

    def __init__(self, seq_len: int, options: CharOptions) -> None:
        super().__init__(seq_len, options)
        corpus = load_corpus(options)
        self._check_lengths(corpus)
        self.alphabet: tuple[str, ...] = tuple(sorted(set(corpus.train)))
        self._check_alphabet()
        self.unk = len(self.alphabet)
        self._points = np.array([ord(char) for char in self.alphabet], dtype=np.uint32)
        self.splits = {"train": self.encode(corpus.train), "val": self.encode(corpus.valid),
                       "test": self.encode(corpus.test)}
        self.baseline = unigram_entropy_bits(self.splits["train"], self.output_size)

    @classmethod
    def shape_of(cls, seq_len: int | None, options: CharOptions) -> TaskShape:
        if seq_len is None or seq_len < 1:
            raise BadInput("seq_len", seq_len, "a positive number of characters per window")
        check_source(options)
        return TaskShape(cls.name, seq_len, seq_len, input_size=options.vocab_size, output_size=options.vocab_size,
                         per_step=cls.per_step)

    @classmethod
    def data_files(cls, options: CharOptions) -> DataFiles:
        downloadable = options.corpus == "ptb" and (PTB_PINNED or options.ptb_sha256 is not None)
        return DataFiles(corpus_files(options), downloadable)

    def _field(self) -> tuple[str, object]:
        return ("option.path", self.options.path) if self.options.corpus == "path" else ("seq_len", self.seq_len)

    def _check_alphabet(self) -> None:
        if len(self.alphabet) > MAX_ALPHABET:
            field, value = self._field()
            raise BadInput(field, value, f"a text of at most {MAX_ALPHABET} distinct characters in its training "
                                         f"split (inputs are one-hot); this one has {len(self.alphabet)}")
        if len(self.alphabet) >= self.options.vocab_size:
            raise BadInput("option.vocab_size", self.options.vocab_size,
                           f"at least {len(self.alphabet) + 1}: the {len(self.alphabet)} distinct characters of the "
                           f"training split and <unk> (at most {MAX_ALPHABET + 1})")

    def _check_lengths(self, corpus: Corpus) -> None:
        sizes = {"train": len(corpus.train), "val": len(corpus.valid), "test": len(corpus.test)}
        short = {split: size for split, size in sizes.items() if size < self.seq_len + 1}
        if short:
            field, value = self._field()
            raise BadInput(field, value, f"every split at least seq_len + 1 = {self.seq_len + 1} characters "
                                         f"long (one window); too short: {short}")

    def encode(self, text: str) -> Tensor:
        """Characters -> int64 indices `[len(text)]`; characters outside the alphabet -> `<unk>`."""
        points = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        where = np.minimum(np.searchsorted(self._points, points), len(self._points) - 1)
        known = self._points[where] == points
        return torch.from_numpy(np.where(known, where, self.unk).astype(np.int64))

    def decode(self, indices: Tensor | list[int]) -> str:
        """Indices -> text; the `<unk>` index becomes U+FFFD."""
        values = indices.tolist() if isinstance(indices, Tensor) else indices
        return "".join(self.alphabet[i] if i < self.unk else UNK_CHAR for i in values)

    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        return nn.functional.cross_entropy(output.flatten(0, 1), target.flatten())

    def metrics(self, output: Tensor, target: Tensor) -> dict[str, Tensor]:
        nats = nn.functional.cross_entropy(output.transpose(1, 2), target, reduction="none")
        correct = (output.argmax(dim=2) == target).float()
        return {"bpc": nats.mean(dim=1) / math.log(2), "accuracy": correct.mean(dim=1)}

    def train_stream(self, seed: int) -> BatchStream:
        fn = functools.partial(random_windows, self.splits["train"], self.output_size)
        return GeneratedStream(fn, self.seq_len, seed)

    def eval_set(self, split: Split) -> Batch:
        n = self.options.n_val if split == "val" else self.options.n_test
        return consecutive_windows(self.splits[split], self.output_size, self.seq_len, n)


# ---------------------------------------------------------------------------------------------
# Sampling (`seqarena sample`)


def _check_prime(task: CharLM, prime: str) -> None:
    unknown = sorted(set(prime) - set(task.alphabet))
    if not prime or unknown:
        what = f"not in the alphabet: {''.join(unknown)!r}" if unknown else "empty"
        raise BadInput("prime", prime, f"at least one character, all from the training alphabet "
                                       f"{''.join(task.alphabet)!r} ({what})")


def _device(net: nn.Module) -> torch.device:
    parameter = next(net.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


@torch.no_grad()
def sample_text(net: nn.Module, task: CharLM, prime: str, length: int, temperature: float = 1.0,
                generator: torch.Generator | None = None) -> str:
    """`prime` followed by `length` characters sampled one at a time from `net`.

    `net(x)` maps one-hot `[1, t, V]` to logits `[1, t, V]` (the model, causal, then the task's
    head). Each step re-reads the last `task.seq_len` characters, divides the last step's logits
    by `temperature` and draws from their softmax (on the CPU, with `generator`); `<unk>` and the
    unused symbols after it are never drawn.

    Raises:
        BadInput: an empty prime or one with characters outside the alphabet, a negative length
        or a non-positive temperature.
    """
    _check_prime(task, prime)
    if isinstance(length, bool) or not isinstance(length, int) or length < 0:
        raise BadInput("length", length, "a non-negative integer")
    if not temperature > 0 or not math.isfinite(temperature):
        raise BadInput("temperature", temperature, "a positive number")
    device, was_training = _device(net), net.training
    codes = task.encode(prime).tolist()
    net.eval()
    try:
        for _ in range(length):
            context = torch.tensor(codes[-task.seq_len:], device=device)
            logits = net(one_hot(context, task.input_size)[None])[0, -1].float().cpu() / temperature
            logits[task.unk:] = -math.inf  # <unk> and the unused symbols after it
            codes.append(int(torch.multinomial(torch.softmax(logits, 0), 1, generator=generator)))
    finally:
        net.train(was_training)
    return prime + task.decode(codes[len(prime):])
