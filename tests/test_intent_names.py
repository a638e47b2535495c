"""Any intent name the model emits works end to end: logs, rule files, lint, the
registry, mining, datasets, the gate, the runtime, the nightly, tickets, the report.

Rule ids stay slugs (file names, URL parts); the intent is a field that keeps
the model's exact spelling, and is compared exactly everywhere.
"""

from __future__ import annotations

import doctest
import html
import importlib
import json
import re

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from rulelife import intent_slug
from rulelife.cli import app
from rulelife.config import Workspace
from rulelife.mining.mine import mine_workspace
from rulelife.monitoring.nightly import load_history
from rulelife.monitoring.tickets import render_markdown
from rulelife.rules.definition import MAX_INTENT_LENGTH, Rule, check_rule, load_rule
from rulelife.serving.replay import replay
from rulelife.serving.runtime import RuleClassifier
from rulelife.store import Store

runner = CliRunner()

# Found on a banking set (upper case), common in taxonomies (hyphens, dots,
# spaces and punctuation), and a script without ASCII at all; the last one
# holds console markup, HTML, a Markdown code fence and the "|" of bundle subjects.
NAMES = ["Refund_not_showing_up", "card-arrival", "billing.refund", "Billing & Payments", "返品",
         'Team [/VIP] <b>"a|b"</b> `x`']

# The slugs are part of the file layout: changing one moves rule files.
SLUGS = {
    "Refund_not_showing_up": "refund_not_showing_up_666c479e",
    "card-arrival": "card_arrival_f37282a7",
    "billing.refund": "billing_refund_223a59dc",
    "Billing & Payments": "billing_payments_a54dfa3f",
    "返品": "intent_eb74b03e",
}


# ---------------------------------------------------------------- intent_slug


@pytest.mark.parametrize(("intent", "slug"), SLUGS.items())
def test_slug_keeps_the_readable_ascii_and_adds_a_hash_of_the_exact_name(intent, slug):
    assert intent_slug(intent) == slug


@pytest.mark.parametrize("clean", ["order_tracking", "faq", "a1", "x_2_y", "3d_printing"])
def test_a_clean_slug_is_its_own_slug(clean):
    assert intent_slug(clean) == clean


def test_names_that_read_alike_get_distinct_slugs():
    alike = ["refund", "Refund", "REFUND", "re fund", "re-fund", "re_fund", "re__fund", "_refund", "refund.",
             "返品", "返金", "", " ", "_", "billing.refund", "billing_refund", "Billing & Payments",
             "billing payments", "billing_payments", "a" * 64, "a" * 65, "a" * 66]
    slugs = [intent_slug(name) for name in alike]
    assert len(set(slugs)) == len(alike), dict(zip(alike, slugs))
    assert intent_slug("a" * 64) == "a" * 64  # at the length limit a clean name is still itself


@given(st.text(max_size=200))
def test_every_slug_is_a_short_clean_fixed_point(intent):
    slug = intent_slug(intent)
    assert re.fullmatch(r"[a-z0-9_]{1,64}", slug)
    assert intent_slug(slug) == slug
    assert (slug == intent) == bool(re.fullmatch(r"[a-z0-9]+(_[a-z0-9]+)*", intent) and len(intent) <= 64)


@given(st.text(max_size=30), st.text(max_size=30))
def test_different_intents_never_share_a_slug(a, b):
    if a != b:
        assert intent_slug(a) != intent_slug(b)


def test_rules_doctests():
    assert doctest.testmod(importlib.import_module("rulelife.rules.definition")).failed == 0


@pytest.mark.parametrize("intent", NAMES)
def test_a_rule_keeps_the_exact_intent_under_a_slug_id(intent):
    rule = Rule(id=f"{intent_slug(intent)}.refund", intent=intent, patterns=["refund"], owner="tests")
    assert rule.intent == intent


def test_an_intent_longer_than_the_registry_holds_is_named():
    rule, problems = check_rule({"id": "x.y", "intent": "i" * (MAX_INTENT_LENGTH + 1), "patterns": ["a b"],
                                 "owner": "tests"})
    assert rule is None
    assert problems == [("intent", "is 121 characters long; the registry holds at most 120 characters")]


