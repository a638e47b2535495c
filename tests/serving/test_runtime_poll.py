"""A poller that cannot die, a readiness probe, a start-up that falls back, and a publisher that repairs."""

from __future__ import annotations

import gc
import json
import logging
import os
import stat
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rulelife import RuleClassifier
from rulelife.cli import app
from rulelife.config import Workspace
from rulelife.errors import BundleError
from rulelife.rules.definition import Rule
from rulelife.serving import publish
from rulelife.serving.bundle import MAGIC, BundleStore, _checksum
from rulelife.serving.publish import publish_rules

RUNTIME_LOG = "rulelife.serving.runtime"
NOBODY = 65534


def rule(rule_id: str, *patterns: str) -> Rule:
    return Rule(id=rule_id, intent=rule_id.split(".")[0], patterns=list(patterns), owner="ds")


WHERE = rule("order_tracking.where", "where is my order")
HOURS = rule("faq.hours", "opening hours")
SALE = rule("promotion.sale", "summer sale")


@contextmanager
def unprivileged():
    """Run as an ordinary user, so a mode-000 file really refuses to open (root reads anything).

    The effective uid is process-wide, so the poller thread runs as that user too.
    """
    if os.geteuid() != 0:
        yield
        return
    os.setegid(NOBODY)
    os.seteuid(NOBODY)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


