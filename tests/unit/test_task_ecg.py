"""The `ecg` task on WFDB records written here from the real MIT-BIH record 208 excerpt in tests/data.

tests/data/ecg_mitbih208 holds 5 minutes of lead MLII of record 208 (raw ADC, 360 Hz) without
annotations. The tests write it as WFDB records with `wfdb.wrsamp`, place beat annotations at R
peaks found by a simple peak detector, label them with a fixed cycle of MIT-BIH beat symbols that
covers all five AAMI classes, add non-beat annotations between beats (`wfdb.wrann`), and check the
task against counts computed here independently.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.signal import find_peaks

from seqarena.errors import BadInput, DataError
from seqarena.tasks import ecg
from seqarena.tasks.base import parse_options
from seqarena.tasks.data import DownloadError
from seqarena.tasks.ecg import ECGOptions, HeartbeatECG
from tests.conftest import TEST_DATA

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # wfdb 4.3 uses pandas APIs deprecated in pandas 3
    import wfdb

pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword:DeprecationWarning")

ECG_EXCERPT = TEST_DATA / "ecg_mitbih208" / "ecg.dat"
FS = 360
# The AAMI EC57 classes, written out again here so that the test does not read the module's table.
EXPECTED_CLASS = {"N": 0, "L": 0, "R": 0, "e": 0, "j": 0, "A": 1, "a": 1, "J": 1, "S": 1,
                  "V": 2, "E": 2, "F": 3, "/": 4, "f": 4, "Q": 4}
# Per 20 beats: N 10, S 4, V 2, F 1, Q 3.
BEAT_CYCLE = ["N"] * 6 + ["L", "R", "e", "j", "A", "a", "J", "S", "V", "E", "F", "/", "f", "Q"]
NON_BEATS = ["+", "~", "|", '"', "x", "[", "]", "!"]
SPLIT_NAMES = ("train", "val", "test")


@dataclass(frozen=True)
class Written:
    """What a test record holds: the MLII signal in mV and its annotations."""

    signal: np.ndarray
    samples: np.ndarray
    symbols: list[str]

    def beats(self) -> tuple[np.ndarray, list[str]]:
        keep = [i for i, symbol in enumerate(self.symbols) if symbol in EXPECTED_CLASS]
        return self.samples[keep], [self.symbols[i] for i in keep]


def _real_mv() -> np.ndarray:
    """Record 208, lead MLII, in mV, read as tests/data/README.md says."""
    raw = np.load(ECG_EXCERPT, allow_pickle=False)["ecg"].astype(np.int64)
    return (raw - 1024) / 200.0


def _annotate(signal: np.ndarray, shift: int, cycle: list[str]) -> tuple[np.ndarray, list[str]]:
    """R peaks (local maxima at least 0.3 s apart, prominence 0.6 mV) labelled by `cycle`,
    plus a non-beat annotation half-way between every third pair of beats."""
    peaks, _ = find_peaks(signal, distance=int(0.3 * FS), prominence=0.6)
    symbols = [cycle[(i + shift) % len(cycle)] for i in range(len(peaks))]
    extra = [(int(a + b) // 2, NON_BEATS[i % len(NON_BEATS)])
             for i, (a, b) in enumerate(zip(peaks[:-1:3], peaks[1::3], strict=True))]
    marks = sorted([(int(p), s) for p, s in zip(peaks, symbols, strict=True)] + extra)
    return np.array([m[0] for m in marks], dtype=np.int64), [m[1] for m in marks]


def _write(folder: Path, name: str, signal: np.ndarray, shift: int, second_lead: bool,
           cycle: list[str] = BEAT_CYCLE) -> Written:
    """Write `name`.hea/.dat (format 212, gain 200, baseline 1024: the MIT-BIH ADC) and `name`.atr."""
    leads = [signal, -signal] if second_lead else [signal]
    names = ["MLII", "V1"][: len(leads)]
    wfdb.wrsamp(name, fs=FS, units=["mV"] * len(leads), sig_name=names, p_signal=np.stack(leads, axis=1),
                fmt=["212"] * len(leads), adc_gain=[200] * len(leads), baseline=[1024] * len(leads),
                write_dir=str(folder))
    samples, symbols = _annotate(signal, shift, cycle)
    aux = ["(N" if symbol == "+" else "" for symbol in symbols]
    wfdb.wrann(name, "atr", samples, symbol=symbols, aux_note=aux, write_dir=str(folder))
    return Written(signal, samples, symbols)


@pytest.fixture(scope="module")
def records(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Written]]:
    """208 (all 5 minutes, leads MLII and V1 = -MLII), 100 (the last 200 s, MLII), both with all
    five classes, and 119 (the first 150 s, MLII) with N and V beats only."""
    folder = tmp_path_factory.mktemp("wfdb")
    mv = _real_mv()
    written = {"208": _write(folder, "208", mv, 0, True), "100": _write(folder, "100", mv[-200 * FS:], 7, False),
               "119": _write(folder, "119", mv[: 150 * FS], 0, False, ["N", "N", "N", "V"])}
    return folder, written


def make(seq_len: int, **options: object) -> HeartbeatECG:
    """What `tasks.build("ecg", seq_len, **options)` does once the task is registered."""
    return HeartbeatECG(seq_len, parse_options(ECGOptions, options))


def expected_windows(written: Written, seq_len: int, fracs: tuple[float, float] = (0.7, 0.15)) -> dict[str, list]:
    """(start, class) of every window, per split, computed from what was written."""
    n = len(written.signal)
    edges = [0, int(n * fracs[0]), int(n * (fracs[0] + fracs[1])), n]
    found: dict[str, list] = {name: [] for name in SPLIT_NAMES}
    for sample, symbol in zip(*written.beats(), strict=True):
        start = int(sample) - seq_len // 2
        for i, name in enumerate(SPLIT_NAMES):
            if edges[i] <= start and start + seq_len <= edges[i + 1]:
                found[name].append((start, EXPECTED_CLASS[symbol]))
    return found


def test_aami_table_and_record_sets() -> None:
    assert ecg.AAMI_CLASS == EXPECTED_CLASS
    assert ecg.aami_labels([*NON_BEATS, "N", "V", "Q"]).tolist() == [-1] * len(NON_BEATS) + [0, 2, 4]
    sets = ecg.RECORD_SETS
    assert len(sets["all"]) == 48 and len(sets["ds1"]) == len(sets["ds2"]) == 22
    assert not set(sets["ds1"]) & set(sets["ds2"])
    assert set(sets["nonpaced"]) == set(sets["all"]) - {"102", "104", "107", "217"}


def test_sizes_shapes_and_dtypes(records: tuple[Path, dict[str, Written]]) -> None:
    folder, _ = records
    task = make(200, path=folder, records="208,100")
    assert (task.input_size, task.output_size, task.per_step, task.seq_len, task.length) == (1, 5, False, 200, 200)
    assert task.metric_name == "accuracy" and task.higher_is_better and task.fs == FS
    for split in ("val", "test"):
        x, y = task.eval_set(split)
        assert x.shape == (len(y), 200, 1) and x.dtype == torch.float32
        assert y.shape == (len(x), 2) and y.dtype == torch.int64
        assert bool((y[:, 1] == ecg.SPLIT_CODE[split]).all())
    xb, yb = task.train_stream(0).next(16)
    assert xb.shape == (16, 200, 1) and yb.shape == (16, 2)
    assert task.head(8)(torch.zeros(16, 200, 8)).shape == (16, 5)
    assert torch.isfinite(task.loss(torch.zeros(16, 5), yb))


@pytest.mark.parametrize("seq_len", [64, 361, 1800])
def test_windows_and_labels_are_what_was_written(records: tuple[Path, dict[str, Written]], seq_len: int) -> None:
    folder, written = records
    task = make(seq_len, path=folder, records=["208", "100"])
    assert task.record_names == ("208", "100")
    for split in SPLIT_NAMES:
        windows = task.windows(split)
        for index, name in enumerate(task.record_names):
            mine = windows.record == index
            got = list(zip(windows.start[mine].tolist(), windows.label[mine].tolist(), strict=True))
            assert got == expected_windows(written[name], seq_len)[split]
    counts = task.class_counts()
    for split in SPLIT_NAMES:
        expected = np.zeros(5, dtype=int)
        for name in task.record_names:
            for _start, cls in expected_windows(written[name], seq_len)[split]:
                expected[cls] += 1
        assert list(counts[split].values()) == expected.tolist()
        assert all(count > 0 for count in counts[split].values())  # all five classes in every split
    assert task.describe()["class_counts"] == counts


def test_non_beat_annotations_are_skipped(records: tuple[Path, dict[str, Written]]) -> None:
    folder, written = records
    task = make(100, path=folder, records="208")
    samples, symbols = np.array(written["208"].samples), written["208"].symbols
    non_beat = {int(s) for s, sym in zip(samples, symbols, strict=True) if sym in NON_BEATS}
    beats = {int(s) for s in written["208"].beats()[0]}
    assert len(non_beat) > 40 and not non_beat & beats
    centres = {int(s) + 50 for split in SPLIT_NAMES for s in task.windows(split).start}
    assert centres <= beats and not centres & non_beat
    assert sum(sum(c.values()) for c in task.class_counts().values()) == len(centres) <= len(beats)


def test_splits_follow_time_and_share_no_sample(records: tuple[Path, dict[str, Written]]) -> None:
    folder, written = records
    seq_len = 1000
    task = make(seq_len, path=folder, records="208,100", train_frac=0.6, val_frac=0.2)
    for index, name in enumerate(task.record_names):
        n = len(written[name].signal)
        spans = []
        for split in SPLIT_NAMES:
            windows = task.windows(split)
            start = windows.start[windows.record == index]
            spans.append((int(start.min()), int(start.max()) + seq_len))  # [first sample, last sample + 1)
        assert spans[0][1] <= spans[1][0] and spans[1][1] <= spans[2][0]
        assert spans[0][1] <= int(n * 0.6) <= spans[1][0] and spans[1][1] <= int(n * 0.8) <= spans[2][0]
        assert spans[0][0] >= 0 and spans[2][1] <= n


def _znorm(x: np.ndarray) -> np.ndarray:
    return (x - x.mean()) / x.std()


def test_inputs_are_the_chosen_lead_normalised(records: tuple[Path, dict[str, Written]]) -> None:
    folder, written = records
    mv = written["208"].signal
    task = make(300, path=folder, records="208")
    x, _ = task.eval_set("test")
    start = int(task.windows("test").start[0])
    assert np.allclose(x[0, :, 0].numpy(), _znorm(mv[start:start + 300]), atol=1e-4)
    assert abs(float(x.mean())) < 1e-4 and abs(float(x[:, :, 0].std(dim=1, unbiased=False).mean()) - 1) < 1e-3
    flipped = make(300, path=folder, records="208", lead="V1").eval_set("test")[0]
    assert torch.allclose(flipped, -x, atol=1e-4)
    per_record = make(300, path=folder, records="208", normalize="record").eval_set("test")[0]
    train = mv[: int(len(mv) * 0.7)]
    assert np.allclose(per_record[0, :, 0].numpy(), (mv[start:start + 300] - train.mean()) / train.std(), atol=1e-4)


def test_training_stream_is_seeded_shuffled_and_resumable(records: tuple[Path, dict[str, Written]]) -> None:
    folder, _ = records
    task = make(128, path=folder, records="208,100")
    a, b, c = task.train_stream(3), task.train_stream(3), task.train_stream(4)
    first, twin = [a.next(32) for _ in range(3)], [b.next(32) for _ in range(3)]
    assert all(torch.equal(p[0], q[0]) and torch.equal(p[1], q[1]) for p, q in zip(first, twin, strict=True))
    assert not torch.equal(first[0][1], c.next(32)[1])
    labels = torch.cat([a.next(32)[1][:, 0] for _ in range(4)])
    assert len(set(labels.tolist())) > 1
    state = a.state_dict()
    after = [a.next(32) for _ in range(40)]  # crosses an epoch boundary
    resumed = task.train_stream(99)
    resumed.load_state_dict(state)
    assert all(torch.equal(p[0], resumed.next(32)[0]) for p in after)
    again = make(128, path=folder, records="208,100")
    assert torch.equal(task.eval_set("val")[0], again.eval_set("val")[0])


def test_baseline_is_the_majority_share_of_the_test_split(records: tuple[Path, dict[str, Written]]) -> None:
    folder, written = records
    task = make(256, path=folder, records="208,100")
    expected = np.zeros(5)
    for name in ("208", "100"):
        for _start, cls in expected_windows(written[name], 256)["test"]:
            expected[cls] += 1
    assert task.baseline == pytest.approx(expected.max() / expected.sum())
    _x, y = task.eval_set("test")
    majority = torch.zeros(len(y), 5)
    majority[:, int(expected.argmax())] = 1.0
    assert float(task.metrics(majority, y)["accuracy"].mean()) == pytest.approx(task.baseline)


def _mean_recall(predicted: torch.Tensor, label: torch.Tensor) -> float:
    present = label.unique()
    return float(np.mean([float((predicted[label == c] == c).float().mean()) for c in present]))


def test_balanced_accuracy(records: tuple[Path, dict[str, Written]]) -> None:
    folder, _ = records
    task = make(256, path=folder, records="208,100")
    for split in ("val", "test"):
        _x, y = task.eval_set(split)
        present = len(y[:, 0].unique())
        for cls in range(5):
            constant = torch.zeros(len(y), 5)
            constant[:, cls] = 1.0
            assert float(task.metrics(constant, y)["balanced_accuracy"].mean()) == pytest.approx(1 / present)
        perfect = torch.nn.functional.one_hot(y[:, 0], 5).float()
        scores = task.metrics(perfect, y)
        assert float(scores["accuracy"].mean()) == 1.0
        assert float(scores["balanced_accuracy"].mean()) == pytest.approx(1.0)
        guess = torch.randn(len(y), 5, generator=torch.Generator().manual_seed(0))
        assert float(task.metrics(guess, y)["balanced_accuracy"].double().mean()) == pytest.approx(
            _mean_recall(guess.argmax(dim=1), y[:, 0]))


def test_balanced_accuracy_counts_only_the_classes_present(records: tuple[Path, dict[str, Written]]) -> None:
    folder, _ = records
    task = make(256, path=folder, records="119")
    assert [c["S"] + c["F"] + c["Q"] for c in task.class_counts().values()] == [0, 0, 0]
    _x, y = task.eval_set("test")
    for cls, expected in [(0, 0.5), (2, 0.5), (1, 0.0)]:
        constant = torch.zeros(len(y), 5)
        constant[:, cls] = 1.0
        assert float(task.metrics(constant, y)["balanced_accuracy"].mean()) == pytest.approx(expected)
    weights = ecg.balanced_weights(torch.tensor([[6, 2, 0, 0, 0], [1, 1, 1, 1, 1], [0, 0, 3, 0, 0]]))
    assert torch.allclose(weights, torch.tensor([[8 / 12, 8 / 4, 0, 0, 0], [1.0] * 5, [0, 0, 1.0, 0, 0]]))


def test_record_lists_are_parsed() -> None:
    assert parse_options(ECGOptions, {"records": "100, 208"}).records == ("100", "208")
    assert parse_options(ECGOptions, {"records": [100, 208]}).records == ("100", "208")
    assert parse_options(ECGOptions, {"records": "ds1"}).records == "ds1"
    assert parse_options(ECGOptions, {}).records == "nonpaced"


def _field(fn: Callable[[], object]) -> str:
    with pytest.raises(BadInput) as caught:
        fn()
    return caught.value.field


def test_bad_options_name_the_field(records: tuple[Path, dict[str, Written]], tmp_path: Path) -> None:
    folder, _ = records
    assert _field(lambda: make(100, records="999")) == "option.records"  # not an MIT-BIH record
    assert _field(lambda: make(100, path=folder, records="101")) == "option.records"  # not in the folder
    assert _field(lambda: make(100, path=folder, records="208,208")) == "option.records"
    assert _field(lambda: make(100, path=folder, records="../208")) == "option.records"
    assert _field(lambda: make(100, path=tmp_path / "nowhere", records="208")) == "option.path"
    assert _field(lambda: make(100, path=folder, records="100", lead="V1")) == "option.lead"
    assert _field(lambda: make(100, path=folder, records="208", train_frac=0.9, val_frac=0.1)) == "option.val_frac"
    assert _field(lambda: make(100, path=folder, records="208", data_dir=tmp_path)) == "option.data_dir"
    assert _field(lambda: make(100, path=folder, records="208", window=3)) == "option.window"
    too_long = int(200 * FS * 0.15) + 1  # record 100 is 200 s; its validation part 30 s
    assert _field(lambda: make(too_long, path=folder, records="208,100")) == "seq_len"
    assert make(too_long - 1, path=folder, records="208").seq_len == too_long - 1


def test_a_corrupt_annotation_file_is_a_data_error(records: tuple[Path, dict[str, Written]], tmp_path: Path) -> None:
    folder, _ = records
    for ext in ("hea", "dat"):
        (tmp_path / f"208.{ext}").write_bytes((folder / f"208.{ext}").read_bytes())
    (tmp_path / "208.atr").write_bytes(b"\x01")
    with pytest.raises(DataError, match=r"208\.atr"):
        make(100, path=tmp_path, records="208")


def test_offline_without_cached_data_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQARENA_DATA", str(tmp_path / "data"))
    with pytest.raises(DataError, match=r"SHA256SUMS\.txt.*SEQARENA_OFFLINE"):
        make(360)
    assert not (tmp_path / "data").exists()


# --- the PhysioNet download, against a local HTTP server -------------------------------------------


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def mirror(records: tuple[Path, dict[str, Written]], tmp_path: Path,
           monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A copy of the records and a SHA256SUMS.txt served on 127.0.0.1 as the task's only mirror;
    downloads allowed."""
    served = tmp_path / "served"
    served.mkdir()
    lines = []
    for path in sorted(records[0].iterdir()):
        (served / path.name).write_bytes(path.read_bytes())
        lines.append(f"{hashlib.sha256(path.read_bytes()).hexdigest()} {path.name}")
    (served / "SHA256SUMS.txt").write_text("\n".join(lines) + "\n")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(served)))
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    monkeypatch.setattr(ecg, "MIRRORS", (f"http://127.0.0.1:{server.server_address[1]}/",))
    monkeypatch.delenv("SEQARENA_OFFLINE", raising=False)
    yield served
    server.shutdown()
    server.server_close()


