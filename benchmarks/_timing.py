"""Timing helpers shared by the figures.

These machines are shared and noisy, so every figure is a ratio against a
baseline measured in the same run, repeated, and summarised by its median:
the median of paired per-repetition ratios cancels slow phases that hit both
sides of one repetition alike.
"""

from __future__ import annotations

import gc
import math
import statistics
import time
from collections.abc import Callable, Mapping

__all__ = ["interleaved", "median", "paired_ratio", "percentile", "timer_floor_ns"]


def median(values) -> float:
    return float(statistics.median(values))


def percentile(sorted_values, q: float) -> float:
    """Nearest-rank percentile of an already sorted sequence (q in 0..1)."""
    if not sorted_values:
        raise ValueError("percentile of no values; time at least one call")
    rank = max(1, math.ceil(q * len(sorted_values)))
    return float(sorted_values[rank - 1])


def interleaved(passes: Mapping[str, Callable[[], object]], reps: int) -> dict[str, list[float]]:
    """Run every pass ``reps`` times, rotating their order; seconds per run.

    Rotating the order keeps a systematic warm/cold position from favouring one
    side. A full collection before each run starts every pass from the same
    heap; the collector stays enabled, as it is in the service.
    """
    names = list(passes)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for rep in range(reps):
        shift = rep % len(names)
        for name in names[shift:] + names[:shift]:
            gc.collect()
            start = time.perf_counter()
            result = passes[name]()
            seconds[name].append(time.perf_counter() - start)
            # Freed after the clock stops: tearing down a big result (a
            # 100K-pattern bundle takes ~0.1 s) is not part of making it.
            del result
    return seconds


def paired_ratio(seconds: Mapping[str, list[float]], subject: str, baseline: str) -> float:
    """Median over repetitions of subject / baseline, each pair from one repetition."""
    return median([s / b for s, b in zip(seconds[subject], seconds[baseline])])


def timer_floor_ns(calls: int = 100_000) -> float:
    """Median cost of an empty ``perf_counter_ns`` bracket: the per-call floor
    included in every single-call latency (reported, not subtracted)."""
    ns = time.perf_counter_ns
    out = [0] * calls
    for i in range(calls):
        start = ns()
        out[i] = ns() - start
    return median(out)
