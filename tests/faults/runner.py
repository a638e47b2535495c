"""The long mode: kill each command at many seeded random moments, one JSON line per trial.

    python -m tests.faults.runner OUT.jsonl --deadline 2026-12-07T15:30 [--kills N] [--pg] [--fork-server] [COMMAND ...]

Runs the commands round-robin (one kill point each per round) until each has
``--kills`` trials or the deadline passes, appending to ``OUT.jsonl`` as it
goes (a trial that ends is never lost). Seeds continue after the ones already
in the file, so a second run adds new kill points. ``--pg`` adds the nightly on
PostgreSQL as a command of its own (``monitor nightly (postgresql)``).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from tests.faults import harness

PG_NIGHTLY = "monitor nightly (postgresql)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--deadline", help="UTC time to stop starting trials, e.g. 2026-12-07T15:30")
    parser.add_argument("--kills", type=int, default=200, help="kill points per command")
    parser.add_argument("--pg", action="store_true", help="also the nightly on PostgreSQL")
    parser.add_argument("--first-seed", type=int, default=0,
                        help="first seed (a second runner beside another takes its own range of kill points)")
    parser.add_argument("--fork-server", action="store_true",
                        help="start each command by forking a process that imported rulelife once "
                             "(kill points fall in the commands' own work; a trial costs about half)")
    parser.add_argument("commands", nargs="*", default=list(harness.COMMANDS))
    args = parser.parse_intermixed_args(argv)
    deadline = datetime.fromisoformat(args.deadline).replace(tzinfo=UTC).timestamp() if args.deadline else None
    done: dict[str, int] = {}
    if args.out.exists():
        for line in args.out.read_text().splitlines():
            if line.strip():
                entry = json.loads(line)
                done[entry["command"]] = max(done.get(entry["command"], -1), entry["seed"]) + 0
    if args.fork_server:
        harness.use_fork_server()
    scratch = Path(tempfile.mkdtemp(prefix="rulelife-faults-"))
    stages = harness.build_stages(scratch / "stages")
    commands = list(args.commands) + ([PG_NIGHTLY] if args.pg else [])
    refs, pg = {}, None
    for command in commands:
        if command == PG_NIGHTLY:
            pg = harness.PostgresStage(scratch / "pg")
            refs[command] = pg.reference()
        else:
            refs[command] = harness.reference(command, stages, scratch / "ref")
        print(f"{command}: unkilled run {refs[command].seconds:.1f} s", flush=True)
    seeds = {command: max(done.get(command, -1) + 1, args.first_seed) for command in commands}
    counts = {command: 0 for command in commands}
    with args.out.open("a") as out:
        while any(counts[c] < args.kills for c in commands):
            for command in commands:
                if counts[command] >= args.kills:
                    continue
                if deadline is not None and time.time() > deadline:
                    print("deadline reached", flush=True)
                    return 0
                if command == PG_NIGHTLY:
                    result = pg.trial(refs[command], seeds[command])
                else:
                    result = harness.trial(refs[command], stages, scratch / "trial", seeds[command])
                out.write(json.dumps(result.to_dict()) + "\n")
                out.flush()
                seeds[command] += 1
                counts[command] += 1
                if result.divergences or result.locks_held:
                    print(f"{command} seed {result.seed}: {result.divergences} {result.locks_held}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
