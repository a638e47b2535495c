"""Daily-count engines: CPU per row of the local stream, the local pool and Spark.

Run: ``.venv/bin/python -m benchmarks.bench_engines [--quick] [--json out.json]``

- Log: ``simulate_traffic(queries_per_day=100_000, seed=3)`` over 42 days
  (~4.3M rows; ``--quick``: 4 days, ~0.4M), replayed through a bundle of
  the shipped rules (shadow rate 0.05), one Parquet file a day. Log and
  workspace are cached under ``/tmp/rulelife-bench-engines/`` between runs.
- Each engine counts the whole range with ``rulelife.monitoring.counting.daily_counts``:
  ``local`` (one process, the validation cache warm: the nightly re-run
  case), ``local-cold`` (the same with the cache removed first, so
  great-expectations validates every chunk: a new day's first run),
  ``local-pool`` (one process a core), ``spark[1]`` and ``spark[N]``
  (``local_session(1)`` / ``local_session(N)``, after 3 untimed warm-up
  runs, ``--spark-warmups``), as on a long-running cluster: the Python
  workers exist and the JVM has compiled its hot code.
- **JIT**: the JVM compiles hot code on its own threads (``C1``/``C2
  CompilerThread``) for several runs: a cost per JVM, not per row, that a
  4M-row run is too short to amortise. After one warm-up run (the protocol
  until issue 7) the two timed runs still spent 2-4 CPU-s compiling, up to
  0.7× the whole local count, and the Spark ratio swung between 1.3 and 1.8
  from run to run; after three, ~1.5 CPU-s. ``jit_s`` is that CPU in the
  timed runs (it is in ``cpu_s``); ``first_run_cpu_s`` is the CPU of the
  first Spark run of the process, on ``spark[1]`` (a fresh JVM: start-up
  and most of the compiling), the per-executor fixed cost in docs/spark.md.
  ``spark[N]`` runs in the JVM ``spark[1]`` warmed, so it pays less JIT.
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


def _stat_fields(path: str) -> tuple[str, list[str]] | None:
    """Name and the fields after it of a /proc stat file; None if the process or thread is gone."""
    try:
        with open(path) as handle:
            stat = handle.read()
    except OSError:
        return None
    return stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:].split()


def _tree(root: int | None) -> tuple[list[int], dict[int, list[str]]]:
    """``root`` (default: this process) and its live descendants, and the stat fields of every process."""
    fields: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (found := _stat_fields(f"/proc/{entry}/stat")):
            fields[int(entry)] = found[1]
    children: dict[int, list[int]] = {}
    for pid, values in fields.items():
        children.setdefault(int(values[1]), []).append(pid)
    tree, stack = [], [root or os.getpid()]
    while stack:
        pid = stack.pop()
        tree.append(pid)
        stack.extend(children.get(pid, []))
    return tree, fields


def tree_cpu_seconds(root: int | None = None) -> float:
    """CPU seconds of ``root`` (default: this process) and every live descendant,
    including the children each has reaped."""
    tree, fields = _tree(root)
    # utime stime cutime cstime
    return sum(sum(int(v) for v in fields[pid][11:15]) for pid in tree if pid in fields) / _TICK


def jit_cpu_seconds(root: int | None = None) -> float:
    """CPU seconds of the JIT compiler threads (HotSpot's ``C1``/``C2 CompilerThread``)
    of ``root`` (default: this process) and every live descendant."""
    total = 0
    for pid in _tree(root)[0]:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            found = _stat_fields(f"/proc/{pid}/task/{tid}/stat")
            if found and "CompilerThre" in found[0]:
                total += int(found[1][11]) + int(found[1][12])  # utime stime
    return total / _TICK


def make_log(days: int) -> tuple[Path, Path, int]:
    """The cached workspace and log of ``days`` days; rows in the log."""
    from rulelife.config import Workspace
    from rulelife.rules.definition import load_rules
    from rulelife.serving.bundle import BundleStore
    from rulelife.serving.publish import publish_rules
    from rulelife.serving.replay import replay
    from rulelife.serving.runtime import RuleClassifier
    from rulelife.simulate import simulate_traffic, write_log

    folder = CACHE / f"days{days}-per{PER_DAY}"
    done = folder / "DONE"
    if done.exists():
        return folder / "ws", folder / "log", int(done.read_text())
    shutil.rmtree(folder, ignore_errors=True)
    workspace = Workspace.create(folder / "ws")
    rules = [rf.rule for rf in load_rules(Path(__file__).resolve().parents[1] / "rules")]
    publish_rules(BundleStore(workspace.bundle_dir), rules, actor="bench")
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


def measure(run) -> tuple[float, float, int, float]:
    """Wall seconds, tree CPU seconds, valid rows and JIT compiler CPU seconds of one call of ``run``."""
    jit, cpu, wall = jit_cpu_seconds(), tree_cpu_seconds(), time.perf_counter()
    rows = run()
    return time.perf_counter() - wall, tree_cpu_seconds() - cpu, rows, jit_cpu_seconds() - jit


def run(*, quick: bool = False, reps: int | None = None, spark_warmups: int = 3) -> dict:
    from rulelife import engines
    from rulelife.config import Workspace
    from rulelife.monitoring import counting
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
            counting.daily_counts(workspace, window, log=log, engine=engine, spark=spark, report=report)
            return report.rows_valid
        return go

    results: dict[str, list[tuple[float, float, int, float]]] = {}
    first_run_cpu = None  # the first Spark run of the process: the JVM starts cold (it lives as long as we do)
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
        for warm in range(max(1, spark_warmups)):  # JIT, Python workers forked and importing rulelife
            print(f"  warm-up {warm + 1}: spark[{n}]", file=sys.stderr)
            cpu = measure(go)[1]
            first_run_cpu = cpu if first_run_cpu is None else first_run_cpu
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
            "jit_s": statistics.median(r[3] for r in runs),
        }
    figures["spark[1]"]["first_run_cpu_s"] = first_run_cpu
    return {
        "meta": {"log_rows": total, "days": days, "queries_per_day": PER_DAY, "cores": cores, "reps": reps,
                 "spark_warmups": max(1, spark_warmups),
                 "cpu": "tree CPU seconds from /proc (this process + descendants)",
                 "load_average": os.getloadavg()},
        "engines": figures,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 days (~0.4M rows) instead of 42 (~4.3M)")
    parser.add_argument("--reps", type=int, default=None, help="repetitions (default 2, quick 1)")
    parser.add_argument("--spark-warmups", type=int, default=3,
                        help="untimed Spark runs before the timed ones (default 3; 1 until issue 7)")
    parser.add_argument("--json", type=Path, default=None, help="also write every figure here")
    args = parser.parse_args(argv)
    load_start = os.getloadavg()
    report = run(quick=args.quick, reps=args.reps, spark_warmups=args.spark_warmups)
    report["meta"]["load_average"] = {"start": load_start, "end": report["meta"]["load_average"]}
    meta = report["meta"]
    print(f"daily counts over {meta['log_rows']:,} rows ({meta['days']} days), {meta['cores']} cores, "
          f"{meta['reps']} rep(s) after {meta['spark_warmups']} Spark warm-up(s), "
          f"load {load_start[0]:.1f} -> {meta['load_average']['end'][0]:.1f}")
    print(f"{'engine':12} {'wall s':>8} {'CPU s':>8} {'JIT s':>6} {'rows/CPU-s':>12} {'rows/s wall':>12} "
          f"{'CPU/row ×local':>15} {'wall ×local':>12} {'1st run CPU s':>14}")
    for name, f in report["engines"].items():
        first = f"{f['first_run_cpu_s']:14.1f}" if "first_run_cpu_s" in f else ""
        print(f"{name:12} {f['wall_s']:8.1f} {f['cpu_s']:8.1f} {f['jit_s']:6.1f} {f['rows_per_cpu_s']:12,.0f} "
              f"{f['wall_rows_per_s']:12,.0f} {f['cpu_per_row_ratio']:15.2f} {f['wall_ratio']:12.2f}{first}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