# ---------------------------------------------------------------- settings, tickets


def test_settings_written_with_any_intent_name_read_back_exactly(tmp_path):
    weights = {name: 2.0 for name in NAMES}
    ws = Workspace.create(tmp_path / "ws", settings={"intents": NAMES, "safety_intents": NAMES[3:],
                                                     "severity_weights": weights})
    assert ws.settings.intents == NAMES
    assert ws.settings.safety_intents == NAMES[3:]
    assert ws.settings.severity_weights == weights


def test_ticket_markdown_quotes_names_and_evidence():
    name = NAMES[-1]
    ticket = {"id": 7, "title": f"the {name} intent moved", "subject": f"bundle:{name}|en-US",
              "check": "coverage_drift", "locale": "en-US", "severity": "warning", "status": "open",
              "findings": 1, "created_at": "2026-01-04", "updated_at": "2026-01-04",
              "evidence": {"examples": [{"model_intent": "```"}]}, "events": []}
    text = render_markdown(ticket)
    assert text.splitlines()[0] == r'# Ticket 7: the Team \[/VIP\] \<b\>"a\|b"\</b\> \`x\` intent moved'
    assert 'subject: ``bundle:Team [/VIP] <b>"a|b"</b> `x`|en-US``' in text
    # The evidence holds three backticks, so its fence takes four.
    assert "\n````json\n" in text and text.rstrip().endswith("````")


def test_a_cli_error_quoting_a_name_with_console_markup_is_one_plain_line(tmp_path):
    ws = Workspace.create(tmp_path / "ws")
    result = runner.invoke(app, ["--workspace", str(ws.root), "rules", "show", "Billing [/VIP]"])
    assert result.exit_code == 1
    assert result.output.splitlines() == ["error: rule 'Billing [/VIP]' is not in the registry; check the id with "
                                          "`rulelife rules list`, or run `rulelife sync` if you just added it"]


# ---------------------------------------------------------------- mining


def _day_log(day: str, name: str, labels: list[str]) -> pd.DataFrame:
    """One day: the refund phrase once per label, plus chitchat and escalation traffic."""
    rows = ([("where is my refund", label) for label in labels] + [("hello there", "chitchat")] * 100
            + [("talk to an agent", "escalation")] * 10)
    return pd.DataFrame({
        "query_id": [f"{day}-{i}" for i in range(len(rows))],
        "ts": pd.Timestamp(day, tz="UTC") + pd.to_timedelta(range(len(rows)), unit="s"),
        "text": [text for text, _ in rows],
        "locale": "en-US",
        "model_intent": [label for _, label in rows],
        "model_confidence": 0.99,
    })


def test_an_intent_too_long_for_a_rule_is_skipped_with_the_reason(tmp_path):
    name = "Refund " * 20  # 140 characters
    ws = Workspace.create(tmp_path / "ws", settings={"intents": []})
    _day_log("2026-01-01", name, [name] * 100).to_parquet(ws.log_dir / "queries-2026-01-01.parquet", index=False)
    report = mine_workspace(ws)
    assert [c.intent for c in report.candidates] == ["chitchat"]
    too_long = [s for s in report.skipped if s.reason == "intent_too_long"]
    assert too_long and {s.intent for s in too_long} == {name}
    assert too_long[0].detail == "the intent has 140 characters; a rule's intent holds 120"
    status = next(s for s in report.statuses if s["intent"] == name)
    assert status["status"] == "none_passed" and "intent_too_long" in status["detail"]


# ---------------------------------------------------------------- end to end


def _variant(name: str) -> str:
    """Another intent that differs from ``name`` only in case where it can."""
    return name.swapcase() if name.swapcase() != name else f"{name}!"


@pytest.fixture
def workspace_for(tmp_path, db_url, monkeypatch):
    url, schema = db_url
    if schema:
        monkeypatch.setenv("RULELIFE_DB_SCHEMA", schema)

    def make(name: str) -> Workspace:
        labels = [name, _variant(name), "chitchat", "escalation", "Escalation"]
        # dataset_floor 120: the gate settles 100% agreement above 95% from about 80 rows.
        return Workspace.create(tmp_path / "ws", db_url=url, settings={
            "intents": labels, "safety_intents": ["escalation"], "dataset_floor": 120,
            "severity_weights": {name: 3.0, "escalation": 10.0}})

    return make


