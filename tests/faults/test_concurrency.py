"""Two commands at once, on SQLite and PostgreSQL: each finishes or refuses cleanly, and nothing is lost.

A clean refusal is exit 75 (another run holds the job lock, or the database
was busy: :class:`~rulelife.errors.StoreBusy`) or a refusal the command
documents (a rollback to a bundle holding a disabled rule), always one
``error:`` line and no traceback. Whatever the interleaving, the end state
must be consistent: ``CURRENT`` names a bundle that verifies and serves exactly
the registry's active rules (and its shadow ones, flagged), or, while a
rollback's pin holds, the pinned bundle with no rule the registry took out;
every move of ``CURRENT`` is a history line whose ``previous`` is the line
before it, and each line is a recorded event.

The suite starts both commands together; ``RULELIFE_FAULT_SCHEDULES=N`` tries
N start offsets of the second command (drawn, seeded, in the first one's
duration) per pair, and ``RULELIFE_FAULT_REPORT=FILE`` appends each schedule
as a JSON line.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import signal
import subprocess
import time

import pytest
from sqlmodel import select

from rulelife.serving.bundle import BundleStore
from rulelife.serving.publish import _line_uid, blocked_rules
from rulelife.store import EventRow, registry
from tests.conftest import _pg_problem, require_or_skip
from tests.faults import harness

LAST = harness.LAST.isoformat()
NIGHTLY = ["monitor", "nightly", "--date", LAST, "--actor", "nightly"]
PUBLISH = ["bundle", "publish", "--actor", "ana"]

# name: (stage, first command, second command); "{held}" and "{active0}" are filled from the stage.
PAIRS = {
    "nightly+publish": ("live", NIGHTLY, PUBLISH),
    "promote+disable": ("gated", ["promote", "{held}", "--actor", "ana"],
                        ["disable", "{active0}", "--reason", "misroutes", "--actor", "bo"]),
    "publish+publish": ("unpublished", PUBLISH, PUBLISH),
    "sync+promote": ("gated", ["sync", "--actor", "ana"], ["promote", "{held}", "--actor", "bo"]),
    "nightly+nightly": ("live", NIGHTLY, NIGHTLY),
    "rollback+publish": ("live", ["bundle", "rollback", "1", "--reason", "bad bundle", "--actor", "ana"], PUBLISH),
    "nightly+disable": ("live", NIGHTLY, ["disable", "{active1}", "--reason", "misroutes", "--actor", "bo"]),
}


def schedules() -> int:
    return int(os.environ.get("RULELIFE_FAULT_SCHEDULES", "1"))


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def backend(request, tmp_path_factory):
    if request.param == "sqlite":
        stages = harness.SqliteStages(tmp_path_factory.mktemp("sqlite"))
    else:
        require_or_skip(_pg_problem(), "RULELIFE_REQUIRE_PG")
        stages = harness.PostgresStage(tmp_path_factory.mktemp("postgresql"))
    yield stages
    stages.close()


def fill(args: list[str], meta: dict) -> list[str]:
    out = []
    for arg in args:
        if arg == "{held}":
            out += meta["held"]
        elif arg.startswith("{active"):
            out.append(meta["active"][int(arg[7:-1])])
        else:
            out.append(arg)
    return out


def edit_a_rule(ws, rule_id: str) -> None:
    """Change an active rule's description, so `sync` has a new version to register."""
    for path in (ws / "rules").rglob("*.yaml"):
        text = path.read_text()
        if f"id: {rule_id}\n" in text:
            lines = [("description: edited while live" if line.startswith("description:") else line)
                     for line in text.splitlines()]
            path.write_text("\n".join(lines) + "\n")
            return
    raise AssertionError(f"no rule file holds {rule_id}")


