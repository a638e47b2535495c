"""The README's main job, end to end on a small simulated deployment."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from rulelife.cli import app
from rulelife.demo.quickstart import run_quickstart
from rulelife.store import Store


def test_quickstart_gates_serves_and_monitors(tmp_path):
    result = run_quickstart(tmp_path / "demo", history_days=14, live_days=21, queries_per_day=3000, seed=3)
    refused = {g.rule_id: g.reasons for g in result.gate if not g.promoted}
    # The broad catch-all fires on return requests: the gate says so in words.
    assert "order_tracking.my_order" in refused
    assert any("safety intents" in reason for reason in refused["order_tracking.my_order"])
    # At 3,000 queries a day some small rules miss the 1,000-row floor; those that pass serve.
    assert sum(g.promoted for g in result.gate) >= 10
    assert all(g.reasons for g in result.gate if not g.promoted)
    assert result.bundle_number is not None
    assert 0.3 < result.summary.coverage < 0.9
    assert len(result.nightly) == 21 and all(r.status == "ok" for r in result.nightly)
    # ui_rephrase halves order-tracking phrasings the rules know: coverage drift tickets follow.
    scenarios = json.loads((result.workspace.log_dir / "scenarios.json").read_text())["scenarios"]
    rephrase = next(s for s in scenarios if s["name"] == "ui_rephrase")
    drift = [t for t in result.tickets if t["check"] == "coverage_drift" and "order_tracking" in t["subject"]]
    assert drift and min(t["first_day"] for t in drift) >= rephrase["first_day"]
    assert (result.workspace.root / "tickets").is_dir()
    assert result.report is not None and result.report.stat().st_size > 0
    # The mined batch goes to shadow; a mined rule goes live only on its live evidence.
    assert result.candidates and result.shadow and result.shadow_day is not None
    from rulelife.store import registry

    store = Store.from_workspace(result.workspace)
    states = {s.rule_id: s.state.value for s in registry.list_rules(store)}
    earned = {g.rule_id for g in result.shadow if g.promoted}
    assert all(states[c["id"]] in ("shadow", "active", "disabled") for c in result.candidates)
    assert all(states[g.rule_id] in ("active", "disabled") for g in result.shadow if g.promoted)
    assert all(g.reasons for g in result.shadow if not g.promoted)
    assert not any(states[c["id"]] == "active" and c["id"] not in earned for c in result.candidates)
    # The shipped safety lexicon sends messages such as a damaged-book return to the model.
    assert result.vetoes > 0 and result.veto_example["veto"]
    assert all(rule.split("@")[0].split(".")[0] not in ("return_request", "escalation")
               for rule in result.veto_example["veto"])
    # The rules take the easy queries: the model is less accurate on the residual it serves than on all traffic.
    all_traffic, residual = result.residual["all_accuracy"], result.residual["residual_accuracy"]
    assert result.residual_shift == residual["accuracy"] - all_traffic["accuracy"] < 0
    assert residual["n"] < all_traffic["n"]
    # The training mix is written into the workspace, rule-answered queries included.
    mix = result.training_mix
    manifest = json.loads((result.workspace.root / "training-mix" / "manifest.json").read_text())
    assert mix["path"] == str(result.workspace.root / "training-mix") and mix["rows"] == manifest["rows"] > 0
    answered = sum(sum(by_source.values()) for stratum, by_source in manifest["rows_by_stratum"].items()
                   if not stratum.startswith("<residual>|"))
    assert 0 < answered < mix["rows"]


def test_quickstart_cli_is_rerunnable(tmp_path):
    runner = CliRunner()
    args = ["quickstart", str(tmp_path / "demo"), "--history-days", "7", "--live-days", "7",
            "--queries-per-day", "1500", "--json"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    data = json.loads(again.stdout)  # the JSON document alone on stdout; the steps go to stderr as they happen
    assert data["bundle"] == json.loads(first.stdout)["bundle"]  # nothing new to publish on a re-run
    steps = first.stderr.splitlines()
    assert steps[0].endswith("shipped rules registered as candidates")
    assert [s for s in steps if s.startswith("gate: ")] and steps[-1].startswith("rule health page written to ")
    assert [s for s in steps if s.startswith("model accuracy on the residual ")]
    assert data["training_mix"]["rows"] > 0 and data["residual_shift"] is not None
    text = runner.invoke(app, [*args[:-1]])  # the same run, for a person
    assert text.exit_code == 0, text.output
    assert "model accuracy on the residual " in text.stdout and " on all labelled traffic (n=" in text.stdout
    assert "rows (" in text.stdout and "training-mix (rulelife export training-mix)" in text.stdout
    assert again.stderr.splitlines()[0].endswith(": 0 shipped rules registered as candidates")
