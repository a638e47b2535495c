"""Small, exact statistics behind the promotion gate.

Each function is hand-checkable; the doctests are the worked examples.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from statistics import NormalDist

__all__ = [
    "StratifiedEstimate",
    "rule_of_three",
    "samples_to_settle",
    "stratified_agreement",
    "wilson_interval",
]


def _z(confidence: float) -> float:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be between 0 and 1 (exclusive), got {confidence}; 0.95 is usual")
    return NormalDist().inv_cdf(1.0 - (1.0 - confidence) / 2.0)


def wilson_interval(successes: float, n: float, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion.

    Chosen over the normal (Wald) interval because agreement sits near 1,
    where Wald's interval is too narrow and can pass 1; Wilson stays inside
    [0, 1] and keeps its coverage at small n.

    >>> low, high = wilson_interval(95, 100)
    >>> round(low, 4), round(high, 4)
    (0.8882, 0.9785)
    >>> wilson_interval(0, 0)
    (0.0, 1.0)
    """
    if n < 0 or successes < 0 or successes > n:
        raise ValueError(f"need 0 <= successes <= n, got successes={successes}, n={n}")
    if n == 0:
        return 0.0, 1.0
    z = _z(confidence)
    p = successes / n
    denominator = 1.0 + z * z / n
    center = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, center - half), min(1.0, center + half)


def rule_of_three(n: int) -> float | None:
    """95% upper bound on a rate when 0 events were seen in ``n`` trials: 3 / n.

    The exact one-sided bound is 1 - 0.05 ** (1 / n); 3 / n is its
    first-order value and what reviewers check by hand.

    >>> rule_of_three(300)
    0.01
    >>> rule_of_three(0) is None
    True
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    return 3.0 / n if n else None


def samples_to_settle(successes: float, n: float, floor: float = 0.95, confidence: float = 0.95) -> int | None:
    """How many more samples would put the interval wholly on one side of ``floor``,
    if the observed rate held. 0 when it already is; None when the rate equals
    the floor (no sample size settles it).

    >>> samples_to_settle(97, 100)  # 0.97 observed: interval (0.915, 0.990) straddles 0.95
    357
    >>> samples_to_settle(990, 1000)
    0
    """
    if n <= 0:
        return None
    p = successes / n

    def settled(size: float) -> bool:
        low, high = wilson_interval(p * size, size, confidence)
        return low > floor or high < floor

    if settled(n):
        return 0
    if p == floor:
        return None
    high = max(2.0 * n, 16.0)
    while not settled(high):
        high *= 2
        if high > 1e12:
            return None
    low = float(n)
    while high - low > 1:  # invariant: not settled(low), settled(high)
        mid = math.floor((low + high) / 2)
        if settled(mid):
            high = mid
        else:
            low = mid
    return int(math.ceil(high - n))


@dataclass(frozen=True)
class StratifiedEstimate:
    """A population proportion estimated from a stratified sample."""

    estimate: float
    low: float
    high: float
    n: int  # sampled rows
    effective_n: float  # the simple-random-sample size with the same variance

    def to_dict(self) -> dict:
        return {
            "estimate": self.estimate,
            "low": self.low,
            "high": self.high,
            "n": self.n,
            "effective_n": self.effective_n,
        }


def stratified_agreement(
    agree: Mapping[object, int],
    sampled: Mapping[object, int],
    population: Mapping[object, int],
    confidence: float = 0.95,
) -> StratifiedEstimate:
    """Agreement over the whole population from a stratified sample.

    Each stratum h is weighted by its population share W_h = N_h / N, so a
    stratum sampled more heavily than its share does not pull the estimate
    (the estimate stays unbiased for the traffic the rule will see). The
    interval is Wilson's at the effective sample size p(1-p) / Var, with
    Var = sum W_h^2 p_h (1 - p_h) / n_h (Kish).

    >>> est = stratified_agreement({"a": 90, "b": 50}, {"a": 100, "b": 50}, {"a": 900, "b": 100})
    >>> round(est.estimate, 3)  # 0.9 * 0.9 + 0.1 * 1.0, not the pooled 140 / 150
    0.91
    """
    total = sum(population.get(h, 0) for h in sampled if sampled[h] > 0)
    n = int(sum(sampled.values()))
    if total == 0 or n == 0:
        return StratifiedEstimate(math.nan, 0.0, 1.0, n, 0.0)
    estimate = 0.0
    variance = 0.0
    for h, n_h in sampled.items():
        if n_h <= 0:
            continue
        weight = population.get(h, 0) / total
        p_h = agree.get(h, 0) / n_h
        estimate += weight * p_h
        variance += weight * weight * p_h * (1 - p_h) / n_h
    estimate = min(1.0, max(0.0, estimate))
    # When every stratum agrees perfectly (variance 0) the design effect is 1.
    effective = estimate * (1 - estimate) / variance if variance > 0 else float(n)
    low, high = wilson_interval(estimate * effective, effective, confidence)
    return StratifiedEstimate(estimate, low, high, n, effective)
