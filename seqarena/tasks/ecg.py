"""Heartbeat classification on the MIT-BIH Arrhythmia Database (`ecg`): one window per annotated beat.

Data: the MIT-BIH Arrhythmia Database (Moody & Mark, "The impact of the MIT-BIH Arrhythmia Database",
IEEE Eng. Med. Biol. 20(3):45-50, 2001; PhysioNet `mitdb/1.0.0`, Goldberger et al., Circulation
101(23):e215-e220, 2000): 48 half-hour two-lead records at 360 Hz, each a WFDB triple `NNN.hea`
(header), `NNN.dat` (signal) and `NNN.atr` (reference beat annotations), read with the `wfdb`
package. The JANET study (van der Westhuizen & Lasenby 2018, docs/reference/models.md §4) used
MIT-BIH heartbeat classification; its exact preprocessing is not reproduced here.

Samples: for every annotated beat whose symbol has an AAMI class, the window of `seq_len` samples
of one lead (MLII by default) with the beat's annotation (the R peak) at index `seq_len // 2`,
i.e. samples `[r - seq_len // 2, r - seq_len // 2 + seq_len)`. Input `[B, seq_len, 1]`.

Labels: the five AAMI classes of ANSI/AAMI EC57 (N, S, V, F, Q) from the MIT-BIH beat symbols,
`AAMI_CLASS` below. Non-beat annotations (rhythm `+`, noise `~`, artefact `|`, comment `"`,
non-conducted P `x`, flutter `[` `]` `!`, ...) are skipped. Many-to-one, cross-entropy.

Split by time, within every record (no beat, and no sample, is shared between splits): the first
`train_frac` of the record's samples go to train, the next `val_frac` to validation, the rest to
test; the boundaries are `floor(n * train_frac)` and `floor(n * (train_frac + val_frac))`. A
window that crosses a boundary or a record edge is dropped.

Normalisation (`normalize`): `window` (default) z-normalises each window by its own mean and
standard deviation, so no statistic crosses a split; `record` z-normalises each record by the mean
and standard deviation of its *training* part only.

Records (`records`): `nonpaced` (default) = the 44 records without paced rhythm, which AAMI EC57
leaves out (102, 104, 107 and 217 are paced; 102 and 104 also have no MLII lead) and which are
exactly DS1 ∪ DS2 of de Chazal, O'Dwyer & Reilly (IEEE TBME 51(7):1196-1206, 2004); `ds1`, `ds2`
(22 records each), `all` (the 48), or a list of record names (`"100,208"` on the command line).

Metrics (per sample; the mean over a split is the reported value):
- `accuracy` (headline, higher is better);
- `balanced_accuracy`: the mean recall over the classes present in the split. Targets are
  `[B, 2]` int64 rows `(class, split)` (split 0 train, 1 val, 2 test) so that a batch knows its
  split: sample i scores `correct_i * N_s / (K_s * n_{s, y_i})` where `N_s` is the split's size,
  `K_s` its number of classes present and `n_{s, c}` its count of class c; the mean over the whole
  split is then `(1 / K_s) * sum_c recall_c`, exactly;
- `ce`: per-sample cross-entropy.
Baseline: the accuracy of always answering the majority class of the test split.

Data source: PhysioNet's `mitdb/1.0.0` files, downloaded on first use into `$SEQARENA_DATA/mitdb/`
with `seqarena.tasks.data` (progress, temporary file, verified, then renamed; `SEQARENA_OFFLINE=1`
forbids it), or `path=DIR`, a folder of WFDB records used as it is (no download, no checksums).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import re
import tempfile
import urllib.error
import urllib.request
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field, field_validator
from torch import Tensor

from seqarena.errors import BadInput, DataError, one_of
from seqarena.tasks.base import (
    Batch,
    BatchStream,
    DataPath,
    ShuffledStream,
    SolvedWhen,
    Split,
    Task,
    TaskOptions,
    TaskShape,
)
from seqarena.tasks.data import (
    DataFiles,
    DownloadError,
    RemoteFile,
    data_root,
    ensure,
    from_mirrors,
    offline,
    verify,
)

log = logging.getLogger(__name__)

CLASSES = ("N", "S", "V", "F", "Q")
# ANSI/AAMI EC57 grouping of the MIT-BIH beat annotation codes (MIT-BIH directory, "Annotations").
AAMI_GROUPS = {
    "N": ("N", "L", "R", "e", "j"),  # normal, bundle branch blocks, atrial / nodal escape
    "S": ("A", "a", "J", "S"),  # supraventricular ectopic
    "V": ("V", "E"),  # premature ventricular contraction, ventricular escape
    "F": ("F",),  # fusion of ventricular and normal
    "Q": ("/", "f", "Q"),  # paced, fusion of paced and normal, unclassifiable
}
AAMI_CLASS: dict[str, int] = {symbol: CLASSES.index(group) for group, symbols in AAMI_GROUPS.items()
                              for symbol in symbols}

ALL_RECORDS = (
    "100", "101", "102", "103", "104", "105", "106", "107", "108", "109", "111", "112", "113", "114",
    "115", "116", "117", "118", "119", "121", "122", "123", "124", "200", "201", "202", "203", "205",
    "207", "208", "209", "210", "212", "213", "214", "215", "217", "219", "220", "221", "222", "223",
    "228", "230", "231", "232", "233", "234",
)
DS1 = ("101", "106", "108", "109", "112", "114", "115", "116", "118", "119", "122", "124", "201", "203",
       "205", "207", "208", "209", "215", "220", "223", "230")
DS2 = ("100", "103", "105", "111", "113", "117", "121", "123", "200", "202", "210", "212", "213", "214",
       "219", "221", "222", "228", "231", "232", "233", "234")
PACED = ("102", "104", "107", "217")
RECORD_SETS = {"nonpaced": tuple(sorted(DS1 + DS2)), "ds1": DS1, "ds2": DS2, "all": ALL_RECORDS}
EXTENSIONS = ("hea", "dat", "atr")

MIRRORS = ("https://physionet.org/files/mitdb/1.0.0/",)
# PhysioNet publishes the sha256 of every file of the database in SHA256SUMS.txt. We could not
# fetch it when this module was written (no network), so no per-file sha256 is pinned here, and
# neither is the list's own sha256 (MANIFEST_SHA256 = None): the list is downloaded from the mirror
# on first use, kept in $SEQARENA_DATA/mitdb/, and every record file is verified against it by
# `seqarena.tasks.data.ensure` (a mismatch is refused and nothing is kept). Set MANIFEST_SHA256 to
# the list's content sha256 once it is known, and a different list is refused too.
MANIFEST = "SHA256SUMS.txt"
MANIFEST_SHA256: str | None = None
_MANIFEST_MAX_BYTES = 1 << 20

SPLITS = ("train", "val", "test")
SPLIT_CODE = {name: code for code, name in enumerate(SPLITS)}
_NAME = re.compile(r"[A-Za-z0-9_-]+")
_EVAL_CHUNK = 4096


class ECGOptions(TaskOptions):
    """Options of the `ecg` task."""

    records: Literal["nonpaced", "ds1", "ds2", "all"] | tuple[str, ...] = Field(
        "nonpaced", description="nonpaced (44 records, default), ds1, ds2, all (48), or record names")
    lead: str = Field("MLII", min_length=1, description="signal name of the lead, as in the .hea header")
    path: DataPath | None = Field(None, description="folder of WFDB records used as is (no download, no checksums)")
    data_dir: DataPath | None = Field(None, description="data root for the PhysioNet files; default $SEQARENA_DATA")
    train_frac: float = Field(0.7, gt=0, lt=1, description="first fraction of each record's duration: train")
    val_frac: float = Field(0.15, gt=0, lt=1, description="next fraction: validation; the rest is test")
    normalize: Literal["window", "record"] = Field(
        "window", description="z-normalise each window, or each record by its training part's statistics")

    @field_validator("records", mode="before")
    @classmethod
    def _record_names(cls, value: Any) -> Any:
        """A keyword, or a list of names: `"100,208"`, `[100, 208]` or `["100", "208"]`."""
        if isinstance(value, str) and value.strip() in RECORD_SETS:
            return value.strip()
        if isinstance(value, str):
            value = value.split(",")
        elif isinstance(value, int):
            value = [value]
        if not isinstance(value, list | tuple):
            return value
        names = tuple(str(name).strip() for name in value)
        bad = [name for name in names if not _NAME.fullmatch(name)]
        if not names or bad:
            raise ValueError(f"record names of letters, digits, _ or - (bad: {bad or 'none given'}), "
                             f"or {one_of(RECORD_SETS)}")
        return names


@dataclass(frozen=True)
class Record:
    """One lead of one WFDB record and its beat annotations.

    Attributes:
        name: record name.
        fs: sampling frequency in Hz.
        signal: `[n]` float32, physical units (mV for MIT-BIH).
        beats: `[k]` int64 sample index of every annotated beat with an AAMI class.
        classes: `[k]` int64 AAMI class index (`CLASSES`) of each beat.
    """

    name: str
    fs: float
    signal: np.ndarray
    beats: np.ndarray
    classes: np.ndarray


@dataclass(frozen=True)
class Windows:
    """The windows of one split: `record` (index into the task's records), `start` (first sample in
    that record) and `label` (AAMI class index), each `[n]` int64."""

    record: Tensor
    start: Tensor
    label: Tensor


def aami_labels(symbols: Sequence[str]) -> np.ndarray:
    """AAMI class index of every annotation symbol; -1 for non-beat annotations."""
    return np.array([AAMI_CLASS.get(symbol, -1) for symbol in symbols], dtype=np.int64)


def read_record(folder: Path, name: str, lead: str) -> Record:
    """Read lead `lead` of record `name` in `folder` and its `.atr` beats (cached per file version).

    Raises:
        BadInput: the record has no lead `lead` (field `option.lead`).
        DataError: a file is missing or unreadable.
    """
    stamp = tuple((p.stat().st_size, p.stat().st_mtime_ns) if p.exists() else None
                  for p in (folder / f"{name}.{ext}" for ext in EXTENSIONS))
    return _read_record(folder, name, lead, stamp)


@functools.lru_cache(maxsize=64)
def _read_record(folder: Path, name: str, lead: str, _stamp: tuple[Any, ...]) -> Record:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import wfdb  # imported here: only this task needs it

    base = str(folder / name)
    header = _wfdb_call(folder / f"{name}.hea", wfdb.rdheader, base)
    if lead not in header.sig_name:
        raise BadInput("option.lead", lead, f"a lead of record {name}: {', '.join(header.sig_name)}")
    record = _wfdb_call(folder / f"{name}.dat", wfdb.rdrecord, base, channels=[header.sig_name.index(lead)])
    annotation = _wfdb_call(folder / f"{name}.atr", wfdb.rdann, base, "atr")
    classes = aami_labels(annotation.symbol)
    keep = classes >= 0
    signal = np.nan_to_num(record.p_signal[:, 0]).astype(np.float32)
    return Record(name, float(header.fs), signal, np.asarray(annotation.sample, np.int64)[keep], classes[keep])


def _wfdb_call(path: Path, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Call a `wfdb` reader; any failure (a missing or malformed file) becomes a `DataError` naming `path`."""
    try:
        with warnings.catch_warnings():  # wfdb 4.3 calls pandas APIs deprecated in pandas 3
            warnings.simplefilter("ignore", DeprecationWarning)
            return fn(*args, **kwargs)
    except Exception as error:  # wfdb raises many kinds (ValueError, IndexError, OSError, ...)
        raise DataError(str(path), "an unreadable WFDB file", f"a valid WFDB file ({error})") from None