def start(ws, args, env):
    return subprocess.Popen(harness.command_line(ws, args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True, env={**os.environ, **env}, cwd=ws)


def finish(proc, timeout=300) -> tuple[int, str]:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        return -1, out.decode(errors="replace") + "\n(hung: killed after the timeout)"
    return proc.returncode, out.decode(errors="replace")


def refused_cleanly(code: int, output: str, args: list[str]) -> str | None:
    """None when ``code`` is success or a clean refusal, else what is wrong."""
    if "Traceback" in output:
        return f"{args[0]}: a traceback:\n{output[-1500:]}"
    if code == 0:
        return None
    if code == 75 and "error:" in output:
        return None
    if code == 1 and args[:2] == ["bundle", "rollback"] and "refused" in output:
        return None
    return f"{' '.join(args[:2])}: exit {code}:\n{output[-800:]}"


def inconsistencies(backend, ws, env) -> list[str]:
    """What breaks the end-state promises of the module docstring (none when consistent)."""
    problems = []
    store = backend.store(ws, env)
    try:
        bundles = BundleStore(ws / "bundles")
        bundle = bundles.current()  # raises if CURRENT names a missing or unverifiable bundle
        served = {(r.id, r.version, r.shadow) for r in bundle.rules}
        pin = bundles.pinned()
        if pin is None:
            wanted = {(r.id, r.version, False) for r in registry.active_rules(store)} | \
                     {(r.id, r.version, True) for r in registry.shadow_rules(store)}
            if served != wanted:
                problems.append(f"CURRENT (bundle {bundle.number}) serves {sorted(served - wanted)} the registry "
                                f"does not, and lacks {sorted(wanted - served)}")
        else:
            if pin.number != bundle.number:
                problems.append(f"pinned to {pin.number} but CURRENT names {bundle.number}")
            blocked = blocked_rules(store, bundle.rules, forced=pin.forced)
            if blocked:
                problems.append(f"the pinned bundle serves rules taken out of traffic: {sorted(blocked)}")
        lines = [line for line in bundles.history_file.read_text().splitlines() if line.strip()]
        moves = [(json.loads(line), line) for line in lines]
        moves = [(e, line) for e, line in moves if e["action"] in ("publish", "rollback")]
        if moves[-1][0]["number"] != bundle.number:
            problems.append(f"the last history line names bundle {moves[-1][0]['number']}, CURRENT {bundle.number}")
        for (before, _), (after, line) in itertools.pairwise(moves):
            if after.get("previous") != before["number"]:
                problems.append(f"a move of CURRENT is missing from the history before: {line}")
        with store.session() as session:
            uids = set(session.exec(select(EventRow.uid).where(EventRow.type.like("bundle.%"))).all())
        unrecorded = [line for line in lines if _line_uid(line) not in uids]
        if unrecorded:
            problems.append(f"history lines with no event: {unrecorded}")
    finally:
        store.dispose()
    return problems


def run_pair(backend, name: str, target, offset: float) -> dict:
    stage, first, second = PAIRS[name]
    meta = harness.meta(backend.stages)
    ws, env = backend.prepare(stage, target)
    if name == "sync+promote":
        edit_a_rule(ws, meta["active"][2])
    a_args, b_args = fill(first, meta), fill(second, meta)
    a = start(ws, a_args, env)
    time.sleep(offset)
    b = start(ws, b_args, env)
    (a_code, a_out), (b_code, b_out) = finish(a), finish(b)
    problems = [p for p in (refused_cleanly(a_code, a_out, a_args), refused_cleanly(b_code, b_out, b_args)) if p]
    problems += inconsistencies(backend, ws, env)
    result = {"pair": name, "backend": backend.backend, "offset": round(offset, 3), "exit": [a_code, b_code],
              "problems": problems}
    out = os.environ.get("RULELIFE_FAULT_REPORT")
    if out:
        with open(out, "a") as handle:
            handle.write(json.dumps(result) + "\n")
    return result


@pytest.mark.parametrize("name", list(PAIRS))
def test_two_commands_at_once_finish_or_refuse_cleanly_and_lose_nothing(backend, name, tmp_path):
    rng = random.Random(name)
    for number in range(schedules()):
        offset = 0.0 if number == 0 else rng.uniform(0, 5)
        result = run_pair(backend, name, tmp_path / f"s{number}", offset)
        assert result["problems"] == [], result


def test_the_consistency_check_sees_a_disabled_rule_still_served(backend, tmp_path):
    """The check itself: a disable whose publish never ran leaves CURRENT serving it, and that is named."""
    from rulelife.rules.lifecycle import State

    meta = harness.meta(backend.stages)
    ws, env = backend.prepare("live", tmp_path / "ws")
    assert inconsistencies(backend, ws, env) == []
    store = backend.store(ws, env)
    registry.transition(store, meta["active"][0], State.DISABLED, actor="bo", reason="no publish")
    store.dispose()
    found = inconsistencies(backend, ws, env)
    assert len(found) == 1 and meta["active"][0] in found[0] and "serves" in found[0]
