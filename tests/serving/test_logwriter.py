"""The runtime's query-log writer: the nightly reads what it writes, by day, whole files, bounded memory."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from rulelife import QueryLogWriter, RuleClassifier
from rulelife.cli import app
from rulelife.config import Workspace
from rulelife.querylog.sources import day_of
from rulelife.rules.definition import Rule
from rulelife.rules.matcher import compile_rule
from rulelife.serving import publish
from rulelife.serving.bundle import BundleStore
from rulelife.serving.logrow import LOG_COLUMNS
from rulelife.serving.publish import publish_rules
from rulelife.simulate import simulate_traffic
from rulelife.store import Store, registry

REPO_RULES = Path(__file__).resolve().parents[2] / "rules"
DAY = dt.date(2026, 3, 2)
NOON = dt.datetime(2026, 3, 2, 12, tzinfo=dt.UTC)


def rows_of(log_dir: Path) -> list[dict]:
    return [row for path in sorted(log_dir.rglob("*.parquet")) for row in pq.read_table(path).to_pylist()]


@pytest.fixture
def clf(tmp_path):
    store = BundleStore(tmp_path / "bundles")
    hours = Rule(id="faq.hours", intent="faq", patterns=["opening hours"], owner="ds")
    sale = compile_rule(Rule(id="promotion.sale", intent="promotion", patterns=["sale"], owner="ds"), shadow=True)
    publish_rules(store, [hours, sale])
    return RuleClassifier.from_store(store.root, shadow_rate=0.0)


def test_a_simulated_day_written_by_the_runtime_passes_the_nightly(tmp_path, db_url, monkeypatch):
    url, schema = db_url
    if schema:
        monkeypatch.setenv("RULELIFE_DB_SCHEMA", schema)
    ws = Workspace.create(tmp_path / "ws", db_url=url)
    shutil.copytree(REPO_RULES, ws.rules_dir, dirs_exist_ok=True)
    store = Store.from_workspace(ws)
    ids = sorted(registry.sync_workspace(ws, actor="ana", store=store).registered)
    for rule_id in ids[1:]:
        publish.set_state(ws, rule_id, "active", actor="ana", reason="setup", republish=False, store=store)
    publish.set_state(ws, ids[0], "shadow", actor="ana", reason="setup", store=store)
    store.dispose()
    clf = RuleClassifier.from_store(ws.bundle_dir)

    day = simulate_traffic(start=DAY, days=1, queries_per_day=1500, seed=3)
    with QueryLogWriter(ws.log_dir, classifier=clf, max_rows=500) as writer:
        for row in day.itertuples():
            decision = clf.decide(row.text, locale=row.locale, query_id=row.query_id)
            called = decision.match is None or decision.match.shadow  # the model is called
            assert writer.write(decision, query_id=row.query_id, text=row.text, locale=row.locale,
                                model_intent=row.model_intent if called else None,
                                model_confidence=row.model_confidence if called else None, ts=row.ts)
    assert writer.health()["rows_written"] == len(day)

    written = rows_of(ws.log_dir)
    assert len(written) == len(day) and list(written[0]) == list(LOG_COLUMNS)
    assert {row["bundle_version"] for row in written} == {clf.bundle_version}  # misses name their bundle too
    misses = [row for row in written if row["rule_id"] is None]
    hits = [row for row in written if row["rule_id"] is not None]
    assert misses and hits and all(row["model_intent"] is not None for row in misses)
    assert all(day_of(path) == DAY for path in ws.log_dir.rglob("*.parquet"))

    result = CliRunner().invoke(app, ["--workspace", str(ws.root), "monitor", "nightly", "--date", DAY.isoformat(),
                                      "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout[result.stdout.index("{"):])
    assert report["log"]["rows_valid"] == len(day) and report["log"]["rows_quarantined"] == 0
    assert report["metric_rows"] > 0


def test_every_column_of_a_decision_lands_in_its_row(clf, tmp_path):
    with QueryLogWriter(tmp_path / "logs", classifier=clf) as writer:
        for qid, text in (("q-1", "opening hours?"), ("q-2", "big sale today"), ("q-3", "hello")):
            writer.write(clf.decide(text, locale="en-US", query_id=qid), query_id=qid, text=text, locale="en-US",
                         model_intent=None if qid == "q-1" else "chitchat",
                         model_confidence=None if qid == "q-1" else 0.5, ts=NOON)
    sale_version = clf.shadow_versions(1)["promotion.sale"]
    got = {row["query_id"]: row for row in rows_of(tmp_path / "logs")}
    assert (got["q-1"]["rule_id"], got["q-1"]["shadow"], got["q-1"]["model_intent"]) == ("faq.hours", False, None)
    assert got["q-2"]["shadow_rules"] == f"promotion.sale@{sale_version}" and got["q-2"]["rule_id"] is None
    assert got["q-3"]["shadow_rules"] is None and got["q-3"]["shadow"] is None
    assert {row["bundle_version"] for row in got.values()} == {1}
    assert got["q-3"]["ts"] == NOON and got["q-3"]["model_confidence"] == 0.5


def test_rows_go_to_the_folder_of_their_utc_day(clf, tmp_path):
    before = dt.datetime(2026, 3, 1, 23, 59, 59, tzinfo=dt.UTC)
    with QueryLogWriter(tmp_path / "logs", classifier=clf) as writer:
        for i, ts in enumerate((before, before + dt.timedelta(seconds=2), dt.datetime(2026, 3, 2, 1, 30))):
            writer.write(clf.decide("hello"), query_id=f"q-{i}", text="hello", ts=ts)
    days = {path.parent.name: len(pq.read_table(path)) for path in (tmp_path / "logs").rglob("*.parquet")}
    assert days == {"date=2026-03-01": 1, "date=2026-03-02": 2}


def test_files_rotate_by_size_and_by_time(clf, tmp_path):
    logs = tmp_path / "logs"
    writer = QueryLogWriter(logs, classifier=clf, max_rows=100, max_seconds=0.2, max_wait=5.0)
    try:
        for i in range(1000):
            writer.write(clf.decide("hello"), query_id=f"q-{i}", text="hello", ts=NOON)
        deadline = time.monotonic() + 10
        while writer.health()["rows_written"] < 1000 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert writer.health()["files_written"] == 10  # size: 100 rows a file, without a close
        writer.write(clf.decide("hello"), query_id="late", text="hello", ts=NOON)
        time.sleep(1.0)
        assert writer.health()["rows_written"] == 1001  # time: the lone row's file is out within max_seconds
    finally:
        writer.close()
    names = sorted(path.name for path in logs.rglob("*.parquet"))
    assert len(names) == 11 and len({name.rsplit("-", 1)[0] for name in names}) == 1  # one process, one prefix
    assert not [p for p in logs.rglob("*") if p.name.startswith(".")]  # no temporary file left


def test_many_threads_write_every_row_once(clf, tmp_path):
    with QueryLogWriter(tmp_path / "logs", classifier=clf, max_rows=700, max_wait=5.0) as writer:
        def serve(t: int) -> None:
            for i in range(2000):
                text = "opening hours" if i % 2 else "hello"
                qid = f"t{t}-{i}"
                writer.write(clf.decide(text, query_id=qid), query_id=qid, text=text, ts=NOON)

        threads = [threading.Thread(target=serve, args=(t,)) for t in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    ids = [row["query_id"] for row in rows_of(tmp_path / "logs")]
    assert len(ids) == len(set(ids)) == 16_000


def test_memory_is_bounded_when_files_cannot_be_written_and_rows_kept_are_written_later(clf, tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "date=2026-03-02").write_text("a file where the day's folder should be")
    writer = QueryLogWriter(logs, classifier=clf, max_rows=10, max_wait=0.0)
    accepted = [writer.write(clf.decide("hello"), query_id=f"q-{i}", text="hello", ts=NOON) for i in range(50)]
    writer.flush()
    health = writer.health()
    # Twice a file's worth is held (10 that failed, 10 filling); the other 30 are dropped and counted.
    assert sum(accepted) == 20 and health["rows_dropped"] == 30 and health["rows_buffered"] == 20
    assert health["rows_written"] == 0 and "date=2026-03-02" in health["last_error"]
    (logs / "date=2026-03-02").unlink()
    writer.close()
    assert writer.health()["rows_written"] == 20 and writer.health()["last_error"] is None
    assert sorted(row["query_id"] for row in rows_of(logs)) == sorted(f"q-{i}" for i in range(20))


def test_rows_buffered_at_exit_are_written(clf, tmp_path):
    code = f"""
