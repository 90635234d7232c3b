"""Bootstrap intervals and the paired sign-flip test on values whose answers are worked out by hand."""

from __future__ import annotations

import pytest

from seqarena.errors import BadInput
from seqarena.platform.statistics import (
    EXACT_MAX_N,
    bootstrap_mean,
    bootstrap_means,
    interval_text,
    paired_difference,
    sign_flip_p,
)


def test_constant_values_give_a_zero_width_interval() -> None:
    interval = bootstrap_mean([0.25, 0.25, 0.25, 0.25])
    assert (interval.mean, interval.low, interval.high, interval.n) == (0.25, 0.25, 0.25, 4)


def test_one_value_is_its_own_interval_with_n_1() -> None:
    interval = bootstrap_mean([0.3])
    assert (interval.low, interval.high, interval.n) == (0.3, 0.3, 1)


def test_three_values_interval_is_the_quantiles_of_the_resampled_means() -> None:
    # Resampling {10, 12, 14} three times: the mean is 10 with probability 1/27 (3.7 %) and 10⅔ with
    # 3/27 (cumulative 14.8 %), symmetrically at the top. The 2.5 % quantile is therefore 10 and the
    # 5 % quantile 10⅔ (with 10 000 resamples the count of all-10 resamples is 370 ± 19, far from 250 and 500).
    values = [10.0, 12.0, 14.0]
    wide = bootstrap_mean(values, level=0.95)
    assert (wide.mean, wide.low, wide.high, wide.n, wide.resamples) == (12.0, 10.0, 14.0, 3, 10_000)
    narrow = bootstrap_mean(values, level=0.90)
    assert narrow.low == pytest.approx(32 / 3) and narrow.high == pytest.approx(40 / 3)


def test_two_values_narrow_level_is_their_midpoint() -> None:
    # Resampling {0, 1} twice: means 0, ½, 1 with probabilities ¼, ½, ¼: the 30 % and 70 % quantiles are ½.
    interval = bootstrap_mean([0.0, 1.0], level=0.4)
    assert (interval.low, interval.high) == (0.5, 0.5)
    assert (bootstrap_mean([0.0, 1.0]).low, bootstrap_mean([0.0, 1.0]).high) == (0.0, 1.0)


def test_the_same_seed_gives_the_same_interval_and_another_seed_may_not() -> None:
    values = [0.1, 0.4, 0.35, 0.8, 0.05]
    assert bootstrap_mean(values, seed=3) == bootstrap_mean(values, seed=3)
    assert bootstrap_mean(values, resamples=50, seed=3) != bootstrap_mean(values, resamples=50, seed=4)


def test_intervals_computed_together_are_those_computed_alone() -> None:
    samples = [[0.1, 0.4, 0.35], [10.0, 12.0, 14.0], [0.3], [0.2, 0.9, 0.1, 0.5, 0.45]]
    together = bootstrap_means(samples, level=0.9)
    alone = [bootstrap_mean(values, level=0.9) for values in samples]
    assert [(i.n, i.mean) for i in together] == [(i.n, i.mean) for i in alone]
    assert [(i.low, i.high) for i in together] == [(pytest.approx(i.low), pytest.approx(i.high)) for i in alone]
    assert (together[1].low, together[1].high) == (pytest.approx(32 / 3), pytest.approx(40 / 3))
    with pytest.raises(BadInput, match="values"):
        bootstrap_means([[1.0], []])


@pytest.mark.parametrize(("differences", "p_value"), [
    ([1.0, 2.0, 3.0, 4.0], 2 / 16),  # only all + and all − reach |sum| 10
    # |d| = 3, 1, 2, 1 (sum 7); flipping a set S gives 7 − 2·|S|, |sum| >= 5 for S = {}, {1}, {1'} and their
    # complements: 6 of 16
    ([3.0, 1.0, 2.0, -1.0], 6 / 16),
    ([1.0, -1.0, 2.0, -2.0, 0.5], 1.0),  # observed sum 0.5, the smallest |sum| possible: every assignment
    ([0.0, 0.0, 0.0, 0.0], 1.0),
    # |d| = 1, 1, 1, 1, 2 (sum 6); |sum| >= 6 only for all + and all −: 2 of 32
    ([1.0, 1.0, 1.0, 1.0, 2.0], 2 / 32),
])
def test_exact_sign_flip_p_value(differences: list[float], p_value: float) -> None:
    assert sign_flip_p(differences) == (pytest.approx(p_value), True)


def test_sign_flip_beyond_the_exact_limit_is_sampled_and_never_zero() -> None:
    n = EXACT_MAX_N + 4
    p_value, exact = sign_flip_p([1.0] * n, resamples=999)
    assert not exact
    assert p_value == pytest.approx(1 / 1000)  # no random assignment reaches all + (2 / 2^20): (0 + 1) / (999 + 1)


def test_paired_difference_uses_the_shared_seeds_only() -> None:
    a = {0: 0.10, 1: 0.20, 2: 0.30, 3: 0.40, 7: 9.0}
    b = {0: 0.05, 1: 0.10, 2: 0.15, 3: 0.20, 5: -9.0}
    paired = paired_difference(a, b)
    assert paired is not None and paired.seeds == (0, 1, 2, 3)
    assert paired.difference.mean == pytest.approx(0.125)  # (0.05 + 0.10 + 0.15 + 0.20) / 4
    assert paired.difference.n == 4
    assert (paired.p_value, paired.exact) == (pytest.approx(2 / 16), True)
    assert paired.difference.low >= 0.05 and paired.difference.high <= 0.20
    assert paired_difference({0: 1.0}, {1: 1.0}) is None


@pytest.mark.parametrize(("kwargs", "field"), [({"level": 1.0}, "level"), ({"level": 0}, "level"),
                                                ({"resamples": 0}, "resamples")])
def test_bad_settings_name_their_field(kwargs: dict, field: str) -> None:
    with pytest.raises(BadInput) as caught:
        bootstrap_mean([1.0, 2.0], **kwargs)
    assert caught.value.field == field
    with pytest.raises(BadInput, match="values"):
        bootstrap_mean([])


def test_interval_text_says_level_and_n() -> None:
    assert interval_text(bootstrap_mean([10.0, 12.0, 14.0])) == "12 [10, 14] (95 % CI, n = 3)"
    assert interval_text(bootstrap_mean([10.0, 12.0, 14.0]), compact=True) == "12 [10, 14] n = 3"
    assert interval_text(bootstrap_mean([1.0, 2.0], level=0.975)).endswith("(97.5 % CI, n = 2)")
    assert interval_text(None) == "—"
