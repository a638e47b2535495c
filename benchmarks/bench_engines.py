"""Daily-count engines: CPU per row of the local stream, the local pool and Spark.

Run: ``.venv/bin/python -m benchmarks.bench_engines [--quick] [--json out.json]``

- Log: ``simulate_traffic(queries_per_day=100_000, seed=3)`` over 42 days
  (~4.3M rows; ``--quick``: 4 days, ~0.4M), replayed through a bundle of
  the shipped rules (shadow rate 0.05), one Parquet file a day. Log and
  workspace are cached under ``/tmp/rulelife-bench-engines/`` between runs.
- Each engine counts the whole range with ``rulelife.engines.daily_counts``:
  ``local`` (one process, the validation cache warm: the nightly re-run
  case), ``local-cold`` (the same with the cache removed first, so
  great-expectations validates every chunk: a new day's first run),
  ``local-pool`` (one process a core), ``spark[1]`` and ``spark[N]``
  (``local_session(1)`` / ``local_session(N)``, one untimed warm-up job first
  so the Python workers exist, as on a long-running cluster).
- **CPU**: the CPU seconds of this process and all its descendants (the
  pool's workers; the JVM and its Python workers), read from ``/proc``
  before and after: ``utime + stime`` of live processes plus ``cutime +
  cstime`` (reaped children). ``cpu_per_row_ratio`` is each engine's CPU
  per row over ``local``'s in the same repetition, median over
  repetitions; the issue's target is Spark ≤ 1.6.
- ``rows_per_cpu_s`` is rows per CPU second (rows/s per core);
  ``wall_rows_per_s`` is the wall-clock throughput.
- The machines are shared and noisy: ``meta.load_average`` says how busy.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

CACHE = Path("/tmp/rulelife-bench-engines")
START = dt.date(2026, 1, 5)
PER_DAY = 100_000
SHADOW_RATE = 0.05
_TICK = os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(root: int | None = None) -> float:
    """CPU seconds of ``root`` (default: this process) and every live descendant,
    including the children each has reaped."""
    root = root or os.getpid()
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                stat = handle.read()
        except OSError:
            continue  # exited meanwhile
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "
        parents[int(entry)] = int(fields[1])
        times[int(entry)] = sum(int(v) for v in fields[11:15]) / _TICK  # utime stime cutime cstime
    total, stack = 0.0, [root]
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    while stack:
        pid = stack.pop()
        total += times.get(pid, 0.0)
        stack.extend(children.get(pid, []))
    return total


def make_log(days: int) -> tuple[Path, Path, int]:
    """The cached workspace and log of ``days`` days; rows in the log."""
    from rulelife.bundle import BundleStore
    from rulelife.config import Workspace
    from rulelife.replay import replay
    from rulelife.rules import load_rules
    from rulelife.runtime import RuleClassifier
    from rulelife.simulate import simulate_traffic, write_log

    folder = CACHE / f"days{days}-per{PER_DAY}"
    done = folder / "DONE"
    if done.exists():
        return folder / "ws", folder / "log", int(done.read_text())
    shutil.rmtree(folder, ignore_errors=True)
    workspace = Workspace.create(folder / "ws")
    rules = [rf.rule for rf in load_rules(Path(__file__).resolve().parents[1] / "rules")]
    BundleStore(workspace.bundle_dir).build_and_publish(rules, actor="bench")
    classifier = RuleClassifier.from_store(workspace.bundle_dir, shadow_rate=SHADOW_RATE)
    rows = 0
    for offset in range(0, days, 7):  # a week at a time keeps the generator's memory small
        print(f"  generating days {offset}..{min(offset + 7, days) - 1}", file=sys.stderr)
        frame = simulate_traffic(start=START + dt.timedelta(days=offset), days=min(7, days - offset),
                                 queries_per_day=PER_DAY, seed=3)
        write_log(replay(frame.drop(columns=["true_intent"]), classifier), folder / "log")
        rows += len(frame)
    done.write_text(str(rows))
    return folder / "ws", folder / "log", rows


def measure(run) -> tuple[float, float, int]:
    """Wall seconds, tree CPU seconds and valid rows of one call of ``run``."""
    cpu, wall = tree_cpu_seconds(), time.perf_counter()
    rows = run()
    return time.perf_counter() - wall, tree_cpu_seconds() - cpu, rows


def run(*, quick: bool = False, reps: int | None = None) -> dict:
    from rulelife import engines
    from rulelife.config import Workspace
    from rulelife.querylog import LogReport

    days = 4 if quick else 42
    reps = reps or (1 if quick else 2)
    cores = os.cpu_count() or 1
    root, log, total = make_log(days)
    workspace = Workspace.load(root)
    window = (START, START + dt.timedelta(days=days - 1))

    def counter(engine: str, spark=None, cold: bool = False):
        def go() -> int:
            if cold:
                shutil.rmtree(workspace.quarantine_dir / ".validated", ignore_errors=True)
            report = LogReport()
            engines.daily_counts(workspace, window, log=log, engine=engine, spark=spark, report=report)
            return report.rows_valid
        return go

    results: dict[str, list[tuple[float, float, int]]] = {}
    counter("local")()  # warms the validation cache and the imports
    local_passes = {"local": counter("local"), "local-cold": counter("local", cold=True),
                    "local-pool": counter("local-pool")}
    spark_cores = [1, cores] if cores > 1 else [1]
    for rep in range(reps):
        for name, go in local_passes.items():
            print(f"  rep {rep + 1}: {name}", file=sys.stderr)
            results.setdefault(name, []).append(measure(go))
    for n in spark_cores:
        session = engines.local_session(n, app_name=f"bench-{n}")
        go = counter("spark", spark=session)
        go()  # warm-up: JVM JIT, Python workers forked and importing rulelife
        for rep in range(reps):
            print(f"  rep {rep + 1}: spark[{n}]", file=sys.stderr)
            results.setdefault(f"spark[{n}]", []).append(measure(go))
        session.stop()
    base = results["local"]
    figures = {}
    for name, runs in results.items():
        rows = runs[0][2]
        figures[name] = {
            "rows": rows,
            "wall_s": statistics.median(r[0] for r in runs),
            "cpu_s": statistics.median(r[1] for r in runs),
            "rows_per_cpu_s": statistics.median(r[2] / r[1] for r in runs),
            "wall_rows_per_s": statistics.median(r[2] / r[0] for r in runs),
            "cpu_per_row_ratio": statistics.median((r[1] / r[2]) / (b[1] / b[2]) for r, b in zip(runs, base)),
            "wall_ratio": statistics.median(r[0] / b[0] for r, b in zip(runs, base)),
        }
    return {
        "meta": {"log_rows": total, "days": days, "queries_per_day": PER_DAY, "cores": cores, "reps": reps,
                 "cpu": "tree CPU seconds from /proc (this process + descendants)",
                 "load_average": os.getloadavg()},
        "engines": figures,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 days (~0.4M rows) instead of 42 (~4.3M)")
    parser.add_argument("--reps", type=int, default=None, help="repetitions (default 2, quick 1)")
    parser.add_argument("--json", type=Path, default=None, help="also write every figure here")
    args = parser.parse_args(argv)
    load_start = os.getloadavg()
    report = run(quick=args.quick, reps=args.reps)
    report["meta"]["load_average"] = {"start": load_start, "end": report["meta"]["load_average"]}
    meta = report["meta"]
    print(f"daily counts over {meta['log_rows']:,} rows ({meta['days']} days), {meta['cores']} cores, "
          f"{meta['reps']} rep(s), load {load_start[0]:.1f} -> {meta['load_average']['end'][0]:.1f}")
    print(f"{'engine':12} {'wall s':>8} {'CPU s':>8} {'rows/CPU-s':>12} {'rows/s wall':>12} "
          f"{'CPU/row ×local':>15} {'wall ×local':>12}")
    for name, f in report["engines"].items():
        print(f"{name:12} {f['wall_s']:8.1f} {f['cpu_s']:8.1f} {f['rows_per_cpu_s']:12,.0f} "
              f"{f['wall_rows_per_s']:12,.0f} {f['cpu_per_row_ratio']:15.2f} {f['wall_ratio']:12.2f}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
