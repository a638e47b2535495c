"""Benchmark the promotion path (issue 3): evaluate + promote, and the streaming dataset build.

    .venv/bin/python -m benchmarks.bench_gate [--quick] [--json out.json]

[1] ``promotion.evaluate`` + ``promotion.promote`` of one rule on its
    5,000-row dataset, in a SQLite workspace with the shipped rules (the
    others active, so the republished bundle is the deployment's). Target
    ≤ 1 s absolute; the same-run baseline is ``pd.read_parquet`` of the
    dataset plus one ``Matcher.match_many`` of the rule over its texts.
[2] ``promotion.build_rule_dataset`` streaming a model-only log of daily
    Parquet files (warm validation cache), against the raw matcher scan of
    the same files (``ParquetFile.iter_batches`` + ``match_many`` of the
    rule's matcher). Target: build rate ≥ 0.5 × scan rate, and the same peak
    memory for the small and the large log, each measured in a fresh
    subprocess. The cold first read (great-expectations) is reported apart.

Repetitions run in rotating order; figures are medians, ratios are medians of
per-repetition ratios (``benchmarks/README.md``).
"""

from __future__ import annotations

import datetime as dt
import gc
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from benchmarks._memory import measure_in_subprocess
from benchmarks._timing import bench_main, finish_meta, median, run_meta
from rulelife.config import Workspace
from rulelife.demo.quickstart import shipped_rules_dir
from rulelife.evidence import promotion
from rulelife.querylog import iter_log
from rulelife.rules.lifecycle import State
from rulelife.rules.matcher import Matcher
from rulelife.serving import publish
from rulelife.simulate import simulate_traffic, write_log
from rulelife.store import Store, registry

__all__ = ["FULL", "QUICK", "Config", "build_once", "format_table", "main", "new_workspace", "run", "scan_once"]

ACTOR = "bench"
START = dt.date(2026, 1, 5)  # a Monday


@dataclass(frozen=True)
class Config:
    """Sizes and repetitions of one run."""

    rule: str = "order_tracking.where_is_my_order"
    # [1] model-only history behind the rule's dataset: ~9 % of simulated
    # traffic fires the rule, so 7 × 40K rows give ~26K fires, past
    # high_traffic_fires (20K): the dataset aims at 5,000 rows.
    history_days: int = 7
    history_per_day: int = 40_000
    promote_reps: int = 7
    # [2] two logs of daily files, the large one a superset of the small one.
    per_day: int = 100_000
    small_days: int = 10
    large_days: int = 40
    build_reps: int = 3
    settings: dict = field(default_factory=dict)  # workspace overrides (tiny runs lower the floors)


FULL = Config()
QUICK = Config(history_days=4, history_per_day=10_000, promote_reps=3, per_day=10_000, small_days=2, large_days=8,
               build_reps=2, settings={"high_traffic_fires": 2_000, "dataset_floor_high_traffic": 1_500})


def new_workspace(root: Path, settings: Mapping | None = None) -> tuple[Workspace, object]:
    """A SQLite workspace with the shipped rules registered (all candidates); the workspace and its store."""
    workspace = Workspace.create(root, settings=dict(settings or {}))
    shutil.copytree(shipped_rules_dir(), workspace.rules_dir, dirs_exist_ok=True)
    store = Store.from_workspace(workspace)
    registry.sync_workspace(workspace, actor=ACTOR, store=store)
    return workspace, store


def write_days(log_dir: Path, start: dt.date, days: int, per_day: int, seed: int, block: int = 10) -> int:
    """Simulate and write ``days`` daily files, ``block`` days at a time (bounded memory); rows written."""
    rows = 0
    for offset in range(0, days, block):
        frame = simulate_traffic(start=start + dt.timedelta(days=offset), days=min(block, days - offset),
                                 queries_per_day=per_day, seed=seed)
        write_log(frame, log_dir)
        rows += len(frame)
    return rows


def _reset(workspace: Workspace, store, rule_id: str) -> None:
    """Put the rule back to candidate and republish without it (untimed)."""
    if registry.get_status(store, rule_id).state == State.ACTIVE:
        for state in (State.DISABLED, State.CANDIDATE):
            registry.transition(store, rule_id, state, actor=ACTOR, reason="benchmark reset")
        publish.publish_active(workspace, actor=ACTOR, store=store)


def _rotating(passes: Mapping[str, Callable[[], object]], reps: int, setup: Callable[[], None]) -> dict:
    """Like ``_timing.interleaved``, with an untimed ``setup`` before every run."""
    names = list(passes)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for rep in range(reps):
        shift = rep % len(names)
        for name in names[shift:] + names[:shift]:
            setup()
            gc.collect()
            start = time.perf_counter()
            passes[name]()
            seconds[name].append(time.perf_counter() - start)
    return seconds


