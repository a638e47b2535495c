"""Datasets → evaluation → gate → promotion, end to end on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import timedelta

import pandas as pd
import pytest
from sqlmodel import select
from typer.testing import CliRunner

from rulelife.cli import app
from rulelife.config import Workspace
from rulelife.errors import GateRefused, LifecycleError, LogError, UnknownRule
from rulelife.evidence import batch, promotion
from rulelife.rules.lifecycle import State
from rulelife.serving import publish
from rulelife.serving.bundle import BundleStore
from rulelife.store import EvaluationRow, PromotionRow, Store, registry, utcnow

HOURS = """\
id: faq.opening_hours
intent: faq
patterns: ["opening hours"]
locales: ["en-US"]
owner: ds
description: Shop opening hours.
"""
MY_ORDER = """\
id: order_tracking.my_order
intent: order_tracking
patterns: ["my order"]
locales: ["en-US"]
owner: ds
description: Broad.
"""


def write_log(ws: Workspace, rows: list[tuple[str, str]], day: str = "2026-03-01") -> None:
    frame = pd.DataFrame(rows, columns=["text", "model_intent"])
    frame["query_id"] = [f"q-{day}-{i:05d}" for i in range(len(frame))]
    frame["ts"] = pd.Timestamp(day, tz="UTC") + pd.to_timedelta(range(len(frame)), unit="s")
    frame["locale"] = "en-US"
    frame["model_confidence"] = 0.9
    frame.to_parquet(ws.log_dir / f"queries-{day}.parquet", index=False)


def traffic(n_hours=400, n_order=300, n_return=20, n_other=300) -> list[tuple[str, str]]:
    return (
        [(f"what are your opening hours {i}", "faq") for i in range(n_hours)]
        + [(f"where is my order #{i}", "order_tracking") for i in range(n_order)]
        + [(f"i want to return my order #{i}", "return_request") for i in range(n_return)]
        + [(f"recommend a manga like berserk {i}", "recommendation") for i in range(n_other)]
    )


@pytest.fixture
def ws(new_workspace):
    workspace = new_workspace(dataset_floor="300")
    for name, text in (("faq/opening_hours.yaml", HOURS), ("order_tracking/my_order.yaml", MY_ORDER)):
        path = workspace.rules_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    registry.sync_workspace(workspace, actor="ana")
    write_log(workspace, traffic())
    return workspace


def test_a_rule_that_agrees_is_promoted_and_published(ws):
    built = promotion.build_rule_dataset(ws, "faq.opening_hours", actor="ana")
    # 400 fired, labelled rows; floor 300: 75 hard negatives wanted, none exist (every
    # "opening hours" query is faq), no adversarial file: production fills all 300.
    assert built.snapshot.counts == {"production": 300}
    assert built.snapshot.fires == 400

    result = promotion.promote(ws, "faq.opening_hours", actor="ben")
    assert result.status.state == State.ACTIVE
    assert (result.status.expires_at - result.status.updated_at) == timedelta(days=90)
    assert result.evaluation.evaluation.production.estimate == 1.0
    assert [r.id for r in BundleStore(ws.bundle_dir).current().rules] == ["faq.opening_hours"]

    store = Store.from_workspace(ws)
    with store.session() as session:
        promotions = session.exec(select(PromotionRow)).all()
        evaluations = session.exec(select(EvaluationRow)).all()
    assert [(p.rule_id, p.actor, p.dataset_hash, p.to_state) for p in promotions] == [
        ("faq.opening_hours", "ben", built.snapshot.content_hash, "active")]
    assert [e.passed for e in evaluations] == [True]
    audit = registry.audit_log(store, "faq.opening_hours")[-1]
    assert (audit.action, audit.actor) == ("promote", "ben")
    assert json.loads(audit.evidence)["dataset"] == built.snapshot.content_hash


def test_a_refusal_lists_every_reason_and_changes_nothing(ws):
    promotion.build_rule_dataset(ws, "order_tracking.my_order")
    store = Store.from_workspace(ws)
    audit_before = len(registry.audit_log(store))
    with pytest.raises(GateRefused) as refused:
        promotion.promote(ws, "order_tracking.my_order", actor="ben")
    reasons = refused.value.reasons
    # 300 order-tracking fires agree, 20 return requests do not: 300 / 320 = 93.75%.
    assert any(r.startswith("agreement with the model 93.8%") for r in reasons)
    assert any("safety intents" in r and "return_request: 20" in r for r in reasons)
    assert registry.get_status(store, "order_tracking.my_order").state == State.CANDIDATE
    # The refusal is on the record (audit and evaluation), and nothing else moved.
    audit = registry.audit_log(store)
    assert len(audit) == audit_before + 1
    assert (audit[-1].action, audit[-1].from_state, audit[-1].to_state) == ("promote_refused", "candidate", "candidate")
    assert audit[-1].reason == "promotion gate refused: " + "; ".join(reasons)
    with store.session() as session:
        assert session.exec(select(PromotionRow)).all() == []
        evaluation = session.exec(select(EvaluationRow)).one()
    assert (evaluation.passed, json.loads(evaluation.reasons)) == (False, reasons)
    assert json.loads(audit[-1].evidence)["evaluation_id"] == evaluation.id
    assert BundleStore(ws.bundle_dir).pointer() is None
    # Beside each reason, the numbers it judged, for a program to read.
    result = promotion.evaluate(ws, "order_tracking.my_order", record=False)
    agreement, safety = result.decision.check("agreement"), result.decision.check("safety")
    assert agreement.threshold == 0.95 and agreement.value == pytest.approx(0.9375)
    assert agreement.interval[0] < agreement.value < agreement.interval[1]
    seen = result.evaluation.safety_false_positives + result.evaluation.safety_fp_in_log["return_request"]
    assert result.evaluation.safety_fp_in_log == {"return_request": 20}
    assert (safety.value, safety.threshold) == (seen, 0) and safety.to_dict()["value"] == seen


def test_no_dataset_or_a_dataset_for_another_version_is_refused(ws):
    with pytest.raises(GateRefused, match="dataset build faq.opening_hours"):
        promotion.promote(ws, "faq.opening_hours", actor="ben")
    promotion.build_rule_dataset(ws, "faq.opening_hours")
    (ws.rules_dir / "faq" / "opening_hours.yaml").write_text(HOURS.replace('["opening hours"]', '["opening hours", "open on sunday"]'))
    registry.sync_workspace(ws, actor="ana")
    with pytest.raises(GateRefused, match="built for version"):
        promotion.promote(ws, "faq.opening_hours", actor="ben")


def test_a_stale_dataset_is_refused(ws):
    promotion.build_rule_dataset(ws, "faq.opening_hours")
    with pytest.raises(GateRefused, match="older than 7 days"):
        promotion.promote(ws, "faq.opening_hours", actor="ben", now=utcnow() + timedelta(days=8))


def test_too_little_evidence_is_refused(ws):
    for path in ws.log_dir.glob("*.parquet"):
        path.unlink()
    write_log(ws, traffic(n_hours=50))
    promotion.build_rule_dataset(ws, "faq.opening_hours")
    with pytest.raises(GateRefused, match="50 dataset rows .*floor 300.*not enough evidence"):
        promotion.promote(ws, "faq.opening_hours", actor="ben")


def test_revalidation_extends_a_rule_near_expiry(ws):
    promotion.build_rule_dataset(ws, "faq.opening_hours")
    promotion.promote(ws, "faq.opening_hours", actor="ben")
    now = utcnow() + timedelta(days=80)  # 10 days before expiry: inside the 14-day window
    results = promotion.revalidate(ws, actor="nightly", now=now)
    assert [(r.rule_id, r.action) for r in results] == [("faq.opening_hours", "extended")]
    status = registry.get_status(Store.from_workspace(ws), "faq.opening_hours")
    assert status.expires_at > utcnow() + timedelta(days=89)


def test_disable_republishes_without_the_rule(ws):
    promotion.build_rule_dataset(ws, "faq.opening_hours")
    promotion.promote(ws, "faq.opening_hours", actor="ben")
    status, published = publish.set_state(ws, "faq.opening_hours", "disabled", actor="ana", reason="campaign")
    assert status.state == State.DISABLED
    assert published.bundle.rules == ()


def test_empty_log_folder_is_a_clear_refusal(ws):
    for path in ws.log_dir.glob("*.parquet"):
        path.unlink()
    with pytest.raises(LogError):
        promotion.build_rule_dataset(ws, "faq.opening_hours")


runner = CliRunner()


def test_cli_promote_refusal_and_success(ws):
    base = ["--workspace", str(ws.root)]
    result = runner.invoke(app, [*base, "dataset", "build", "order_tracking.my_order"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, [*base, "promote", "order_tracking.my_order", "--actor", "ben"])
    assert result.exit_code == 1
    assert "refused" in result.output and "safety intents" in result.output and "agreement" in result.output
    assert "Traceback" not in result.output

    runner.invoke(app, [*base, "dataset", "build", "faq.opening_hours"])
    result = runner.invoke(app, [*base, "evaluate", "faq.opening_hours", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["gate"]["passed"] is True
    result = runner.invoke(app, [*base, "promote", "faq.opening_hours", "--actor", "ben"])
    assert result.exit_code == 0, result.output
    assert "now active" in result.output and "published bundle 1" in result.output


def test_cli_dataset_build_on_a_process_pool_stores_the_local_dataset(ws):
    # Two days, so the pool has two files to share out.
    write_log(ws, traffic(n_hours=150, n_order=0, n_return=0, n_other=50), day="2026-03-02")
    base = ["--workspace", str(ws.root)]
    local = promotion.build_rule_dataset(ws, "faq.opening_hours", actor="ana")
    result = runner.invoke(app, [*base, "dataset", "build", "faq.opening_hours", "--engine", "local-pool",
                                 "--json"])
    assert result.exit_code == 0, result.output
    pooled = json.loads(result.output)
    assert pooled["dataset"]["content_hash"] == local.snapshot.content_hash
    assert pooled["dataset"]["fires"] == 550
    result = runner.invoke(app, [*base, "dataset", "build", "faq.opening_hours", "--engine", "dask"])
    assert result.exit_code == 2 and "'dask' is not one of" in result.output and "'local-pool'" in result.output


def test_cli_analyze_counts_the_same_on_a_process_pool(ws):
    promotion.build_rule_dataset(ws, "faq.opening_hours", actor="ana")
    promotion.promote(ws, "faq.opening_hours", actor="ben")  # publishes bundle 1
    base = ["--workspace", str(ws.root)]
    outputs = {}
    for engine in ("local", "local-pool"):
        result = runner.invoke(app, [*base, "analyze", "--json", "--engine", engine])
        assert result.exit_code == 0, result.output
        outputs[engine] = json.loads(result.output)
    assert outputs["local-pool"] == outputs["local"]
    assert outputs["local"]["bundle"] == 1 and outputs["local"]["queries"] == 1020


def test_build_many_reads_the_log_once_whatever_the_number_of_rules(ws):
    write_log(ws, traffic(n_hours=150, n_order=0, n_return=0, n_other=50), day="2026-03-02")
    one = promotion.build_rule_dataset(ws, "faq.opening_hours")
    built = batch.build_many(ws, ["faq.opening_hours", "order_tracking.my_order", "faq.opening_hours"])
    # One pass over both days: 1,020 + 200 rows, each file once, as for a single rule.
    assert built.log.rows_read == one.log.rows_read == 1220
    assert sorted(built.log.files_read) == sorted(one.log.files_read) and len(built.log.files_read) == 2
    assert [d.snapshot.rule_id for d in built.datasets] == ["faq.opening_hours", "order_tracking.my_order"]
    assert built.intents == ("faq", "order_tracking")
    assert built.datasets[0].snapshot.content_hash == one.snapshot.content_hash
    assert batch.build_many(ws, []).log.rows_read == 0  # an empty batch reads nothing


def test_promote_many_keeps_going_past_a_refusal_and_publishes_once(ws):
    promotion.build_datasets(ws, ["order_tracking.my_order", "faq.opening_hours"])
    store = Store.from_workspace(ws)
    audit_before = len(registry.audit_log(store, "order_tracking.my_order"))
    result = batch.promote_many(ws, ["order_tracking.my_order", "faq.opening_hours"], actor="ben", store=store)

    assert [(v.rule_id, v.verdict, v.to) for v in result.verdicts] == [
        ("order_tracking.my_order", "refused", "active"), ("faq.opening_hours", "promoted", "active")]
    assert result.counts() == {"promoted": 1, "refused": 1, "error": 0} and not result.passed
    refused, promoted = result.verdicts
    # The refusal's numbers are the single-rule evaluation's: 300 / 320 on 300 dataset rows.
    assert (refused.agreement, refused.rows) == (300 / 320, 300)
    single = promotion.evaluate(ws, "order_tracking.my_order", store=store, record=False)
    # Agreement, the return requests it fires on, and 'order' living next to return requests.
    assert list(refused.reasons) == single.decision.reasons and len(refused.reasons) == 3
    assert (promoted.agreement, promoted.reasons) == (1.0, ())

    # The refused rule stays where it was; its refusal is recorded (evaluation and audit), not a promotion.
    refusals = registry.audit_log(store, "order_tracking.my_order")[audit_before:]
    assert [(a.action, a.to_state) for a in refusals] == [("promote_refused", "candidate")]
    with store.session() as session:
        assert sorted((e.rule_id, e.passed) for e in session.exec(select(EvaluationRow)).all()) == [
            ("faq.opening_hours", True), ("order_tracking.my_order", False)]
        assert [p.rule_id for p in session.exec(select(PromotionRow)).all()] == ["faq.opening_hours"]
    assert result.published.bundle.number == 1 and BundleStore(ws.bundle_dir).numbers() == [1]


def test_promote_many_that_moves_nothing_publishes_nothing(ws):
    result = batch.promote_many(ws, ["faq.opening_hours"], actor="ben")  # no dataset yet
    assert [(v.verdict, v.agreement, v.rows) for v in result.verdicts] == [("refused", None, None)]
    assert "rulelife dataset build faq.opening_hours" in result.verdicts[0].reasons[0]
    assert result.published is None and BundleStore(ws.bundle_dir).pointer() is None
    empty = batch.promote_many(ws, [], actor="ben")
    assert (empty.verdicts, empty.passed, empty.published) == ((), True, None)


def test_promote_many_refuses_a_bad_target_or_unknown_rules_before_changing_anything(ws):
    promotion.build_rule_dataset(ws, "faq.opening_hours")
    with pytest.raises(LifecycleError, match="shadow or active, not retired"):
        batch.promote_many(ws, ["faq.opening_hours"], actor="ben", to="retired")
    with pytest.raises(LifecycleError, match="unknown state 'live'"):
        batch.promote_many(ws, ["faq.opening_hours"], actor="ben", to="live")
    with pytest.raises(UnknownRule, match="not in the registry: faq.nope, faq.gone"):
        batch.promote_many(ws, ["faq.opening_hours", "faq.nope", "faq.gone"], actor="ben")
    assert registry.get_status(Store.from_workspace(ws), "faq.opening_hours").state == State.CANDIDATE


def test_evaluate_many_records_each_evaluation_and_changes_no_state(ws):
    promotion.build_datasets(ws, ["faq.opening_hours", "order_tracking.my_order"])
    store = Store.from_workspace(ws)
    result = batch.evaluate_many(ws, batch.rules_in_state(store, State.CANDIDATE), actor="ana", store=store)
    assert [(v.rule_id, v.verdict, v.to) for v in result.verdicts] == [
        ("faq.opening_hours", "passed", None), ("order_tracking.my_order", "failed", None)]
    with store.session() as session:
        rows = session.exec(select(EvaluationRow).order_by(EvaluationRow.rule_id)).all()
    assert [(r.rule_id, r.passed, r.actor) for r in rows] == [
        ("faq.opening_hours", True, "ana"), ("order_tracking.my_order", False, "ana")]
    assert {s.state for s in registry.list_rules(store)} == {State.CANDIDATE}


def test_stored_evaluations_are_listed_shown_and_compared(ws):
    """A refused promotion keeps its evaluation; after narrowing the rule, the two compare side by side."""
    rule_id = "order_tracking.my_order"
    promotion.build_rule_dataset(ws, rule_id)
    with pytest.raises(GateRefused):
        promotion.promote(ws, rule_id, actor="ben")
    (ws.rules_dir / "order_tracking" / "my_order.yaml").write_text(MY_ORDER.replace('["my order"]',
                                                                                   '["where is my order"]'))
    registry.sync_workspace(ws, actor="ana")
    promotion.build_rule_dataset(ws, rule_id)
    promotion.evaluate(ws, rule_id, actor="ana")

    def cli(*args):
        result = runner.invoke(app, ["--workspace", str(ws.root), "evaluations", *args, "--json"])
        assert result.exit_code == 0, result.output
        return json.loads(result.output)

    listed = cli("list", rule_id)
    assert [(e["actor"], e["passed"]) for e in listed] == [("ana", False), ("ben", False)]  # newest first
    refused = cli("show", rule_id, str(listed[1]["id"]))
    # The refusal's figures: 300 of the 320 fires agree; 17 + 20 of the rows are return requests it answered.
    assert (refused["agreement"], refused["rows"], refused["safety_false_positives"]) == (300 / 320, 300, 37)
    assert len(refused["reasons"]) == 3 and refused["metrics"]["rule_version"] == refused["rule_version"]
    assert cli("show", rule_id)["id"] == listed[0]["id"]  # default: the newest
    compared = cli("compare", rule_id)
    rows = {row["what"]: row for row in compared["rows"]}
    # Narrowed to "where is my order": the return requests are gone, agreement is whole; the word 'order'
    # still lives next to return requests, the one reason left.
    assert (rows["agreement"]["a"], rows["agreement"]["b"], rows["agreement"]["change"]) == (300 / 320, 1.0, 0.0625)
    assert (rows["safety_false_positives"]["change"], rows["version"]["change"]) == (-37, "changed")
    assert compared["reasons_gone"] == refused["reasons"][1:] and compared["reasons_new"] == []
    result = runner.invoke(app, ["--workspace", str(ws.root), "evaluations", "show", rule_id, "999"])
    assert result.exit_code == 1 and f"evaluation 999 is not one of {rule_id}'s" in result.output
    result = runner.invoke(app, ["--workspace", str(ws.root), "evaluations", "compare", "faq.opening_hours"])
    assert result.exit_code == 1 and "faq.opening_hours has 0 stored evaluation(s); compare needs two" in result.output


def test_the_dataset_and_the_promotion_name_the_model_versions_of_their_labels(ws):
    # Replace the log: 400 opening-hours queries, the first 250 labelled by model-1, the rest by model-2.
    for path in ws.log_dir.glob("*.parquet"):
        path.unlink()
    write_log(ws, traffic())
    path = next(ws.log_dir.glob("*.parquet"))
    frame = pd.read_parquet(path)
    frame["model_version"] = ["model-1" if i < 250 else "model-2" for i in range(len(frame))]
    frame.to_parquet(path, index=False)
    built = promotion.build_rule_dataset(ws, "faq.opening_hours", actor="ana")
    assert built.snapshot.meta["model_versions"] == {"model-1": 250, "model-2": 150}
    promotion.promote(ws, "faq.opening_hours", actor="ben")
    with Store.from_workspace(ws).session() as session:
        row = session.exec(select(PromotionRow).where(PromotionRow.rule_id == "faq.opening_hours")).one()
    assert json.loads(row.model_versions) == {"model-1": 250, "model-2": 150}
