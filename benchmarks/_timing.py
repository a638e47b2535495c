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


def interleaved(passes: Mapping[str, Callable[[], object]], reps: int,
                clock: Callable[[], float] = time.perf_counter) -> dict[str, list[float]]:
    """Run every pass ``reps`` times, rotating their order; seconds per run.

    Rotating the order keeps a systematic warm/cold position from favouring one
    side. A full collection before each run starts every pass from the same
    heap; the collector stays enabled, as it is in the service. ``clock``
    ``time.thread_time`` counts only this thread's CPU time: for single-threaded
    work on a shared machine, it leaves out the time other processes took.
    """
    names = list(passes)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for rep in range(reps):
        shift = rep % len(names)
        for name in names[shift:] + names[:shift]:
            gc.collect()
            start = clock()
            result = passes[name]()
            seconds[name].append(clock() - start)
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


def run_meta(config, **extra) -> dict:
    """What a report says about the run: when, on what, how busy the machine was."""
    import os
    import platform
    import sys
    from dataclasses import asdict
    from datetime import UTC, datetime
    from importlib.metadata import version

    return {"started_at": datetime.now(UTC).isoformat(timespec="seconds"), "python": sys.version.split()[0],
            "rulelife": version("rulelife"), "platform": platform.platform(), "cpus": os.cpu_count(),
            "load_average": list(os.getloadavg()), **extra, "config": asdict(config), "_started": time.perf_counter()}


def finish_meta(meta: dict) -> dict:
    """Close ``meta``: the load average at the end and the elapsed seconds."""
    import os

    meta["load_average_end"] = list(os.getloadavg())
    meta["elapsed_s"] = time.perf_counter() - meta.pop("_started")
    return meta


def bench_main(argv, *, prog: str, doc: str, run, format_table, quick, full, quick_help: str) -> int:
    """The shared command line of the figure scripts: --quick, --json OUT, table to stdout."""
    import argparse
    import json
    import sys
    from pathlib import Path

    parser = argparse.ArgumentParser(prog=prog, description=doc.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--json", type=Path, metavar="OUT", help="also write every figure to this JSON file")
    args = parser.parse_args(argv)
    report = run(quick if args.quick else full, progress=lambda msg: print(msg, file=sys.stderr, flush=True))
    print(format_table(report))
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    return 0
