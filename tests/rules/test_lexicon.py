"""The safety lexicon file: linted like rules, proposed from the log, measured on it."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from rulelife.cli import app
from rulelife.config import Workspace
from rulelife.rules.lexicon import lexicon_path, load_lexicon
from rulelife.rules.lint import lint_rules

runner = CliRunner()


@pytest.fixture
def ws(tmp_path, monkeypatch):
    monkeypatch.setenv("RULELIFE_SAFETY_INTENTS", '["escalation", "return_request"]')
    return Workspace.create(tmp_path / "ws")


def write_lexicon(ws, body: str) -> None:
    lexicon_path(ws.rules_dir).write_text(body, encoding="utf-8")


def test_lint_refuses_weak_phrases_and_non_safety_intents_naming_the_field(ws):
    write_lexicon(ws, "owner: t\nphrases:\n"
                      "  - {phrase: stolen, intent: escalation}\n"
                      "  - {phrase: the, intent: escalation}\n"
                      "  - {phrase: x, intent: escalation}\n"
                      "  - {phrase: refund, intent: faq}\n")
    result = runner.invoke(app, ["--workspace", str(ws.root), "rules", "lint"])
    assert result.exit_code == 1
    out = result.output
    assert "safety_lexicon.yaml: phrases[1]: 'the' is only stop words" in out
    assert "safety_lexicon.yaml: phrases[2]: 'x' normalises to 'x', one character or none" in out
    assert "phrases[3]: intent 'faq' is not a safety intent (escalation, return_request)" in out
    assert "phrases[0]" not in out and "4 problem" not in out and "3 problem(s)" in out


def test_the_lexicon_is_not_read_as_a_rule_and_its_version_follows_its_content(ws):
    write_lexicon(ws, "owner: t\nphrases:\n  - {phrase: stolen, intent: escalation, note: seen in fraud reports}\n")
    assert lint_rules(ws.rules_dir).ok
    first = load_lexicon(ws.rules_dir).version
    write_lexicon(ws, "owner: t\nphrases:\n  - {phrase: stolen, intent: escalation, note: reworded note}\n")
    assert load_lexicon(ws.rules_dir).version == first  # a note is not behaviour
    write_lexicon(ws, "owner: t\nphrases:\n  - {phrase: stolen card, intent: escalation}\n")
    assert load_lexicon(ws.rules_dir).version != first


def write_log(ws, rows):
    frame = pd.DataFrame({
        "query_id": [f"q{i}" for i in range(len(rows))],
        "ts": [pd.Timestamp("2026-01-01", tz="UTC") + pd.Timedelta(days=i % 10, minutes=i) for i in range(len(rows))],
        "text": [t for t, _ in rows], "locale": "en-US", "model_intent": [i for _, i in rows],
        "model_confidence": 0.9})
    frame.to_parquet(ws.log_dir / "log.parquet", index=False)


def test_safety_mine_proposes_held_out_phrases_and_writes_a_reviewable_file(ws, tmp_path):
    rows = ([("my card was stolen", "escalation")] * 40 + [("where is my card", "order_tracking")] * 60
            + [("i want to send it back", "return_request")] * 30)
    write_log(ws, rows)
    out = tmp_path / "proposed.yaml"
    result = runner.invoke(app, ["--workspace", str(ws.root), "safety", "mine", "--json", "--out", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    found = {(p["phrase"], p["intent"]): p for p in data["proposals"]}
    # 40 stolen-card rows over 10 days: the first 5 days choose (20), the last 5 recount (20).
    assert found[("stolen", "escalation")]["n"] == 20 and found[("stolen", "escalation")]["heldout_n"] == 20
    assert ("card", "escalation") not in found  # 'card' is mostly order tracking
    lexicon_path(ws.rules_dir).write_text(out.read_text(encoding="utf-8"), encoding="utf-8")
    lexicon = load_lexicon(ws.rules_dir)
    assert {(e.phrase, e.intent) for e in lexicon.phrases} == set(found)


def test_a_lexicon_that_vetoes_too_much_is_warned_with_its_top_phrases(ws):
    write_log(ws, [("where is my card", "order_tracking")] * 50 + [("hello", "chitchat")] * 50)
    write_lexicon(ws, "owner: t\nphrases:\n  - {phrase: card, intent: escalation}\n")
    result = runner.invoke(app, ["--workspace", str(ws.root), "safety", "mine"])
    assert result.exit_code == 0, result.output
    assert "would send 50.0% of the window's traffic to the model" in result.output
    assert "warning: the lexicon would send 50.0%" in result.output and "'card' 50" in result.output
