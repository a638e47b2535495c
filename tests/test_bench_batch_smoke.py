"""Smoke test of benchmarks.bench_batch: structure only, never timing thresholds."""

from __future__ import annotations

import json

from benchmarks import bench_batch
from rulelife.demo.quickstart import shipped_rules_dir
from rulelife.rules.definition import iter_rule_files


def test_bench_batch_reports_every_figure():
    tiny = bench_batch.Config(days=1, per_day=1_500, max_rules=1)
    report = bench_batch.run(tiny, progress=lambda msg: None)
    json.loads(json.dumps(report))  # JSON-ready as --json writes it

    assert report["rules"] == 1 and report["log_rows"] > 0
    assert report["shipped_rules"] == len(list(iter_rule_files(shipped_rules_dir())))
    runs = {"processes_per_rule", "processes_batch", "in_process_per_rule", "in_process_batch"}
    assert set(report["seconds"]) == set(report["bundles"]) == runs
    assert all(report["seconds"][name] > 0 for name in runs)
    assert set(report["in_process_batch_split"]) == {"build_many", "promote_many"}
    # A rule at a time publishes once a promotion; a batch once at most.
    promoted = report["promoted"]
    assert report["bundles"]["processes_per_rule"] == report["bundles"]["in_process_per_rule"] == promoted
    assert report["bundles"]["processes_batch"] == report["bundles"]["in_process_batch"] == min(promoted, 1)
    assert report["speedup_processes"] > 0 and report["speedup_in_process"] > 0
    assert "processes_per_rule" in bench_batch.format_table(report)
