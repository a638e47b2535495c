"""Rollback respects the registry, pins what it serves, and the nightly leaves a pin in place (saying so)."""

from __future__ import annotations

import json
from datetime import date

import pandas as pd
import pytest
from sqlmodel import select
from typer.testing import CliRunner

from monitors.safety_fp import SafetyFalsePositive
from rulelife.cli import app
from rulelife.errors import LifecycleError, RollbackRefused
from rulelife.monitoring import nightly, tickets
from rulelife.rules.lifecycle import State
from rulelife.serving import publish
from rulelife.serving.bundle import BundleStore
from rulelife.serving.rollback import explain_diff, rollback, unpin
from rulelife.store import EventRow, Store, registry

REFUND = """\
id: faq.refund
intent: faq
patterns: ["refund policy"]
locales: ["en-US"]
owner: ds
description: The refund policy page.
"""
DAY1, DAY2 = date(2026, 2, 1), date(2026, 2, 2)
runner = CliRunner()


def write_rule(ws, name: str, text: str) -> None:
    path = ws.rules_dir / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def activate(ws, rule_id: str, reason: str = "setup"):
    return publish.set_state(ws, rule_id, "active", actor="ana", reason=reason)[1]


@pytest.fixture
def where_text(rule_texts) -> str:
    return rule_texts["order_tracking/where.yaml"]


@pytest.fixture
def ws(rules_workspace, where_text):
    """Bundle 1 serves order_tracking.where (v1); 2 adds faq.refund; 3 serves where's edit (v2) and refund."""
    workspace = rules_workspace({"order_tracking/where.yaml": where_text, "faq/refund.yaml": REFUND})
    activate(workspace, "order_tracking.where")
    activate(workspace, "faq.refund")
    write_rule(workspace, "order_tracking/where.yaml", where_text.replace('["where is my order"]',
                                                                        '["where is my order", "my order status"]'))
    registry.sync_workspace(workspace, actor="ana")
    activate(workspace, "order_tracking.where", "v2 adds a pattern")
    return workspace


def served(ws) -> tuple[int, list[str]]:
    bundle = BundleStore(ws.bundle_dir).current()
    return bundle.number, [r.id for r in bundle.rules]


def invoke(ws, *args: str):
    return runner.invoke(app, ["--workspace", str(ws.root), *args])


def test_the_fixture_publishes_three_bundles(ws):
    bundles = BundleStore(ws.bundle_dir)
    # 1: where v1; 2: where v1 + refund; 3: where v2 + refund.
    assert bundles.numbers() == [1, 2, 3] and served(ws) == (3, ["faq.refund", "order_tracking.where"])
    assert [len(bundles.load(n).rules) for n in (1, 2, 3)] == [1, 2, 2]


def test_a_rollback_over_a_disabled_rule_is_refused_with_the_rule_and_why(ws):
    publish.set_state(ws, "faq.refund", "disabled", actor="nightly", reason="safety_fp: a refund request answered")
    assert served(ws) == (4, ["order_tracking.where"])
    with pytest.raises(RollbackRefused) as refused:
        rollback(ws, 2, actor="oncall")
    assert refused.value.blocked == [
        f"faq.refund: disabled on {registry.get_status(Store.from_workspace(ws), 'faq.refund').updated_at.date()} "
        "by nightly (safety_fp: a refund request answered)"]
    assert "CURRENT was not moved" in str(refused.value) and "--force --reason" in str(refused.value)
    bundles = BundleStore(ws.bundle_dir)
    assert served(ws) == (4, ["order_tracking.where"]) and bundles.pinned() is None
    # The CLI says the same and exits 1.
    result = invoke(ws, "bundle", "rollback", "3")
    assert result.exit_code == 1 and "rollback to bundle 3 refused" in result.output
    assert "faq.refund: disabled" in result.output
    # Bundle 1 never held the disabled rule: allowed, and pinned.
    result = invoke(ws, "bundle", "rollback", "1", "--reason", "v2 misroutes", "--actor", "oncall")
    assert result.exit_code == 0, result.output
    pin = bundles.pinned()
    assert served(ws) == (1, ["order_tracking.where"]) and (pin.number, pin.actor, pin.reason) == (
        1, "oncall", "v2 misroutes")


