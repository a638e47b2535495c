"""Registry events: one per change, with a stable id, recorded with the change and delivered like tickets."""

from __future__ import annotations

import json

import pytest
from sqlmodel import select
from typer.testing import CliRunner

from rulelife.cli import app
from rulelife.errors import GateRefused
from rulelife.evidence import promotion
from rulelife.monitoring import outbox
from rulelife.serving import publish
from rulelife.serving.bundle import BundleStore
from rulelife.serving.rollback import rollback, unpin
from rulelife.store import EventDeliveryRow, EventRow, Store

runner = CliRunner()


@pytest.fixture
def ws(rules_workspace):
    return rules_workspace()


def recorded(ws) -> list[EventRow]:
    with Store.from_workspace(ws).session() as session:
        return list(session.exec(select(EventRow).order_by(EventRow.id)).all())


def test_every_state_change_and_publish_is_one_event(ws):
    moves = [("order_tracking.where", "shadow"), ("order_tracking.where", "active"), ("faq.hours", "active"),
             ("faq.hours", "expired"), ("faq.hours", "retired"), ("order_tracking.where", "disabled")]
    for rule_id, state in moves:
        publish.set_state(ws, rule_id, state, actor="ana", reason=f"to {state}")
    events = recorded(ws)
    assert [(e.type, e.subject) for e in events] == [
        ("rule.shadowed", "order_tracking.where"), ("bundle.published", "bundle:1"),
        ("rule.promoted", "order_tracking.where"), ("bundle.published", "bundle:2"),
        ("rule.promoted", "faq.hours"), ("bundle.published", "bundle:3"),
        ("rule.expired", "faq.hours"), ("bundle.published", "bundle:4"),
        ("rule.retired", "faq.hours"),  # nothing served changed: no publish
        ("rule.disabled", "order_tracking.where"), ("bundle.published", "bundle:5")]
    assert len({e.uid for e in events}) == len(events) and all(e.uid.startswith("evt_") for e in events)
    disabled = json.loads(events[-2].data)
    assert {k: disabled[k] for k in ("from_state", "to_state", "reason", "automatic", "action")} == {
        "from_state": "active", "to_state": "disabled", "reason": "to disabled", "automatic": False,
        "action": "disabled"}
    published = json.loads(events[3].data)  # bundle 2: where moved from shadow to serving
    assert (published["number"], published["previous"], published["added"], published["removed"],
            published["changed"]) == (2, 1, [], [], ["order_tracking.where"])
    assert published["reason"] == "order_tracking.where active: to active"
    assert json.loads(events[5].data)["added"] == ["faq.hours"]


def test_events_go_to_the_folder_sink_once_each_with_their_id(ws):
    publish.set_state(ws, "faq.hours", "active", actor="ana", reason="launch")
    report = outbox.deliver_workspace(ws)
    assert (report.delivered, report.failed, report.dead) == (2, [], [])
    files = sorted((ws.root / "tickets" / "events").iterdir())
    payloads = [json.loads(f.read_text()) for f in files]
    assert sorted(p["type"] for p in payloads) == ["bundle.published", "rule.promoted"]
    for path, payload in zip(files, payloads, strict=True):
        assert path.name.endswith(f"-{payload['type']}-{payload['id']}.json")
    promoted = next(p for p in payloads if p["type"] == "rule.promoted")
    assert promoted["summary"] == f"faq.hours candidate -> active at {promoted['data']['to_version']} by ana: launch"
    assert outbox.deliver_workspace(ws).delivered == 0  # nothing is sent twice
    with Store.from_workspace(ws).session() as session:
        assert [d.status for d in session.exec(select(EventDeliveryRow)).all()] == ["delivered", "delivered"]


def test_a_publish_killed_before_its_event_is_recorded_by_the_next_one(ws):
    publish.set_state(ws, "faq.hours", "active", actor="ana", reason="launch")
    publish.set_state(ws, "order_tracking.where", "active", actor="ana", reason="launch")
    bundles = BundleStore(ws.bundle_dir)
    bundles.publish(1, actor="ana", action="rollback", reason="by hand")  # CURRENT moved; no event yet
    assert [e.type for e in recorded(ws)][-1] == "bundle.published"
    publish.record_bundle_events(Store.from_workspace(ws), bundles)
    assert publish.record_bundle_events(Store.from_workspace(ws), bundles) == 0  # once, whatever the calls
    last = recorded(ws)[-1]
    assert (last.type, last.subject, json.loads(last.data)["removed"]) == (
        "bundle.rolled_back", "bundle:1", ["order_tracking.where"])


def test_rollback_and_unpin_are_events(ws):
    publish.set_state(ws, "faq.hours", "active", actor="ana", reason="launch")
    publish.set_state(ws, "order_tracking.where", "active", actor="ana", reason="launch")
    rollback(ws, actor="oncall", reason="tracking answers wrong")
    unpin(ws, actor="oncall", reason="fixed")
    tail = [(e.type, e.actor, json.loads(e.data).get("reason")) for e in recorded(ws)][-3:]
    assert tail == [("bundle.rolled_back", "oncall", "tracking answers wrong"), ("bundle.unpinned", "oncall", "fixed"),
                    ("bundle.published", "oncall", "unpinned: fixed")]


def test_a_refused_promotion_is_in_the_audit_and_the_events(ws):
    with pytest.raises(GateRefused):
        promotion.promote(ws, "faq.hours", actor="ben")
    result = runner.invoke(app, ["--workspace", str(ws.root), "rules", "show", "faq.hours", "--json"])
    audit = json.loads(result.output)["audit"]
    assert [(a["action"], a["actor"], a["to_state"]) for a in audit] == [
        ("register", "ana", "candidate"), ("promote_refused", "ben", "candidate")]
    assert audit[1]["reason"] == ("promotion gate refused: no dataset for faq.hours; build one with "
                                  "`rulelife dataset build faq.hours`")
    event = recorded(ws)[-1]
    assert (event.type, json.loads(event.data)["target"]) == ("rule.promotion_refused", "active")
    # The CLI refusal exits 1 and delivers the event on its way out.
    result = runner.invoke(app, ["--workspace", str(ws.root), "promote", "faq.hours", "--actor", "ben"])
    assert result.exit_code == 1 and "no dataset for faq.hours" in result.output
    listed = json.loads(runner.invoke(app, ["--workspace", str(ws.root), "events", "list", "--json"]).output)
    assert [e["type"] for e in listed] == ["rule.promotion_refused"] * 2
    assert all(e["deliveries"] == [{"sink": "folder", "status": "delivered", "attempts": 1, "last_error": None}]
               for e in listed)
    pending = runner.invoke(app, ["--workspace", str(ws.root), "events", "pending"])
    assert pending.exit_code == 0 and "every event was delivered" in pending.output
