"""Property-based fuzzing of every way a spec or a trial's arguments come in (issue 18 §6, §7).

Random and mutated YAML (aliases and alias bombs, deep nesting, duplicate keys, huge numbers, wrong
types, non-UTF-8 bytes, long strings, truncation) through the spec loader, `seqarena validate`,
`seqarena submit` (a temporary SQLite database) and the dashboard's submit action
(`dashboard.jobs.submit_text`), and random `seqarena train` arguments. Each case either passes or is
refused as `BadInput` / exit 2 with one line and no traceback, writes nothing, and ends within the
per-case deadline; the process's peak memory grows by at most `MAX_GROWTH_MB` over a whole test.
2,250 cases in all: about 45 s of CPU time on two cores.
"""

from __future__ import annotations

import resource
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

hypothesis = pytest.importorskip("hypothesis", reason="fuzzing needs hypothesis (pip install -e '.[dev]')")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from seqarena.errors import BadInput  # noqa: E402
from seqarena.platform.spec import load_spec  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
MAX_GROWTH_MB = 300
#: Each case at most this long (hypothesis fails a slower one; generous for a busy shared machine: the
#: runaways this guards against took 94 s to hours).
DEADLINE = timedelta(seconds=10)

BASES = [
    "name: x\ntask: adding\nseq_lens: [10]\nmodels: [gru]\n",
    "name: c\ntask: copy\nseq_lens: [5, 20]\nmodels: [lstm, gru]\nbudget: {max_steps: 10, eval_every: 5}\n"
    "search: {algorithm: random, num_samples: 2}\nspace: {gru: {lr: [0.001, 0.01, log]}}\n"
    "fixed: {all: {batch_size: 16}}\nrepeats: 2\nresources: {cpus_per_trial: 1}\n",
    "name: b\ntask: adding\nseq_lens: [20]\nmodels: [gru, rnn]\nparam_budget: 2000\n"
    "search: {algorithm: grid, grid_points: 2}\n",
    (REPO / "examples" / "adding.yaml").read_text(),
]
KEYS = ["name", "task", "task_options", "protocol", "seq_lens", "models", "budget", "search", "space", "fixed",
        "param_budget", "repeats", "resources", "max_steps", "num_samples", "cpus_per_trial", "corpus", "path",
        "data_dir", "<<", "?", "-", ""]
#: Tokens that broke or strained the loader before (issue 18 §6, §7), and YAML's odd corners.
ODD = ["9" * 5000, "1" * 40, "1e12", "1.0e+308", "-1", "0", ".nan", "-.inf", "~", "null", "yes", "[]", "{}", "''",
       "2001-13-45", "0x_ff", "0o777", "!!binary aGVsbG8=", "!!python/object:os.system x", "!!set {a}",
       "&a [1, 2]", "*a", "*nope", "[" * 400, "{" * 400, "[" * 30 + "]" * 30, "'" + "x" * 70_000 + "'",
       "x" * 12_000, "/etc/passwd", "../../etc", "\t", "\x00", "\ufeff", "é\u202e", "? [a]\n: 1", "{a: 1, a: 2}"]
#: Nine levels of ten aliases: 10**9 items once expanded.
BOMB = ("a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n"
        + "".join(f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n" for i in range(8)))

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(-(10**60), 10**60),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=40),
                    st.sampled_from(["gru", "lstm", "adding", "copy", "char", "tpe", "grid", "asha", "all", "lr"]))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=10), inner, max_size=4),
                      max_leaves=12)
#: A spec-shaped mapping with random values, written as YAML.
structured = st.dictionaries(st.sampled_from(KEYS), values, max_size=8).map(
    lambda d: yaml.safe_dump(d, allow_unicode=True))


@st.composite
def mutated(draw: st.DrawFn) -> str:
    """A valid spec with 1-4 mutations: a line added, replaced, duplicated or cut; a value swapped for
    an odd token; an alias bomb, deep nesting or a long string put in."""
    lines = draw(st.sampled_from(BASES)).splitlines()
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["add", "swap", "dup", "cut", "bomb", "deep", "indent"]))
        i = draw(st.integers(0, max(len(lines) - 1, 0)))
        if kind == "add":
            lines.insert(i, f"{draw(st.sampled_from(KEYS))}: {draw(st.sampled_from(ODD) | st.text(max_size=30))}")
        elif kind == "swap" and lines and ":" in lines[i]:
            lines[i] = lines[i].split(":", 1)[0] + ": " + draw(st.sampled_from(ODD) | st.text(max_size=30))
        elif kind == "dup" and lines:
            lines.insert(draw(st.integers(0, len(lines))), lines[i])
        elif kind == "cut" and lines:
            lines[i] = lines[i][: draw(st.integers(0, len(lines[i])))]
        elif kind == "bomb":
            lines = BOMB.splitlines() + lines + [f"{draw(st.sampled_from(['seq_lens', 'models', 'fixed']))}: *i"]
        elif kind == "deep":
            depth = draw(st.integers(10, 20_000))
            lines.append(f"{draw(st.sampled_from(KEYS))}: " + "[" * depth + "]" * draw(st.integers(0, depth)))
        elif kind == "indent" and lines:
            lines[i] = " " * draw(st.integers(1, 6)) + lines[i]
    return "\n".join(lines) + "\n"


