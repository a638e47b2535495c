"""Promotion of a shadow rule on its live evidence; candidate -> shadow needs no dataset."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pandas as pd
import pytest
from sqlmodel import select
from typer.testing import CliRunner

from rulelife import RuleClassifier
from rulelife.cli import app
from rulelife.config import Workspace
from rulelife.errors import GateRefused
from rulelife.evidence import promotion
from rulelife.evidence.live import live_evidence
from rulelife.monitoring import nightly
from rulelife.rules.lifecycle import State
from rulelife.serving.bundle import BundleStore
from rulelife.serving.replay import replay
from rulelife.store import AuditRow, PromotionRow, Store, registry, utcnow
from rulelife.store.selection import Window, record_selection

SALE = """\
id: promotion.sale
intent: promotion
patterns: ["sale"]
locales: ["*"]
owner: ds
description: Sales.
"""
# Live days come after the rule entered shadow (today): tomorrow and the day after.
DAY1 = utcnow().date() + timedelta(days=1)
DAY2 = DAY1 + timedelta(days=1)


@pytest.fixture
def ws(tmp_path, db_url, monkeypatch):
    url, schema = db_url
    if schema:
        monkeypatch.setenv("RULELIFE_DB_SCHEMA", schema)
    workspace = Workspace.create(tmp_path / "ws", db_url=url, settings={"dataset_floor": 50})
    (workspace.rules_dir / "promotion").mkdir(parents=True, exist_ok=True)
    (workspace.rules_dir / "promotion" / "sale.yaml").write_text(SALE)
    registry.sync_workspace(workspace, actor="ana")
    promotion.promote(workspace, "promotion.sale", actor="ana", to="shadow")
    return workspace


def live_day(ws: Workspace, day: date, agree: int, unsafe: int = 0) -> None:
    """Serve a day through the published bundle and run the nightly on it (no monitors: nothing disables)."""
    texts = ["big sale"] * (agree + unsafe) + ["hello"] * 3
    labels = ["promotion"] * agree + ["return_request"] * unsafe + ["chitchat"] * 3
    log = pd.DataFrame({"query_id": [f"q-{day}-{i}" for i in range(len(texts))],
                        "ts": pd.Timestamp(day, tz="UTC") + pd.Timedelta(hours=9), "text": texts,
                        "locale": "en-US", "model_intent": labels, "model_confidence": 0.9})
    replay(log, RuleClassifier.from_store(ws.bundle_dir)).to_parquet(ws.log_dir / f"queries-{day}.parquet")
    nightly.run_nightly(ws, day, monitors=[])


def test_candidate_to_shadow_needs_no_dataset_and_republishes(ws):
    store = Store.from_workspace(ws)
    assert registry.get_status(store, "promotion.sale").state == State.SHADOW
    (audit,) = [a for a in registry.audit_log(store, "promotion.sale") if a.to_state == "shadow"]
    assert (audit.actor, audit.from_state, audit.reason) == ("ana", "candidate", "moved to shadow to gather live evidence")
    bundle = BundleStore(ws.bundle_dir).current()
    assert [(r.id, r.shadow) for r in bundle.rules] == [("promotion.sale", True)]


def test_no_live_evidence_is_refused_with_what_it_needs(ws):
    with pytest.raises(GateRefused) as refused:
        promotion.promote(ws, "promotion.sale", actor="ana")
    (floor, agreement) = refused.value.reasons
    assert floor.startswith("no live evidence yet: no labelled shadow row for version")
    assert "it needs 50 labelled rows, and the days it needs cannot be estimated until it fires" in floor
    assert agreement.startswith("live agreement with the model n/a")


def test_too_little_evidence_says_how_many_more_rows_and_days(ws):
    live_day(ws, DAY1, agree=40)
    with pytest.raises(GateRefused) as refused:
        promotion.promote(ws, "promotion.sale", actor="ana")
    assert refused.value.reasons[0] == (
        f"40 labelled live rows in {DAY1}..{DAY1} (floor 50): 10 more needed; at the recent rate of 40.0 "
        "labelled rows a day, about 1 more day")
    assert registry.get_status(Store.from_workspace(ws), "promotion.sale").state == State.SHADOW


def test_a_live_safety_false_positive_is_refused(ws):
    live_day(ws, DAY1, agree=40)
    live_day(ws, DAY2, agree=39, unsafe=1)
    with pytest.raises(GateRefused) as refused:
        promotion.promote(ws, "promotion.sale", actor="ana")
    assert any("would have answered 1 live query the model labelled as safety intents (return_request: 1)" in r
               for r in refused.value.reasons)


def test_enough_agreeing_live_evidence_promotes_and_names_the_window(ws):
    live_day(ws, DAY1, agree=40)
    live_day(ws, DAY2, agree=40)
    result = promotion.promote(ws, "promotion.sale", actor="ana")
    store = Store.from_workspace(ws)
    assert result.status.state == State.ACTIVE and result.decision.passed
    # 80 of 80 agree: the Wilson lower bound is 80 / (80 + 1.96^2) ~ 0.954 >= 0.95.
    assert result.evidence.labelled == 80 and result.evidence.agree == 80
    with store.session() as session:
        row = session.exec(select(PromotionRow).where(PromotionRow.rule_id == "promotion.sale")).one()
        audit = session.exec(select(AuditRow).where(AuditRow.action == "promote")).one()
    metrics = json.loads(row.metrics)
    assert (row.dataset_hash, metrics["window"]) == ("live shadow", {"first_day": str(DAY1), "last_day": str(DAY2)})
    assert audit.reason == f"promotion gate passed on live shadow evidence ({DAY1}..{DAY2})"
    assert json.loads(audit.evidence)["kind"] == "live shadow"
    assert [(r.id, r.shadow) for r in BundleStore(ws.bundle_dir).current().rules] == [("promotion.sale", False)]


def test_cli_promote_of_a_shadow_rule_refusal_exits_1_with_reasons(ws):
    result = CliRunner().invoke(app, ["--workspace", str(ws.root), "promote", "promotion.sale", "--actor", "ana"])
    assert result.exit_code == 1, result.output
    assert "no live evidence yet" in result.output and "Traceback" not in result.output
    live_day(ws, DAY1, agree=40)
    live_day(ws, DAY2, agree=40)
    result = CliRunner().invoke(app, ["--workspace", str(ws.root), "promote", "promotion.sale", "--actor", "ana"])
    assert result.exit_code == 0, result.output
    assert "promotion.sale@" in result.output and "is now active" in result.output


def test_backfilled_days_count_but_the_days_that_chose_the_rule_do_not(ws):
    # A backfill serves days dated before the wall-clock move to shadow: they are live evidence all the same.
    past1, past2 = date(2026, 1, 10), date(2026, 1, 11)
    live_day(ws, past1, agree=40)
    live_day(ws, past2, agree=30)
    store = Store.from_workspace(ws)
    assert live_evidence(store, "promotion.sale").labelled == 70
    # Had a miner chosen the rule on 01-10, that day would be the choosing rows, never evidence.
    with store.session() as session:
        record_selection(session, "promotion.sale", "v", Window(past1, past1), heldout=None, actor="miner",
                         figures={})
    evidence = live_evidence(store, "promotion.sale")
    assert (evidence.labelled, evidence.first_day, evidence.last_day) == (30, past2, past2)
