"""Kill a real ``rulelife`` process at a random moment, re-run it, compare the end state.

A *stage* is a prepared workspace (SQLite) a command starts from, built once
with the library and copied for every trial. A *trial* copies the stage, runs
the command in a subprocess, SIGKILLs its process group after ``kill_at``
seconds (or lets it finish when the command ends first), re-runs it to the end
and reads the normalised end state: every registry table, the bundle folder
(bundles, ``CURRENT``, history), the quarantine rows and markers, the dataset
files and the rule files. Timestamps, run ids, surrogate keys and the
workspace's own path are scrubbed, so an unkilled run and a killed-then-re-run
one compare equal exactly when nothing was doubled, lost or left behind.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

import pandas as pd
import sqlalchemy

from rulelife.serving.bundle import BundleStore

ROOT = Path(__file__).resolve().parents[2]
START = date(2026, 3, 1)
HISTORY_DAYS = 6
LIVE_DAYS = 3
QUERIES_PER_DAY = 1000
LAUNCH = START + timedelta(days=HISTORY_DAYS)
LAST = LAUNCH + timedelta(days=LIVE_DAYS - 1)
HISTORY_END = LAUNCH - timedelta(days=1)
ACTOR = "faults"
HELD = "{held}"  # in an argument list: the rules the stage left as candidates that the gate lets through
SOME = "{some}"  # the first three rules, for a dataset build of several rules in one read of the log

COMMANDS: dict[str, tuple[str, list[str]]] = {
    # name: (stage it starts from, arguments after `rulelife -w WS`)
    "sync": ("fresh", ["sync", "--actor", ACTOR]),
    "dataset build": ("synced", ["dataset", "build", SOME, "--since", START.isoformat(),
                                 "--until", HISTORY_END.isoformat(), "--actor", ACTOR]),
    "promote": ("gated", ["promote", HELD, "--actor", ACTOR]),
    "bundle publish": ("unpublished", ["bundle", "publish", "--actor", ACTOR]),
    "monitor nightly": ("live", ["monitor", "nightly", "--date", LAST.isoformat(), "--actor", "nightly"]),
    "mine": ("synced", ["mine", "--since", (HISTORY_END - timedelta(days=3)).isoformat(),
                        "--until", HISTORY_END.isoformat(),
                        "--actor", "miner"]),
}


# ---------------------------------------------------------------- stages

def _bad_rows_csv(path: Path, day: date) -> None:
    """A small CSV beside the day's Parquet: 3 good rows and 4 the reader must quarantine."""
    ts = f"{day.isoformat()}T10:00:00Z"
    none = ",,,false"  # no rule answered: the runtime columns empty
    lines = ["query_id,ts,text,locale,model_intent,model_confidence,rule_id,rule_version,bundle_version,shadow",
             f"bad-1,{ts},where is my order,en-US,order_tracking,1.7{none}",     # confidence out of range
             f"bad-2,not a time,hello,en-US,chitchat,0.9{none}",                 # unparseable time
             f"bad-3,{ts},hi there,en-US,chitchat,nan{none}",                    # NaN beside an intent
             f"bad-4,{ts},hi there,en-US,chitchat,0.9{none},extra",              # a stray field
             f"ok-1,{ts},what are your opening hours,en-US,faq,0.97{none}",
             f"ok-2,{ts},thanks,en-US,chitchat,0.99{none}",
             f"ok-3,{ts},do you ship to spain,en-US,faq,0.91{none}"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def build_stages(out: Path, db_url: str | None = None, schema: str | None = None) -> dict[str, Path]:
    """Build every stage under ``out`` (one folder each), in order; return them by name.

    With ``db_url`` (PostgreSQL) the registry is built in ``schema`` and each
    stage's tables are copied into ``<schema>_<stage>``.
    """
    from rulelife.config import Workspace
    from rulelife.demo.quickstart import shipped_rules_dir
    from rulelife.evidence import promotion
    from rulelife.monitoring import nightly
    from rulelife.serving import publish
    from rulelife.serving.replay import replay
    from rulelife.serving.runtime import RuleClassifier
    from rulelife.simulate import simulate_traffic, write_log
    from rulelife.store import Store, registry

    out.mkdir(parents=True, exist_ok=True)
    settings = {"shadow_rate": 0.3, "dataset_floor": 150, "dataset_floor_high_traffic": 600}
    if db_url:
        settings["db_url"] = db_url
        if schema:
            settings["db_schema"] = schema
    ws = Workspace.create(out / "work", settings=settings)
    stages: dict[str, Path] = {}

    def snap(name: str) -> None:
        target = out / name
        shutil.copytree(ws.root, target, symlinks=True)
        stages[name] = target
        if db_url is not None:
            copy_schema(db_url, schema, f"{schema}_{name}")

    shutil.copytree(shipped_rules_dir(), ws.rules_dir, dirs_exist_ok=True)
    traffic = simulate_traffic(start=START, days=HISTORY_DAYS + LIVE_DAYS, queries_per_day=QUERIES_PER_DAY, seed=11)
    day = traffic["ts"].dt.date
    write_log(traffic[day < LAUNCH], ws.log_dir)
    _bad_rows_csv(ws.log_dir / f"date={HISTORY_END.isoformat()}" / "extra.csv", HISTORY_END)
    snap("fresh")
    store = Store.from_workspace(ws)
    registry.sync_workspace(ws, actor=ACTOR, store=store)
    snap("synced")
    candidates = sorted(s.rule_id for s in registry.list_rules(store, state="candidate"))
    promotion.build_datasets(ws, candidates, since=START, until=HISTORY_END, actor=ACTOR, store=store)
    passing = [rule_id for rule_id in candidates
               if promotion._evaluate(store, ws, rule_id, None).decision.passed]
    held = passing[:3]
    active = [r for r in candidates if r not in held]
    (out / "meta.json").write_text(json.dumps({"held": held, "some": candidates[:3], "passing": passing,
                                               "active": active}))
    # The rest made active without the gate (as an operator may): a live set large enough for the
    # monitors to find something, weak rules included.
    for number, rule_id in enumerate(r for r in candidates if r not in held):
        publish.set_state(ws, rule_id, "active", actor=ACTOR, reason="stage", store=store, republish=False)
        if number == len(candidates) // 3:  # one bundle before the rest, so publishing has a history to extend
            publish.publish_active(ws, actor=ACTOR, store=store, reason="first third")
    snap("unpublished")
    publish.publish_active(ws, actor=ACTOR, store=store, reason="setup")
    snap("gated")
    classifier = RuleClassifier.from_store(ws.bundle_dir)
    for offset in range(LIVE_DAYS):
        current = LAUNCH + timedelta(days=offset)
        classifier.refresh()
        write_log(replay(traffic[day == current], classifier), ws.log_dir)
        if current != LAST:
            nightly.run_nightly(ws, current, store=store, actor="nightly")
    _bad_rows_csv(ws.log_dir / f"date={LAST.isoformat()}" / "extra.csv", LAST)
    store.dispose()
    snap("live")
    return stages


def copy_schema(url: str, source: str, target: str) -> None:
    """Copy every table of PostgreSQL schema ``source`` into a new schema ``target``."""
    from rulelife.store import Store

    Store(url, schema=target).dispose()  # the tables, empty
    engine = sqlalchemy.create_engine(url)
    meta = sqlalchemy.MetaData(schema=source)
    meta.reflect(engine)
    with engine.begin() as conn:
        for table in meta.sorted_tables:
            conn.execute(sqlalchemy.text(f'INSERT INTO "{target}"."{table.name}" SELECT * FROM "{source}"."{table.name}"'))
            if "id" in table.columns:
                conn.execute(sqlalchemy.text(
                    f"SELECT setval(pg_get_serial_sequence('\"{target}\".\"{table.name}\"', 'id'), "
                    f'COALESCE(MAX(id), 0) + 1, false) FROM "{target}"."{table.name}"'))
    engine.dispose()


# ---------------------------------------------------------------- running

def command_line(workspace: Path, args: list[str]) -> list[str]:
    return [sys.executable, "-c", "from rulelife.cli import main; main()", "-w", str(workspace), *args]


def arguments(command: str, stages: dict[str, Path]) -> list[str]:
    """The command's arguments, with the stage's rule lists filled in."""
    meta = json.loads((next(iter(stages.values())).parent / "meta.json").read_text())
    out = []
    for arg in COMMANDS[command][1]:
        out += meta["held"] if arg == HELD else meta["some"] if arg == SOME else [arg]
    return out


@dataclass
class Run:
    returncode: int | None  # None: killed
    seconds: float
    output: str = ""


_fork_server = None  # a tests.faults.forkserver.ForkServer once use_fork_server() was called


def use_fork_server() -> None:
    """Start every later command by forking a process that imported rulelife once (the long run)."""
    global _fork_server
    from tests.faults.forkserver import ForkServer

    if _fork_server is None:
        _fork_server = ForkServer()


def run(workspace: Path, args: list[str], *, kill_at: float | None = None, env: dict | None = None,
        timeout: float = 300) -> Run:
    """Run the command; with ``kill_at``, SIGKILL its whole process group after that many seconds."""
    if _fork_server is not None:
        out = workspace.parent / f"{workspace.name}.out"  # beside the workspace: not part of its state
        code, seconds = _fork_server.run(["-w", str(workspace), *args], cwd=workspace, env=env or {}, out=out,
                                         kill_at=kill_at, timeout=timeout)
        return Run(code, seconds, out.read_text(errors="replace"))
    started = time.monotonic()
    proc = subprocess.Popen(command_line(workspace, args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True, env={**os.environ, **(env or {})}, cwd=workspace)
    try:
        output, _ = proc.communicate(timeout=kill_at if kill_at is not None else timeout)
        return Run(proc.returncode, time.monotonic() - started, output.decode(errors="replace"))
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        if kill_at is None:
            raise AssertionError(f"{args} did not finish in {timeout} s") from None
        return Run(None, time.monotonic() - started, output.decode(errors="replace"))


# ---------------------------------------------------------------- end state

_SCRUB = [
    (re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?([+-]\d{2}:?\d{2}|Z)?"), "<time>"),
    (re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{6}"), "<run>"),
    (re.compile(r"evt_[0-9a-f]{32}"), "<uid>"),
    (re.compile(r"\b[0-9a-f]{64}\b"), "<sha256>"),  # bundle checksums cover the build time
]
# Columns that differ between two correct runs: keys, clocks, and what the clock feeds.
_IGNORED = {"id", "ticket_id", "event_id", "run_id", "uid", "attempts", "next_attempt_at", "last_error",
            "duration_seconds"}


# A run's report says what that attempt saw (files read or cached, an earlier run marked crashed).
_IGNORED_IN = {"nightly_runs": {"summary"}}


def scrub(value, root: str | tuple[str, ...]):
    if isinstance(value, (bytes, bytearray)):
        value = hashlib.sha256(value).hexdigest()
    if not isinstance(value, str):
        return None if value != value else value  # NaN as None  # noqa: PLR0124
    for path in (root,) if isinstance(root, str) else root:
        value = value.replace(path, "<ws>")
    for pattern, repl in _SCRUB:
        value = pattern.sub(repl, value)
    return value


def _cell(value, root):
    if isinstance(value, datetime):
        return "<time>"
    if isinstance(value, date):
        return value.isoformat()
    return scrub(value, root)


def _table_rows(conn, table: sqlalchemy.Table, root) -> Counter:
    keep = [c for c in table.columns if c.name not in _IGNORED | _IGNORED_IN.get(table.name, set())
            and not c.name.endswith("_at")
            and c.name not in ("ts", "day_started")]
    rows = Counter()
    for row in conn.execute(sqlalchemy.select(*keep)):
        rows[json.dumps([_cell(v, root) for v in row], default=str)] += 1
    return rows


def read_state(workspace: Path, *, db_url: str | None = None, schema: str | None = None,
               copied_from: Path | None = None) -> dict:
    """The normalised end state of ``workspace`` (see the module docstring); ``copied_from``: the
    folder it was copied from after its command ran, whose path its rows hold."""
    root = (str(workspace.resolve()),) + ((str(copied_from.resolve()),) if copied_from else ())
    state: dict = {}
    url = db_url or f"sqlite:///{workspace / 'rulelife.db'}"
    engine = sqlalchemy.create_engine(url)
    meta = sqlalchemy.MetaData(schema=schema)
    meta.reflect(engine)
    with engine.connect() as conn:
        for table in sorted(meta.sorted_tables, key=lambda t: t.name):
            rows = _table_rows(conn, table, root)
            if table.name == "nightly_runs":
                # One row per attempt: those a kill cut short are marked crashed, and a run that finished
                # before its kill was run again. The promise is about outcomes: which days ended how.
                rows = Counter({k: 1 for k in rows if '"crashed"' not in k and '"running"' not in k})
            state[f"table:{table.name}"] = dict(sorted(rows.items()))
    engine.dispose()
    bundles = workspace / "bundles"
    state["bundles"] = {p.name: (BundleStore.peek_header(p) or {}).get("content_hash")
                        for p in sorted(bundles.glob("bundle-*.rlb"))}
    current = bundles / "CURRENT"
    state["CURRENT"] = json.loads(current.read_text())["number"] if current.exists() else None
    history = bundles / "history.jsonl"
    state["history"] = [scrub(json.dumps({k: v for k, v in json.loads(line).items() if k not in ("at", "checksum")},
                                         sort_keys=True), root)
                        for line in history.read_text().splitlines()] if history.exists() else []
    state["PIN"] = (bundles / "PIN").exists()
    state["quarantine"] = _quarantine(workspace / "quarantine", root)
    datasets = sorted((workspace / "datasets").rglob("*.parquet")) if (workspace / "datasets").exists() else []
    state["dataset_files"] = sorted(p.name for p in datasets if not p.name.startswith("."))
    state["rule_files"] = {str(p.relative_to(workspace / "rules")): hashlib.sha256(p.read_bytes()).hexdigest()[:16]
                           for p in sorted((workspace / "rules").rglob("*.yaml")) if not p.name.startswith(".")}
    state["ticket_files"] = sorted(p.name for p in (workspace / "tickets").glob("*")) \
        if (workspace / "tickets").exists() else []
    return state


def _quarantine(folder: Path, root) -> dict:
    rows = Counter()
    if folder.exists():
        for path in sorted(folder.glob("*.parquet")):
            frame = pd.read_parquet(path)
            for source, row, reason in zip(frame["_source_file"], frame["_row"], frame["_reason"]):
                rows[f"{scrub(source, root)}|{row}|{reason}"] += 1
    markers = sorted(p.name for p in (folder / ".validated").glob("*.json")) if (folder / ".validated").exists() \
        else []
    return {"rows": dict(sorted(rows.items())), "markers": len(markers)}


def locks_free(workspace: Path) -> list[str]:
    """The writer locks of the workspace that a fresh process cannot take at once (should be none)."""
    held = []
    for lock in [*workspace.glob("*.lock"), workspace / "bundles" / ".lock"]:
        if not lock.exists():
            continue
        with open(lock, "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(handle, fcntl.LOCK_UN)
            except BlockingIOError:
                held.append(lock.name)
    return held


def diff(expected: dict, got: dict) -> list[str]:
    """What differs, one line per key (rows by count, so doubled and lost rows both show)."""
    out = []
    for key in sorted(set(expected) | set(got)):
        a, b = expected.get(key), got.get(key)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict) and key.startswith(("table:", "quarantine")):
            inner_a = a.get("rows", a) if key == "quarantine" else a
            inner_b = b.get("rows", b) if key == "quarantine" else b
            lost = {k: v - inner_b.get(k, 0) for k, v in inner_a.items() if v > inner_b.get(k, 0)}
            extra = {k: v - inner_a.get(k, 0) for k, v in inner_b.items() if v > inner_a.get(k, 0)}
            detail = f"lost {list(lost.items())[:3]} extra {list(extra.items())[:3]}"
            if key == "quarantine" and a.get("markers") != b.get("markers"):
                detail += f" markers {a.get('markers')} != {b.get('markers')}"
            out.append(f"{key}: {detail}"[:600])
        else:
            out.append(f"{key}: expected {str(a)[:250]} got {str(b)[:250]}")
    return out


# ---------------------------------------------------------------- trials

@dataclass
class Reference:
    command: str
    state: dict
    seconds: float
    returncode: int
    workspace: Path | None = None  # where it ran (the next reference of a scratch folder replaces it)


@dataclass
class Trial:
    command: str
    seed: int
    kill_at: float
    killed: bool
    rerun_code: int
    divergences: list[str] = field(default_factory=list)
    locks_held: list[str] = field(default_factory=list)
    backend: str = "sqlite"

    def to_dict(self) -> dict:
        return {"command": self.command, "seed": self.seed, "kill_at": round(self.kill_at, 3),
                "killed": self.killed, "rerun_code": self.rerun_code, "divergences": self.divergences,
                "locks_held": self.locks_held, "backend": self.backend,
                "launcher": "fork server" if _fork_server is not None else "interpreter"}


def _copy(stage: Path, target: Path) -> Path:
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(stage, target, symlinks=True)
    return target


def reference(command: str, stages: dict[str, Path], scratch: Path) -> Reference:
    """The command run once to the end on a copy of its stage: the state every trial must reach."""
    stage, args = COMMANDS[command][0], arguments(command, stages)
    ws = _copy(stages[stage], scratch / "reference")
    done = run(ws, args)
    if done.returncode != 0:
        raise AssertionError(f"the unkilled `{command}` failed ({done.returncode}):\n{done.output}")
    return Reference(command, read_state(ws), done.seconds, done.returncode, ws)


def trial(ref: Reference, stages: dict[str, Path], scratch: Path, seed: int) -> Trial:
    """Kill the command at a moment drawn (seeded) uniformly in its measured duration, re-run it, compare."""
    stage, args = COMMANDS[ref.command][0], arguments(ref.command, stages)
    kill_at = random.Random(f"{ref.command}/{seed}").uniform(0, ref.seconds)
    ws = _copy(stages[stage], scratch / "trial")
    first = run(ws, args, kill_at=kill_at)
    again = run(ws, args)
    result = Trial(ref.command, seed, kill_at, first.returncode is None, again.returncode)
    if again.returncode != ref.returncode:
        result.divergences.append(f"re-run exit {again.returncode}: {again.output.strip()[-400:]}")
    result.divergences += diff(ref.state, read_state(ws))
    result.locks_held = locks_free(ws)
    return result


# ---------------------------------------------------------------- PostgreSQL

PG_URL = os.environ.get("RULELIFE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


class SqliteStages:
    """The stages on SQLite, with the interface of :class:`PostgresStage`."""

    backend = "sqlite"

    def __init__(self, out: Path):
        self.stages = build_stages(out / "stages")

    def prepare(self, stage: str, target: Path) -> tuple[Path, dict]:
        return _copy(self.stages[stage], target), {}

    def store(self, ws: Path, env: dict):
        from rulelife.store import Store

        return Store(f"sqlite:///{ws / 'rulelife.db'}")

    def close(self) -> None:
        pass


def meta(stages: dict[str, Path]) -> dict:
    return json.loads((next(iter(stages.values())).parent / "meta.json").read_text())


class PostgresStage:
    """The stages with their registry on PostgreSQL, built once in schemas of their own; each run gets
    a copy of its stage's tables in a fresh schema (the workspace's files copied as for SQLite)."""

    def __init__(self, out: Path, url: str = PG_URL):
        self.url, self.out = url, out
        self.base = f"faults_{os.getpid()}_{random.randrange(1 << 30):x}"
        self.count = 0
        self.stages = build_stages(out / "stages", db_url=url, schema=self.base)

    def prepare(self, stage: str, target: Path) -> tuple[Path, dict]:
        """A copy of ``stage`` at ``target`` and the environment that points a command at its schema."""
        self.count += 1
        schema = f"{self.base}_run{self.count}"
        copy_schema(self.url, f"{self.base}_{stage}", schema)
        return _copy(self.stages[stage], target), {"RULELIFE_DB_SCHEMA": schema}

    backend = "postgresql"

    def store(self, ws: Path, env: dict):
        from rulelife.store import Store

        return Store(self.url, schema=env["RULELIFE_DB_SCHEMA"])

    def read_state(self, ws: Path, env: dict) -> dict:
        return read_state(ws, db_url=self.url, schema=env["RULELIFE_DB_SCHEMA"])

    def reference(self, command: str = "monitor nightly") -> Reference:
        ws, env = self.prepare(COMMANDS[command][0], self.out / "reference")
        done = run(ws, arguments(command, self.stages), env=env)
        if done.returncode != 0:
            raise AssertionError(f"the unkilled {command} on PostgreSQL failed ({done.returncode}):\n{done.output}")
        return Reference(f"{command} (postgresql)", self.read_state(ws, env), done.seconds, done.returncode)

    def trial(self, ref: Reference, seed: int) -> Trial:
        from rulelife.errors import JobLocked
        from rulelife.store import Store

        command = ref.command.removesuffix(" (postgresql)")
        ws, env = self.prepare(COMMANDS[command][0], self.out / "trial")
        args = arguments(command, self.stages)
        kill_at = random.Random(f"{ref.command}/{seed}").uniform(0, ref.seconds)
        first = run(ws, args, kill_at=kill_at, env=env)
        again = run(ws, args, env=env)
        for _ in range(50):  # once the server notices the killed session, its advisory lock is free
            if again.returncode != 75:
                break
            time.sleep(0.2)
            again = run(ws, args, env=env)
        result = Trial(ref.command, seed, kill_at, first.returncode is None, again.returncode, backend="postgresql")
        if again.returncode != ref.returncode:
            result.divergences.append(f"re-run exit {again.returncode}: {again.output.strip()[-400:]}")
        result.divergences += diff(ref.state, self.read_state(ws, env))
        store = Store(self.url, schema=env["RULELIFE_DB_SCHEMA"])
        try:
            with store.job_lock("nightly"):
                pass
        except JobLocked:
            result.locks_held.append("nightly (advisory)")
        finally:
            store.dispose()
        result.locks_held += locks_free(ws)
        return result

    def close(self) -> None:
        engine = sqlalchemy.create_engine(self.url)
        with engine.begin() as conn:
            for (name,) in conn.execute(sqlalchemy.text(
                    "SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE :p"),
                    {"p": f"{self.base}%"}):
                conn.execute(sqlalchemy.text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
        engine.dispose()
