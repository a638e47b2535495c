"""Figures of a long-mode file: ``python -m tests.faults.summary FILE.jsonl``.

Kill trials (``tests.faults.runner``, ``RULELIFE_FAULT_KILLS``): per command, the
kill points tried, how many the kill cut short (the others had finished first),
divergent end states, stale locks and failed re-runs. Concurrency schedules
(``RULELIFE_FAULT_SCHEDULES``): per pair and backend, schedules tried, how many
ended with a command refused (exit 75 or a documented refusal) and how many broke
a promise (an unclean exit, a lost update or an inconsistent end state).
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path


def summarize(lines: list[str]) -> dict[str, dict]:
    out: dict[str, dict] = defaultdict(lambda: {"kill_points": 0, "killed": 0, "finished_first": 0,
                                                "divergent": 0, "stale_locks": 0, "rerun_failed": 0})
    for line in lines:
        if not line.strip():
            continue
        trial = json.loads(line)
        if "pair" in trial:
            continue
        row = out[trial["command"]]
        row["kill_points"] += 1
        row["killed" if trial["killed"] else "finished_first"] += 1
        row["divergent"] += bool(trial["divergences"])
        row["stale_locks"] += bool(trial["locks_held"])
        row["rerun_failed"] += trial["rerun_code"] not in (0,)
    return dict(out)


def summarize_pairs(lines: list[str]) -> dict[str, dict]:
    out: dict[str, dict] = defaultdict(lambda: {"schedules": 0, "refused": 0, "broken": 0})
    for line in lines:
        if not line.strip():
            continue
        entry = json.loads(line)
        if "pair" not in entry:
            continue
        row = out[f"{entry['pair']} ({entry['backend']})"]
        row["schedules"] += 1
        row["refused"] += any(code != 0 for code in entry["exit"])
        row["broken"] += bool(entry["problems"])
    return dict(out)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m tests.faults.summary FILE.jsonl", file=sys.stderr)
        return 2
    lines = Path(argv[0]).read_text().splitlines()
    figures, pairs = summarize(lines), summarize_pairs(lines)
    bad = False
    if figures:
        columns = ["kill_points", "killed", "finished_first", "divergent", "stale_locks", "rerun_failed"]
        print(f"{'command':30} " + " ".join(f"{c:>14}" for c in columns))
        for command, row in sorted(figures.items()):
            print(f"{command:30} " + " ".join(f"{row[c]:>14}" for c in columns))
        bad |= any(row["divergent"] or row["stale_locks"] or row["rerun_failed"] for row in figures.values())
    if pairs:
        columns = ["schedules", "refused", "broken"]
        print(f"{'pair':36} " + " ".join(f"{c:>10}" for c in columns))
        for pair, row in sorted(pairs.items()):
            print(f"{pair:36} " + " ".join(f"{row[c]:>10}" for c in columns))
        bad |= any(row["broken"] for row in pairs.values())
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
