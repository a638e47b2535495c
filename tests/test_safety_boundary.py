"""Safety proximity: a rule whose words live next to a safety intent is refused, by the miner and the gate.

Golden case: ``a restitution of`` answers track-refund questions correctly,
and ``restitution`` is common in refund requests (a safety intent) all along.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from miners.candidates import CandidateMiner
from rulelife.cli import app

pytestmark = pytest.mark.store
runner = CliRunner()
RULE = "id: track_refund.restitution\nintent: track_refund\npatterns: [a restitution of]\nowner: ana\n"


def log(rows: list[tuple[str, str]]) -> pd.DataFrame:
    return pd.DataFrame({
        "query_id": [f"q{i:04d}" for i in range(len(rows))],
        "ts": [pd.Timestamp("2026-03-01", tz="UTC") + pd.Timedelta(minutes=i) for i in range(len(rows))],
        "text": [t for t, _ in rows], "locale": "en-US", "model_intent": [i for _, i in rows],
        "model_confidence": 0.99})


@pytest.fixture
def ws(new_workspace):
    workspace = new_workspace(safety_intents='["get_refund"]', intents="[]", dataset_floor="100", gate_on="point")
    rows = ([("how is a restitution of my payment going", "track_refund")] * 120
            + [("i want restitution for my broken order", "get_refund")] * 9
            + [("hello", "chitchat")] * 350)
    log(rows).to_parquet(workspace.log_dir / "log.parquet", index=False)
    return workspace


def promote(ws, rule_text: str):
    path = ws.rules_dir / "track_refund" / "restitution.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(rule_text, encoding="utf-8")
    base = ["--workspace", str(ws.root)]
    assert runner.invoke(app, [*base, "sync"]).exit_code == 0
    result = runner.invoke(app, [*base, "dataset", "build", "track_refund.restitution"])
    assert result.exit_code == 0, result.output
    return runner.invoke(app, [*base, "promote", "track_refund.restitution", "--actor", "ana"])


def test_the_gate_refuses_a_rule_whose_word_carries_refund_requests(ws):
    result = promote(ws, RULE)
    assert result.exit_code == 1
    # Its own 120 hits all agree; the word's other 9 queries are refund requests.
    assert "'restitution' in 9 of its 129 queries labelled get_refund (7% vs 2% of all traffic)" in result.output
    assert "safety_justification" in result.output and "Traceback" not in result.output


def test_a_recorded_justification_lets_it_pass_and_is_kept_with_the_evaluation(ws):
    result = promote(ws, RULE + "safety_justification: restitution of a payment is always a status question\n")
    assert result.exit_code == 0, result.output
    shown = runner.invoke(app, ["--workspace", str(ws.root), "evaluate", "track_refund.restitution", "--json"])
    checks = {c["name"]: c for c in json.loads(shown.output)["gate"]["checks"]}
    assert checks["safety_neighbourhood"]["passed"]
    assert "allowed: restitution of a payment is always a status question" in checks["safety_neighbourhood"]["detail"]


def test_the_miner_refuses_a_phrase_next_to_a_safety_intent():
    rows = ([("check refund status", "track_refund")] * 30 + [("i want a refund", "get_refund")] * 20
            + [("hello there", "chitchat")] * 60)
    miner = CandidateMiner(min_support=20, safety_intents=["get_refund"]).fit([log(rows)])
    skipped = {(s.phrase, s.reason): s.detail for s in miner.skipped_}
    assert skipped[("refund status", "safety_proximity")] == (
        "'refund' is in 20 of its 50 queries labelled get_refund (40%), a safety intent")
    assert all("refund" not in p for c in miner.candidates_ for p in c.rule.patterns)
    assert any("status" in c.rule.patterns for c in miner.candidates_)


def test_the_dataset_matches_as_the_runtime_does_the_lexicon_veto_included(new_workspace):
    ws = new_workspace("card", safety_intents='["card_stolen"]', intents="[]", dataset_floor="30",
                       gate_on="point")
    rows = ([("my card is blocked", "pin_blocked")] * 40
            + [("someone stole my wallet with my card in it, and now my card is blocked", "card_stolen")] * 5
            + [("hello", "chitchat")] * 400)
    log(rows).to_parquet(ws.log_dir / "log.parquet", index=False)
    path = ws.rules_dir / "pin_blocked" / "blocked.yaml"
    path.parent.mkdir(parents=True)
    path.write_text("id: pin_blocked.blocked\nintent: pin_blocked\npatterns: [blocked]\nowner: ana\n")
    base = ["--workspace", str(ws.root)]
    assert runner.invoke(app, [*base, "sync"]).exit_code == 0

    def gate() -> dict:
        assert runner.invoke(app, [*base, "dataset", "build", "pin_blocked.blocked"]).exit_code == 0
        result = runner.invoke(app, [*base, "evaluate", "pin_blocked.blocked", "--json"])
        return {c["name"]: c["passed"] for c in json.loads(result.output)["gate"]["checks"]}

    # Without a lexicon the rule answers the stolen-card reports: 5 safety false positives refuse it.
    assert gate()["safety"] is False
    # With "stole" in the lexicon the runtime sends those reports to the model, and so does the dataset.
    (ws.rules_dir / "safety_lexicon.yaml").write_text(
        "owner: t\nphrases:\n  - {phrase: stole, intent: card_stolen}\n", encoding="utf-8")
    assert gate() == {**gate(), "safety": True, "agreement": True}
