"""The nightly counts shadow rules on live traffic, and disables one on a safety false positive."""

from __future__ import annotations

import json
from datetime import date

import pandas as pd
import pytest
from sqlmodel import select

from rulelife.config import Workspace
from rulelife.monitoring import nightly
from rulelife.monitoring.metrics import MetricCounts, RuleVersionInfo, count_chunk, finalize
from rulelife.rules.lifecycle import State
from rulelife.serving import publish
from rulelife.serving.bundle import BundleStore
from rulelife.store import AuditRow, DailyMetricRow, Store, TicketRow, registry

INTENTS = {"order_tracking.where": "order_tracking", "promotion.sale": "promotion"}
RULES = [RuleVersionInfo("order_tracking.where", "v1", "order_tracking", ("*",)),
         RuleVersionInfo("promotion.sale", "s1", "promotion", ("*",), "shadow")]
SAFETY = ["return_request", "escalation"]


def chunk() -> pd.DataFrame:
    rows = [
        # rule_id, version, shadow sample, model_intent, shadow_rules
        (None, None, None, "promotion", "promotion.sale@s1"),  # the model answered: labelled, agrees
        (None, None, None, "promotion", "promotion.sale@s1"),  # labelled, agrees
        (None, None, None, "return_request", "promotion.sale@s1"),  # labelled, a safety false positive
        ("order_tracking.where", "v1", False, None, "promotion.sale@s1"),  # a rule answered: unlabelled
        ("order_tracking.where", "v1", True, "order_tracking", None),
        ("order_tracking.where", "v1", False, None, None),
        (None, None, None, "faq", None),
        (None, None, None, "chitchat", None),
        (None, None, None, "faq", None),
        (None, None, None, "promotion", None),
    ]
    frame = pd.DataFrame(rows, columns=["rule_id", "rule_version", "shadow", "model_intent", "shadow_rules"])
    frame["query_id"] = [f"q{i:02d}" for i in range(len(frame))]
    frame["text"] = [f"text {i}" for i in range(len(frame))]
    frame["ts"] = pd.Timestamp("2026-02-01 10:00", tz="UTC")
    frame["locale"] = "en-US"
    frame["bundle_version"] = pd.array([3] * len(frame), dtype="Int64")
    frame["shadow"] = frame["shadow"].astype("boolean")
    for column in ("rule_id", "rule_version", "model_intent", "shadow_rules", "locale", "query_id", "text"):
        frame[column] = frame[column].astype("string")
    return frame


def test_a_hand_made_chunk_counts_shadow_fires_labels_agreement_and_safety():
    counts = count_chunk(chunk(), INTENTS, SAFETY)
    table = finalize(counts, RULES).set_index("rule_id")
    sale = table.loc["promotion.sale"]
    # 4 would-have-fired, 3 labelled (the model answered them), 2 agree, 1 safety false positive.
    assert (sale.serving, sale.rule_version, sale.traffic, sale.fires, sale.shadow_n, sale.agree_n, sale.safety_fp) == (
        "shadow", "s1", 10, 4, 3, 2, 1)
    assert sale.agreement == pytest.approx(2 / 3)
    assert sale.fire_rate == pytest.approx(4 / 10)
    assert sale.fp_by_class == {"return_request": 1}
    assert [e["query_id"] for e in counts.examples["promotion.sale"]] == ["q02"]
    # The active rule's row is what it would be without the shadow rule.
    where = table.loc["order_tracking.where"]
    assert (where.serving, where.fires, where.shadow_n, where.agree_n) == ("active", 3, 1, 1)
    plain = finalize(count_chunk(chunk().drop(columns="shadow_rules"), INTENTS, SAFETY), RULES[:1])
    pd.testing.assert_frame_equal(table.reset_index().iloc[:1][plain.columns], plain)


def test_shadow_counts_add_up_over_chunks_and_weights():
    frame = chunk()
    halves = count_chunk(frame.iloc[:5], INTENTS, SAFETY) + count_chunk(frame.iloc[5:], INTENTS, SAFETY)
    pd.testing.assert_frame_equal(finalize(halves, RULES), finalize(count_chunk(frame, INTENTS, SAFETY), RULES))
    # Rows 0 and 1 are identical but for their ids: one row of weight 2 counts as both.
    weighted = count_chunk(frame.iloc[1:], INTENTS, SAFETY, weights=[2] + [1] * 8)
    sale = finalize(weighted, RULES).set_index("rule_id").loc["promotion.sale"]
    assert (sale.fires, sale.shadow_n, sale.agree_n, sale.safety_fp) == (4, 3, 2, 1)


def test_a_shadow_rule_no_bundle_holds_is_refused():
    frame = chunk()
    frame.loc[0, "shadow_rules"] = "ghost.rule@ab"
    with pytest.raises(KeyError, match="ghost.rule"):
        count_chunk(frame, INTENTS, SAFETY)


