"""Registry behaviour on SQLite and PostgreSQL (every test runs on both)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rulelife.errors import LifecycleError, StoreError, UnknownRule
from rulelife.rules.definition import Rule, RuleFile
from rulelife.rules.lifecycle import State
from rulelife.store import Store, registry


def make_rule(rule_id="order_tracking.where", patterns=("where is my order",), **extra) -> RuleFile:
    intent = rule_id.split(".")[0]
    rule = Rule(id=rule_id, intent=intent, patterns=list(patterns), owner="ds@example.com", **extra)
    return RuleFile(Path(f"rules/{intent}/{rule_id.split('.', 1)[1]}.yaml"), rule)


def test_sync_registers_new_rules_as_candidates(store):
    report = registry.sync_rules(store, [make_rule(), make_rule("faq.hours", ["opening hours"])], actor="ana")
    assert report.registered == ["order_tracking.where", "faq.hours"]
    statuses = registry.list_rules(store)
    assert [(s.rule_id, s.state) for s in statuses] == [
        ("faq.hours", State.CANDIDATE),
        ("order_tracking.where", State.CANDIDATE),
    ]
    log = registry.audit_log(store, "faq.hours")
    assert [(a.action, a.actor, a.to_state) for a in log] == [("register", "ana", "candidate")]


def test_sync_twice_changes_nothing(store):
    registry.sync_rules(store, [make_rule()], actor="ana")
    report = registry.sync_rules(store, [make_rule()], actor="ana")
    assert report.unchanged == ["order_tracking.where"]
    assert len(registry.version_history(store, "order_tracking.where")) == 1
    assert len(registry.audit_log(store)) == 1


def test_editing_an_active_rule_does_not_replace_the_live_version(store):
    original = make_rule()
    registry.sync_rules(store, [original], actor="ana")
    registry.transition(store, "order_tracking.where", "active", actor="ana", reason="gate passed")
    edited = make_rule(patterns=("where is my order", "track my order"))
    report = registry.sync_rules(store, [edited], actor="ben")
    assert report.pending == ["order_tracking.where"]
    status = registry.get_status(store, "order_tracking.where")
    assert status.state == State.ACTIVE
    assert status.version == original.rule.version
    assert status.pending_version == edited.rule.version
    assert [r.version for r in registry.active_rules(store)] == [original.rule.version]
    # Promoting the pending version makes it the live one.
    registry.transition(store, "order_tracking.where", "active", actor="ana", reason="new version passed")
    assert [r.version for r in registry.active_rules(store)] == [edited.rule.version]


def test_editing_a_disabled_rule_makes_a_new_candidate(store):
    registry.sync_rules(store, [make_rule()], actor="ana")
    registry.transition(store, "order_tracking.where", "active", actor="ana", reason="ok")
    registry.transition(store, "order_tracking.where", "disabled", actor="nightly", reason="agreement fell")
    edited = make_rule(patterns=("where is my parcel",))
    report = registry.sync_rules(store, [edited], actor="ana")
    assert report.new_versions == ["order_tracking.where"]
    status = registry.get_status(store, "order_tracking.where")
    assert (status.state, status.version) == (State.CANDIDATE, edited.rule.version)


def test_every_transition_is_audited_with_actor_reason_and_evidence(store):
    registry.sync_rules(store, [make_rule()], actor="ana")
    registry.transition(store, "order_tracking.where", "shadow", actor="ana", reason="try it")
    registry.transition(
        store, "order_tracking.where", "active", actor="ben", reason="gate passed",
        evidence={"dataset": "abc123", "agreement": 0.97}, expiry_days=90,
    )
    log = registry.audit_log(store, "order_tracking.where")
    assert [(a.from_state, a.to_state, a.actor) for a in log] == [
        (None, "candidate", "ana"),
        ("candidate", "shadow", "ana"),
        ("shadow", "active", "ben"),
    ]
    assert '"dataset": "abc123"' in log[-1].evidence
    status = registry.get_status(store, "order_tracking.where")
    assert (status.expires_at - status.updated_at).days == 90


@pytest.mark.parametrize(
    ("path", "target"),
    [
        (["active", "disabled"], "active"),  # a disabled rule must go back through the gate
        (["retired"], "active"),  # retired is final
        ([], "disabled"),  # a candidate was never live
        (["active"], "active"),  # same version again
    ],
)
def test_illegal_transitions_are_refused_and_change_nothing(store, path, target):
    registry.sync_rules(store, [make_rule()], actor="ana")
    for state in path:
        registry.transition(store, "order_tracking.where", state, actor="ana", reason="setup")
    before = registry.get_status(store, "order_tracking.where")
    audit_before = len(registry.audit_log(store))
    with pytest.raises(LifecycleError, match="cannot move|already active"):
        registry.transition(store, "order_tracking.where", target, actor="ana", reason="try")
    assert registry.get_status(store, "order_tracking.where") == before
    assert len(registry.audit_log(store)) == audit_before


def test_transition_needs_a_reason(store):
    registry.sync_rules(store, [make_rule()], actor="ana")
    with pytest.raises(LifecycleError, match="say why"):
        registry.transition(store, "order_tracking.where", "active", actor="ana", reason=" ")


def test_unknown_rule_is_named_with_the_fix(store):
    with pytest.raises(UnknownRule, match="rules list"):
        registry.get_status(store, "faq.nope")


def test_missing_rule_files_are_reported(store):
    registry.sync_rules(store, [make_rule(), make_rule("faq.hours", ["opening hours"])], actor="ana")
    report = registry.sync_rules(store, [make_rule()], actor="ana")
    assert report.missing_files == ["faq.hours"]


def test_definition_round_trips(store):
    rule_file = make_rule(exclude=["return"], locales=["en-US"], priority=3)
    registry.sync_rules(store, [rule_file], actor="ana")
    assert registry.rule_definition(store, "order_tracking.where") == Rule.model_validate(rule_file.rule.canonical())


def test_unreachable_database_says_what_to_check():
    with pytest.raises(StoreError, match="cannot reach the database.*RULELIFE_DB_URL"):
        Store("postgresql+psycopg://nobody@127.0.0.1:1/none")


def test_bad_url_is_explained():
    with pytest.raises(StoreError, match="not a database URL"):
        Store("not a url")
