"""Smoke test of benchmarks.bench_spine: structure only, never timing thresholds."""

from __future__ import annotations

import json

from benchmarks.bench_spine import Config, format_table, run

TINY = Config(queries=2_000, throughput_reps=1, latency_patterns=(50,), latency_calls=500, latency_reps=1,
              load_patterns=(50,), load_reps=1, lexicon_patterns=50, lexicon_phrases=10, lexicon_calls=500,
              lexicon_reps=1)


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

    x = report["lexicon"]
    assert x["lexicon_phrases"] == 10 and x["calls"] == 500
    for key in ("plain_p50_us", "lexicon_p50_us", "ratio_p50"):
        assert _positive(x[key]), (key, x[key])

    table = format_table(report)
    assert "[1]" in table and "[2]" in table and "[3]" in table and "[4]" in table


def test_bench_gate_reports_every_figure():
    from benchmarks import bench_gate

    tiny = bench_gate.Config(history_days=2, history_per_day=3_000, promote_reps=1, per_day=2_000, small_days=1,
                             large_days=2, build_reps=1,
                             settings={"high_traffic_fires": 200, "dataset_floor_high_traffic": 300,
                                       "gate_on": "point"})
    report = bench_gate.run(tiny, progress=lambda msg: None)
    json.loads(json.dumps(report))

    p = report["promote"]
    assert p["rule"] == tiny.rule and p["dataset_rows"] > 0 and p["high_traffic"] is True
    for key in ("evaluate_promote_s", "evaluate_s", "promote_s", "baseline_s", "ratio"):
        assert _positive(p[key]), (key, p[key])
    assert len(p["seconds_per_rep"]["evaluate_promote"]) == 1

    b = report["build"]
    assert b["rows"] == b["scan_rows"] > 0
    for key in ("cold_build_s", "build_s", "scan_s", "build_rows_per_s", "scan_rows_per_s", "rate_ratio",
                "peak_ratio_large_to_small"):
        assert _positive(b[key]), (key, b[key])
    assert b["memory"]["large"]["rows"] > b["memory"]["small"]["rows"] == b["rows"]
    for size in ("small", "large"):
        assert _positive(b["memory"][size]["build_peak_mb"]) and _positive(b["memory"][size]["scan_peak_mb"])

    table = bench_gate.format_table(report)
    assert "[1]" in table and "[2]" in table


def test_bench_nightly_reports_every_figure():
    from benchmarks import bench_monitors, bench_nightly

    tiny = bench_nightly.Config(queries=3_000, nightly_reps=1,
                                monitors=bench_monitors.Config(days=30, rules=5, locales=2, reps=1))
    report = bench_nightly.run(tiny, progress=lambda msg: None)
    json.loads(json.dumps(report, default=str))

    n = report["nightly"]
    assert n["rules"] == 50 and n["rows"] > 0 and n["rule_answers"] > 0
    for key in ("cold_nightly_s", "nightly_s", "baseline_s", "ratio"):
        assert _positive(n[key]), (key, n[key])
    assert n["warm_files_cached"] == 1 and n["warm_run"]["status"] == "ok"

    m = report["monitors"]
    assert m["rows"] == 30 * 5 * 2
    assert set(m["seconds"]) >= {"baseline", "all_five"} and _positive(m["seconds"]["all_five"])

    table = bench_nightly.format_table(report)
    assert "[3]" in table and "[4]" in table


def test_bench_service_reports_every_figure():
    from benchmarks import bench_service

    tiny = bench_service.Config(reload_patterns=500, reloads=1, window_s=0.05, reload_reps=1, log_queries=500,
                                log_reps=1, cold_patterns=(200,), cold_reps=1)
    report = bench_service.run(tiny, progress=lambda msg: None)
    json.loads(json.dumps(report, default=str))

    r = report["reload"]
    for way in ("idle", "walked", "frozen"):
        assert _positive(r[way]["calls"]) and r[way]["gc_pauses"] >= 0
    w = report["log"]
    assert w["rows_written"] == 500 and w["rows_dropped"] == 0 and _positive(w["ratio"])
    (c,) = report["cold"]
    for key in ("cold_start_s", "floor_s", "ratio", "import_s", "load_s", "first_answer_s"):
        assert _positive(c[key]), (key, c[key])
    table = bench_service.format_table(report)
    assert "[1]" in table and "[2]" in table and "[3]" in table