def test_a_version_promoted_during_the_day_keeps_one_active_row():
    frame = chunk()
    frame["shadow_rules"] = frame["shadow_rules"].str.replace("s1", "v1").str.replace("promotion.sale",
                                                                                       "order_tracking.where")
    rules = [RULES[0], RuleVersionInfo("order_tracking.where", "v1", "order_tracking", ("*",), "shadow")]
    table = finalize(count_chunk(frame, INTENTS, SAFETY), rules)
    assert table[["rule_id", "serving", "fires"]].values.tolist() == [["order_tracking.where", "active", 3]]


def test_empty_counts_finalize_with_a_serving_column():
    assert "serving" in finalize(MetricCounts(), RULES).columns


SALE = """\
id: promotion.sale
intent: promotion
patterns: ["sale"]
locales: ["*"]
owner: ds
description: Sales.
"""
WHERE = """\
id: order_tracking.where
intent: order_tracking
patterns: ["where is my order"]
locales: ["*"]
owner: ds
description: Where is my order.
"""
DAY = date(2026, 2, 1)


@pytest.fixture
def ws(tmp_path, db_url, monkeypatch):
    url, schema = db_url
    if schema:
        monkeypatch.setenv("RULELIFE_DB_SCHEMA", schema)
    workspace = Workspace.create(tmp_path / "ws", db_url=url)
    for name, text in (("promotion/sale.yaml", SALE), ("order_tracking/where.yaml", WHERE)):
        (workspace.rules_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (workspace.rules_dir / name).write_text(text)
    registry.sync_workspace(workspace, actor="ana")
    publish.set_state(workspace, "order_tracking.where", "active", actor="ana", reason="test setup")
    publish.set_state(workspace, "promotion.sale", "shadow", actor="ana", reason="test setup")
    return workspace


def shadow_log(ws: Workspace, day: date, agree: int, unsafe: int) -> None:
    """A day as the runtime logs it through the published bundle (a real replay)."""
    from rulelife import RuleClassifier
    from rulelife.serving.replay import replay

    texts = ["big sale"] * (agree + unsafe) + ["where is my order"] * 4 + ["hello"] * 2
    labels = ["promotion"] * agree + ["return_request"] * unsafe + ["order_tracking"] * 4 + ["chitchat"] * 2
    log = pd.DataFrame({
        "query_id": [f"q-{day}-{i}" for i in range(len(texts))],
        "ts": pd.Timestamp(day, tz="UTC") + pd.Timedelta(hours=9),
        "text": texts, "locale": "en-US", "model_intent": labels, "model_confidence": 0.9,
    })
    served = replay(log, RuleClassifier.from_store(ws.bundle_dir, shadow_rate=0.0))
    served.to_parquet(ws.log_dir / f"queries-{day}.parquet", index=False)


def test_the_bundle_holds_the_shadow_rule_flagged(ws):
    bundle = BundleStore(ws.bundle_dir).current()
    assert [(r.id, r.shadow) for r in bundle.rules] == [("order_tracking.where", False), ("promotion.sale", True)]


def test_nightly_writes_shadow_rows_and_disables_a_shadow_rule_on_a_safety_fp(ws):
    shadow_log(ws, DAY, agree=5, unsafe=1)
    report = nightly.run_nightly(ws, DAY, monitors=nightly.load_monitors(["safety_fp"], ws.settings))
    store = Store.from_workspace(ws)
    with store.session() as session:
        rows = {r.rule_id: r for r in session.exec(select(DailyMetricRow)).all()}
        assert (rows["promotion.sale"].serving, rows["promotion.sale"].fires, rows["promotion.sale"].shadow_n,
                rows["promotion.sale"].agree_n, rows["promotion.sale"].safety_fp) == ("shadow", 6, 6, 5, 1)
        assert rows["order_tracking.where"].serving == "active"
        audit = session.exec(select(AuditRow).where(AuditRow.rule_id == "promotion.sale",
                                                    AuditRow.action == "auto_disable")).one()
        ticket = session.exec(select(TicketRow).where(TicketRow.subject == "promotion.sale")).one()
    assert report.disabled == ["promotion.sale"]
    assert (audit.from_state, audit.to_state) == ("shadow", "disabled")
    assert "would have answered 1 en-US labelled query the model labelled return_request" in audit.reason
    assert json.loads(ticket.evidence)["safety_by_class"] == {"return_request": 1}
    assert registry.get_status(store, "promotion.sale").state == State.DISABLED
    # The republished bundle no longer holds it.
    assert [r.id for r in BundleStore(ws.bundle_dir).current().rules] == ["order_tracking.where"]


def test_nightly_leaves_a_safe_shadow_rule_in_shadow(ws):
    shadow_log(ws, DAY, agree=6, unsafe=0)
    report = nightly.run_nightly(ws, DAY, monitors=nightly.load_monitors(["safety_fp"], ws.settings))
    assert report.disabled == []
    history, _ = nightly.load_history(Store.from_workspace(ws), DAY)
    sale = history.set_index("rule_id").loc["promotion.sale"]
    assert (sale.serving, sale.shadow_n, sale.agree_n) == ("shadow", 6, 6)