def test_a_forced_rollback_needs_a_reason_and_is_audited_on_each_rule(ws):
    publish.set_state(ws, "faq.refund", "disabled", actor="ana", reason="page removed")
    publish.set_state(ws, "faq.refund", "retired", actor="ana", reason="page removed for good")
    with pytest.raises(LifecycleError, match="say why with --reason"):
        rollback(ws, 2, actor="oncall", force=True)
    result = rollback(ws, 2, actor="oncall", force=True, reason="incident 42: v2 breaks tracking")
    assert [b.rule_id for b in result.forced] == ["faq.refund"] and result.pin.forced == {"faq.refund": "retired"}
    assert served(ws) == (2, ["faq.refund", "order_tracking.where"])
    audit = registry.audit_log(Store.from_workspace(ws), "faq.refund")[-1]
    assert (audit.action, audit.actor, audit.to_state) == ("rollback_forced", "oncall", "retired")
    assert audit.reason == "rollback to bundle 2 forced: incident 42: v2 breaks tracking"
    # The pin keeps serving what was forced while the rule stays as it was forced past.
    assert publish.publish_active(ws, actor="nightly").narrowed == ()
    assert served(ws)[0] == 2


def test_publishing_leaves_a_pin_in_place_and_says_what_waits(ws, where_text):
    rollback(ws, actor="oncall", reason="v2 misroutes")  # default: the bundle published before CURRENT
    assert served(ws)[0] == 2
    write_rule(ws, "order_tracking/more.yaml", where_text.replace("order_tracking.where", "order_tracking.more")
               .replace("where is my order", "has my order shipped"))
    registry.sync_workspace(ws, actor="ana")
    result = activate(ws, "order_tracking.more")
    assert (result.published, result.pin.number) == (False, 2)
    assert result.waiting == {"added": ["order_tracking.more"], "removed": [], "changed": ["order_tracking.where"]}
    assert served(ws)[0] == 2 and BundleStore(ws.bundle_dir).numbers() == [1, 2, 3]
    # The CLI says it too.
    output = invoke(ws, "bundle", "publish").output
    assert "CURRENT is pinned to bundle 2 (rolled back by oncall: v2 misroutes)" in " ".join(output.split())
    # Unpin publishes the registry again.
    pin, published = unpin(ws, actor="oncall", reason="v3 fixed")
    assert pin.number == 2 and published.published and published.pin is None
    assert served(ws) == (4, ["faq.refund", "order_tracking.more", "order_tracking.where"])


def test_a_rule_disabled_under_a_pin_is_taken_out_of_the_pinned_bundle(ws):
    rollback(ws, 2, actor="oncall", reason="v2 misroutes")
    _, result = publish.set_state(ws, "faq.refund", "disabled", actor="ana", reason="answers refund requests")
    # The disable wins at once: the pinned bundle less the disabled rule, pinned in its place.
    assert result.narrowed == ("faq.refund",) and result.published and result.pin.number == 4
    assert served(ws) == (4, ["order_tracking.where"])
    bundles = BundleStore(ws.bundle_dir)
    assert bundles.current().rules[0].version == bundles.load(1).rules[0].version  # still the rolled-back v1
    entry = bundles.history()[-1]
    assert (entry["action"], entry["narrowed"], entry["pinned"]) == ("publish", ["faq.refund"], True)


def test_bundle_list_shows_who_and_why_and_diff_shows_patterns_and_reasons(ws):
    publish.set_state(ws, "faq.refund", "disabled", actor="nightly", reason="safety_fp: a refund request answered")
    rollback(ws, 1, actor="oncall", reason="v2 misroutes")
    rows = json.loads(invoke(ws, "bundle", "list", "--json").output)
    assert [(r["number"], r["action"], r["actor"], r["current"], r["pinned"]) for r in rows] == [
        (1, "rollback", "oncall", True, True), (2, "publish", "ana", False, False),
        (3, "publish", "ana", False, False), (4, "publish", "nightly", False, False)]
    assert rows[0]["reason"] == "v2 misroutes"
    assert rows[3]["reason"] == "faq.refund disabled: safety_fp: a refund request answered"
    entries = {e.rule_id: e for e in explain_diff(ws, 1, 3)}
    assert (entries["faq.refund"].change, entries["faq.refund"].patterns_added) == ("added", ("refund policy",))
    assert entries["faq.refund"].state == "disabled"
    assert entries["faq.refund"].why.startswith("disabled on ") and entries["faq.refund"].why.endswith(
        "by nightly: safety_fp: a refund request answered")
    where = entries["order_tracking.where"]
    assert (where.change, where.patterns_added, where.patterns_removed) == ("changed", ("my order status",), ())
    assert where.why.endswith("by ana: v2 adds a pattern")
    output = invoke(ws, "bundle", "diff", "1", "3").output
    assert "    + 'my order status'" in output and "why: disabled on" in output


