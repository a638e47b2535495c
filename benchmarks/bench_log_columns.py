"""Peak memory of a nightly over a log that carries a wide column it does not use (issue 19, item 6).

    .venv/bin/python -m benchmarks.bench_log_columns [--quick] [--json out.json]

One simulated day (about 208K queries in full mode: one 200K-row chunk of
the reader, as in the issue's report) replayed through a bundle of the
shipped rules, all active, is written twice: as the runtime writes it
(**narrow**), and with one more column, ``debug_payload``, a distinct
400-character string a row (**wide**; distinct, so Parquet cannot
dictionary-encode it away). ``run_nightly`` (what ``rulelife monitor
nightly --date DAY --log LOG`` calls) runs over each in a fresh
interpreter (:mod:`benchmarks._memory`), twice a log: the first run
validates the file (great-expectations, the quarantine), the second is
served by the validation cache. The figure is the ratio of the peak
resident sets, wide over narrow, cold and warm. Target: ≤ 1.1.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks._memory import measure_in_subprocess
from benchmarks._timing import bench_main, finish_meta, run_meta

__all__ = ["FULL", "QUICK", "Config", "format_table", "main", "nightly_peak", "run"]

DAY = dt.date(2026, 3, 4)
WIDTH = 400


@dataclass(frozen=True)
class Config:
    """Sizes of one run."""

    queries: int = 208_000


FULL = Config()
QUICK = Config(queries=20_000)


def _deployment(root: Path, queries: int, progress) -> tuple[Path, Path, int]:
    """A workspace serving every shipped rule and the day's log written narrow and wide; both paths, rows."""
    from benchmarks.bench_gate import ACTOR, new_workspace
    from rulelife.rules.lifecycle import State
    from rulelife.serving import publish
    from rulelife.serving.replay import replay
    from rulelife.serving.runtime import RuleClassifier
    from rulelife.simulate import simulate_traffic
    from rulelife.store import registry

    workspace, store = new_workspace(root / "ws")
    for status in registry.list_rules(store):
        registry.transition(store, status.rule_id, State.ACTIVE, actor=ACTOR, reason="benchmark deployment",
                            expiry_days=workspace.settings.expiry_days)
    publish.publish_active(workspace, actor=ACTOR, store=store)
    store.dispose()
    progress(f"simulating and replaying one day of ~{queries:,} queries")
    frame = replay(simulate_traffic(start=DAY, days=1, queries_per_day=queries, seed=11),
                   RuleClassifier.from_store(workspace.bundle_dir, shadow_rate=workspace.settings.shadow_rate))
    frame = frame[frame["ts"].dt.date == DAY].reset_index(drop=True)
    narrow, wide = root / "narrow" / f"queries-{DAY}.parquet", root / "wide" / f"queries-{DAY}.parquet"
    for path in (narrow, wide):
        path.parent.mkdir(parents=True)
    frame.to_parquet(narrow, index=False, coerce_timestamps="us")
    rng = np.random.default_rng(5)
    letters = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz0123456789", dtype="S1")
    payload = rng.choice(letters, size=(len(frame), WIDTH)).view(f"S{WIDTH}").ravel().astype(str)
    frame.assign(debug_payload=pd.array(payload, dtype="string")).to_parquet(wide, index=False,
                                                                             coerce_timestamps="us")
    return narrow, wide, len(frame)


def nightly_peak(root: str, log: str) -> dict:
    """The measured call, run in a fresh interpreter: ``run_nightly`` over ``log``; its outcome."""
    from rulelife.config import Workspace
    from rulelife.monitoring import nightly

    report = nightly.run_nightly(Workspace.find(Path(root)), DAY, log=Path(log))
    return {"status": report.status, "rows_valid": report.log.get("rows_valid"),
            "files_cached": len(report.log.get("files_cached", []))}


def run(config: Config, progress=print) -> dict:
    """Both logs, cold then warm, each in its own interpreter; peaks and ratios as one JSON-ready dict."""
    meta = run_meta(config)
    with tempfile.TemporaryDirectory(prefix="rulelife-bench-columns-") as tmp:
        root = Path(tmp)
        narrow, wide, rows = _deployment(root, config.queries, progress)
        sizes = {"narrow": narrow.stat().st_size, "wide": wide.stat().st_size}
        runs: dict[str, dict] = {}
        for phase in ("cold", "warm"):
            for name, log in (("narrow", narrow), ("wide", wide)):
                progress(f"{phase} nightly over the {name} log")
                runs[f"{phase}_{name}"] = measure_in_subprocess("benchmarks.bench_log_columns:nightly_peak",
                                                                {"root": str(root / "ws"), "log": str(log)})
    figures = {}
    for phase in ("cold", "warm"):
        a, b = runs[f"{phase}_narrow"], runs[f"{phase}_wide"]
        figures[phase] = {"narrow_peak_mb": a["peak_mb"], "wide_peak_mb": b["peak_mb"],
                          "imports_mb": a["imports_mb"], "ratio": b["peak_mb"] / a["peak_mb"],
                          "above_imports_ratio": (b["peak_mb"] - b["imports_mb"]) / (a["peak_mb"] - a["imports_mb"]),
                          "rows_valid": [a["result"]["rows_valid"], b["result"]["rows_valid"]],
                          "files_cached": [a["result"]["files_cached"], b["result"]["files_cached"]]}
    finish_meta(meta)
    return {"meta": meta, "rows": rows, "width": WIDTH, "file_bytes": sizes, "target_ratio": 1.1, **figures,
            "met": all(figures[p]["ratio"] <= 1.1 for p in ("cold", "warm"))}


def format_table(report: dict) -> str:
    """The figures as a compact plain-text table."""
    lines = [(f"run_nightly over {report['rows']:,} rows; wide = narrow + one {report['width']}-byte column "
             f"({report['file_bytes']['narrow'] / 1e6:.1f} MB vs {report['file_bytes']['wide'] / 1e6:.1f} MB on disk); "
             f"target ratio <= {report['target_ratio']}")]
    for phase in ("cold", "warm"):
        f = report[phase]
        lines.append(f"  {phase:4}  narrow {f['narrow_peak_mb']:.1f} MB  wide {f['wide_peak_mb']:.1f} MB  "
                     f"ratio {f['ratio']:.2f}  (above the imports' {f['imports_mb']:.0f} MB: "
                     f"{f['above_imports_ratio']:.2f})")
    meta = report["meta"]
    lines.append(f"  {'met' if report['met'] else 'MISSED'}; load average {meta['load_average'][0]:.2f} -> "
                 f"{meta['load_average_end'][0]:.2f} on {meta['cpus']} CPUs; {meta['elapsed_s']:.0f} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    return bench_main(argv, prog="python -m benchmarks.bench_log_columns", doc=__doc__, run=run,
                      format_table=format_table, quick=QUICK, full=FULL, quick_help="20K rows (about a minute)")


if __name__ == "__main__":
    raise SystemExit(main())
