"""The CLI end to end on a real workspace (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rulelife.cli import app
from rulelife.config import Workspace
from rulelife.serving import publish

runner = CliRunner()

WHERE = """\
id: order_tracking.where_is_my_order
intent: order_tracking
patterns: ["where is my order", "track my order"]
exclude: ["return"]
locales: ["en-US"]
match: word
priority: 10
owner: ds@example.com
description: Customer asks where an order is.
"""

HOURS = """\
id: faq.opening_hours
intent: faq
patterns: ["opening hours"]
locales: ["*"]
owner: ds@example.com
description: Shop opening hours.
"""


def invoke(ws: Path, *args: str):
    return runner.invoke(app, ["--workspace", str(ws), *args])


def activate(ws: Path, rule_id: str, actor: str = "ana"):
    """Make a rule live without the gate (the gate has its own tests)."""
    status, published = publish.set_state(Workspace.load(ws), rule_id, "active", actor=actor, reason="test setup")
    return published


@pytest.fixture
def ws(tmp_path, db_url, monkeypatch):
    url, schema = db_url
    if schema:
        monkeypatch.setenv("RULELIFE_DB_SCHEMA", schema)
    root = tmp_path / "ws"
    result = runner.invoke(app, ["init", str(root), "--db-url", url])
    assert result.exit_code == 0, result.output
    (root / "rules" / "order_tracking").mkdir(parents=True)
    (root / "rules" / "faq").mkdir()
    (root / "rules" / "order_tracking" / "where_is_my_order.yaml").write_text(WHERE)
    (root / "rules" / "faq" / "opening_hours.yaml").write_text(HOURS)
    return root


def test_sync_activate_publish_classify(ws):
    result = invoke(ws, "sync", "--actor", "ana", "--json")
    assert result.exit_code == 0, result.output
    assert sorted(json.loads(result.output)["registered"]) == ["faq.opening_hours", "order_tracking.where_is_my_order"]

    assert activate(ws, "order_tracking.where_is_my_order").bundle.number == 1

    result = invoke(ws, "classify", "Where is my ORDER #12?", "--locale", "en-US", "--json")
    assert result.exit_code == 0, result.output
    match = json.loads(result.output)["match"]
    assert (match["intent"], match["rule_id"]) == ("order_tracking", "order_tracking.where_is_my_order")

    result = invoke(ws, "classify", "opening hours?", "--locale", "en-US", "--explain")
    assert result.exit_code == 0, result.output
    assert "no rule fired" in result.output

    result = invoke(ws, "rules", "list", "--json")
    states = {r["rule_id"]: r["state"] for r in json.loads(result.output)}
    assert states == {"faq.opening_hours": "candidate", "order_tracking.where_is_my_order": "active"}


def test_rules_show_has_history_and_audit(ws):
    invoke(ws, "sync", "--actor", "ana")
    activate(ws, "faq.opening_hours", actor="ben")
    result = invoke(ws, "rules", "show", "faq.opening_hours", "--json")
    assert result.exit_code == 0, result.output
    details = json.loads(result.output)
    assert details["status"]["state"] == "active"
    assert [a["action"] for a in details["audit"]] == ["register", "active"]
    assert details["audit"][1]["actor"] == "ben"
    assert details["definition"]["patterns"] == ["opening hours"]


def test_bundle_commands(ws):
    invoke(ws, "sync")
    activate(ws, "faq.opening_hours")
    activate(ws, "order_tracking.where_is_my_order")
    result = invoke(ws, "bundle", "diff", "1", "2", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["added"] == ["order_tracking.where_is_my_order"]
    result = invoke(ws, "bundle", "publish")
    assert "already CURRENT" in result.output
    result = invoke(ws, "bundle", "rollback", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["number"] == 1
    result = invoke(ws, "bundle", "show", "--json")
    assert json.loads(result.output)["current"] is True
    assert [r["id"] for r in json.loads(result.output)["rule_versions"]] == ["faq.opening_hours"]


def test_lint_reports_problems_and_exits_1(ws):
    (ws / "rules" / "faq" / "broken.yaml").write_text("id: faq.broken\nintent: faq\npatterns: [\n")
    result = invoke(ws, "rules", "lint")
    assert result.exit_code == 1
    assert "broken.yaml" in result.output
    result = invoke(ws, "sync")
    assert result.exit_code == 1
    assert "broken.yaml" in result.output and "Traceback" not in result.output


def test_user_errors_exit_1_without_traceback(ws, tmp_path):
    cases = [
        (["rules", "show", "faq.nope"], "not in the registry"),
        (["classify", "hi"], "bundle publish"),
        (["disable", "faq.opening_hours", "--reason", "x"], "not in the registry"),
    ]
    for args, message in cases:
        result = invoke(ws, *args)
        assert result.exit_code == 1, (args, result.output)
        assert message in result.output and "Traceback" not in result.output
    invoke(ws, "sync")
    result = invoke(ws, "disable", "faq.opening_hours", "--reason", "x")
    assert result.exit_code == 1 and "cannot move faq.opening_hours from candidate to disabled" in result.output


def test_corrupt_bundle_is_refused(ws):
    invoke(ws, "sync")
    activate(ws, "faq.opening_hours")
    path = next((ws / "bundles").glob("bundle-*.rlb"))
    path.write_bytes(path.read_bytes()[:-3])
    result = invoke(ws, "classify", "opening hours", "--locale", "en-US")
    assert result.exit_code == 1 and "truncated" in result.output


def test_a_bundle_whose_compiled_part_changed_is_refused_by_name(ws):
    invoke(ws, "sync")
    activate(ws, "faq.opening_hours")
    path = next((ws / "bundles").glob("bundle-*.rlb"))
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF  # one bit of the automaton's node data; the header and the rules are intact
    path.write_bytes(bytes(data))
    result = invoke(ws, "bundle", "show")
    assert result.exit_code == 1, result.output
    assert f"{path.name} fails its checksum: its compiled part was modified" in result.output
    assert "rulelife bundle publish" in result.output and "Traceback" not in result.output


def test_missing_workspace_says_how_to_create_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RULELIFE_WORKSPACE", raising=False)
    result = runner.invoke(app, ["rules", "list"])
    assert result.exit_code == 1
    assert "rulelife init" in result.output


def test_unreachable_database_is_explained(tmp_path, monkeypatch):
    monkeypatch.setenv("RULELIFE_DB_URL", "postgresql+psycopg://nobody@127.0.0.1:1/none")
    runner.invoke(app, ["init", str(tmp_path / "w")])
    result = runner.invoke(app, ["--workspace", str(tmp_path / "w"), "rules", "list"])
    assert result.exit_code == 1
    assert "cannot reach the database" in result.output and "Traceback" not in result.output
