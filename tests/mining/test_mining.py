import json

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from rulelife.cli._common import RulelifeGroup
from rulelife.cli.mine import mine
from rulelife.config import Workspace
from rulelife.errors import LogError, RuleError
from rulelife.mining.mine import mine_workspace
from rulelife.rules.definition import load_rule
from rulelife.rules.lint import lint_rules
from rulelife.store import Store, registry

INTENTS = ["order_tracking", "refund", "chitchat", "faq", "escalation"]


def write_log(ws, rows, name="queries-2026-01-01.parquet", day="2026-01-01"):
    frame = pd.DataFrame({
        "query_id": [f"{name}-{i}" for i in range(len(rows))],
        "ts": pd.Timestamp(day, tz="UTC") + pd.to_timedelta(range(len(rows)), unit="s"),
        "text": [r[0] for r in rows],
        "locale": "en-US",
        "model_intent": [r[1] for r in rows],
        "model_confidence": [r[2] for r in rows],
    })
    frame.to_parquet(ws.log_dir / name, index=False)


def traffic():
    return ([("track my package", "order_tracking", 0.99)] * 50 + [("i want a refund now", "refund", 0.99)] * 40
            + [("hello there", "chitchat", 0.99)] * 40 + [("what does shipping cost", "faq", 0.99)] * 40
            + [("talk to an agent", "escalation", 0.99)] * 30)


@pytest.fixture
def ws(tmp_path):
    workspace = Workspace.create(tmp_path / "ws")
    return Workspace.load(workspace.root, intents=INTENTS, safety_intents=["escalation"], shadow_rate=0.0,
                          model_call_cost=0.01)


def test_candidates_are_written_lint_clean_and_registered(ws):
    write_log(ws, traffic())
    report = mine_workspace(ws, min_support=20)
    assert report.written and report.sync is not None
    assert lint_rules(ws.rules_dir).ok
    states = {s.rule_id: s.state.value for s in registry.list_rules(Store.from_workspace(ws))}
    for candidate in report.written:
        assert states[candidate.id] == "candidate"
        path = ws.rules_dir / candidate.intent / f"{candidate.id.split('.', 1)[1]}.yaml"
        rule = load_rule(path)
        assert rule == candidate.rule and rule.owner == "miner" and "2026-01-01" in rule.description
    tracking = next(c for c in report.written if "package" in c.rule.patterns)
    assert tracking.fires_per_day == 50 and tracking.calls_saved_per_day == 50
    assert tracking.cost_saved_per_day == pytest.approx(0.5)
    json.dumps(report.to_dict(), default=str)


def test_rerun_writes_nothing_new(ws):
    write_log(ws, traffic())
    first = mine_workspace(ws, min_support=20)
    second = mine_workspace(ws, min_support=20)
    assert first.written and not second.written
    assert {s.reason for s in second.skipped} >= {"already_proposed"}
    assert lint_rules(ws.rules_dir).ok


def test_pattern_of_another_intent_is_not_proposed(ws):
    (ws.rules_dir / "faq").mkdir()
    (ws.rules_dir / "faq" / "pkg.yaml").write_text(
        "id: faq.pkg\nintent: faq\npatterns: [package]\nlocales: [en-US]\nowner: t\n", encoding="utf-8")
    write_log(ws, traffic())
    report = mine_workspace(ws, min_support=20)
    assert all("package" not in c.rule.patterns for c in report.candidates)
    assert any(s.phrase == "package" and s.reason == "conflict" for s in report.skipped)
    assert lint_rules(ws.rules_dir).ok


def test_dirty_rules_folder_is_refused(ws):
    (ws.rules_dir / "faq").mkdir()
    (ws.rules_dir / "faq" / "bad.yaml").write_text("id: faq.bad\nintent: faq\n", encoding="utf-8")
    write_log(ws, traffic())
    with pytest.raises(RuleError, match="before mining"):
        mine_workspace(ws)


def test_no_confident_predictions_writes_nothing(ws):
    write_log(ws, [(text, intent, 0.5) for text, intent, _ in traffic()])
    report = mine_workspace(ws, min_support=20)
    assert not report.candidates and not report.paths and report.sync is None
    assert "no model prediction at confidence >= 0.95" in report.notes[0]
    assert {s["status"] for s in report.statuses} == {"no_confident"}
    assert not list(ws.rules_dir.rglob("*.yaml"))


def test_empty_window_is_an_error(ws):
    write_log(ws, traffic())
    with pytest.raises(LogError):
        mine_workspace(ws, since=pd.Timestamp("2027-01-01").date())


def test_cli_json_and_table(ws, monkeypatch):
    write_log(ws, traffic())
    app = typer.Typer(cls=RulelifeGroup)
    app.command()(mine)
    app.command("noop")(lambda: None)  # two commands, so `mine` is a subcommand
    monkeypatch.setenv("RULELIFE_WORKSPACE", str(ws.root))
    monkeypatch.setenv("RULELIFE_INTENTS", json.dumps(INTENTS))
    monkeypatch.setenv("RULELIFE_SAFETY_INTENTS", '["escalation"]')
    result = CliRunner().invoke(app, ["mine", "--min-support", "20", "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["candidates"] and all(c["path"] is None for c in data["candidates"])
    result = CliRunner().invoke(app, ["mine", "--min-support", "20"])
    assert result.exit_code == 0, result.output
    assert "candidate rules" in result.output and "written" in result.output
    result = CliRunner().invoke(app, ["mine", "--since", "nope"])
    assert result.exit_code != 0 and "not a date" in result.output


def test_cli_mines_the_same_candidates_on_a_process_pool(ws, monkeypatch):
    write_log(ws, traffic())
    write_log(ws, traffic(), name="queries-2026-01-02.parquet", day="2026-01-02")
    app = typer.Typer(cls=RulelifeGroup)
    app.command()(mine)
    app.command("noop")(lambda: None)
    monkeypatch.setenv("RULELIFE_WORKSPACE", str(ws.root))
    monkeypatch.setenv("RULELIFE_INTENTS", json.dumps(INTENTS))
    monkeypatch.setenv("RULELIFE_SAFETY_INTENTS", '["escalation"]')
    runs = {}
    for engine in ("local", "local-pool"):
        result = CliRunner().invoke(app, ["mine", "--min-support", "20", "--dry-run", "--json", "--engine", engine])
        assert result.exit_code == 0, result.output
        runs[engine] = json.loads(result.output)
    local, pooled = runs["local"], runs["local-pool"]
    assert [c["id"] for c in pooled["candidates"]] == [c["id"] for c in local["candidates"]]
    assert [c["fires"] for c in pooled["candidates"]] == [c["fires"] for c in local["candidates"]]
    # The log report covers the days that chose the rules: the later half of the window is held out.
    assert pooled["log"]["rows_valid"] == local["log"]["rows_valid"] == 200
