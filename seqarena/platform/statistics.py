"""Statistics over an arm's seeds: bootstrap confidence intervals and the paired sign-flip test.

Pure numbers (numpy), no database: `seqarena.platform.comparison` and the leaderboard feed them the
metrics of the runs of an arm's best configuration, one per seed.

- `bootstrap_mean`: the percentile bootstrap interval of a mean (Efron & Tibshirani 1993, "An
  Introduction to the Bootstrap", ch. 13): resample the n values with replacement `resamples` times
  (numpy's `default_rng(seed)`, so the same call gives the same interval), take the mean of each
  resample, and report the (1 - level)/2 and (1 + level)/2 quantiles of those means (numpy's linear
  interpolation). Constant values give a zero-width interval; n = 1 gives [x, x] and says n = 1.
- `sign_flip_p`: the two-sided p-value of the paired permutation test (Fisher 1935, "The Design of
  Experiments", §21): under "no difference" each paired difference is as likely to have either sign,
  so p is the share of the 2^n sign assignments whose mean difference is at least as far from 0 as
  the observed one. Exact (all 2^n assignments) when n <= EXACT_MAX_N; else `resamples` random
  assignments with p = (hits + 1) / (resamples + 1) (Phipson & Smyth 2010, "Permutation p-values
  should never be zero"). With n paired seeds the smallest exact p is 2 / 2^n (n = 4: 0.125), so
  few seeds can never show a small p-value: the output says n with every number.
- `paired_difference`: the mean of a − b over the seeds both arms ran (same seed: same training data
  of a generated task, and the validation/test sets are fixed by the task's `data_seed`, shared
  whenever the two arms follow one data protocol), with its bootstrap interval and sign-flip p.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from seqarena.errors import BadInput

RESAMPLES = 10_000
"""Bootstrap resamples (and random sign assignments beyond EXACT_MAX_N) unless told otherwise."""
LEVEL = 0.95
"""Confidence level of the intervals unless told otherwise."""
SEED = 0
"""Seed of the resampling unless told otherwise (the same numbers give the same interval)."""
EXACT_MAX_N = 16
"""Up to this many paired differences the sign-flip test enumerates all 2^n sign assignments."""


@dataclass(frozen=True)
class Interval:
    """A mean over n values and its percentile bootstrap interval at `level`."""

    mean: float
    low: float
    high: float
    n: int
    level: float
    resamples: int


@dataclass(frozen=True)
class Paired:
    """a − b over the seeds both ran: the mean difference with its interval, and the sign-flip p-value."""

    seeds: tuple[int, ...]
    difference: Interval
    p_value: float
    exact: bool
    """True: p counts all 2^n sign assignments; False: `difference.resamples` random ones"""


def check_settings(resamples: int, level: float) -> None:
    """`BadInput` unless resamples >= 1 and 0 < level < 1."""
    if not (isinstance(resamples, int) and resamples >= 1):
        raise BadInput("resamples", resamples, "an integer >= 1")
    if not 0 < level < 1:
        raise BadInput("level", level, "a number between 0 and 1 (exclusive), e.g. 0.95")


def bootstrap_mean(values: Sequence[float], *, resamples: int = RESAMPLES, level: float = LEVEL,
                   seed: int = SEED) -> Interval:
    """The mean of `values` with its percentile bootstrap interval (see the module docstring)."""
    return bootstrap_means([values], resamples=resamples, level=level, seed=seed)[0]


def bootstrap_means(samples: Sequence[Sequence[float]], *, resamples: int = RESAMPLES, level: float = LEVEL,
                    seed: int = SEED) -> list[Interval]:
    """`bootstrap_mean` of each sample, computed together: the samples of one size share the resample
    indices that `default_rng(seed)` draws for that size (as each would draw alone), and their resample
    means are one matrix product (resamples × n counts of each value) for the whole group."""
    check_settings(resamples, level)
    data = [np.asarray(values, dtype=float) for values in samples]
    if any(values.size == 0 for values in data):
        raise BadInput("values", [list(values) for values in samples], "at least one value in each sample")
    intervals: list[Interval | None] = [None] * len(data)
    for n in sorted({values.size for values in data}):
        members = [i for i, values in enumerate(data) if values.size == n]
        means = np.stack([data[i] for i in members]) @ _resample_counts(n, resamples, seed).T / n
        lows, highs = np.quantile(means, [(1 - level) / 2, (1 + level) / 2], axis=1)
        for i, low, high in zip(members, lows, highs, strict=True):
            intervals[i] = Interval(mean=float(data[i].mean()), low=float(low), high=float(high), n=n, level=level,
                                    resamples=resamples)
    return [interval for interval in intervals if interval is not None]


def _resample_counts(n: int, resamples: int, seed: int) -> np.ndarray:
    """How often each of n values occurs in each of `resamples` resamples drawn with `default_rng(seed)`."""
    picks = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    counts = np.zeros((resamples, n))
    np.add.at(counts, (np.arange(resamples)[:, None], picks), 1.0)
    return counts


def sign_flip_p(differences: Sequence[float], *, resamples: int = RESAMPLES, seed: int = SEED) -> tuple[float, bool]:
    """Two-sided p-value of the paired sign-flip test of mean(differences) == 0, and whether it is exact."""
    data = np.asarray(differences, dtype=float)
    if data.size == 0:
        raise BadInput("differences", list(differences), "at least one paired difference")
    exact = data.size <= EXACT_MAX_N
    if exact:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=data.size)))
    else:
        signs = np.random.default_rng(seed).choice((1.0, -1.0), size=(resamples, data.size))
    observed = abs(data.mean())
    flipped = np.abs((signs * data).mean(axis=1))
    hits = int((flipped >= observed - 1e-12 * max(observed, 1.0)).sum())
    return (hits / len(signs), True) if exact else ((hits + 1) / (resamples + 1), False)


def paired_difference(a: Mapping[int, float], b: Mapping[int, float], *, resamples: int = RESAMPLES,
                      level: float = LEVEL, seed: int = SEED) -> Paired | None:
    """a − b over the seeds in both `a` and `b` (seed -> metric); None when they share no seed."""
    seeds = tuple(sorted(set(a) & set(b)))
    if not seeds:
        return None
    differences = [a[s] - b[s] for s in seeds]
    interval = bootstrap_mean(differences, resamples=resamples, level=level, seed=seed)
    p_value, exact = sign_flip_p(differences, resamples=resamples, seed=seed)
    return Paired(seeds=seeds, difference=interval, p_value=p_value, exact=exact)


def interval_text(interval: Interval | None, digits: int = 4, *, compact: bool = False) -> str:
    """`0.012 [0.01, 0.014] (95 % CI, n = 3)` (compact: `0.012 [0.01, 0.014] n = 3`, the level said
    elsewhere), or "—" for none."""
    if interval is None:
        return "—"
    numbers = f"{interval.mean:.{digits}g} [{interval.low:.{digits}g}, {interval.high:.{digits}g}]"
    if compact:
        return f"{numbers} n = {interval.n}"
    return f"{numbers} ({level_text(interval.level)} CI, n = {interval.n})"


def level_text(level: float) -> str:
    """0.95 -> `95 %`, 0.975 -> `97.5 %`."""
    return f"{100 * level:.4g} %"
