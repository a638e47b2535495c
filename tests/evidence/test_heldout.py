"""Held-out evidence: a mined rule is judged on days that did not choose it.

The golden case of the winner's curse: ``parcel`` is pure by chance on the
days the miner chooses on (every query holding it is order tracking), and
on the later days half of the queries holding it are return requests.
"""

from __future__ import annotations

import json
from datetime import date

import pandas as pd
import pytest
from sqlmodel import select
from typer.testing import CliRunner

from rulelife.cli import app
from rulelife.config import Workspace
from rulelife.mining.mine import mine_workspace
from rulelife.store import PromotionRow, Store
from rulelife.store.selection import Window, latest_selection

pytestmark = pytest.mark.store

INTENTS = ["order_tracking", "cancel", "chitchat", "return_request"]
runner = CliRunner()


def day_rows(day: int) -> list[tuple[str, str]]:
    """Days 1-10 choose; on days 11-20 ``parcel`` also means sending a parcel back."""
    rows = [("where is my parcel", "order_tracking")] * (5 if day <= 10 else 3)
    rows += [("send the parcel back", "return_request")] * (0 if day <= 10 else 3)
    rows += [("cancel my subscription", "cancel")] * 10 + [("hello there", "chitchat")] * 5
    return rows


@pytest.fixture
def ws(new_workspace):
    workspace = new_workspace(dataset_floor="100", intents=json.dumps(INTENTS))
    frames = []
    for day in range(1, 21):
        rows = day_rows(day)
        frames.append(pd.DataFrame({
            "query_id": [f"d{day:02d}-{i:03d}" for i in range(len(rows))],
            "ts": pd.Timestamp(f"2026-02-{day:02d}", tz="UTC") + pd.to_timedelta(range(len(rows)), unit="min"),
            "text": [t for t, _ in rows], "locale": "en-US", "model_intent": [i for _, i in rows],
            "model_confidence": 0.99}))
    pd.concat(frames).to_parquet(workspace.log_dir / "queries.parquet", index=False)
    return Workspace.load(workspace.root)


def mined(ws) -> dict:
    report = mine_workspace(ws, since=date(2026, 2, 1), until=date(2026, 2, 20), min_support=20)
    assert report.window == (date(2026, 2, 1), date(2026, 2, 10))
    assert report.heldout == Window(date(2026, 2, 11), date(2026, 2, 20))
    return {c.rule.patterns: c for c in report.written}


def test_a_phrase_pure_by_chance_is_refused_on_the_held_out_days(ws):
    candidates = mined(ws)
    parcel = candidates[("parcel",)]
    # Chosen on days 1-10: 50 of 50. Counted on days 11-20: 30 of 60, 30 of them safety queries.
    assert (parcel.agree, parcel.fires) == (50, 50)
    assert (parcel.heldout_agree, parcel.heldout_fires) == (30, 60)
    assert parcel.heldout_unsafe == {"return_request": 30}  # a safety intent by default
    chosen = latest_selection(Store.from_workspace(ws), parcel.id)
    assert chosen.window == Window(date(2026, 2, 1), date(2026, 2, 10))

    base = ["--workspace", str(ws.root)]
    result = runner.invoke(app, [*base, "dataset", "build", parcel.id])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, [*base, "promote", parcel.id, "--actor", "ana"])
    assert result.exit_code == 1, result.output
    assert "agreement with the model 50.0%" in result.output and "return_request" in result.output
    assert "Traceback" not in result.output


def test_evidence_that_overlaps_the_choosing_days_is_refused_with_the_fix(ws):
    cancel = next(c for c in mined(ws).values() if c.intent == "cancel")
    base = ["--workspace", str(ws.root)]
    result = runner.invoke(app, [*base, "dataset", "build", cancel.id, "--since", "2026-02-01"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, [*base, "promote", cancel.id, "--actor", "ana"])
    assert result.exit_code == 1
    assert "overlap the days 2026-02-01..2026-02-10" in result.output
    assert f"rulelife dataset build {cancel.id} --since 2026-02-11" in result.output


def test_a_rule_that_holds_is_promoted_and_the_record_names_both_windows(ws):
    cancel = next(c for c in mined(ws).values() if c.intent == "cancel")
    assert (cancel.heldout_agree, cancel.heldout_fires) == (100, 100)
    base = ["--workspace", str(ws.root)]
    assert runner.invoke(app, [*base, "dataset", "build", cancel.id]).exit_code == 0
    result = runner.invoke(app, [*base, "promote", cancel.id, "--actor", "ana"])
    assert result.exit_code == 0, result.output
    with Store.from_workspace(ws).session() as session:
        record = session.exec(select(PromotionRow).where(PromotionRow.rule_id == cancel.id)).one()
    metrics = json.loads(record.metrics)
    assert metrics["selection_window"] == ["2026-02-01", "2026-02-10"]
    assert metrics["evidence_window"] == ["2026-02-11", "2026-02-20"]


def test_a_hand_written_rule_keeps_any_window(ws):
    path = ws.rules_dir / "cancel" / "by_hand.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("id: cancel.by_hand\nintent: cancel\npatterns: [cancel my subscription]\nowner: ana\n")
    base = ["--workspace", str(ws.root)]
    assert runner.invoke(app, [*base, "sync"]).exit_code == 0
    assert runner.invoke(app, [*base, "dataset", "build", "cancel.by_hand"]).exit_code == 0
    result = runner.invoke(app, [*base, "evaluate", "cancel.by_hand", "--json"])
    checks = {c["name"]: c for c in json.loads(result.output)["gate"]["checks"]}
    assert checks["held_out"]["passed"] and "hand-written" in checks["held_out"]["detail"]


def test_a_window_that_ends_before_it_starts_is_one_line_with_the_fix(ws):
    result = runner.invoke(app, ["--workspace", str(ws.root), "mine", "--since", "2026-02-10", "--until",
                                 "2026-02-01"])
    assert result.exit_code == 1
    assert "--until 2026-02-01 is before --since 2026-02-10" in result.output and "Traceback" not in result.output
