"""A state change and its publish: a re-run finishes an interrupted publish, and a publish that read the
registry before a concurrent disable cannot re-serve the disabled rule."""

from __future__ import annotations

import threading

import pytest
from typer.testing import CliRunner

from rulelife.cli import app
from rulelife.evidence import promotion
from rulelife.rules.lifecycle import State
from rulelife.serving import publish
from rulelife.serving.bundle import BundleStore
from rulelife.store import Store, registry

runner = CliRunner()


@pytest.fixture
def ws(live_workspace):
    return live_workspace


def served(ws) -> list[str]:
    return [r.id for r in BundleStore(ws.bundle_dir).current().rules]


def crash_publish_once(monkeypatch) -> None:
    """The process dies right after the registry committed, before the bundle moved (the first publish only)."""
    real = publish.publish_active
    calls = []

    def dies_first(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("killed between the registry commit and the publish")
        return real(*args, **kwargs)

    monkeypatch.setattr(publish, "publish_active", dies_first)


def test_a_disable_killed_before_its_publish_is_finished_by_running_it_again(ws, monkeypatch):
    crash_publish_once(monkeypatch)
    store = Store.from_workspace(ws)
    with pytest.raises(RuntimeError, match="killed"):
        publish.set_state(ws, "order_tracking.where", "disabled", actor="ana", reason="misroutes")
    assert registry.get_status(store, "order_tracking.where").state == State.DISABLED
    assert served(ws) == ["faq.hours", "order_tracking.where"]  # the disabled rule is still served
    status, published = publish.set_state(ws, "order_tracking.where", "disabled", actor="ana", reason="misroutes")
    assert status.state == State.DISABLED and published.published
    assert served(ws) == ["faq.hours"]
    # The re-run changed nothing in the registry: one disable on the record.
    assert [a.action for a in registry.audit_log(store, "order_tracking.where")].count("disabled") == 1


def test_the_cli_re_run_of_disable_exits_0_and_publishes(ws, monkeypatch):
    crash_publish_once(monkeypatch)
    args = ["--workspace", str(ws.root), "disable", "order_tracking.where", "--reason", "misroutes"]
    first = runner.invoke(app, args)
    assert first.exit_code != 0 and isinstance(first.exception, RuntimeError)
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    assert "order_tracking.where was already disabled" in again.output and "published bundle 3" in again.output
    assert served(ws) == ["faq.hours"]


def test_a_promotion_killed_before_its_publish_is_finished_by_promote_again(ws, monkeypatch):
    store = Store.from_workspace(ws)
    publish.set_state(ws, "order_tracking.where", "disabled", actor="ana", reason="misroutes")
    publish.set_state(ws, "order_tracking.where", "candidate", actor="ana", reason="fixed, try again")
    crash_publish_once(monkeypatch)
    with pytest.raises(RuntimeError, match="killed"):
        promotion.promote(ws, "order_tracking.where", actor="ana", to="shadow")
    assert registry.get_status(store, "order_tracking.where").state == State.SHADOW
    assert [r.shadow for r in BundleStore(ws.bundle_dir).current().rules] == [False]  # not matched yet
    result = promotion.promote(ws, "order_tracking.where", actor="ana", to="shadow")
    assert result.unchanged and result.published.published
    assert [(r.id, r.shadow) for r in BundleStore(ws.bundle_dir).current().rules] == [
        ("faq.hours", False), ("order_tracking.where", True)]
    # Already active at its latest version: promote only publishes (it used to exit 1 "already active").
    result = promotion.promote(ws, "faq.hours", actor="ana")
    assert result.unchanged and not result.published.published and result.status.state == State.ACTIVE


def test_a_publish_that_read_before_a_concurrent_disable_does_not_re_serve_the_rule(ws, monkeypatch):
    """Thread A publishes and is paused right after reading the registry; thread B disables a rule and
    publishes meanwhile, and A goes on once B's publish is done (or after 3 s, if B's publish cannot run
    while A holds the bundle lock). Reading under the lock makes B's publish wait for A's and read after it;
    reading outside it let A's stale read overwrite B's publish."""
    real = publish._registry_rules
    a_read, b_committed, b_published = threading.Event(), threading.Event(), threading.Event()
    first = []

    def pausing(store):
        rules = real(store)
        if not first:  # thread A's read only
            first.append(1)
            a_read.set()
            b_committed.wait(timeout=30)
            b_published.wait(timeout=3)
        return rules

    monkeypatch.setattr(publish, "_registry_rules", pausing)
    errors = []

    def a() -> None:
        try:
            publish.publish_active(ws, actor="a")
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    def b() -> None:
        try:
            a_read.wait(timeout=30)
            registry.transition(Store.from_workspace(ws), "order_tracking.where", "disabled", actor="b",
                                reason="safety false positive")
            b_committed.set()
            publish.publish_active(ws, actor="b")
            b_published.set()
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
            b_committed.set()

    threads = [threading.Thread(target=a), threading.Thread(target=b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == [] and not any(t.is_alive() for t in threads)
    assert served(ws) == ["faq.hours"]
    assert [e["actor"] for e in BundleStore(ws.bundle_dir).history()][-1] == "b"