texts = st.one_of(mutated(), structured, st.text(max_size=200))


def _bytes(text: str, flips: list[tuple[int, int]]) -> bytes:
    """`text` as UTF-8 with some bytes replaced (non-UTF-8 input)."""
    raw = bytearray(text.encode("utf-8", errors="surrogatepass"))
    for position, value in flips:
        if raw:
            raw[position % len(raw)] = value
    return bytes(raw)


byte_flips = st.lists(st.tuples(st.integers(0, 10**6), st.integers(0x80, 0xFF)), max_size=3)


def _fuzz(examples: int) -> settings:
    return settings(max_examples=examples, deadline=DEADLINE, database=None, derandomize=False,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.filter_too_much, HealthCheck.data_too_large])


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.fixture
def memory_bound():
    before = _peak_mb()
    yield
    assert _peak_mb() - before < MAX_GROWTH_MB, f"peak memory grew by {_peak_mb() - before:.0f} MB"


def _refusal_line(error: BadInput | str) -> str:
    text = str(error)
    assert "\n" not in text.strip() and "Traceback" not in text and len(text) < 1500, text[:2000]
    return text


def _jobs(home: Path) -> int:
    db = home / "seqarena.db"
    if not db.exists():
        return 0
    with sqlite3.connect(db) as connection:
        return connection.execute("select count(*) from jobs").fetchone()[0]


# --- the loader ---------------------------------------------------------------------------------


@_fuzz(1100)
@given(text=texts)
def test_the_loader_accepts_or_refuses_in_one_line(text: str, memory_bound: None, tmp_path: Path) -> None:
    try:
        spec = load_spec(text)
    except BadInput as error:
        _refusal_line(error)
        return
    assert load_spec(spec.to_yaml()).spec_hash() == spec.spec_hash()  # what is accepted reads back the same


# --- the command line and the dashboard -----------------------------------------------------------


@pytest.fixture(scope="module")
def warm() -> None:
    """Import what the commands import on first use, outside any case's deadline."""
    import seqarena.dashboard.jobs
    import seqarena.platform.capacity
    import seqarena.platform.jobs
    import seqarena.workers  # noqa: F401


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, warm: None) -> Path:
    """SEQARENA_HOME/DATA under tmp_path, no cluster, tracking server or database from outside."""
    monkeypatch.setenv("SEQARENA_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SEQARENA_DATA", str(tmp_path / "data"))
    for name in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI", "SEQARENA_DB_URL", "SEQARENA_DATA_ALLOW"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in").mkdir()
    return tmp_path


def _outcome(code: int, out: str, err: str) -> bool:
    """True when refused (exit 2, one line); False when accepted (exit 0)."""
    assert code in (0, 2), (code, err[-2000:])
    if code == 2:
        assert out == "" and _refusal_line(err).startswith("error: "), err[:2000]
    return code == 2


@pytest.fixture
def engine_in(isolated: Path) -> object:
    """The platform database of `isolated`'s home, migrated before the cases run."""
    from seqarena.platform import database

    return database.get_engine(f"sqlite:///{isolated / 'home' / 'seqarena.db'}")


@_fuzz(300)
@given(text=texts, flips=byte_flips)
def test_validate_exits_0_or_2_in_one_line_and_writes_nothing(text: str, flips: list[tuple[int, int]], run_cli,
                                                              isolated: Path, memory_bound: None) -> None:
    spec = isolated / "in" / "spec.yaml"
    spec.write_bytes(_bytes(text, flips))
    _outcome(*run_cli(["validate", str(spec)]))
    assert sorted(p.name for p in isolated.iterdir()) == ["in"] and [p.name for p in spec.parent.iterdir()] == [
        "spec.yaml"]


@_fuzz(250)
@given(text=texts, flips=byte_flips,
       priority=st.sampled_from(["0", "3", "high", "1e3", "-2147483649", "99999999999", "", "0x10"]))
