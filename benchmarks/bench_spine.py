"""Benchmark the rulelife spine: batch throughput, single-query latency, bundle load, lexicon cost.

    .venv/bin/python -m benchmarks.bench_spine [--quick] [--json out.json]

Every figure comes with a baseline measured in the same run and is reported
as a median over repetitions (see ``benchmarks/README.md``).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import version

from benchmarks._timing import bench_main, finish_meta, run_meta, timer_floor_ns
from benchmarks.latency import bench_latency
from benchmarks.lexicon import bench_lexicon
from benchmarks.load import bench_load
from benchmarks.throughput import bench_throughput

__all__ = ["FULL", "QUICK", "Config", "format_table", "main", "run"]


@dataclass(frozen=True)
class Config:
    """Sizes and repetitions of one run."""

    queries: int
    throughput_reps: int
    latency_patterns: tuple[int, ...]
    latency_calls: int
    latency_reps: int
    load_patterns: tuple[int, ...]
    load_reps: int
    lexicon_patterns: int = 10_000
    lexicon_phrases: int = 500
    lexicon_calls: int = 50_000
    lexicon_reps: int = 7


FULL = Config(queries=1_000_000, throughput_reps=5, latency_patterns=(1_000, 10_000), latency_calls=100_000,
              latency_reps=5, load_patterns=(10_000, 100_000), load_reps=7)
QUICK = Config(queries=50_000, throughput_reps=3, latency_patterns=(1_000, 10_000), latency_calls=20_000,
               latency_reps=3, load_patterns=(1_000, 10_000), load_reps=3, lexicon_calls=20_000, lexicon_reps=3)


def run(config: Config, progress=print) -> dict:
    """Measure every figure under ``config``; return them as one JSON-ready dict."""
    report = {
        "meta": run_meta(config, pyahocorasick=version("pyahocorasick"), timer_floor_ns=timer_floor_ns()),
        "throughput": bench_throughput(config.queries, config.throughput_reps, progress),
        "latency": {"target_ratio_p50": 1.3, "target_ratio_p99": 1.5,
                    "rows": bench_latency(config.latency_patterns, config.latency_calls, config.latency_reps, progress)},
        "load": {"target_s": 0.15, "rows": bench_load(config.load_patterns, config.load_reps, progress)},
        "lexicon": bench_lexicon(config.lexicon_patterns, config.lexicon_phrases, config.lexicon_calls,
                                 config.lexicon_reps, progress),
    }
    finish_meta(report["meta"])
    return report


def format_table(report: dict) -> str:
    """The figures as a compact plain-text table."""
    t = report["throughput"]
    lines = [
        f"[1] classify_many, {t['queries']:,} simulated queries ({t['rules']} rules, {t['patterns']} patterns); "
        f"duplicate (text, locale) share {t['duplicate_share']:.1%}; target ratio <= {t['target_ratio']}",
        f"    {'set':<10}{'texts':>10}{'base µs/q':>11}{'cm µs/q':>10}{'ratio':>8}{'mm ratio':>10}{'rs ratio':>10}",
    ]
    for name in ("simulated", "unique"):
        s = t[name]
        lines.append(f"    {name:<10}{s['texts']:>10,}{s['baseline_us_per_query']:>11.2f}"
                     f"{s['classify_many_us_per_query']:>10.2f}{s['ratio']:>8.2f}{s['ratio_match_many']:>10.2f}"
                     f"{_ratio(s['ratio_rs']):>10}")
    lat = report["latency"]
    lines.append(f"[2] classify latency, µs (targets at 10K patterns: ratio p50 <= {lat['target_ratio_p50']}, "
                 f"p99 <= {lat['target_ratio_p99']})")
    lines.append(f"    {'patterns':>9}{'match':>7}{'p50':>8}{'p99':>8}{'base p50':>10}{'base p99':>10}"
                 f"{'r p50':>7}{'r p99':>7}{'rs p50':>8}{'rs p99':>8}{'rs r p50':>9}{'rs r p99':>9}")
    for r in report["latency"]["rows"]:
        lines.append(f"    {r['patterns']:>9,}{r['match_share']:>7.0%}{r['classify_p50_us']:>8.2f}{r['classify_p99_us']:>8.2f}"
                     f"{r['baseline_p50_us']:>10.2f}{r['baseline_p99_us']:>10.2f}{r['ratio_p50']:>7.2f}{r['ratio_p99']:>7.2f}"
                     f"{_ratio(r.get('classify_rs_p50_us')):>8}{_ratio(r.get('classify_rs_p99_us')):>8}"
                     f"{_ratio(r.get('ratio_p50_rs')):>9}{_ratio(r.get('ratio_p99_rs')):>9}")
    lines.append(f"[3] read_bundle, s (targets: <= {report['load']['target_s']} s at 100K patterns, <= 1.0x a bare "
                 "build)")
    for r in report["load"]["rows"]:
        parts = " ".join(f"{k}={v:.3f}" for k, v in r["breakdown_s"].items())
        parts += f"; resident {r['memory']['loaded_mb']:.0f} MB loaded, {r['memory']['peak_mb']:.0f} MB peak"
        lines.append(f"    {r['patterns']:>9,} patterns: read_bundle {r['read_bundle_s']:.3f}  bare build "
                     f"{r['bare_build_s']:.3f}  ratio {r['ratio']:.2f}  ({r['bundle_bytes'] / 1e6:.1f} MB); "
                     f"automaton pickle.loads alone {r['automaton_loads_s']:.3f}")
        lines.append(f"              {parts}")
    x = report["lexicon"]
    lines.append(f"[4] classify with a {x['lexicon_phrases']}-phrase safety lexicon vs without, {x['patterns']:,} "
                 f"patterns, {x['veto_share']:.1%} of queries vetoed (target p50 ratio <= {x['target_ratio_p50']})")
    lines.append(f"    p50 {x['lexicon_p50_us']:.2f} vs {x['plain_p50_us']:.2f} µs  p99 {x['lexicon_p99_us']:.2f} vs "
                 f"{x['plain_p99_us']:.2f} µs  ratio p50 {x['ratio_p50']:.2f}")
    meta = report["meta"]
    lines.append(f"    load average {meta['load_average'][0]:.2f} -> {meta['load_average_end'][0]:.2f} on "
                 f"{meta['cpus']} CPUs; timer floor {meta['timer_floor_ns']:.0f} ns; {meta['elapsed_s']:.0f} s")
    return "\n".join(lines)


def _ratio(value: float | None) -> str:
    """A figure of the optional backend, or "n/a" where ahocorasick-rs is not installed."""
    return "n/a" if value is None else f"{value:.2f}"


def main(argv: list[str] | None = None) -> int:
    return bench_main(argv, prog="python -m benchmarks.bench_spine", doc=__doc__, run=run, format_table=format_table, quick=QUICK,
                      full=FULL, quick_help="reduced sizes for a smoke run (< 60 s)")

if __name__ == "__main__":
    raise SystemExit(main())