def test_downloads_are_verified_then_used_offline(mirror: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "data"
    task = make(256, records="208,100", data_dir=root)
    names = sorted(p.name for p in (root / "mitdb").iterdir())
    assert names == sorted(["SHA256SUMS.txt"] + [f"{r}.{e}" for r in ("100", "208") for e in ("hea", "dat", "atr")])
    monkeypatch.setenv("SEQARENA_OFFLINE", "1")
    monkeypatch.setattr(ecg, "MIRRORS", ("http://127.0.0.1:9/",))  # the discard port: any request fails
    assert make(256, records="208,100", data_dir=root).class_counts() == task.class_counts()


def test_a_file_whose_sha256_differs_is_refused_and_not_kept(mirror: Path, tmp_path: Path) -> None:
    (mirror / "208.dat").write_bytes((mirror / "208.dat").read_bytes()[:-10] + b"\0" * 10)
    root = tmp_path / "data"
    with pytest.raises(DownloadError, match="sha256"):
        make(256, records="208", data_dir=root)
    assert not (root / "mitdb" / "208.dat").exists()
    assert not [p for p in (root / "mitdb").iterdir() if p.suffix == ".part"]


def test_a_corrupt_cached_file_is_refused(mirror: Path, tmp_path: Path) -> None:
    root = tmp_path / "data"
    make(256, records="208", data_dir=root)
    cached = root / "mitdb" / "208.atr"
    cached.write_bytes(cached.read_bytes()[:-2])
    with pytest.raises(DataError, match="sha256 does not match"):
        make(256, records="208", data_dir=root)


def test_a_checksum_list_that_is_not_pinned_is_refused(mirror: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ecg, "MANIFEST_SHA256", "0" * 64)
    root = tmp_path / "data"
    with pytest.raises(DownloadError, match="SHA256SUMS"):
        make(256, records="208", data_dir=root)
    assert list((root / "mitdb").iterdir()) == []
    (mirror / "SHA256SUMS.txt").write_text("<html>not found</html>\n")
    monkeypatch.setattr(ecg, "MANIFEST_SHA256", None)
    with pytest.raises(DownloadError, match="no checksum list"):
        make(256, records="208", data_dir=root)
    assert list((root / "mitdb").iterdir()) == []
