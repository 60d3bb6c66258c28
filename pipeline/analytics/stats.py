"""The statistics of a holdout comparison: differences with their 95% intervals, and whether any
of them can be told apart from no effect at all. Pure, standard library only.

Which methods, and why
    *Rates* (repeat purchase, support requests, ...): the difference of two proportions with
    Newcombe's hybrid score interval (Newcombe 1998, method 10), built from the Wilson interval of
    each group. It keeps its 95% coverage at the small counts and rates near zero that holdouts
    produce, where the textbook Wald interval is too narrow. The relative uplift is the risk ratio
    minus one, with the Katz log interval. The p-value is the two-proportion z-test (pooled).
    *Means* (revenue per touchpoint, rating): Welch's difference of means with a normal
    approximation, fine at the hundreds of touchpoints a verdict needs; the relative uplift uses the
    delta method on the log of the ratio of means.
    *Many comparisons*: a report compares every journey step on every outcome, so some intervals
    would exclude zero by chance alone. Verdicts use Holm's step-down adjustment across all
    comparisons of a report (family-wise error 5%); the intervals shown are the per-comparison 95%.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

CONFIDENCE = 0.95
ALPHA = 1 - CONFIDENCE
POWER = 0.8  # for the smallest effect a comparison could have shown
_NORMAL = NormalDist()


def z_value(confidence: float = CONFIDENCE) -> float:
    return _NORMAL.inv_cdf(0.5 + confidence / 2)


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


@dataclass(frozen=True)
class Comparison:
    """Treated against held out, on one outcome."""

    treated: float  # rate or mean in the treated group
    held_out: float
    absolute: Interval  # treated - held out
    relative: Interval | None  # treated / held out - 1; None where the held-out value is 0
    p_value: float
    detectable: float  # the smallest absolute effect this comparison had 80% power to show


def wilson(successes: int, trials: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The Wilson score interval of a proportion."""
    if trials <= 0:
        return (0.0, 1.0)
    z = z_value(confidence)
    p = successes / trials
    centre = p + z * z / (2 * trials)
    spread = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    denominator = 1 + z * z / trials
    return (max(0.0, (centre - spread) / denominator), min(1.0, (centre + spread) / denominator))


def compare_rates(
    treated: int, treated_n: int, held: int, held_n: int, confidence: float = CONFIDENCE
) -> Comparison:
    """``treated`` of ``treated_n`` against ``held`` of ``held_n`` (both groups non-empty)."""
    if treated_n <= 0 or held_n <= 0:
        raise ValueError("both groups need at least one touchpoint")
    p1, p0 = treated / treated_n, held / held_n
    l1, u1 = wilson(treated, treated_n, confidence)
    l0, u0 = wilson(held, held_n, confidence)
    difference = p1 - p0
    absolute = Interval(
        difference,
        difference - math.sqrt((p1 - l1) ** 2 + (u0 - p0) ** 2),
        difference + math.sqrt((u1 - p1) ** 2 + (p0 - l0) ** 2),
    )
    relative = None
    if treated > 0 and held > 0:
        ratio = p1 / p0
        spread = z_value(confidence) * math.sqrt(
            1 / treated - 1 / treated_n + 1 / held - 1 / held_n
        )
        relative = Interval(
            ratio - 1,
            math.exp(math.log(ratio) - spread) - 1,
            math.exp(math.log(ratio) + spread) - 1,
        )
    pooled = (treated + held) / (treated_n + held_n)
    se_pooled = math.sqrt(pooled * (1 - pooled) * (1 / treated_n + 1 / held_n))
    p_value = _two_sided(difference / se_pooled) if se_pooled > 0 else 1.0
    return Comparison(
        p1, p0, absolute, relative, p_value, _detectable(se_pooled, confidence) if se_pooled else 0
    )


@dataclass(frozen=True)
class Sample:
    """What a difference of means needs of one group: count, mean and variance (n - 1)."""

    n: int
    mean: float
    variance: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Sample:
        n = len(values)
        if n == 0:
            return cls(0, 0.0, 0.0)
        mean = math.fsum(values) / n
        variance = math.fsum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
        return cls(n, mean, variance)


def compare_means(treated: Sample, held: Sample, confidence: float = CONFIDENCE) -> Comparison:
    """Welch's difference of means, normal approximation (both groups need two values)."""
    if treated.n < 2 or held.n < 2:
        raise ValueError("both groups need at least two values")
    z = z_value(confidence)
    difference = treated.mean - held.mean
    se = math.sqrt(treated.variance / treated.n + held.variance / held.n)
    absolute = Interval(difference, difference - z * se, difference + z * se)
    relative = None
    if treated.mean > 0 and held.mean > 0:
        ratio = treated.mean / held.mean
        se_log = math.sqrt(
            treated.variance / (treated.n * treated.mean**2)
            + held.variance / (held.n * held.mean**2)
        )
        relative = Interval(
            ratio - 1,
            math.exp(math.log(ratio) - z * se_log) - 1,
            math.exp(math.log(ratio) + z * se_log) - 1,
        )
    p_value = _two_sided(difference / se) if se > 0 else (1.0 if difference == 0 else 0.0)
    return Comparison(
        treated.mean, held.mean, absolute, relative, p_value, _detectable(se, confidence)
    )


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the order given."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted = [1.0] * len(p_values)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


def _two_sided(z: float) -> float:
    return 2 * (1 - _NORMAL.cdf(abs(z)))


def _detectable(standard_error: float, confidence: float) -> float:
    return (z_value(confidence) + _NORMAL.inv_cdf(POWER)) * standard_error
