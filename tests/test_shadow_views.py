"""Shadow rules are visible where a person looks: `bundle show` and the rule health page."""

from __future__ import annotations

import json
from datetime import timedelta
from html import escape

import pandas as pd
import pytest
from typer.testing import CliRunner

from rulelife import RuleClassifier
from rulelife.cli import app
from rulelife.config import Workspace
from rulelife.evidence import live as live_evidence
from rulelife.evidence import promotion
from rulelife.monitoring import nightly
from rulelife.report import SECTIONS, write_report
from rulelife.serving import publish
from rulelife.serving.replay import replay
from rulelife.store import Store, registry, utcnow

SALE = "id: promotion.sale\nintent: promotion\npatterns: [\"sale\"]\nlocales: [\"*\"]\nowner: ds\ndescription: Sales.\n"
WHERE = ("id: order_tracking.where\nintent: order_tracking\npatterns: [\"where is my order\"]\nlocales: [\"*\"]\n"
         "owner: ds\ndescription: Where is my order.\n")
DAY1 = utcnow().date() + timedelta(days=1)  # after the rule entered shadow (today)


@pytest.fixture
def ws(tmp_path, db_url, monkeypatch):
    """where active; sale in shadow with one served day: 40 labelled rows, all agreeing."""
    url, schema = db_url
    if schema:
        monkeypatch.setenv("RULELIFE_DB_SCHEMA", schema)
    workspace = Workspace.create(tmp_path / "ws", db_url=url, settings={"dataset_floor": 50})
    for name, text in (("promotion/sale.yaml", SALE), ("order_tracking/where.yaml", WHERE)):
        (workspace.rules_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (workspace.rules_dir / name).write_text(text)
    registry.sync_workspace(workspace, actor="ana")
    publish.set_state(workspace, "order_tracking.where", "active", actor="ana", reason="test setup")
    promotion.promote(workspace, "promotion.sale", actor="ana", to="shadow")
    texts = ["big sale"] * 40 + ["where is my order"] * 4 + ["hello"] * 3
    labels = ["promotion"] * 40 + ["order_tracking"] * 4 + ["chitchat"] * 3
    log = pd.DataFrame({"query_id": [f"q{i}" for i in range(len(texts))],
                        "ts": pd.Timestamp(DAY1, tz="UTC") + pd.Timedelta(hours=9), "text": texts,
                        "locale": "en-US", "model_intent": labels, "model_confidence": 0.9})
    served = replay(log, RuleClassifier.from_store(workspace.bundle_dir, shadow_rate=0.0))
    served.to_parquet(workspace.log_dir / f"queries-{DAY1}.parquet")
    nightly.run_nightly(workspace, DAY1, monitors=[])
    return workspace


def test_bundle_show_marks_the_shadow_rules(ws):
    args = ["--workspace", str(ws.root), "bundle", "show"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "shadow_rules: 1" in result.output
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in result.output.splitlines()
            if line.startswith("│") and "." in line]
    assert [(r[0], r[2]) for r in rows] == [("order_tracking.where", "active"), ("promotion.sale", "shadow")]
    result = CliRunner().invoke(app, [*args, "--json"])
    data = json.loads(result.output)
    assert data["shadow_rules"] == 1
    assert [(r["id"], r["shadow"]) for r in data["rule_versions"]] == [
        ("order_tracking.where", False), ("promotion.sale", True)]


def test_the_report_shows_the_shadow_rules_with_their_live_evidence_and_gate_checks(ws, tmp_path):
    store = Store.from_workspace(ws)
    report = write_report(ws, tmp_path / "r.html", store=store, residual=False)
    text = report.path.read_text(encoding="utf-8")
    assert report.sections == SECTIONS and "shadow" in SECTIONS
    assert report.counts["shadow_rules"] == 1
    section = text[text.index('<section id="shadow"'):text.index('<section id="rules"')]
    assert "Rules in shadow (1)" in section
    assert 'data-rule="promotion.sale"' in section and "order_tracking.where" not in section
    assert 'data-metric="shadow-labelled" data-value="40"' in section
    assert 'data-metric="shadow-agreement" data-value="1.0"' in section
    # 40 of 40: Wilson interval 40 / (40 + 1.96^2) = 91.2% .. 100%; the lower bound clears 95% from 73 rows.
    assert ">100.0%</span> (91.2%–100.0%)" in section
    assert "33 more labelled rows, about 1 day" in section
    assert "gate refused" in section
    # The gate's own checks, as rulelife promote states them.
    decision = live_evidence.shadow_standing(store, "promotion.sale", ws.settings).decision
    assert [c.name for c in decision.checks] == ["evidence_floor", "agreement", "safety"]
    for check in decision.checks:
        assert escape(check.detail) in section
    assert escape(f"40 labelled live rows in {DAY1}..{DAY1} (floor 50): 10 more needed; at the recent rate of "
                  "40.0 labelled rows a day, about 1 more day") in section
    floor, agreement, safety = (c.to_dict() for c in decision.checks)
    assert (floor["value"], floor["threshold"]) == (40, 50) and (safety["value"], safety["threshold"]) == (0, 0)
    assert (agreement["value"], agreement["threshold"]) == (1.0, 0.95)
    assert agreement["interval"] == pytest.approx([40 / (40 + 1.96 ** 2), 1.0], abs=1e-3)


def test_the_report_says_when_no_rule_is_in_shadow(ws, tmp_path):
    store = Store.from_workspace(ws)
    publish.set_state(ws, "promotion.sale", "retired", actor="ana", reason="test")
    text = write_report(ws, tmp_path / "r.html", store=store, residual=False).path.read_text(encoding="utf-8")
    section = text[text.index('<section id="shadow"'):text.index('<section id="rules"')]
    assert "No rule is in shadow." in section
