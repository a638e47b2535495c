"""Calibration per model version: ECE, precision at the miner's threshold, and the threshold that keeps it.

Run: ``.venv/bin/python -m benchmarks.bench_calibration [--data DIR] [--quick] [--quickstart] [--json out.json]``

Setup
-----
- **Real data** (default: Bitext, as ``benchmarks.bench_realdata`` reads it).
  Two model versions, each the real-data benchmark's model (TF-IDF word and
  char n-grams into a logistic regression, out-of-fold predictions): ``v1``
  with ``C = 10`` (the benchmark's model) labels days 0-29, ``v2`` with
  ``C = 1`` (a retrain with ten times the regularisation, so less sure of
  itself) labels days 30-59. Written as the ``model_version`` column of a
  workspace's log with the true intent; :func:`rulelife.model.run.measure_calibration`
  with ``v1`` as the reference.
- **Quickstart** (``--quickstart``): :func:`rulelife.demo.quickstart.run_quickstart`
  with its defaults in a temporary folder; the residual accuracy shift it
  prints, and the calibration over its whole log (one model version, the
  simulator's, which writes no ``model_version``: ``unknown``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import pandas as pd

from benchmarks._realdata import DAYS, DataError, day, load_folder, make_workspace, model_traffic
from rulelife.model.run import measure_calibration

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "bitext_cs_intent"
VERSIONS = (("v1", 10.0), ("v2", 1.0))  # (model_version, the regression's C)


def real_data(folder: Path, *, quick: bool = False) -> dict:
    data = load_folder(folder)
    folds = 3 if quick else 5
    first, second = (model_traffic(data, folds=folds, regularization=c) for _, c in VERSIONS)
    later = (first["ts"].dt.date >= day(DAYS // 2)).to_numpy()
    log = first.copy()  # the same rows and times (model_traffic's order depends on its seed only)
    for column in ("model_intent", "model_confidence"):
        log.loc[later, column] = second.loc[later, column]
    log["model_version"] = pd.array([VERSIONS[1][0] if x else VERSIONS[0][0] for x in later], dtype="string")
    with tempfile.TemporaryDirectory() as tmp:
        workspace = make_workspace(Path(tmp) / "ws", log, intents=sorted(data["intent"].unique()), safety=[],
                                   gate_on="point", floor=20)
        report = measure_calibration(workspace, reference=VERSIONS[0][0])
    return {"rows": len(log), "folds": folds, "calibration": report.to_dict(), "lines": report.lines()}


def quickstart() -> dict:
    from rulelife.demo.quickstart import run_quickstart

    with tempfile.TemporaryDirectory() as tmp:
        result = run_quickstart(Path(tmp) / "demo")
        report = measure_calibration(result.workspace)
        return {"residual": result.residual, "residual_shift": result.residual_shift,
                "training_mix_rows": result.training_mix["rows"], "calibration": report.to_dict(),
                "lines": report.lines()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="folder of labelled CSV files (default: Bitext)")
    parser.add_argument("--quick", action="store_true", help="3 cross-validation folds instead of 5")
    parser.add_argument("--quickstart", action="store_true", help="also measure the quickstart (a few minutes)")
    parser.add_argument("--json", type=Path, default=None, help="also write every figure here")
    args = parser.parse_args(argv)
    try:
        report = {"real_data": real_data(args.data, quick=args.quick)}
    except DataError as exc:  # bad input: one line, the exit status argparse uses for bad arguments
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    print(f"real data ({report['real_data']['rows']:,} rows):")
    print("\n".join(f"  {line}" for line in report["real_data"]["lines"]))
    if args.quickstart:
        report["quickstart"] = q = quickstart()
        a, r = q["residual"]["all_accuracy"], q["residual"]["residual_accuracy"]
        print(f"quickstart: residual accuracy {r['accuracy']:.3f} ({r['low']:.3f}-{r['high']:.3f}, n={r['n']:,}) vs "
              f"all traffic {a['accuracy']:.3f} ({a['low']:.3f}-{a['high']:.3f}, n={a['n']:,}), shift "
              f"{q['residual_shift']:+.3f}; training mix {q['training_mix_rows']:,} rows")
        print("\n".join(f"  {line}" for line in q["lines"]))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")


if __name__ == "__main__":
    main()
