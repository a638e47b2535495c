"""Kill each command at seeded random moments, re-run it, and compare the end state with an unkilled run.

The suite's sample: a few kill points per command (``KILLS``) and one on
PostgreSQL for the nightly. ``RULELIFE_FAULT_KILLS=N`` runs N per command
instead, and ``RULELIFE_FAULT_REPORT=FILE`` appends each trial as a JSON line
(read it with ``python -m tests.faults.summary FILE``); ``long_run.sh`` runs
the long mode outside pytest.
"""

from __future__ import annotations

import json
import os

import pytest

from tests.conftest import _pg_problem, require_or_skip
from tests.faults import harness

# Kill points per command in the suite's sample: more where a run is short.
KILLS = {"sync": 1, "dataset build": 1, "promote": 2, "bundle publish": 2, "monitor nightly": 1, "mine": 1}
PG_KILLS = 1


def kills(command: str) -> int:
    return int(os.environ.get("RULELIFE_FAULT_KILLS", "0")) or KILLS.get(command, PG_KILLS)


def record(result: harness.Trial) -> None:
    out = os.environ.get("RULELIFE_FAULT_REPORT")
    if out:
        with open(out, "a") as handle:
            handle.write(json.dumps(result.to_dict()) + "\n")


@pytest.fixture(scope="module")
def stages(tmp_path_factory):
    return harness.build_stages(tmp_path_factory.mktemp("stages"))


@pytest.fixture(scope="module")
def references(stages, tmp_path_factory):
    found = {}

    def get(command: str) -> harness.Reference:
        if command not in found:
            found[command] = harness.reference(command, stages, tmp_path_factory.mktemp("reference"))
        return found[command]

    return get


def check(result: harness.Trial) -> None:
    record(result)
    assert result.divergences == [], f"{result.command} killed at {result.kill_at:.2f} s (seed {result.seed})"
    assert result.locks_held == []


@pytest.mark.parametrize("command", list(harness.COMMANDS))
def test_a_command_killed_at_random_and_run_again_ends_as_an_unkilled_run(command, stages, references, tmp_path):
    ref = references(command)
    for seed in range(kills(command)):
        check(harness.trial(ref, stages, tmp_path, seed))


def test_the_nightly_on_postgresql_killed_at_random_and_run_again_ends_as_an_unkilled_run(tmp_path):
    require_or_skip(_pg_problem(), "RULELIFE_REQUIRE_PG")
    stage = harness.PostgresStage(tmp_path)
    try:
        ref = stage.reference()
        for seed in range(kills("monitor nightly (postgresql)")):
            check(stage.trial(ref, seed))
    finally:
        stage.close()


def test_the_comparison_sees_a_doubled_ticket_event_and_a_lost_history_line(stages, references, tmp_path):
    """The end-state comparison itself: a row added or a line removed is a divergence it names."""
    import sqlite3

    ref = references("monitor nightly")
    ws = harness._copy(ref.workspace, tmp_path / "ws")
    assert harness.diff(ref.state, harness.read_state(ws, copied_from=ref.workspace)) == []
    with sqlite3.connect(ws / "rulelife.db") as db:
        db.execute("INSERT INTO ticket_events (ticket_id, fingerprint, kind, at, day, body) "
                   "SELECT ticket_id, fingerprint || '-again', kind, at, day, body FROM ticket_events LIMIT 1")
    history = ws / "bundles" / "history.jsonl"
    history.write_text("".join(history.read_text().splitlines(keepends=True)[:-1]))
    found = harness.diff(ref.state, harness.read_state(ws, copied_from=ref.workspace))
    assert [line.split(": ")[0] for line in found] == ["history", "table:ticket_events"]
    assert "extra" in found[1] and "lost []" in found[1]


def test_the_fork_server_runs_a_command_as_an_interpreter_does_and_kills_its_group(stages, references, tmp_path,
                                                                                    monkeypatch):
    """The long run's launcher (``runner.py --fork-server``): the same exit and end state as a fresh
    interpreter, and a kill that stops the command where it was."""
    from tests.faults.forkserver import ForkServer

    ref = references("bundle publish")
    args = harness.arguments("bundle publish", stages)
    server = ForkServer()
    monkeypatch.setattr(harness, "_fork_server", server)
    try:
        ws = harness._copy(stages["unpublished"], tmp_path / "whole")
        done = harness.run(ws, args)
        assert done.returncode == ref.returncode == 0, done.output
        assert harness.diff(ref.state, harness.read_state(ws)) == []

        ws = harness._copy(stages["unpublished"], tmp_path / "killed")
        assert harness.run(ws, args, kill_at=0.01).returncode is None  # a publish takes far longer than 10 ms
        again = harness.run(ws, args)
        assert again.returncode == 0, again.output
        assert harness.diff(ref.state, harness.read_state(ws)) == []
        assert harness.locks_free(ws) == []
    finally:
        server.close()


# `rulelife mine`, killed by its own hand at a chosen step (the long run found these windows divergent).
_KILLED_MINE = """
import os, signal, sys
from rulelife.mining import mine
from rulelife.store import registry

def dies(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

step = sys.argv.pop(1)
if step == "before the registration":
    registry.sync_workspace = dies
elif step == "before the selections":
    mine._record = dies
else:  # after the first of its files
    written = mine.atomic_write
    def once(*args, **kwargs):
        written(*args, **kwargs)
        dies()
    mine.atomic_write = once
from rulelife.cli import main
main()
"""


@pytest.mark.parametrize("step", ["after the first file", "before the selections", "before the registration"])
def test_a_mine_killed_between_its_files_and_its_registration_ends_as_an_unkilled_run(step, stages, references,
                                                                                       tmp_path):
    """A re-run adopts the files the killed run wrote (they are what it mines again), records each
    selection once and registers them: no candidate is left unregistered or without its days."""
    import subprocess
    import sys

    ref = references("mine")
    args = harness.arguments("mine", stages)
    ws = harness._copy(stages["synced"], tmp_path / "ws")
    killed = subprocess.run([sys.executable, "-c", _KILLED_MINE, step, "-w", str(ws), *args], cwd=ws,
                            capture_output=True, check=False)
    assert killed.returncode == -9, killed.stderr.decode()[-2000:]
    again = harness.run(ws, args)
    assert again.returncode == 0, again.output
    assert harness.diff(ref.state, harness.read_state(ws)) == []
