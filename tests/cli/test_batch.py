"""Many rules through ``dataset build``, ``evaluate`` and ``promote`` in one command (SQLite and PostgreSQL)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from rulelife.cli import app
from rulelife.config import Workspace
from rulelife.errors import LifecycleError
from rulelife.evidence import batch
from rulelife.rules.lifecycle import State
from rulelife.serving import publish
from rulelife.serving.bundle import BundleStore
from rulelife.store import Store, registry

runner = CliRunner()

RULES = {
    "faq/opening_hours.yaml": 'id: faq.opening_hours\nintent: faq\npatterns: ["opening hours"]\n',
    # Fires on 300 order-tracking and 20 return-request queries: refused.
    "order_tracking/my_order.yaml": 'id: order_tracking.my_order\nintent: order_tracking\npatterns: ["my order"]\n',
    "recommendation/manga_like.yaml": 'id: recommendation.manga_like\nintent: recommendation\npatterns: ["manga like"]\n',
}
HOURS, ORDER, LIKE = "faq.opening_hours", "order_tracking.my_order", "recommendation.manga_like"
TRAFFIC = (
    [(f"what are your opening hours {i}", "faq") for i in range(400)]
    + [(f"where is my order #{i}", "order_tracking") for i in range(300)]
    + [(f"i want to return my order #{i}", "return_request") for i in range(20)]
    + [(f"recommend a manga like berserk {i}", "recommendation") for i in range(300)]
)


@pytest.fixture
def ws(new_workspace):
    """Three candidates and one day of 1,020 model-labelled queries; dataset floor 300."""
    workspace = new_workspace(dataset_floor="300")
    for name, text in RULES.items():
        path = workspace.rules_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + 'locales: ["en-US"]\nowner: ds\ndescription: test rule.\n')
    registry.sync_workspace(workspace, actor="ana")
    frame = pd.DataFrame(TRAFFIC, columns=["text", "model_intent"])
    frame["query_id"] = [f"q-{i:05d}" for i in range(len(frame))]
    frame["ts"] = pd.Timestamp("2026-03-01", tz="UTC") + pd.to_timedelta(range(len(frame)), unit="s")
    frame["locale"] = "en-US"
    frame["model_confidence"] = 0.9
    frame.to_parquet(workspace.log_dir / "queries-2026-03-01.parquet", index=False)
    return workspace


def invoke(ws: Workspace, *args: str):
    return runner.invoke(app, ["--workspace", str(ws.root), *args])


def flat(output: str) -> str:
    """The output as one line: table cells and error boxes wrap long messages."""
    return " ".join(output.replace("│", " ").split())


def test_a_batch_with_one_refusal_promotes_the_others_and_publishes_once(ws):
    result = invoke(ws, "dataset", "build", HOURS, ORDER, LIKE)
    assert result.exit_code == 0, result.output
    assert "3 datasets from one read of the log: 1020 rows read" in result.output

    result = invoke(ws, "promote", HOURS, ORDER, LIKE, "--actor", "ben")
    assert result.exit_code == 1, result.output
    assert "2 promoted, 1 refused, 0 errors" in result.output
    # Both failed checks of the refused rule are in the table, not just the first.
    assert "agreement with the model 93.8%" in flat(result.output)
    assert "return_request: 20" in flat(result.output)
    assert "published bundle 1" in result.output and "Traceback" not in result.output

    bundles = BundleStore(ws.bundle_dir)
    assert bundles.numbers() == [1] and len(bundles.history()) == 1  # one publish, not one a rule
    assert sorted(r.id for r in bundles.current().rules) == [HOURS, LIKE]
    store = Store.from_workspace(ws)
    assert {s.rule_id: s.state for s in registry.list_rules(store)} == {
        HOURS: State.ACTIVE, ORDER: State.CANDIDATE, LIKE: State.ACTIVE}


def test_state_candidate_selects_exactly_the_candidates(ws):
    publish.set_state(ws, HOURS, "active", actor="ana", reason="test setup")
    result = invoke(ws, "dataset", "build", "--state", "candidate", "--json")
    assert result.exit_code == 0, result.output
    built = json.loads(result.output)
    assert [d["rule_id"] for d in built["datasets"]] == [ORDER, LIKE]
    assert built["log"]["rows_read"] == 1020

    # Shadow never answers, so a batch goes there without a gate and starts gathering live evidence.
    result = invoke(ws, "promote", "--state", "candidate", "--to", "shadow", "--actor", "ben", "--json")
    assert result.exit_code == 0, result.output
    verdicts = {r["rule_id"]: (r["verdict"], r["to"]) for r in json.loads(result.output)["rules"]}
    assert verdicts == {ORDER: ("promoted", "shadow"), LIKE: ("promoted", "shadow")}

    result = invoke(ws, "promote", "--state", "shadow", "--actor", "ben")  # judged on live evidence: none yet
    assert result.exit_code == 1 and "0 promoted, 2 refused, 0 errors" in result.output
    assert "no live evidence yet" in result.output

    result = invoke(ws, "evaluate", "--state", "disabled")
    assert result.exit_code == 0, result.output
    assert "no rule is disabled: nothing to do" in result.output


def test_promote_json_shape(ws):
    invoke(ws, "dataset", "build", HOURS, ORDER)
    result = invoke(ws, "promote", HOURS, ORDER, "--actor", "ben", "--json")
    assert result.exit_code == 1, result.output
    data = json.loads(result.output)
    assert {k: data[k] for k in ("action", "passed", "counts", "bundle", "bundle_published")} == {
        "action": "promote", "passed": False, "counts": {"promoted": 1, "refused": 1, "error": 0},
        "bundle": 1, "bundle_published": True}
    hours, order = data["rules"]
    assert set(hours) == {"rule_id", "intent", "version", "verdict", "to", "agreement", "low", "high", "rows",
                          "reasons"}
    assert (hours["rule_id"], hours["intent"], hours["verdict"], hours["to"]) == (HOURS, "faq", "promoted", "active")
    assert (hours["agreement"], hours["rows"], hours["reasons"]) == (1.0, 300, [])
    # 300 of the 320 queries "my order" fires on are order tracking: 300 / 320.
    assert order["verdict"] == "refused" and order["agreement"] == 300 / 320
    assert order["low"] < order["agreement"] < order["high"]
    # Agreement, the 20 return requests it fires on, and 'order' living next to return requests.
    assert len(order["reasons"]) == 3 and "'order' in 20 of its 320 queries" in order["reasons"][0]


def test_evaluate_many_exits_1_when_any_fails(ws):
    invoke(ws, "dataset", "build", HOURS, ORDER)
    result = invoke(ws, "evaluate", HOURS, ORDER, LIKE, "--json")
    assert result.exit_code == 1, result.output
    data = json.loads(result.output)
    assert data["counts"] == {"passed": 1, "failed": 2, "error": 0} and data["bundle"] is None
    like = data["rules"][2]
    assert like["verdict"] == "failed" and like["agreement"] is None
    assert like["reasons"] == [f"no dataset for {LIKE}; build one with `rulelife dataset build {LIKE}`"]
    result = invoke(ws, "evaluate", HOURS, "--json")  # one rule id: the whole evaluation, as before
    assert result.exit_code == 0 and json.loads(result.output)["gate"]["passed"] is True


def test_a_lifecycle_error_is_one_rules_verdict(ws):
    invoke(ws, "dataset", "build", HOURS, LIKE)
    invoke(ws, "promote", HOURS, "--actor", "ben")
    invoke(ws, "retire", LIKE, "--reason", "a duplicate", "--actor", "ben")
    result = invoke(ws, "promote", HOURS, LIKE, "--actor", "ben")
    assert result.exit_code == 1, result.output
    assert "1 promoted, 0 refused, 1 error" in result.output
    # A rule already active is what a re-run of an interrupted batch meets: it passes, and says so.
    assert "already active at" in flat(result.output) and "nothing to promote" in flat(result.output)
    assert f"cannot move {LIKE} from retired to active" in flat(result.output)
    assert BundleStore(ws.bundle_dir).numbers() == [1]


@pytest.mark.parametrize("command", [["dataset", "build"], ["evaluate"], ["promote", "--actor", "ben"]])
def test_rule_ids_or_state_exactly_one(ws, command):
    result = invoke(ws, *command)
    assert result.exit_code == 2
    assert "name one or more rule ids, or select rules with --state" in flat(result.output)
    result = invoke(ws, *command, HOURS, "--state", "candidate")
    assert result.exit_code == 2
    assert "name rule ids or --state, not both" in flat(result.output)
    result = invoke(ws, *command, "--state", "pending")
    assert result.exit_code == 2 and "'pending' is not one of 'candidate'" in flat(result.output)


def test_batch_refusals_of_the_whole_command(ws):
    result = invoke(ws, "promote", HOURS, "faq.nope", "order.nope", "--actor", "ben")
    assert result.exit_code == 1
    assert "not in the registry: faq.nope, order.nope; nothing was changed" in flat(result.output)
    assert "Traceback" not in flat(result.output)
    assert registry.get_status(Store.from_workspace(ws), HOURS).state == State.CANDIDATE

    # --to is a choice: refused before anything runs (the library refuses it too, for callers in Python)
    result = invoke(ws, "promote", HOURS, LIKE, "--to", "retired", "--actor", "ben")
    assert result.exit_code == 2 and "'retired' is not one of 'shadow', 'active'" in flat(result.output)
    assert registry.get_status(Store.from_workspace(ws), LIKE).state == State.CANDIDATE
    with pytest.raises(LifecycleError, match="promote moves a rule to shadow or active, not retired"):
        batch.promote_many(ws, [HOURS, LIKE], actor="ben", to="retired")

    result = invoke(ws, "dataset", "build", HOURS, "faq.nope")
    assert result.exit_code == 1 and "not in the registry: faq.nope" in flat(result.output)

    result = invoke(ws, "evaluate", HOURS, LIKE, "--html", str(ws.root / "page.html"))
    assert result.exit_code == 2 and "writes the page of one rule; name a single rule id" in flat(result.output)
