"""Benchmark gating every candidate at once against one process per rule.

    .venv/bin/python -m benchmarks.bench_batch [--quick] [--json out.json]

Workspace: the shipped rules plus what ``mine_workspace`` proposes from
``days`` x ``per_day`` simulated, model-only queries (SQLite, default
settings), every one a candidate. Four ways to build every candidate's
dataset and promote it, each from the same registry (the database file is
restored and the bundles removed before each run, untimed; the log's
validation cache is warm for all):

- ``processes_per_rule``: ``rulelife dataset build RULE`` then ``rulelife
  promote RULE`` for each candidate, one process each (the way before
  batches).
- ``processes_batch``: ``rulelife dataset build --state candidate`` then
  ``rulelife promote --state candidate``: two processes.
- ``in_process_per_rule``: ``build_rule_dataset`` and ``promote`` rule by rule
  in this process: the log read once a rule, a publish a promotion, no
  process start-up.
- ``in_process_batch``: ``batch.build_many`` and ``batch.promote_many`` in
  this process.

Every run must end with the same rules promoted; the report says how many
bundles each published. Runs rotate order across repetitions; figures are
medians (``benchmarks/README.md``).
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks._timing import bench_main, finish_meta, median, run_meta
from benchmarks.bench_gate import START, new_workspace, write_days
from rulelife.config import Workspace
from rulelife.errors import GateRefused
from rulelife.evidence import batch, promotion
from rulelife.mining.mine import mine_workspace
from rulelife.serving.bundle import BundleStore
from rulelife.store import Store, registry

__all__ = ["FULL", "QUICK", "Config", "format_table", "main", "run"]

ACTOR = "bench"
CLI = [sys.executable, "-c", "from rulelife.cli import main; main()"]


@dataclass(frozen=True)
class Config:
    """Sizes and repetitions of one run."""

    days: int = 14
    per_day: int = 8_000
    reps: int = 1
    max_rules: int | None = None  # time only the first candidates (smoke runs); None: all, by --state
    settings: dict = field(default_factory=dict)


FULL = Config()
QUICK = Config(days=5, per_day=4_000, max_rules=10)


def _cli(workspace: Workspace, *args: str, ok: tuple[int, ...] = (0,)) -> int:
    done = subprocess.run([*CLI, "--workspace", str(workspace.root), *args], capture_output=True, text=True)
    if done.returncode not in ok:
        raise RuntimeError(f"rulelife {' '.join(args)} exited {done.returncode}: {done.stderr or done.stdout}")
    return done.returncode


def _selection(ids: list[str], capped: bool) -> list[str]:
    return ids if capped else ["--state", "candidate"]


def _runs(workspace: Workspace, ids: list[str], capped: bool,
          split: dict[str, list[float]]) -> dict[str, Callable[[], None]]:
    """The four ways, by name; ``split`` collects the in-process batch's build and promote seconds."""
    def processes_per_rule() -> None:
        for rule_id in ids:
            _cli(workspace, "dataset", "build", rule_id, "--actor", ACTOR)
            _cli(workspace, "promote", rule_id, "--actor", ACTOR, ok=(0, 1))  # 1: refused

    def processes_batch() -> None:
        _cli(workspace, "dataset", "build", *_selection(ids, capped), "--actor", ACTOR)
        _cli(workspace, "promote", *_selection(ids, capped), "--actor", ACTOR, ok=(0, 1))

    def in_process_per_rule() -> None:
        store = Store.from_workspace(workspace)
        for rule_id in ids:
            promotion.build_rule_dataset(workspace, rule_id, actor=ACTOR, store=store)
            try:
                promotion.promote(workspace, rule_id, actor=ACTOR, store=store)
            except GateRefused:
                pass
        store.dispose()

    def in_process_batch() -> None:
        store = Store.from_workspace(workspace)
        start = time.perf_counter()
        batch.build_many(workspace, ids, actor=ACTOR, store=store)
        middle = time.perf_counter()
        batch.promote_many(workspace, ids, actor=ACTOR, store=store)
        split["build_many"].append(middle - start)
        split["promote_many"].append(time.perf_counter() - middle)
        store.dispose()

    return {"processes_per_rule": processes_per_rule, "processes_batch": processes_batch,
            "in_process_per_rule": in_process_per_rule, "in_process_batch": in_process_batch}


def _prepare(config: Config, root: Path, progress) -> tuple[Workspace, list[str], dict]:
    """The workspace, the candidates timed, and how they came about."""
    workspace, store = new_workspace(root, config.settings)
    shipped = len(registry.list_rules(store))
    progress(f"simulating {config.days} days x {config.per_day:,} model-only queries")
    rows = write_days(workspace.log_dir, START, config.days, config.per_day, seed=11)
    # Mining reads every file end to end, so it also fills the validation cache every run then reads.
    mined = mine_workspace(workspace, actor="miner", store=store)
    ids = batch.rules_in_state(store, "candidate")
    store.dispose()
    if config.max_rules is not None:
        ids = ids[:config.max_rules]
    return workspace, ids, {"log_rows": rows, "shipped_rules": shipped, "mined_rules": len(mined.written),
                            "rules": len(ids)}