@pytest.fixture
def store():
    """A published bundle folder; the test using it runs as an ordinary user (see :func:`unprivileged`)."""
    # Not tmp_path: the unprivileged user must be able to reach the folder.
    root = Path(tempfile.mkdtemp(prefix="rulelife-poll-"))
    root.chmod(0o777)
    with unprivileged():
        bundles = BundleStore(root / "bundles")
        publish_rules(bundles, [WHERE])
        yield bundles
    for path in sorted(root.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    root.rmdir()


def non_utf8_current(store: BundleStore) -> str:
    store.current_file.write_bytes(b'{"number": 1, "file": "bundle-000001.rlb", "checksum": "\xff\xfe"}\n')
    return "is damaged"


def wrong_typed_header(store: BundleStore) -> str:
    """A bundle whose header parses, with a checksum anyone can recompute, but a size that is a string."""
    good, _ = store.build([WHERE, SALE])
    data = good.path.read_bytes()
    end = data.index(b"\n", len(MAGIC))
    header = json.loads(data[len(MAGIC):end])
    payload = data[end + 1:]
    header["rules_bytes"] = str(header["rules_bytes"])
    header["checksum"] = _checksum(header, payload)
    good.path.write_bytes(MAGIC + json.dumps(header, sort_keys=True).encode() + b"\n" + payload)
    pointer = {"number": good.number, "file": good.path.name, "checksum": header["checksum"]}
    store.current_file.write_text(json.dumps(pointer))
    return "field 'rules_bytes' should be int"


def unreadable_current(store: BundleStore) -> str:
    store.current_file.chmod(0)
    return "Permission denied"


def wait_for(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False


@pytest.mark.parametrize("damage", [non_utf8_current, wrong_typed_header, unreadable_current])
def test_the_poller_outlives_a_fatal_publish_and_serves_the_next_good_one(store, damage, caplog):
    caplog.set_level(logging.INFO, logger=RUNTIME_LOG)
    clf = RuleClassifier.from_store(store.root)
    clf.start_polling(interval=0.01)
    try:
        said = damage(store)
        assert wait_for(lambda: clf.last_error is not None)
        first_seen = clf.health().last_error_at
        time.sleep(0.3)  # about 30 more polls over the same damage
        health = clf.health()
        assert health.polling and not health.ok and not health.serving_current
        assert said in health.last_error and health.last_error_at == first_seen
        assert clf.bundle_version == 1
        assert clf.classify("where is my order", locale="en-US").rule_id == "order_tracking.where"
        errors = [r for r in caplog.records if r.levelno == logging.ERROR and said in r.getMessage()]
        assert len(errors) == 1  # once while it lasts, not once a poll

        if damage is unreadable_current:
            store.current_file.chmod(0o644)
        bundle = publish_rules(store, [WHERE, HOURS]).bundle  # a damaged CURRENT is replaced
        assert wait_for(lambda: clf.bundle_version == bundle.number)
        assert clf.classify("opening hours", locale="en-US").rule_id == "faq.hours"
        health = clf.health()
        assert health.ok and health.serving_current and health.last_error is None
        assert health.last_poll_ok_at is not None
    finally:
        clf.stop_polling()


def test_a_new_distinct_error_is_logged_again(store, caplog):
    caplog.set_level(logging.ERROR, logger=RUNTIME_LOG)
    clf = RuleClassifier.from_store(store.root)
    non_utf8_current(store)
    for _ in range(5):
        assert clf.refresh() is False
    store.current_file.write_text("[]")  # JSON, but no pointer
    for _ in range(5):
        assert clf.refresh() is False
    assert len(caplog.records) == 2  # one record per distinct error
    assert "not UTF-8" in caplog.records[0].getMessage() and "does not name" in caplog.records[1].getMessage()
    store.current_file.unlink()
    store.publish(1)
    clf.refresh()
    non_utf8_current(store)
    clf.refresh()
    assert len(caplog.records) == 3  # the same error after a recovery is news again


def test_health_names_the_bundle_its_age_and_the_polls(store):
    clf = RuleClassifier.from_store(store.root)
    health = clf.health()
    assert (health.bundle_version, health.ok, health.serving_current, health.polling) == (1, True, True, False)
    assert 0 <= health.bundle_age_seconds < 60
    assert health.last_poll_ok_at is not None and health.last_error_at is None
    data = health.to_dict()
    assert data["ok"] is True and data["bundle_version"] == 1
    json.dumps(data)  # a readiness endpoint can return it as it is


def test_an_unchanged_damaged_bundle_is_not_verified_on_every_poll(store):
    clf = RuleClassifier.from_store(store.root)
    bundle, _ = store.build([WHERE, HOURS])
    store.publish(bundle.number)
    bundle.path.write_bytes(bundle.path.read_bytes()[:-5])
    assert clf.refresh() is False
    assert "truncated" in clf.last_error
    bundle.path.chmod(0)  # were it read again as root, this would not show; the message would change if it were
    assert clf.refresh() is False and "truncated" in clf.last_error
    bundle.path.chmod(0o644)
    store.publish(1)  # rolled back to a good one
    assert clf.refresh() is False  # bundle 1 is what it serves already
    assert clf.health().ok


# -- start-up ----------------------------------------------------------------------------------------------------


def test_a_start_with_a_damaged_current_serves_the_newest_published_bundle_that_verifies(store, caplog):
    caplog.set_level(logging.WARNING, logger=RUNTIME_LOG)
    publish_rules(store, [WHERE, HOURS])  # bundle 2
    non_utf8_current(store)
    clf = RuleClassifier.from_store(store.root)
    assert clf.bundle_version == 2
    health = clf.health()
    assert not health.ok and not health.serving_current and "is damaged" in health.last_error
    assert any("serving bundle 2" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    store.current_file.unlink()
    bundle = publish_rules(store, [WHERE, SALE]).bundle
    assert clf.refresh() and clf.bundle_version == bundle.number and clf.health().serving_current


def test_a_start_while_current_names_a_damaged_bundle_falls_back_past_it(store):
    bundle = publish_rules(store, [WHERE, HOURS]).bundle
    bundle.path.write_bytes(bundle.path.read_bytes()[:-5])
    clf = RuleClassifier.from_store(store.root)
    assert clf.bundle_version == 1 and "truncated" in clf.last_error


def test_the_fallback_follows_the_publish_history_not_the_numbers(store):
    publish_rules(store, [WHERE, HOURS])  # 2, then rolled back from
    store.rollback(1)
    store.build([WHERE, SALE])  # 3, built and never published
    non_utf8_current(store)
    assert RuleClassifier.from_store(store.root).bundle_version == 1


def test_a_start_with_no_good_bundle_says_so(store):
    path = store.path_of(1)
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(BundleError, match="truncated.*no other published bundle .* verifies"):
        RuleClassifier.from_store(store.root)


# -- the publisher -----------------------------------------------------------------------------------------------


def test_publishing_replaces_a_damaged_current(store, caplog):
    caplog.set_level(logging.WARNING)
    non_utf8_current(store)
    result = publish.publish_rules(store, [WHERE, HOURS])
    assert result.published and "is damaged" in result.repaired
    assert store.pointer()["number"] == result.bundle.number == 2
    assert any("replacing the damaged CURRENT" in r.getMessage() for r in caplog.records)


def test_publishing_the_same_rules_over_a_damaged_bundle_writes_a_good_one(store):
    path = store.path_of(1)
    path.write_bytes(path.read_bytes()[:-5])
    result = publish.publish_rules(store, [WHERE])
    assert result.built and result.bundle.number == 2 and store.current().number == 2


def test_disable_with_a_non_utf8_current_publishes(tmp_path, db_url, monkeypatch):
    url, schema = db_url
    if schema:
        monkeypatch.setenv("RULELIFE_DB_SCHEMA", schema)
    runner = CliRunner()
    root = tmp_path / "ws"
    assert runner.invoke(app, ["init", str(root), "--db-url", url]).exit_code == 0
    (root / "rules" / "faq").mkdir(parents=True)
    (root / "rules" / "faq" / "hours.yaml").write_text(
        "id: faq.hours\nintent: faq\npatterns: [opening hours]\nlocales: ['*']\nowner: ds\ndescription: Hours.\n")
    (root / "rules" / "faq" / "sale.yaml").write_text(
        "id: faq.sale\nintent: faq\npatterns: [summer sale]\nlocales: ['*']\nowner: ds\ndescription: Sale.\n")
    assert runner.invoke(app, ["--workspace", str(root), "sync"]).exit_code == 0
    for rule_id in ("faq.hours", "faq.sale"):
        publish.set_state(Workspace.load(root), rule_id, "active", actor="ana", reason="setup")
    current = root / "bundles" / "CURRENT"
    current.write_bytes(b"\xff\xfe\x00garbage")
    result = runner.invoke(app, ["--workspace", str(root), "disable", "faq.sale", "--reason", "x", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout[result.stdout.index("{"):])
    assert out["bundle_published"] and "is damaged" in out["current_repaired"]
    assert "Traceback" not in result.output
    clf = RuleClassifier.from_store(root / "bundles")
    assert clf.bundle_version == out["bundle"] and clf.health().ok
    assert clf.classify("summer sale") is None and clf.classify("opening hours").rule_id == "faq.hours"
    assert stat.S_ISREG(current.stat().st_mode)


def test_serving_threads_never_see_an_exception_while_polls_fail(store):
    clf = RuleClassifier.from_store(store.root)
    clf.start_polling(interval=0.001)
    errors: list[BaseException] = []
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                assert clf.classify("where is my order", locale="en-US").rule_id == "order_tracking.where"
            except BaseException as exc:  # surfaced below
                errors.append(exc)
                return

    threads = [threading.Thread(target=serve) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for damage in (non_utf8_current, wrong_typed_header):
            damage(store)
            time.sleep(0.05)
    finally:
        stop.set()
        for t in threads:
            t.join()
        clf.stop_polling()
    assert errors == [] and clf.health().polling is False


# -- fork ------------------------------------------------------------------------------------------------------


def test_a_forked_worker_polls_on_its_own_and_picks_up_a_publish(tmp_path):
    """gunicorn --preload: the classifier is made and polling started in the master, then workers fork."""
    store = BundleStore(tmp_path / "bundles")
    publish_rules(store, [WHERE])
    clf = RuleClassifier.from_store(store.root)
    clf.start_polling(interval=0.01)
    ready_r, ready_w = os.pipe()
    done_r, done_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the worker
        try:
            os.write(ready_w, b"1")
            picked = wait_for(lambda: clf.bundle_version == 2, timeout=30)
            answer = clf.classify("opening hours", locale="en-US")
            os.write(done_w, json.dumps({"picked": picked, "polling": clf.health().polling,
                                         "rule": answer and answer.rule_id}).encode())
        finally:
            os._exit(0)
    try:
        os.read(ready_r, 1)
        clf.stop_polling()  # from here on only the worker's own poller can see a publish
        publish_rules(store, [WHERE, HOURS])
        got = json.loads(os.read(done_r, 1000))
    finally:
        os.waitpid(pid, 0)
    assert got == {"picked": True, "polling": True, "rule": "faq.hours"}
    assert clf.bundle_version == 1  # the master stopped polling and was not told


def test_a_worker_forked_while_the_master_does_not_poll_does_not_start_one(tmp_path):
    store = BundleStore(tmp_path / "bundles")
    publish_rules(store, [WHERE])
    clf = RuleClassifier.from_store(store.root)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.write(w, b"1" if clf.health().polling else b"0")
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(r, 1) == b"0"


def test_a_loaded_bundle_is_kept_out_of_the_collectors_walks(tmp_path):
    """The collector holds the GIL while it walks objects: a big bundle it walks stalls every request thread."""
    store = BundleStore(tmp_path / "bundles")
    many = [rule(f"faq.r{i}", *(f"question number {i} part {j}" for j in range(5))) for i in range(2000)]
    publish_rules(store, many)
    clf = RuleClassifier.from_store(store.root)
    publish_rules(store, many[:-1])
    walked = len(gc.get_objects())
    assert clf.refresh() and clf.bundle.pattern_count == 9995
    # 10,000 patterns make tens of thousands of tracked objects (rules, key table entries); none is walked.
    assert len(gc.get_objects()) - walked < 1000
    assert not any(obj is clf.bundle.matcher for obj in gc.get_objects())
