"""What a chatbot service pays to import the runtime, and what it no longer loads.

Run: ``.venv/bin/python -m benchmarks.bench_import [--reps 15] [--json out.json]``

Each statement runs in a fresh interpreter (``python -c``), ``--reps`` times in
rotating order; the figure is the median wall time minus the median of an
empty interpreter (``python -c pass``) measured in the same run. Also reported:
how many modules each statement loads and whether SQLAlchemy, pandas or
great-expectations are among them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

STATEMENTS = {
    "empty interpreter": "pass",
    "from rulelife import RuleClassifier": "from rulelife import RuleClassifier",
    "from rulelife import Store": "from rulelife import Store",
    "import rulelife.cli": "import rulelife.cli",
    "rulelife --help": "import sys; sys.argv = ['rulelife', '--help']; from rulelife.cli import main; main()",
}
HEAVY = ("sqlalchemy", "pandas", "great_expectations", "pydantic_settings")


def _time(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def _loaded(code: str) -> dict:
    report = f"import json, sys; print(json.dumps([len(sys.modules), [m for m in {HEAVY!r} if m in sys.modules]]))"
    # The report runs at exit, so a statement that exits (--help) is measured too; it is the last line printed.
    probe = f"import atexit\natexit.register(lambda: exec({report!r}, {{}}))\n{code}"
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True).stdout
    out = out.strip().splitlines()[-1]
    modules, heavy = json.loads(out)
    return {"modules": modules, "heavy": heavy}


def run(reps: int = 15) -> dict:
    seconds: dict[str, list[float]] = {name: [] for name in STATEMENTS}
    names = list(STATEMENTS)
    for rep in range(reps):
        shift = rep % len(names)
        for name in names[shift:] + names[:shift]:
            seconds[name].append(_time(STATEMENTS[name]))
    empty = statistics.median(seconds["empty interpreter"])
    figures = {}
    for name, code in STATEMENTS.items():
        if name == "empty interpreter":
            continue
        figures[name] = {"seconds": round(statistics.median(seconds[name]) - empty, 3), **_loaded(code)}
    return {"meta": {"reps": reps, "empty_interpreter_s": round(empty, 3), "load_average": os.getloadavg()},
            "figures": figures}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--json", help="also write the report as JSON to this file")
    args = parser.parse_args()
    report = run(args.reps)
    print(f"{'statement':40} {'import s':>9} {'modules':>8}  heavy modules loaded")
    for name, f in report["figures"].items():
        print(f"{name:40} {f['seconds']:9.3f} {f['modules']:8d}  {', '.join(f['heavy']) or '-'}")
    print(f"(empty interpreter {report['meta']['empty_interpreter_s']} s subtracted; "
          f"load average {report['meta']['load_average'][0]:.2f})")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=2)


if __name__ == "__main__":
    main()
