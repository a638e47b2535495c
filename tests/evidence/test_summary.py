"""One summary row per rule, on any set of rules: counted by hand on the analysis tests' log."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from rulelife.cli import app
from rulelife.errors import ConfigError
from rulelife.evidence.analysis import count_chunk, finalize
from rulelife.evidence.evaluation.stats import wilson_interval
from rulelife.evidence.summary import parse_states, rule_summary
from rulelife.rules.definition import Rule, rule_to_yaml
from rulelife.serving import publish

from .test_analysis import MATCHER, MY_ORDER, POLICY, REFUND, ROWS, log

SAFETY = ("return_request", "escalation")


@pytest.fixture(scope="module")
def summary():
    states = {MY_ORDER: "active", REFUND: "active", POLICY: "candidate"}
    return rule_summary(finalize(count_chunk(log(), MATCHER, SAFETY)), states).set_index("rule_id")


def test_each_rule_counted_by_hand(summary):
    # (fires, wins, overlaps, conflicts, labelled, agree, safety_fp), from the comments on ROWS:
    # my_order fires on rows 0 1 2 5 10 11, loses 2 and 5, meets a rule of another intent on 2 and 5,
    # is labelled on 0 1 2 5 10, agrees on 0 1 10, and row 2 ("refund my order") the model calls a return.
    expected = {MY_ORDER: (6, 4, 2, 2, 5, 3, 1), REFUND: (5, 5, 4, 2, 4, 2, 0), POLICY: (3, 0, 3, 1, 2, 0, 0)}
    for rule_id, (fires, wins, overlaps, conflicts, labelled, agree, safety_fp) in expected.items():
        row = summary.loc[rule_id]
        assert (row.fires, row.wins, row.overlaps, row.conflicts, row.labelled, row.safety_fp) == (
            fires, wins, overlaps, conflicts, labelled, safety_fp), rule_id
        assert row.coverage == fires / len(ROWS)
        assert row.agreement == agree / labelled
        assert (row.agreement_low, row.agreement_high) == pytest.approx(wilson_interval(agree, labelled))


def test_rows_by_state_then_fires(summary):
    assert list(summary.index) == [MY_ORDER, REFUND, POLICY]
    assert list(summary["state"]) == ["active", "active", "candidate"]


def test_states_are_parsed_with_a_clear_refusal():
    assert parse_states("shadow") == ["shadow"]
    with pytest.raises(ConfigError, match="--rules takes lifecycle states"):
        parse_states("live")


@pytest.mark.store
def test_cli_summarises_registry_rules_published_or_not(new_workspace):
    ws = new_workspace()
    for rule in MATCHER.rules:
        folder = ws.rules_dir / rule.intent
        folder.mkdir(parents=True, exist_ok=True)
        source = {"id": rule.id, "intent": rule.intent, "patterns": list(rule.patterns), "locales": list(rule.locales),
                  "priority": rule.priority, "owner": "tests"}
        (folder / f"{rule.id.split('.')[1]}.yaml").write_text(rule_to_yaml(Rule(**source)))
    frame = log().assign(ts=pd.Timestamp("2026-01-01", tz="UTC"))
    ws.log_dir.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(ws.log_dir / "2026-01-01.parquet", index=False)
    runner = CliRunner()
    assert runner.invoke(app, ["-w", str(ws.root), "sync"]).exit_code == 0
    for rule_id in (MY_ORDER, REFUND):
        publish.set_state(ws, rule_id, "active", actor="tests", reason="setup")

    # The candidate alone: nothing else is matched, so it overlaps nobody.
    result = runner.invoke(app, ["-w", str(ws.root), "analyze", "--rules", "candidate", "--json"])
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.stdout)["rule_summary"]
    assert (row["rule_id"], row["state"], row["fires"], row["overlaps"]) == (POLICY, "candidate", 3, 0)

    # The candidate against the live rules: the hand counts above.
    result = runner.invoke(app, ["-w", str(ws.root), "analyze", "--rules", "candidate,active", "--json"])
    rows = {r["rule_id"]: r for r in json.loads(result.stdout)["rule_summary"]}
    assert (rows[POLICY]["overlaps"], rows[POLICY]["conflicts"]) == (3, 1)
    assert (rows[MY_ORDER]["state"], rows[MY_ORDER]["safety_fp"]) == ("active", 1)

    result = runner.invoke(app, ["-w", str(ws.root), "analyze", "--rules", "candidate", "--bundle", "1"])
    assert result.exit_code == 2