def bench_promote(config: Config, root: Path, progress=print) -> dict:
    """Figure 1: evaluate + promote one rule on its high-traffic dataset."""
    workspace, store = new_workspace(root, config.settings)
    progress(f"[1] simulating {config.history_days} days x {config.history_per_day:,} model-only queries")
    history = write_days(workspace.log_dir, START, config.history_days, config.history_per_day, seed=3)
    for status in registry.list_rules(store):
        if status.rule_id != config.rule:
            registry.transition(store, status.rule_id, State.ACTIVE, actor=ACTOR, reason="benchmark deployment",
                                expiry_days=workspace.settings.expiry_days)
    publish.publish_active(workspace, actor=ACTOR, store=store)
    snapshot = promotion.build_rule_dataset(workspace, config.rule, actor=ACTOR, store=store).snapshot
    matcher = Matcher.from_rules([registry.rule_definition(store, config.rule)])
    split: dict[str, list[float]] = {"evaluate": [], "promote": []}

    def evaluate_promote() -> None:
        start = time.perf_counter()
        promotion.evaluate(workspace, config.rule, actor=ACTOR)
        middle = time.perf_counter()
        result = promotion.promote(workspace, config.rule, actor=ACTOR)
        split["evaluate"].append(middle - start)
        split["promote"].append(time.perf_counter() - middle)
        assert result.published is not None and result.published.published, "promote did not republish"

    def baseline() -> None:
        frame = pd.read_parquet(snapshot.path)
        matcher.match_many(frame["text"], frame["locale"])

    progress(f"[1] dataset {snapshot.rows:,} rows ({snapshot.fires:,} fires in {history:,} rows); "
             f"timing {config.promote_reps} reps")
    seconds = _rotating({"evaluate_promote": evaluate_promote, "baseline": baseline}, config.promote_reps,
                        setup=lambda: _reset(workspace, store, config.rule))
    total = median(seconds["evaluate_promote"])
    return {
        "rule": config.rule, "history_rows": history, "dataset_rows": snapshot.rows, "dataset_fires": snapshot.fires,
        "high_traffic": bool(snapshot.meta.get("high_traffic")), "reps": config.promote_reps, "target_s": 1.0,
        "evaluate_promote_s": total, "evaluate_s": median(split["evaluate"]), "promote_s": median(split["promote"]),
        "baseline_s": median(seconds["baseline"]),
        "ratio": median([s / b for s, b in zip(seconds["evaluate_promote"], seconds["baseline"])]),
        "met": total <= 1.0, "seconds_per_rep": seconds,
    }


def _window_files(log_dir: Path, since: dt.date, until: dt.date) -> list[Path]:
    return [log_dir / f"queries-{day:%Y-%m-%d}.parquet"
            for day in pd.date_range(since, until, freq="D").date]


def scan_once(workspace: str, rule_id: str, since: str, until: str, batch_rows: int = 250_000) -> int:
    """The baseline: stream the window's files with pyarrow and match every text; rows scanned."""
    ws = Workspace.load(Path(workspace))
    store = Store.from_workspace(ws)
    matcher = Matcher.from_rules([registry.rule_definition(store, rule_id, registry.get_status(
        store, rule_id).latest_version)])
    store.dispose()
    rows = 0
    for path in _window_files(ws.log_dir, dt.date.fromisoformat(since), dt.date.fromisoformat(until)):
        for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows, columns=["text", "locale"]):
            matcher.match_many(batch.column("text").to_pylist(), batch.column("locale").to_pylist())
            rows += batch.num_rows
    return rows


def build_once(workspace: str, rule_id: str, since: str, until: str) -> int:
    """The subject: build and store the rule's dataset over the window; rows read."""
    ws = Workspace.load(Path(workspace))
    store = Store.from_workspace(ws)
    result = promotion.build_rule_dataset(ws, rule_id, since=dt.date.fromisoformat(since),
                                          until=dt.date.fromisoformat(until), actor=ACTOR, store=store)
    store.dispose()
    return int(result.log.rows_valid)


def _warm(workspace: Workspace, since: dt.date, until: dt.date) -> None:
    """Validate the window's files once, as a first build would, so later reads hit the cache."""
    for _ in iter_log(workspace.log_dir, since=since, until=until, known_intents=workspace.settings.intents or None,
                      quarantine_dir=workspace.quarantine_dir):
        pass