def test_submit_queues_or_refuses_in_one_line(text: str, flips: list[tuple[int, int]], priority: str, run_cli,
                                              isolated: Path, engine_in: object, memory_bound: None) -> None:
    spec = isolated / "in" / "spec.yaml"
    spec.write_bytes(_bytes(text, flips))
    before = _jobs(isolated / "home")
    refused = _outcome(*run_cli(["submit", str(spec), "--priority", priority]))
    assert _jobs(isolated / "home") == before + (0 if refused else 1)
    assert sorted(p.name for p in isolated.iterdir()) == ["home", "in"]
    assert sorted(p.name for p in (isolated / "home").iterdir() if not p.name.startswith("seqarena.db")) == []


@_fuzz(300)
@given(text=texts, priority=st.integers(-(2**40), 2**40), validate_only=st.booleans())
def test_the_dashboard_submit_queues_or_refuses_in_one_line(text: str, priority: int, validate_only: bool,
                                                            isolated: Path, engine_in: object,
                                                            memory_bound: None) -> None:
    from seqarena.dashboard.jobs import submit_text

    engine = engine_in
    before = _jobs(isolated / "home")
    try:
        sent = submit_text(engine, text, priority, validate_only)
    except BadInput as error:
        _refusal_line(error)
        assert _jobs(isolated / "home") == before
        return
    assert _jobs(isolated / "home") == before + (0 if validate_only else 1)
    assert (sent.arms is not None) == validate_only and (sent.job_id is None) == validate_only


# --- seqarena train -------------------------------------------------------------------------------

#: Models without a C++ kernel to build (a fuzz case must not wait for a compiler), and bad names.
MODELS = ["gru", "lstm", "rnn", "transformer", "corn", "GRU", "", "x" * 300, "gru\x00"]
TASKS = ["adding", "copy", "smnist", "char", "ecg", "sorting", "", "adding "]
ODD_ARGS = ["0", "-1", "abc", "1e3", "100001", "1000000000", "", "9" * 30, "nan", "inf", "0.5", "=", "\x00"]


@st.composite
def train_args(draw: st.DrawFn) -> list[str]:
    args = ["--model", draw(st.sampled_from(MODELS) | st.text(max_size=12)),
            "--task", draw(st.sampled_from(TASKS) | st.text(max_size=12)),
            "--seq-len", draw(st.integers(1, 30).map(str) | st.sampled_from(ODD_ARGS)),
            "--option", "n_val=8", "--option", "n_test=8", "--eval-batch-size", "8"]
    for flag, good in (("--hidden", st.integers(1, 16)), ("--layers", st.integers(1, 2)),
                       ("--steps", st.integers(1, 3)),
                       ("--eval-every", st.integers(1, 3)), ("--batch-size", st.integers(1, 8)),
                       ("--lr", st.floats(1e-4, 1e-1)), ("--seed", st.integers(0, 9)),
                       ("--device", st.sampled_from(["cpu", "cuda:7", "tpu", ""]))):
        if draw(st.booleans()):
            args += [flag, draw(good.map(str) | st.sampled_from(ODD_ARGS))]
    for flag, items in (("--hp", ["dt=0.1", "dt=-1", "dt", "=3", "beta=1", "lr=1e9", "lr=nan", "hidden_size=4",
                                  "num_layers=99", "batch_size=0"]),
                        ("--option", ["n_val=-1", "flavour=x", "corpus=path", "path=/etc/passwd",
                                      "data_dir=/tmp/elsewhere", "n_test=abc", "split_seed=-3"])):
        for item in draw(st.lists(st.sampled_from(items) | st.text(max_size=16), max_size=2)):
            args += [flag, item]
    if draw(st.booleans()):
        args += ["--protocol", draw(st.sampled_from(["authors", "tcn", "cornn", "nope", ""]))]
    return args


@_fuzz(300)
@given(args=train_args())
def test_train_refuses_bad_arguments_in_one_line(args: list[str], run_cli, isolated: Path,
                                                 memory_bound: None) -> None:
    """Every case reaches at most the checkpoint: `--checkpoint-dir` holds an empty checkpoint.pt, so an
    accepted configuration is refused there (one line naming the file) before a step is trained."""
    folder = isolated / "in" / "ckpt"
    folder.mkdir(exist_ok=True)
    (folder / "checkpoint.pt").write_bytes(b"")
    code, out, err = run_cli(["train", *args, "--checkpoint-dir", str(folder)])
    assert code == 2, (code, err[-2000:])
    assert out == "" and _refusal_line(err).startswith("error: "), err[:2000]
    assert [p.name for p in folder.iterdir()] == ["checkpoint.pt"] and (folder / "checkpoint.pt").stat().st_size == 0
    assert sorted(p.name for p in isolated.iterdir()) == ["in"]
