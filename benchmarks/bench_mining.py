"""Candidate mining at scale: wall time and peak memory against log size.

Run: ``.venv/bin/python -m benchmarks.bench_mining [--quick] [--json out.json]``

- Logs: ``rulelife.simulate.simulate_traffic`` (10,000 queries a day, seed 1,
  the manga store's en-US / ja-JP / es-ES traffic) written with
  ``rulelife.simulate.write_log`` as one Parquet file a day: 1M rows (100
  days) and 4M rows (400 days); ``--quick``: 50k and 200k.
- Each size is validated in one subprocess (great-expectations, once per
  file: timed apart) and mined in a fresh one (``mine_workspace`` on the same
  SQLite workspace, reading the files through the validation cache, so
  streaming is real: three passes), which reports its wall time and peak RSS
  (``VmHWM`` from ``/proc/self/status``).
  Peak RSS includes the interpreter and libraries (pandas, scikit-learn,
  great-expectations); the baseline row is a subprocess that imports the
  same modules and mines nothing.
- The first size is mined again with ``engine="local-pool"`` (one process
  a core, each folding a contiguous share of the files; the partial counts
  merged in the parent): the wall time a machine's cores give. Its worker
  peak is the largest worker's own ``ru_maxrss``.
- Flat memory means: the 4x log's peak RSS is about the 1x log's, because a
  chunk (200k rows) and the pruned phrase table are what is held.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_CHILD = r"""
import json, sys, time
from pathlib import Path
from rulelife.config import Workspace
from rulelife.mining.mine import mine_workspace
from rulelife.querylog import iter_log
mode, logs, root, engine = sys.argv[1], sys.argv[2], Path(sys.argv[3]), sys.argv[4]
result = {}
if mode == "validate":
    # Validation is paid once per file (the nightly job does it as each day
    # arrives): timed in a process of its own, so the mining process's peak
    # memory is mining's alone and it reads the validation cache.
    ws = Workspace.create(root)
    started = time.perf_counter()
    for _ in iter_log(Path(logs), known_intents=ws.settings.intents, quarantine_dir=ws.quarantine_dir):
        pass
    result = {"validation_seconds": time.perf_counter() - started}
elif mode == "mine":
    ws = Workspace.create(root)
    started = time.perf_counter()
    report = mine_workspace(ws, log=Path(logs), engine=engine)
    result = {"seconds": time.perf_counter() - started, "rows": report.log.rows_valid,
              "candidates": len(report.candidates), "written": len(report.written),
              "undercount_bound": report.undercount_bound, "files_cached": len(report.log.files_cached)}
# VmHWM is this process's own peak; ru_maxrss would carry the parent's over exec.
peak = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
result["peak_rss_mb"] = int(peak.split()[1]) / 1024
# The pool's workers (reaped): their own peak, the largest of them.
import resource
result["worker_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(json.dumps(result))
"""


def make_logs(folder: Path, days: int, per_day: int = 10_000) -> int:
    from rulelife.simulate import simulate_traffic, write_log

    rows = 0
    start = dt.date(2026, 1, 1)
    for offset in range(0, days, 50):  # generate in blocks of 50 days: the generator's memory stays small
        frame = simulate_traffic(start=start + dt.timedelta(days=offset), days=min(50, days - offset),
                                 queries_per_day=per_day, seed=1)
        write_log(frame.drop(columns=["true_intent"]), folder)
        rows += len(frame)
    return rows


def child(mode: str, logs: Path, root: Path, engine: str = "local") -> dict:
    out = subprocess.run([sys.executable, "-c", _CHILD, mode, str(logs), str(root), engine], capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(sizes: dict[str, int], per_day: int = 10_000) -> dict:
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-mining-") as tmp:
        tmp = Path(tmp)
        base = child("baseline", tmp, tmp / "baseline")
        results.append({"size": "baseline (imports only)", "rows": 0, **base})
        first = next(iter(sizes))
        for name, days in sizes.items():
            logs = tmp / f"logs-{name}"
            started = time.perf_counter()
            rows = make_logs(logs, days, per_day)
            print(f"{name}: {rows} rows simulated in {time.perf_counter() - started:.0f}s; mining ...",
                  file=sys.stderr)
            validation = child("validate", logs, tmp / f"ws-{name}")
            if name == first:
                # The same log on a process pool, one worker a core, in a copy of the validated
                # workspace (the cache is warm, and no candidate of the other run is known there).
                shutil.copytree(tmp / f"ws-{name}", tmp / f"ws-{name}-pool")
            results.append({"size": name, "engine": "local", **validation,
                            **child("mine", logs, tmp / f"ws-{name}")})
            if name == first:
                results.append({"size": name, "engine": "local-pool", **validation,
                                **child("mine", logs, tmp / f"ws-{name}-pool", "local-pool")})
    return {"results": results}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="50k and 200k rows instead of 1M and 4M")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    sizes = {"50k": 5, "200k": 20} if args.quick else {"1M": 100, "4M": 400}
    out = run(sizes)
    print("size | engine | rows | mining s | validation s (once per file) | peak RSS MB (worker) | candidates | "
          "undercount bound")
    for r in out["results"]:
        print(f"{r['size']} | {r.get('engine', '-')} | {r.get('rows', 0)} | {r.get('seconds', 0):.1f} | "
              f"{r.get('validation_seconds', 0):.1f} | {r['peak_rss_mb']:.0f} ({r['worker_peak_rss_mb']:.0f}) | "
              f"{r.get('candidates', '-')} | {r.get('undercount_bound', '-')}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
