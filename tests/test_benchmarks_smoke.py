"""Smoke test of benchmarks.bench_spine: structure only, never timing thresholds."""

from __future__ import annotations

import json

from benchmarks.bench_spine import Config, format_table, run

TINY = Config(queries=2_000, throughput_reps=1, latency_patterns=(50,), latency_calls=500, latency_reps=1,
              load_patterns=(50,), load_reps=1)


def _positive(value) -> bool:
    return isinstance(value, int | float) and value > 0


def test_bench_spine_reports_every_figure():
    report = run(TINY, progress=lambda msg: None)
    json.loads(json.dumps(report))  # JSON-ready as --json writes it

    t = report["throughput"]
    assert t["queries"] == 2_000 and t["patterns"] > 0
    assert 0 <= t["duplicate_share"] < 1
    for name in ("simulated", "unique"):
        for key in ("baseline_s", "classify_many_s", "match_many_s", "ratio", "ratio_match_many"):
            assert _positive(t[name][key]), (name, key, t[name][key])

    (row,) = report["latency"]["rows"]
    assert row["patterns"] == 50 and row["calls"] == 500
    for key in ("classify_p50_us", "classify_p99_us", "baseline_p50_us", "baseline_p99_us", "ratio_p50", "ratio_p99"):
        assert _positive(row[key]), (key, row[key])

    (row,) = report["load"]["rows"]
    assert row["patterns"] == 50
    for key in ("read_bundle_s", "bare_build_s", "ratio", "bundle_bytes"):
        assert _positive(row[key]), (key, row[key])
    assert set(row["breakdown_s"]) >= {"read_bytes", "sha256", "unpickle", "matcher_init"}

    table = format_table(report)
    assert "[1]" in table and "[2]" in table and "[3]" in table