import datetime as dt
from rulelife import QueryLogWriter, RuleClassifier
clf = RuleClassifier.from_store({str(clf.store.root)!r})
writer = QueryLogWriter({str(tmp_path / 'logs')!r}, classifier=clf)
for i in range(25):
    writer.write(clf.decide("opening hours"), query_id=f"q-{{i}}", text="opening hours")
"""  # no close: the interpreter's exit writes the buffer
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    assert len(rows_of(tmp_path / "logs")) == 25


def test_writing_loads_no_pandas_and_survives_any_text(clf, tmp_path):
    code = f"""
import sys
from rulelife import QueryLogWriter, RuleClassifier
from rulelife.serving.publish import publish_rules
clf = RuleClassifier.from_store({str(clf.store.root)!r})
with QueryLogWriter({str(tmp_path / 'logs')!r}, classifier=clf) as writer:
    writer.write(clf.decide("opening hours"), query_id="q-1", text="opening hours \\ud800 x")
print("pandas" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False"  # a service that logs does not pay for pandas
    assert [row["text"] for row in rows_of(tmp_path / "logs")] == ["opening hours ? x"]


def test_a_forked_worker_writes_its_own_file_and_not_the_parents_rows(clf, tmp_path):
    logs = tmp_path / "logs"
    writer = QueryLogWriter(logs, classifier=clf)
    for i in range(5):
        writer.write(clf.decide("hello"), query_id=f"parent-{i}", text="hello", ts=NOON)
    pid = os.fork()
    if pid == 0:  # the child: its own rows only, under its own name
        try:
            for i in range(3):
                writer.write(clf.decide("hello"), query_id=f"child-{i}", text="hello", ts=NOON)
            writer.close()
        finally:
            os._exit(0)
    assert os.waitpid(pid, 0)[1] == 0
    writer.close()
    files = sorted(logs.rglob("*.parquet"))
    assert len(files) == 2 and len({path.name.split("-")[1] for path in files}) == 2  # two pids
    ids = sorted(row["query_id"] for row in rows_of(logs))
    assert ids == sorted([f"parent-{i}" for i in range(5)] + [f"child-{i}" for i in range(3)])


def test_bad_arguments_are_refused(clf, tmp_path):
    with pytest.raises(ValueError, match="max_rows must be a positive integer"):
        QueryLogWriter(tmp_path, classifier=clf, max_rows=0)
    with QueryLogWriter(tmp_path, classifier=clf) as writer:
        with pytest.raises(TypeError, match="query_id must be a non-empty string"):
            writer.write(clf.decide("hi"), query_id="", text="hi")
    with pytest.raises(ValueError, match="closed"):
        writer.write(clf.decide("hi"), query_id="q", text="hi")


def test_model_version_is_written_where_given_and_null_elsewhere(tmp_path, clf):
    with QueryLogWriter(tmp_path / "logs", classifier=clf) as writer:
        for i, version in enumerate(["model-1", None, "model-2"]):
            decision = clf.decide("what are your opening hours", locale="en-US", query_id=f"q{i}")
            writer.write(decision, query_id=f"q{i}", text="what are your opening hours", locale="en-US",
                         ts=NOON, model_version=version)
    assert [row["model_version"] for row in rows_of(tmp_path / "logs")] == ["model-1", None, "model-2"]


@pytest.mark.parametrize("bad, error", [("model\x00-2", ValueError), ("", TypeError), (2, TypeError)])
def test_a_model_version_the_reader_would_quarantine_is_refused_at_write(tmp_path, clf, bad, error):
    with QueryLogWriter(tmp_path / "logs", classifier=clf) as writer:
        decision = clf.decide("sale", locale="en-US", query_id="q0")
        with pytest.raises(error, match="model_version"):
            writer.write(decision, query_id="q0", text="sale", locale="en-US", model_version=bad)
