"""A difference between two configurations with its uncertainty over seeds, and how many seeds a
difference of a given size needs.

- `difference`: the difference of the means of two sets of per-seed scores with a 95% interval:
  paired by seed (a t interval on the per-seed differences, n - 1 degrees of freedom) when both
  sets hold the same seeds, otherwise Welch's unequal-variance t interval. Fewer than two seeds on
  either side give no interval.
- `seeds_needed`: the seeds per configuration for a two-sided 5% test to detect a difference of
  `delta` points with 80% power, from a measured spread (the standard deviation of per-seed
  differences when paired, else of one configuration's per-seed scores), by the usual
  t-approximation n >= k ((t_{1-alpha/2} + t_{power}) sigma / delta)^2 with k = 1 paired and
  k = 2 unpaired, solved for the smallest n.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass

from scipy.stats import t as student_t

#: two-sided level of the intervals and of `seeds_needed`'s test
ALPHA = 0.05
#: the power `seeds_needed` asks for
POWER = 0.8
#: the largest count `seeds_needed` reports; beyond it, `None`
MAX_SEEDS = 1000


@dataclass(frozen=True)
class Difference:
    """`mean` (a - b) with its 95% interval [low, high]; `method`: paired, welch or none."""

    mean: float
    low: float | None
    high: float | None
    method: str
    #: seeds on each side (paired: the shared seeds)
    n: tuple[int, int]

    @property
    def has_interval(self) -> bool:
        return self.low is not None and self.high is not None

    @property
    def contains_zero(self) -> bool:
        """Whether the interval contains 0 (no interval counts as containing it: nothing is shown)."""
        return not self.has_interval or self.low <= 0.0 <= self.high


def difference(a: Mapping[str, float], b: Mapping[str, float]) -> Difference | None:
    """The difference of the means of `a` and `b` (per-seed scores keyed by seed), with its 95%
    interval: paired when both hold the same seeds (at least two), else Welch (two per side)."""
    if not a or not b:
        return None
    mean = statistics.fmean(a.values()) - statistics.fmean(b.values())
    if set(a) == set(b) and len(a) >= 2:
        diffs = [a[s] - b[s] for s in sorted(a)]
        half = _t(len(diffs) - 1) * statistics.stdev(diffs) / math.sqrt(len(diffs))
        return Difference(mean, mean - half, mean + half, "paired", (len(a), len(b)))
    if len(a) < 2 or len(b) < 2:
        return Difference(mean, None, None, "none", (len(a), len(b)))
    va, vb = statistics.variance(a.values()) / len(a), statistics.variance(b.values()) / len(b)
    se = math.sqrt(va + vb)
    if se == 0.0:
        return Difference(mean, mean, mean, "welch", (len(a), len(b)))
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = _t(df) * se
    return Difference(mean, mean - half, mean + half, "welch", (len(a), len(b)))


def seeds_needed(delta: float, sigma: float, *, paired: bool) -> int | None:
    """Seeds per configuration to detect `delta` points (two-sided `ALPHA`, `POWER`) given the
    spread `sigma`; None when more than `MAX_SEEDS` would be needed. A zero spread needs 2."""
    if delta <= 0:
        raise ValueError(f"delta={delta} must be > 0")
    k = 1 if paired else 2
    for n in range(2, MAX_SEEDS + 1):
        df = n - 1 if paired else 2 * n - 2
        z = student_t.ppf(1 - ALPHA / 2, df) + student_t.ppf(POWER, df)
        if n >= k * (z * sigma / delta) ** 2:
            return n
    return None


def _t(df: float) -> float:
    return float(student_t.ppf(1 - ALPHA / 2, df))