def test_bench_normalize_reports_every_figure():
    from benchmarks import bench_normalize
    from rulelife.rules.normalize import normalize

    report = bench_normalize.run(queries=2_000, reps=1, against="HEAD", progress=lambda msg: None)
    json.loads(json.dumps(report))
    assert set(report["figures"]) == {"simulated", "hostile"}
    for figure in report["figures"].values():
        assert figure["texts"] == 2_000 and 0 < figure["not_ascii_share"] < 1
        for key in ("normalize_s", "against_s", "floor_s", "ratio_against", "ratio_floor"):
            assert _positive(figure[key]), (key, figure[key])
    # Every third text is disguised (look-alike, joiner, full width in turn), and each still normalises alike.
    hostile = bench_normalize.hostile_texts(["where is my order"] * 9)
    assert [i for i, text in enumerate(hostile) if text != "where is my order"] == [0, 3, 6]
    assert {normalize(text) for text in hostile} == {"where is my order"}


def test_bench_log_columns_reports_every_figure():
    from benchmarks import bench_log_columns

    report = bench_log_columns.run(bench_log_columns.Config(queries=3_000), progress=lambda msg: None)
    json.loads(json.dumps(report))
    assert report["width"] == 400 and report["rows"] > 0
    assert report["file_bytes"]["wide"] > report["file_bytes"]["narrow"] + 400 * report["rows"] * 0.5
    for phase in ("cold", "warm"):
        f = report[phase]
        assert _positive(f["narrow_peak_mb"]) and _positive(f["wide_peak_mb"]) and _positive(f["ratio"])
        assert f["rows_valid"][0] == f["rows_valid"][1] > 0  # both logs hold the same valid rows
    assert report["cold"]["files_cached"] == [0, 0] and report["warm"]["files_cached"] == [1, 1]
    assert "cold" in bench_log_columns.format_table(report)


def test_bench_http_reports_every_window_and_ratio():
    from benchmarks import bench_http

    tiny = bench_http.Config(patterns=300, connections=2, client_processes=1, window_s=1.0, settle_s=0.1, reps=1,
                             publish_every_s=0.5, poll_s=0.05)
    report = bench_http.run(tiny, progress=lambda msg: None)
    json.loads(json.dumps(report, default=str))

    assert sorted(w["way"] for w in report["windows"]) == ["equal", "publish", "quiet"]
    for w in report["windows"]:
        assert _positive(w["rps"]) and _positive(w["p99_ms"]) and w["bundles_seen"] >= 1
    for way in ("publish", "equal"):
        assert _positive(report[way]["p99_ratio"]) and _positive(report[way]["rps_ratio"])
    assert "publish / quiet" in bench_http.format_table(report)


def test_bench_reload_derives_a_few_rules_change_and_loads_whole_without_derivation():
    from benchmarks import bench_reload
    from rulelife.serving.bundle import BundleStore

    pointed = BundleStore.pointed
    report = bench_reload.run(bench_reload.Config(patterns=300, reloads=1), progress=lambda msg: None)
    assert BundleStore.pointed is pointed  # derivation is back on after the whole-load passes
    ways = report["ways"]
    assert {way: ways[way]["served"] for way in ways} == {
        "disable": {"derived": "DerivedMatcher", "whole": "Matcher"},
        "promote": {"derived": "DerivedMatcher", "whole": "Matcher"},
        "equal": {"derived": "Matcher", "whole": "Matcher"},
    }
    assert all(len(row["samples"][f"{way}/derived"]["cpu_ms"]) == 1 for way, row in ways.items())
    assert "whole/derived" in bench_reload.format_table(report)


def test_bench_locales_and_bench_shards_report_every_figure():
    from benchmarks import bench_locales, bench_shards

    report = bench_locales.run(bench_locales.Config(patterns=300, locales=50, reps=1), progress=lambda msg: None)
    assert _positive(report["ratio"]) and report["cached_locales"] >= 1
    assert "random locales" in bench_locales.format_table(report)

    report = bench_shards.run(bench_shards.Config(patterns=400, shards=(1, 2), queries=100, reps=1),
                              progress=lambda msg: None)
    assert [row["shards"] for row in report["rows"]] == [1, 2]
    assert report["rows"][0]["walk_ratio"] == 1.0 and _positive(report["rows"][1]["walk_ratio"])
    assert "walk ratio" in bench_shards.format_table(report)