def invoke(ws: Workspace, *args: str):
    result = runner.invoke(app, ["--workspace", str(ws.root), *args])
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result


@pytest.mark.store
@pytest.mark.parametrize("name", NAMES)
def test_any_intent_name_from_mining_to_the_nightly(workspace_for, name):
    ws = workspace_for(name)
    slug = intent_slug(name)
    for day in ("2026-01-01", "2026-01-02", "2026-01-03"):
        _day_log(day, name, [name] * 100).to_parquet(ws.log_dir / f"queries-{day}.parquet", index=False)

    result = invoke(ws, "mine", "--until", "2026-01-01", "--json")
    assert result.exit_code == 0, result.output
    mined = [c for c in json.loads(result.output)["candidates"] if c["intent"] == name]
    rule_id = f"{slug}.mined_en_refund"
    assert [c["id"] for c in mined] == [rule_id]
    path = ws.rules_dir / slug / "mined_en_refund.yaml"
    assert mined[0]["path"] == str(path) and load_rule(path).intent == name

    result = invoke(ws, "sync", "--json")
    assert result.exit_code == 0, result.output
    assert rule_id in json.loads(result.output)["unchanged"]
    assert invoke(ws, "rules", "lint").exit_code == 0
    result = invoke(ws, "rules", "list")
    assert result.exit_code == 0 and name in result.output

    # Judged on later days than the one that proposed it.
    result = invoke(ws, "dataset", "build", rule_id, "--since", "2026-01-02")
    assert result.exit_code == 0, result.output
    result = invoke(ws, "promote", rule_id, "--actor", "ana")
    assert result.exit_code == 0, result.output

    result = invoke(ws, "classify", "where is my refund?", "--locale", "en-US", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["match"]["intent"] == name
    result = invoke(ws, "classify", "where is my refund?", "--locale", "en-US", "--explain")
    assert result.exit_code == 0 and result.output.startswith(f"{name}  by {rule_id}@")

    # The replayed day: every rule answer shadowed, so the model's label is known
    # for all 100. Labels are compared exactly: the case variant and "Escalation"
    # disagree, and only the exact safety intent "escalation" is a safety false positive.
    labels = [name] * 85 + [_variant(name)] * 10 + ["Escalation"] * 3 + ["escalation"] * 2
    classifier = RuleClassifier.from_store(ws.bundle_dir, shadow_rate=1.0)
    served = replay(_day_log("2026-01-04", name, labels), classifier)
    served.to_parquet(ws.log_dir / "queries-2026-01-04.parquet", index=False)
    result = invoke(ws, "monitor", "nightly", "--date", "2026-01-04", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["disabled"] == [rule_id]  # the safety false positives
    store = Store.from_workspace(ws)
    history, _ = load_history(store, pd.Timestamp("2026-01-04").date())
    store.dispose()
    row = history[history["rule_id"] == rule_id].iloc[0]
    assert (row["intent"], row["shadow_n"], row["agree_n"], row["safety_fp"]) == (name, 100, 85, 2)
    assert dict(row["fp_by_class"]) == {_variant(name): 10, "Escalation": 3, "escalation": 2}

    result = invoke(ws, "tickets", "list", "--json")
    assert result.exit_code == 0, result.output
    [ticket] = json.loads(result.output)
    assert (ticket["subject"], ticket["check"]) == (rule_id, "safety_fp")
    assert invoke(ws, "tickets", "show", str(ticket["id"])).exit_code == 0
    assert (ws.root / "tickets" / f"ticket-{ticket['id']:05d}.md").is_file()

    out = ws.root / "rule-health.html"
    result = invoke(ws, "report", "--out", str(out))
    assert result.exit_code == 0, result.output
    page = out.read_text(encoding="utf-8")
    assert html.escape(name, quote=True) in page
    if "<" in name:
        assert name not in page  # never raw HTML, not even in the embedded data