def _copy_db(source: Path, target: Path) -> None:
    """Copy a SQLite database with the backup API (it is in WAL mode: the file alone may lag)."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    src.close()
    dst.close()


def _reset(workspace: Workspace, saved: Path, database: Path) -> None:
    """Back to the registry right after mining: every rule a candidate, no bundle."""
    _copy_db(saved, database)
    shutil.rmtree(workspace.bundle_dir)
    workspace.bundle_dir.mkdir()
    shutil.rmtree(workspace.root / "datasets", ignore_errors=True)  # each run writes its dataset files


def _outcome(workspace: Workspace) -> tuple[list[str], int]:
    store = Store.from_workspace(workspace)
    promoted = sorted(s.rule_id for s in registry.list_rules(store) if s.state.value == "active")
    store.dispose()
    return promoted, len(BundleStore(workspace.bundle_dir).numbers())


def run(config: Config, progress=print) -> dict:
    """Time the four ways on one workspace; return the figures as one JSON-ready dict."""
    meta = run_meta(config)
    with tempfile.TemporaryDirectory(prefix="rulelife-bench-batch-") as tmp:
        workspace, ids, setup = _prepare(config, Path(tmp) / "ws", progress)
        database = Path(workspace.db_url.removeprefix("sqlite:///"))
        saved = Path(tmp) / "registry-after-mining.db"
        _copy_db(database, saved)
        split: dict[str, list[float]] = {"build_many": [], "promote_many": []}
        runs = _runs(workspace, ids, capped=config.max_rules is not None, split=split)
        names = list(runs)
        seconds: dict[str, list[float]] = {name: [] for name in names}
        outcomes: dict[str, tuple[list[str], int]] = {}
        for rep in range(config.reps):
            shift = rep % len(names)
            for name in names[shift:] + names[:shift]:
                _reset(workspace, saved, database)
                progress(f"rep {rep + 1}/{config.reps}: {name} over {len(ids)} candidates")
                start = time.perf_counter()
                runs[name]()
                seconds[name].append(time.perf_counter() - start)
                outcomes[name] = _outcome(workspace)
    promoted = {name: promoted for name, (promoted, _) in outcomes.items()}
    if len({tuple(p) for p in promoted.values()}) != 1:
        raise RuntimeError(f"the runs promoted different rules: {promoted}")
    finish_meta(meta)
    figures = {name: median(s) for name, s in seconds.items()}
    return {
        "meta": meta, **setup, "promoted": len(next(iter(promoted.values()))),
        "seconds": figures, "in_process_batch_split": {name: median(s) for name, s in split.items()},
        "bundles": {name: bundles for name, (_, bundles) in outcomes.items()},
        "speedup_processes": figures["processes_per_rule"] / figures["processes_batch"],
        "speedup_in_process": figures["in_process_per_rule"] / figures["in_process_batch"],
        "seconds_per_rep": seconds,
    }


def format_table(report: dict) -> str:
    """The figures as a compact plain-text table."""
    meta = report["meta"]
    lines = [
        f"[batch] dataset build + promote of {report['rules']} candidates ({report['shipped_rules']} shipped, "
        f"{report['mined_rules']} mined) over {report['log_rows']:,} log rows; {report['promoted']} promoted",
        f"    {'':<22}{'s':>9}{'s/rule':>9}{'bundles':>9}",
    ]
    for name, value in report["seconds"].items():
        lines.append(f"    {name:<22}{value:>9.1f}{value / max(report['rules'], 1):>9.2f}"
                     f"{report['bundles'][name]:>9}")
    lines.append(f"    one process per rule / batch: {report['speedup_processes']:.1f}x; in process "
                 f"{report['speedup_in_process']:.1f}x")
    split = report["in_process_batch_split"]
    lines.append(f"    in-process batch: build_many {split['build_many']:.1f} s, promote_many "
                 f"{split['promote_many']:.1f} s")
    lines.append(f"    load average {meta['load_average'][0]:.2f} -> {meta['load_average_end'][0]:.2f} on "
                 f"{meta['cpus']} CPUs; {meta['elapsed_s']:.0f} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    return bench_main(argv, prog="python -m benchmarks.bench_batch", doc=__doc__, run=run,
                      format_table=format_table, quick=QUICK, full=FULL,
                      quick_help="reduced sizes, the first 10 candidates (a few minutes)")


if __name__ == "__main__":
    raise SystemExit(main())
