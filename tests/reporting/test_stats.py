"""Differences with their 95% intervals and the seeds a difference needs, against hand-worked values."""

import math

import pytest

from butd.reporting.stats import difference, seeds_needed

#: Student t quantiles from tables: t_{0.975}(2), t_{0.975}(1)
T975_2 = 4.302652729911275


def test_paired_when_both_rows_ran_the_same_seeds():
    a = {"1": 82.0, "2": 85.0, "3": 83.0}
    b = {"1": 80.0, "2": 82.0, "3": 82.0}
    d = difference(a, b)
    diffs = [2.0, 3.0, 1.0]  # mean 2, sd 1
    half = T975_2 * 1.0 / math.sqrt(3)
    assert d.method == "paired" and d.n == (3, 3)
    assert d.mean == pytest.approx(sum(diffs) / 3)
    assert (d.low, d.high) == (pytest.approx(2.0 - half), pytest.approx(2.0 + half))
    assert d.contains_zero  # 2 - 2.48 < 0


def test_welch_when_the_seeds_differ():
    a = {"1": 10.0, "2": 12.0, "3": 14.0}  # mean 12, var 4
    b = {"7": 5.0, "8": 7.0}  # mean 6, var 2
    d = difference(a, b)
    va, vb = 4.0 / 3, 2.0 / 2
    df = (va + vb) ** 2 / (va**2 / 2 + vb**2 / 1)  # Welch-Satterthwaite: 2.88
    assert df == pytest.approx(2.8823529, rel=1e-6)
    from scipy.stats import t

    half = t.ppf(0.975, df) * math.sqrt(va + vb)
    assert d.method == "welch" and d.mean == 6.0
    assert (d.low, d.high) == (pytest.approx(6.0 - half), pytest.approx(6.0 + half))
    assert not d.contains_zero


def test_one_seed_gives_no_interval_and_a_zero_spread_a_point():
    d = difference({"1": 80.0}, {"1": 78.0, "2": 79.0})
    assert d.method == "none" and not d.has_interval and d.contains_zero and d.mean == pytest.approx(1.5)
    same = difference({"1": 80.0, "2": 81.0}, {"1": 79.0, "2": 80.0})
    assert (same.low, same.high) == (pytest.approx(1.0), pytest.approx(1.0)) and not same.contains_zero
    assert difference({}, {"1": 1.0}) is None


def test_seeds_needed_matches_the_t_approximation_by_hand():
    # paired, sigma = delta: n >= (t_.975(n-1) + t_.8(n-1))^2; n = 9: (2.306 + 0.889)^2 = 10.2 > 9;
    # n = 10: (2.262 + 0.883)^2 = 9.89 <= 10
    assert seeds_needed(1.0, 1.0, paired=True) == 10
    # unpaired needs about twice as many per row: 2 (t + t)^2 with 2n - 2 degrees of freedom
    assert seeds_needed(1.0, 1.0, paired=False) == 17
    assert seeds_needed(5.0, 0.0, paired=True) == 2
    assert seeds_needed(0.01, 10.0, paired=False) is None  # beyond MAX_SEEDS
    with pytest.raises(ValueError):
        seeds_needed(0.0, 1.0, paired=True)
