"""The training-mix export: seconds and peak memory against the log's size.

Run: ``.venv/bin/python -m benchmarks.bench_training_mix [--rows 1000000] [--json out.json]``

Setup: a workspace with two active rules; a log of ``--rows`` rows over 10
daily Parquet files (60% residual, 40% rule-answered, 5% of those in the
shadow sample, a true label on every row). Each call runs in a fresh
interpreter (:mod:`benchmarks._memory`), so its peak resident set is its own.
Measured: the export (two passes over the log) at a fifth of the rows and
at all of them, and, as the same-run baseline, one plain pass that only
reads and validates the log. Flat memory: the full log's peak is about the
fifth's.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks._memory import measure_in_subprocess

RULES = {"order_tracking/where.yaml": "id: order_tracking.where\nintent: order_tracking\npatterns: [\"where is my order\"]\n"
                                      "locales: [\"*\"]\nowner: bench\ndescription: bench\n",
         "faq/hours.yaml": "id: faq.hours\nintent: faq\npatterns: [\"opening hours\"]\nlocales: [\"*\"]\nowner: bench\n"
                           "description: bench\n"}
INTENTS = np.array(["order_tracking", "faq", "chitchat", "billing", "return_request"])


def make_workspace(root: Path, rows: int, days: int = 10) -> Path:
    from rulelife.config import Workspace
    from rulelife.serving import publish
    from rulelife.store import registry

    ws = Workspace.create(root / "ws")
    for name, text in RULES.items():
        (ws.rules_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (ws.rules_dir / name).write_text(text)
    registry.sync_workspace(ws, actor="bench")
    for rule_id in ("order_tracking.where", "faq.hours"):
        publish.set_state(ws, rule_id, "active", actor="bench", reason="bench")
    rng = np.random.default_rng(0)
    per_day = rows // days
    for day in range(days):
        u = rng.random(per_day)
        rule = np.where(u < 0.25, "order_tracking.where", np.where(u < 0.4, "faq.hours", None))
        shadow = (rule != None) & (rng.random(per_day) < 0.05)  # noqa: E711 - numpy elementwise
        truth = INTENTS[rng.integers(0, len(INTENTS), per_day)]
        model = np.where(rng.random(per_day) < 0.85, truth, INTENTS[rng.integers(0, len(INTENTS), per_day)])
        model = np.where((rule == None) | shadow, model, None)  # noqa: E711
        frame = pd.DataFrame({
            "query_id": [f"d{day}-{i}" for i in range(per_day)],
            "ts": pd.Timestamp("2026-03-01", tz="UTC") + pd.Timedelta(days=day) + pd.to_timedelta(
                rng.integers(0, 86_400, per_day), unit="s"),
            "text": np.where(rule == None, "hello there", "where is my order"),  # noqa: E711
            "locale": np.where(rng.random(per_day) < 0.7, "en-US", "de-DE"),
            "model_intent": pd.array(model, dtype="string"),
            "model_confidence": np.where(pd.isna(model), np.nan, rng.random(per_day)),
            "rule_id": pd.array(rule, dtype="string"), "rule_version": pd.array([None] * per_day, dtype="string"),
            "bundle_version": pd.array([1] * per_day, dtype="Int64"), "shadow": shadow,
            "true_intent": pd.array(truth, dtype="string"),
        })
        frame.to_parquet(ws.log_dir / f"day-{day:02d}.parquet", index=False)
    return ws.root


def export(root: str, out: str, days: int | None = None) -> dict:
    """One export in this process (the subprocess target)."""
    from rulelife.config import Workspace
    from rulelife.model.run import export_training_mix

    ws = Workspace.load(Path(root))
    log = sorted(ws.log_dir.glob("*.parquet"))[:days] if days else None
    started = time.perf_counter()
    manifest = export_training_mix(ws, Path(out), share=0.3, log=log)
    return {"seconds": time.perf_counter() - started, "rows_out": manifest["rows"],
            "rows_by_source": manifest["rows_by_source"]}


def read_only(root: str, days: int | None = None) -> dict:
    """The baseline: one pass that reads and validates the log and counts its rows."""
    from rulelife.config import Workspace
    from rulelife.engines.fold import fold_log

    ws = Workspace.load(Path(root))
    log = sorted(ws.log_dir.glob("*.parquet"))[:days] if days else ws.log_dir
    started = time.perf_counter()
    rows = fold_log(len, log, quarantine_dir=ws.quarantine_dir)
    return {"seconds": time.perf_counter() - started, "rows": rows}


def run(rows: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        root = make_workspace(Path(tmp), rows)
        out = {}
        for label, files in (("fifth", 2), ("all", None)):  # 2 of the 10 daily files, then every one
            read = measure_in_subprocess("benchmarks.bench_training_mix:read_only", {"root": str(root), "days": files})
            mix = measure_in_subprocess("benchmarks.bench_training_mix:export",
                                        {"root": str(root), "out": str(Path(tmp) / f"mix-{label}"), "days": files})
            out[label] = {"rows_in": read["result"]["rows"], "read_seconds": read["result"]["seconds"],
                          "read_peak_mb": read["peak_mb"], "export_seconds": mix["result"]["seconds"],
                          "export_peak_mb": mix["peak_mb"], "imports_mb": mix["imports_mb"],
                          "rows_out": mix["result"]["rows_out"], "rows_by_source": mix["result"]["rows_by_source"],
                          "export_vs_one_read": mix["result"]["seconds"] / read["result"]["seconds"]}
        return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    result = run(args.rows)
    for label, r in result.items():
        print(f"{label:8} {r['rows_in']:>9,} rows in: export {r['export_seconds']:.1f} s "
              f"({r['export_vs_one_read']:.2f}x one read pass of {r['read_seconds']:.1f} s), peak "
              f"{r['export_peak_mb']:.0f} MB (imports {r['imports_mb']:.0f} MB; read pass {r['read_peak_mb']:.0f} MB), "
              f"{r['rows_out']:,} rows out {r['rows_by_source']}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