def bench_build(config: Config, root: Path, progress=print) -> dict:
    """Figure 2: build rate against the raw scan, cold first read, and peak memory at two log sizes."""
    workspace, store = new_workspace(root, config.settings)
    store.dispose()
    progress(f"[2] simulating {config.large_days} days x {config.per_day:,} queries")
    write_days(workspace.log_dir, START, config.large_days, config.per_day, seed=5)
    small_until = START + dt.timedelta(days=config.small_days - 1)
    large_until = START + dt.timedelta(days=config.large_days - 1)
    args = {"workspace": str(workspace.root), "rule_id": config.rule, "since": START.isoformat()}
    small = {**args, "until": small_until.isoformat()}
    progress(f"[2] cold build over {config.small_days} days (great-expectations validates every file)")
    start = time.perf_counter()
    rows = build_once(**small)
    cold_s = time.perf_counter() - start
    progress(f"[2] timing {config.build_reps} reps of build and scan over {rows:,} rows")
    seconds = _rotating({"build": lambda: build_once(**small), "scan": lambda: scan_once(**small)},
                        config.build_reps, setup=lambda: None)
    scanned = scan_once(**small)
    progress(f"[2] validating the rest of the {config.large_days}-day log (untimed), then peak memory")
    _warm(workspace, START, large_until)
    memory = {}
    for name, until in (("small", small_until), ("large", large_until)):
        window = {**args, "until": until.isoformat()}
        memory[name] = {"build": measure_in_subprocess("benchmarks.bench_gate:build_once", window),
                        "scan": measure_in_subprocess("benchmarks.bench_gate:scan_once", window)}
    build_s, scan_s = median(seconds["build"]), median(seconds["scan"])
    ratio = median([s / b for s, b in zip(seconds["scan"], seconds["build"])])  # = build rate / scan rate
    peak_ratio = memory["large"]["build"]["peak_mb"] / memory["small"]["build"]["peak_mb"]
    return {
        "rule": config.rule, "rows": rows, "scan_rows": scanned, "reps": config.build_reps,
        "cold_build_s": cold_s, "build_s": build_s, "scan_s": scan_s,
        "build_rows_per_s": rows / build_s, "scan_rows_per_s": scanned / scan_s,
        "rate_ratio": ratio, "target_rate_ratio": 0.5, "rate_met": ratio >= 0.5,
        # imports_mb is the interpreter with the modules loaded (great-expectations
        # pulls in a lot); peak - imports is what the call itself added.
        "memory": {name: {"rows": m["build"]["result"], "build_peak_mb": m["build"]["peak_mb"],
                          "build_imports_mb": m["build"]["imports_mb"], "scan_peak_mb": m["scan"]["peak_mb"],
                          "scan_imports_mb": m["scan"]["imports_mb"],
                          "build_added_mb": m["build"]["peak_mb"] - m["build"]["imports_mb"]}
                   for name, m in memory.items()},
        "peak_ratio_large_to_small": peak_ratio,
        "seconds_per_rep": seconds,
    }


def run(config: Config, progress=print) -> dict:
    """Measure both figures under ``config``; return them as one JSON-ready dict."""
    meta = run_meta(config)
    with tempfile.TemporaryDirectory(prefix="rulelife-bench-gate-") as tmp:
        promote = bench_promote(config, Path(tmp) / "promote", progress)
        build = bench_build(config, Path(tmp) / "build", progress)
    finish_meta(meta)
    return {"meta": meta, "promote": promote, "build": build}


def format_table(report: dict) -> str:
    """The figures as a compact plain-text table."""
    p, b, meta = report["promote"], report["build"], report["meta"]
    mem = b["memory"]
    lines = [
        f"[1] evaluate + promote {p['rule']} on {p['dataset_rows']:,} rows "
        f"(high-traffic: {p['high_traffic']}); target <= {p['target_s']} s",
        f"    evaluate+promote {p['evaluate_promote_s']:.3f} s (evaluate {p['evaluate_s']:.3f}, promote "
        f"{p['promote_s']:.3f})  {'met' if p['met'] else 'MISSED'}",
        f"    baseline read_parquet + match_many {p['baseline_s']:.3f} s; ratio {p['ratio']:.1f}",
        f"[2] dataset build over {b['rows']:,} rows (warm validation cache); target rate ratio >= "
        f"{b['target_rate_ratio']}, equal peak memory",
        f"    {'':<8}{'s':>8}{'rows/s':>12}",
        f"    {'build':<8}{b['build_s']:>8.2f}{b['build_rows_per_s']:>12,.0f}",
        f"    {'scan':<8}{b['scan_s']:>8.2f}{b['scan_rows_per_s']:>12,.0f}",
        f"    rate ratio build/scan {b['rate_ratio']:.3f}  {'met' if b['rate_met'] else 'MISSED'}; "
        f"cold first build (great-expectations) {b['cold_build_s']:.2f} s",
        f"    {'log rows':>12}{'build peak MB':>15}{'imports':>9}{'added':>7}{'scan peak MB':>14}{'imports':>9}",
    ]
    for name in ("small", "large"):
        m = mem[name]
        lines.append(f"    {m['rows']:>12,}{m['build_peak_mb']:>15.0f}{m['build_imports_mb']:>9.0f}"
                     f"{m['build_added_mb']:>7.0f}{m['scan_peak_mb']:>14.0f}{m['scan_imports_mb']:>9.0f}")
    lines.append(f"    build peak large/small {b['peak_ratio_large_to_small']:.2f}")
    lines.append(f"    load average {meta['load_average'][0]:.2f} -> {meta['load_average_end'][0]:.2f} on "
                 f"{meta['cpus']} CPUs; {meta['elapsed_s']:.0f} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    return bench_main(argv, prog="python -m benchmarks.bench_gate", doc=__doc__, run=run, format_table=format_table, quick=QUICK,
                      full=FULL, quick_help="reduced sizes for a smoke run (about a minute)")

if __name__ == "__main__":
    raise SystemExit(main())
