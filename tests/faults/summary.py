"""Per-command figures of a long-mode file: ``python -m tests.faults.summary FILE.jsonl``."""

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
        row = out[trial["command"]]
        row["kill_points"] += 1
        row["killed" if trial["killed"] else "finished_first"] += 1
        row["divergent"] += bool(trial["divergences"])
        row["stale_locks"] += bool(trial["locks_held"])
        row["rerun_failed"] += trial["rerun_code"] not in (0,)
    return dict(out)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m tests.faults.summary FILE.jsonl", file=sys.stderr)
        return 2
    figures = summarize(Path(argv[0]).read_text().splitlines())
    columns = ["kill_points", "killed", "finished_first", "divergent", "stale_locks", "rerun_failed"]
    print(f"{'command':30} " + " ".join(f"{c:>14}" for c in columns))
    for command, row in sorted(figures.items()):
        print(f"{command:30} " + " ".join(f"{row[c]:>14}" for c in columns))
    return 1 if any(row["divergent"] or row["stale_locks"] for row in figures.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