def split_bounds(n: int, train_frac: float, val_frac: float) -> tuple[int, int, int, int]:
    """Sample boundaries `(0, b1, b2, n)`: train `[0, b1)`, validation `[b1, b2)`, test `[b2, n)`."""
    return 0, int(n * train_frac), int(n * (train_frac + val_frac)), n


def beat_windows(record: Record, seq_len: int, bounds: Sequence[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`(start, label, split)` of every beat window that lies inside one split segment of `bounds`."""
    start = record.beats - seq_len // 2
    edges = np.asarray(bounds)
    segment = np.searchsorted(edges, start, side="right") - 1  # segment holding the first sample
    inside = (segment >= 0) & (segment < len(edges) - 1)
    segment = np.clip(segment, 0, len(edges) - 2)
    inside &= start + seq_len <= edges[segment + 1]
    return start[inside], record.classes[inside], segment[inside]


def parse_manifest(text: str, source: str) -> dict[str, str]:
    """`{file name: sha256}` from a `sha256sum`-style list (`HEX  NAME` or `HEX *NAME` per line)."""
    sums = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2 or not re.fullmatch(r"[0-9a-fA-F]{64}", parts[0]):
            raise DataError(source, f"line {number}: {line[:80]!r}", "lines of a sha256 and a file name")
        sums[parts[1].strip().lstrip("*")] = parts[0].lower()
    return sums


def manifest(folder: Path) -> dict[str, str]:
    """PhysioNet's checksum list for the database in `folder`, downloaded if missing.

    Raises:
        DataError: the list is missing while offline, or is corrupt.
        DownloadError: no mirror delivered a valid list.
    """
    path = folder / MANIFEST
    if not path.exists():
        if offline():
            raise DataError(str(path), "missing file", f"the MIT-BIH checksum list {MANIFEST} in "
                            "$SEQARENA_DATA/mitdb (or unset SEQARENA_OFFLINE to download it), or option.path")
        _download_manifest(path)
    if MANIFEST_SHA256 is not None:
        verify(path, RemoteFile(MANIFEST, MANIFEST_SHA256))
    return parse_manifest(path.read_text(encoding="utf-8", errors="replace"), str(path))


def _download_manifest(dest: Path) -> None:
    """Fetch the checksum list from the first mirror whose answer parses (and matches a pinned sha256)."""
    dest.parent.mkdir(parents=True, exist_ok=True)

    def fetch(url: str) -> None:
        with urllib.request.urlopen(url, timeout=60) as response:
            body = response.read(_MANIFEST_MAX_BYTES + 1)
        _keep_manifest(body, url, dest)

    from_mirrors(MANIFEST, MIRRORS, fetch)


def _keep_manifest(body: bytes, url: str, dest: Path) -> None:
    """Check a downloaded checksum list and write it atomically to `dest`."""
    if len(body) > _MANIFEST_MAX_BYTES:
        raise DownloadError(f"{url} delivered more than {_MANIFEST_MAX_BYTES} bytes; not kept")
    try:
        sums = parse_manifest(body.decode("utf-8"), url)
    except (UnicodeDecodeError, DataError) as error:
        raise DownloadError(f"{url} delivered no checksum list ({error}); not kept") from None
    if not any(name.endswith(".hea") for name in sums):
        raise DownloadError(f"{url} lists no WFDB header; not kept")
    got = hashlib.sha256(body).hexdigest()
    if MANIFEST_SHA256 is not None and got != MANIFEST_SHA256:
        raise DownloadError(f"sha256 of {url} is {got}, expected {MANIFEST_SHA256}; not kept")
    handle, tmp = tempfile.mkstemp(prefix=f".{MANIFEST}.", suffix=".part", dir=dest.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(body)
        os.replace(tmp, dest)
    finally:
        Path(tmp).unlink(missing_ok=True)


def mitdb_folder(records: Sequence[str], root: Path | None = None) -> Path:
    """Verify (downloading if needed) the `.hea/.dat/.atr` files of `records`; return their folder."""
    folder = (root or data_root()) / "mitdb"
    sums = manifest(folder)
    files = []
    for name in (f"{record}.{ext}" for record in records for ext in EXTENSIONS):
        if name not in sums:
            raise DataError(str(folder / MANIFEST), f"no checksum for {name}", "a PhysioNet mitdb checksum list")
        files.append(RemoteFile(name, sums[name]))
    return ensure("mitdb", files, MIRRORS, root)


def balanced_weights(counts: Tensor) -> Tensor:
    """`[splits, classes]` weights `N_s / (K_s * n_{s,c})` (0 for absent classes), see the module doc."""
    counts = counts.double()
    present = (counts > 0).sum(dim=1, keepdim=True).clamp_min(1)
    total = counts.sum(dim=1, keepdim=True)
    weights = torch.where(counts > 0, total / (present * counts.clamp_min(1)), torch.zeros_like(counts))
    return weights.float()


class HeartbeatECG(Task):
    """MIT-BIH heartbeats, one window per beat, five AAMI classes; many-to-one classification."""

    name = "ecg"
    metric_name = "accuracy"
    higher_is_better = True
    solved_when = SolvedWhen(
        "gap_closed", 0.5,
        "accuracy that removes half the majority-class predictor's errors [ours]: the papers give no "
        "criterion (the JANET study's preprocessing is not reproduced), and most beats are normal, so a fixed "
        "accuracy would mean little")
    per_step = False
    options_model = ECGOptions
    options: ECGOptions

    def __init__(self, seq_len: int, options: ECGOptions) -> None:
        super().__init__(seq_len, options)
        self.record_names = _record_names(options)
        folder = _record_folder(self.record_names, options)
        self.records = [read_record(folder, name, options.lead) for name in self.record_names]
        self.fs = _common_fs(self.records)
        self.bounds = [split_bounds(len(r.signal), options.train_frac, options.val_frac) for r in self.records]
        _check_seq_len(self.seq_len, self.records, self.bounds, self.fs)
        self.signal, self.offsets = self._concatenate()
        self.splits = self._windows()
        counts = torch.stack([torch.bincount(self.splits[s].label, minlength=len(CLASSES)) for s in SPLITS])
        self.counts = counts
        self.weights = balanced_weights(counts)
        self.baseline = float(counts[SPLIT_CODE["test"]].max()) / float(counts[SPLIT_CODE["test"]].sum())

    @classmethod
    def shape_of(cls, seq_len: int | None, options: ECGOptions) -> TaskShape:
        """Checks the options that need no record; a window longer than a split part is refused when built."""
        if seq_len is None or seq_len < 1:
            raise BadInput("seq_len", seq_len, "a positive number of samples per beat window")
        _check_fractions(options)
        _check_source(_record_names(options), options)
        return TaskShape(cls.name, seq_len, seq_len, input_size=1, output_size=len(CLASSES), per_step=cls.per_step)

    @classmethod
    def data_files(cls, options: ECGOptions) -> DataFiles:
        names = _record_names(options)
        if options.path is not None:
            folder = options.path.expanduser()
            return DataFiles(tuple(folder / f"{name}.{ext}" for name in names for ext in ("hea", "atr")), False)
        folder = (options.data_dir or data_root()) / "mitdb"
        return DataFiles((folder / MANIFEST, *(folder / f"{name}.{ext}" for name in names for ext in EXTENSIONS)))

    def _concatenate(self) -> tuple[Tensor, Tensor]:
        """All records' signals end to end (z-normalised per record if asked), and their offsets."""
        parts = []
        for record, bounds in zip(self.records, self.bounds, strict=True):
            signal = record.signal
            if self.options.normalize == "record":
                train = signal[: bounds[1]].astype(np.float64)
                signal = ((signal - train.mean()) / max(float(train.std()), 1e-6)).astype(np.float32)
            parts.append(torch.from_numpy(np.ascontiguousarray(signal)))
        lengths = torch.tensor([0] + [len(part) for part in parts[:-1]], dtype=torch.int64)
        return torch.cat(parts), torch.cumsum(lengths, 0)

    def _windows(self) -> dict[str, Windows]:
        """The windows of every split, in record order then time order."""
        found: dict[int, list[tuple[np.ndarray, ...]]] = {code: [] for code in range(len(SPLITS))}
        for index, (record, bounds) in enumerate(zip(self.records, self.bounds, strict=True)):
            start, label, segment = beat_windows(record, self.seq_len, bounds)
            for code in range(len(SPLITS)):
                keep = segment == code
                found[code].append((np.full(int(keep.sum()), index), start[keep], label[keep]))
        splits = {}
        for code, name in enumerate(SPLITS):
            columns = zip(*found[code], strict=True)
            record, start, label = (torch.from_numpy(np.concatenate(col).astype(np.int64)) for col in columns)
            if len(label) == 0:
                raise BadInput("option.records", self.record_names, f"records with at least one beat window in "
                               f"the {name} split (try a shorter seq_len or other fractions)")
            splits[name] = Windows(record, start, label)
        return splits

    def windows(self, split: str) -> Windows:
        """The windows of `split` (`train`, `val` or `test`)."""
        return self.splits[split]

    def class_counts(self) -> dict[str, dict[str, int]]:
        """Beats per AAMI class in each split, e.g. `{"train": {"N": 51234, "S": 1402, ...}, ...}`."""
        return {split: dict(zip(CLASSES, self.counts[code].tolist(), strict=True))
                for code, split in enumerate(SPLITS)}

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "records": list(self.record_names), "fs": self.fs,
                "classes": list(CLASSES), "class_counts": self.class_counts()}

    def _targets(self, split: str) -> Tensor:
        """`[n, 2]` rows `(class, split code)`."""
        label = self.splits[split].label
        return torch.stack([label, torch.full_like(label, SPLIT_CODE[split])], dim=1)

    def _global_starts(self, split: str) -> Tensor:
        windows = self.splits[split]
        return self.offsets[windows.record] + windows.start

    def to_inputs(self, starts: Tensor) -> Tensor:
        """Global window starts `[B]` -> inputs `[B, seq_len, 1]` float32."""
        chunks = []
        steps = torch.arange(self.seq_len)
        for first in range(0, len(starts), _EVAL_CHUNK):
            window = self.signal[starts[first:first + _EVAL_CHUNK, None] + steps]
            if self.options.normalize == "window":
                mean, std = window.mean(dim=1, keepdim=True), window.std(dim=1, unbiased=False, keepdim=True)
                window = (window - mean) / std.clamp_min(1e-6)
            chunks.append(window)
        if not chunks:
            return torch.zeros(0, self.seq_len, 1)
        return torch.cat(chunks).unsqueeze(2)

    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        return torch.nn.functional.cross_entropy(output, target[:, 0])

    def metrics(self, output: Tensor, target: Tensor) -> dict[str, Tensor]:
        label, split = target[:, 0], target[:, 1]
        correct = (output.argmax(dim=1) == label).float()
        weight = self.weights.to(target.device)[split, label]
        return {
            "accuracy": correct,
            "balanced_accuracy": correct * weight,
            "ce": torch.nn.functional.cross_entropy(output, label, reduction="none"),
        }

    def train_stream(self, seed: int) -> BatchStream:
        return ShuffledStream(self._global_starts("train"), self._targets("train"), seed, self.to_inputs)

    def eval_set(self, split: Split) -> Batch:
        return self.to_inputs(self._global_starts(split)), self._targets(split)


def _check_fractions(options: ECGOptions) -> None:
    if options.train_frac + options.val_frac >= 1:
        raise BadInput("option.val_frac", options.val_frac,
                       f"less than 1 - train_frac = {1 - options.train_frac:g} (the rest is the test split)")


def _record_names(options: ECGOptions) -> tuple[str, ...]:
    """The record names asked for, each once."""
    names = RECORD_SETS[options.records] if isinstance(options.records, str) else options.records
    for i, name in enumerate(names):
        if name in names[:i]:
            raise BadInput("option.records", name, "each record once")
    return tuple(names)


def _check_source(names: Sequence[str], options: ECGOptions) -> None:
    """MIT-BIH record names without `path`; no `data_dir` with it."""
    if options.path is None:
        unknown = [name for name in names if name not in ALL_RECORDS]
        if unknown:
            raise BadInput("option.records", unknown[0], "an MIT-BIH Arrhythmia record, " + one_of(ALL_RECORDS)
                           + ", or option.path to a folder with other WFDB records")
    elif options.data_dir is not None:
        raise BadInput("option.data_dir", str(options.data_dir), "unset when option.path is given")


def _record_folder(names: Sequence[str], options: ECGOptions) -> Path:
    """The folder holding the records: `path` (checked) or the verified PhysioNet download."""
    if options.path is None:
        return mitdb_folder(names, options.data_dir)
    folder = options.path.expanduser()
    if not folder.is_dir():
        raise BadInput("option.path", str(options.path), "an existing folder with WFDB records (.hea, .dat, .atr)")
    for name in names:
        if not all((folder / f"{name}.{ext}").exists() for ext in ("hea", "atr")):
            found = sorted(p.stem for p in folder.glob("*.hea"))
            raise BadInput("option.records", name, f"a record with .hea and .atr files in {folder} "
                           f"(found: {', '.join(found[:20]) or 'none'})")
    return folder


def _common_fs(records: Sequence[Record]) -> float:
    rates = sorted({record.fs for record in records})
    if len(rates) > 1:
        raise BadInput("option.records", [r.name for r in records], f"records of one sampling rate (got {rates} Hz)")
    return rates[0]


def _check_seq_len(seq_len: int, records: Sequence[Record], bounds: Sequence[Sequence[int]], fs: float) -> None:
    """Refuse a `seq_len` longer than some split segment of some record: no window would fit."""
    shortest, where = min((b[i + 1] - b[i], f"the {SPLITS[i]} part of record {r.name}")
                          for r, b in zip(records, bounds, strict=True) for i in range(len(SPLITS)))
    if seq_len > shortest:
        raise BadInput("seq_len", seq_len, f"at most {shortest} samples ({shortest / fs:.1f} s at {fs:g} Hz): "
                       f"{where} is that long")