def serve_day(ws, day: date, refund_said: str) -> None:
    """One day of the runtime's log through CURRENT: 'refund policy' answered, the model's label in the shadow rows."""
    bundle = BundleStore(ws.bundle_dir).current()
    versions = {r.id: r.version for r in bundle.rules}
    rows = [("where is my order", "order_tracking.where", True, "order_tracking")] * 20
    if "faq.refund" in versions:
        rows += [("your refund policy please, I want my money back", "faq.refund", True, refund_said)] * 3
    rows += [("hello", None, None, "chitchat")] * 5
    frame = pd.DataFrame(rows, columns=["text", "rule_id", "shadow", "model_intent"])
    frame["query_id"] = [f"q-{day}-{i}" for i in range(len(frame))]
    frame["ts"] = pd.Timestamp(day, tz="UTC") + pd.Timedelta(hours=12)
    frame["locale"] = "en-US"
    frame["model_confidence"] = 0.9
    frame["rule_version"] = [versions.get(r) if r else None for r in frame["rule_id"]]
    frame["bundle_version"] = pd.array([bundle.number if r else None for r in frame["rule_id"]], dtype="Int64")
    frame["shadow"] = frame["shadow"].astype("boolean")
    frame.to_parquet(ws.log_dir / f"queries-{day}.parquet", index=False)


def test_rollback_then_nightly_then_rollback(ws):
    """The on-call scenario: roll back a bad edit; the nightly disables a rule of the rolled-back bundle for a
    safety false positive and keeps the pin; a second rollback cannot bring that rule back."""
    store = Store.from_workspace(ws)
    bundles = BundleStore(ws.bundle_dir)
    assert rollback(ws, actor="oncall", reason="v2 misroutes").bundle.number == 2

    serve_day(ws, DAY1, refund_said="return_request")  # the refund rule answered 3 refund requests
    report = nightly.run_nightly(ws, DAY1, monitors=[SafetyFalsePositive()])
    assert report.disabled == ["faq.refund"]
    # Not the registry's bundle (where v2): the pinned one less the disabled rule, still pinned.
    assert (report.bundle, report.bundle_published, report.bundle_pinned["number"]) == (4, True, 4)
    assert report.bundle_pinned["narrowed"] == ["faq.refund"]
    assert report.bundle_pinned["waiting"] == {"added": [], "removed": [], "changed": ["order_tracking.where"]}
    assert served(ws) == (4, ["order_tracking.where"])
    assert bundles.current().rules[0].version == bundles.load(2).rules[1].version  # v1, as rolled back
    with store.session() as session:  # the nightly's disable and the narrowed pinned bundle are events
        events = session.exec(select(EventRow).order_by(EventRow.id)).all()
    disabled = json.loads(events[-2].data)
    assert (events[-2].type, events[-2].actor, disabled["automatic"], disabled["evidence"]["check"]) == (
        "rule.disabled", "nightly", True, "safety_fp")
    assert (events[-1].type, json.loads(events[-1].data)["narrowed"]) == ("bundle.published", ["faq.refund"])

    serve_day(ws, DAY2, refund_said="faq")
    report = nightly.run_nightly(ws, DAY2, monitors=[SafetyFalsePositive()])
    assert (report.bundle, report.bundle_published, report.bundle_pinned["narrowed"]) == (4, False, [])
    pinned = [t for t in tickets.list_tickets(store) if t.check == "bundle_pinned"]
    assert [(t.subject, t.findings, t.severity) for t in pinned] == [("bundle:CURRENT", 2, "warning")]
    assert "CURRENT is pinned to bundle 4 (rolled back by oncall" in pinned[0].title

    # The second rollback: the default target (bundle 3) and bundle 2 both serve the disabled rule.
    for number in (None, 2):
        with pytest.raises(RollbackRefused, match="faq.refund: disabled .* by nightly \\(safety_fp"):
            rollback(ws, number, actor="oncall")
    assert rollback(ws, 1, actor="oncall", reason="back to the first").bundle.number == 1

    # The end state: bundle 1 served and pinned, the refund rule disabled, where active at v2 in the registry.
    assert served(ws) == (1, ["order_tracking.where"]) and bundles.pinned().number == 1
    assert registry.get_status(store, "faq.refund").state == State.DISABLED
    where = registry.get_status(store, "order_tracking.where")
    assert (where.state, where.version) == (State.ACTIVE, bundles.load(3).rules[1].version)
    assert [e["action"] for e in bundles.history()] == ["publish"] * 3 + ["rollback", "publish", "rollback"]
    assert report.exit_code == 0

    # Unpinning publishes the registry's rules and the next nightly closes the pin's ticket.
    pin, published = unpin(ws, actor="oncall", reason="v2 fixed upstream")
    assert served(ws) == (5, ["order_tracking.where"]) and published.pin is None
    report = nightly.run_nightly(ws, DAY2, monitors=[SafetyFalsePositive()])
    assert report.bundle_pinned is None
    assert [t.status for t in tickets.list_tickets(store, status="all") if t.check == "bundle_pinned"] == ["closed"]
