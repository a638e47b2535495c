"""A retrained model as an event: start vs change vs canary, recorded once, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pandas as pd
import pytest
from sqlmodel import func, select
from typer.testing import CliRunner

from rulelife.cli import app
from rulelife.config import Workspace
from rulelife.evidence import promotion
from rulelife.evidence.datasets import latest_dataset
from rulelife.monitoring import nightly
from rulelife.monitoring.model_changes import latest_change
from rulelife.serving.bundle import BundleStore
from rulelife.store import DailyMetricRow, EventRow, ModelChangeRow, ModelDayRow, Store

D1 = date(2026, 2, 1)


def day(n: int) -> date:
    return D1 + timedelta(days=n - 1)


def write_day(ws: Workspace, on: date, versions: list[str | None], *, where_agree: int = 40,
              hours_agree: int = 40) -> pd.DataFrame:
    """One day of runtime log: 40 labelled fires of each rule (the first ``*_agree`` agree, the rest
    the model calls faq / order_tracking), then 10 misses; row i names ``versions[i % len(versions)]``."""
    bundle = BundleStore(ws.bundle_dir).current()
    rule_versions = {r.id: r.version for r in bundle.rules}
    rows = [("where is my order", "order_tracking.where", True, "order_tracking" if i < where_agree else "faq")
            for i in range(40)]
    rows += [("opening hours", "faq.hours", True, "faq" if i < hours_agree else "order_tracking") for i in range(40)]
    rows += [("hello", None, None, "chitchat")] * 10
    frame = pd.DataFrame(rows, columns=["text", "rule_id", "shadow", "model_intent"])
    frame["query_id"] = [f"q-{on}-{i}" for i in range(len(frame))]
    frame["ts"] = pd.Timestamp(on, tz="UTC") + pd.Timedelta(hours=12)
    frame["locale"] = "en-US"
    frame["model_confidence"] = 0.9
    frame["rule_version"] = [rule_versions.get(r) if r else None for r in frame["rule_id"]]
    frame["bundle_version"] = pd.array([bundle.number if r else None for r in frame["rule_id"]], dtype="Int64")
    frame["shadow"] = frame["shadow"].astype("boolean")
    frame["model_version"] = pd.array([versions[i % len(versions)] for i in range(len(frame))], dtype="string")
    frame.to_parquet(ws.log_dir / f"queries-{on}.parquet", index=False)
    return frame


def count(store: Store, model, *where) -> int:
    with store.session() as session:
        return session.exec(select(func.count()).select_from(model).where(*where)).one()


@pytest.fixture
def ws(live_workspace):
    return live_workspace


def test_a_start_a_canary_and_a_change_are_told_apart_and_recorded_once(ws):
    store = Store.from_workspace(ws)
    write_day(ws, day(1), ["model-1"])
    first = nightly.run_nightly(ws, day(1), monitors=[])
    assert first.model == {"version": "model-1"}  # a start: no change
    assert any("first model version seen" in note for note in first.notes)
    # 9 rows in 10 by model-1, 1 by the model-2 canary: the dominant version stays model-1.
    write_day(ws, day(2), ["model-1"] * 9 + ["model-2"])
    canary = nightly.run_nightly(ws, day(2), monitors=[])
    assert canary.model == {"version": "model-1"} and count(store, ModelChangeRow) == 0
    with store.session() as session:
        assert session.get(ModelDayRow, day(2)).versions == '{"model-1": 81, "model-2": 9}'
    write_day(ws, day(3), ["model-2"])
    changed = nightly.run_nightly(ws, day(3), monitors=[])
    assert changed.model["change"] == {"version": "model-2", "previous_version": "model-1",
                                       "first_day": "2026-02-03", "revalidated_on": None, "ticket_id": None}
    again = nightly.run_nightly(ws, day(3), monitors=[])  # a re-run records nothing twice
    assert again.model == changed.model
    assert count(store, ModelChangeRow) == 1
    assert count(store, EventRow, EventRow.type == "model.changed") == 1
    write_day(ws, day(4), ["model-2"])
    nightly.run_nightly(ws, day(4), monitors=[])
    assert count(store, ModelChangeRow) == 1 and latest_change(store).first_day == day(3)
    assert latest_change(store, until=day(2)) is None


def test_a_day_naming_no_model_is_not_counted_between_two_days_of_the_same_model(ws):
    store = Store.from_workspace(ws)
    for n, versions in ((1, ["model-1"]), (2, [None]), (3, ["model-1"])):
        write_day(ws, day(n), versions)
        nightly.run_nightly(ws, day(n), monitors=[])
    assert count(store, ModelChangeRow) == 0 and count(store, ModelDayRow) == 2


def test_the_daily_metrics_carry_the_dominant_version_and_the_versions_seen(ws):
    store = Store.from_workspace(ws)
    write_day(ws, day(1), ["model-1"] * 9 + ["model-2"])
    nightly.run_nightly(ws, day(1), monitors=[])
    history, _ = nightly.load_history(store, day(1))
    with store.session() as session:
        rows = session.exec(select(DailyMetricRow)).all()
    assert {(r.model_version, r.model_versions) for r in rows} == {("model-1", '{"model-1": 81, "model-2": 9}')}
    assert len(history) == 2


@pytest.fixture
def review_ws(rules_workspace):
    """The shared two rules, active, with a 3-day review window after a model change."""
    from rulelife.serving import publish

    workspace = rules_workspace(model_revalidate_days="3")
    for rule_id in ("order_tracking.where", "faq.hours"):
        publish.set_state(workspace, rule_id, "active", actor="ana", reason="test setup")
    return workspace


def tickets_of(store: Store, check: str) -> list:
    from rulelife.monitoring import tickets

    return [t for t in tickets.list_tickets(store, status=None) if t.check == check]


def test_after_a_change_the_floor_tickets_in_the_window_one_ticket_lists_the_moved_rule_then_the_floor_disables(
        review_ws):
    ws, store = review_ws, Store.from_workspace(review_ws)
    # Days 1-3: model-1 agrees with both rules on all 40 labelled fires. Day 4 on: model-2 labels half of
    # order_tracking.where's fires faq (20 / 40); faq.hours keeps 40 / 40. Review window: days 4-6.
    reports = {}
    for n in range(1, 8):
        write_day(ws, day(n), ["model-1" if n < 4 else "model-2"], where_agree=40 if n < 4 else 20)
        reports[n] = nightly.run_nightly(ws, day(n))
    assert [n for n, r in reports.items() if "change" in r.model and r.model["change"]["first_day"] == "2026-02-04"] \
        == [4, 5, 6, 7]
    # The floor (0.95, 3 known days) is under on days 4, 5, 6: on day 6, inside the window, a ticket, no disable.
    floor_day6 = [f for f in reports[6].findings if f["check"] == "agreement_floor"]
    assert [(f["subject"], f["action"]) for f in floor_day6] == [("order_tracking.where", "ticket")]
    assert all(not r.disabled for n, r in reports.items() if n < 7)
    # Day 6 closes the window: one ticket lists the rule whose agreement moved (120/120 before, 60/120 after).
    assert reports[6].model["revalidation"]["moved"] == ["order_tracking.where"]
    (ticket,) = tickets_of(store, "model_revalidation")
    assert ticket.subject == "model:model-2" and ticket.findings == 1
    evidence = json.loads(ticket.evidence)
    assert evidence["moved"] == ["order_tracking.where"]
    assert [(r["rule_id"], r["before_n"], r["before_agree"], r["after_n"], r["after_agree"])
            for r in evidence["rules"]] == [("faq.hours", 120, 120, 120, 120),
                                            ("order_tracking.where", 120, 120, 120, 60)]
    # After the window the floor acts again: day 7 disables the rule.
    assert reports[7].disabled == ["order_tracking.where"]
    # Re-running the window's last day files nothing twice.
    again = nightly.run_nightly(ws, day(6))
    assert "revalidation" not in again.model and len(tickets_of(store, "model_revalidation")) == 1
    assert count(store, EventRow, EventRow.type == "model.changed") == 1


def test_a_safety_false_positive_disables_at_once_inside_the_review_window(review_ws):
    ws = review_ws
    write_day(ws, day(1), ["model-1"])
    nightly.run_nightly(ws, day(1))
    frame = write_day(ws, day(2), ["model-2"])
    frame.loc[0, "model_intent"] = "return_request"  # model-2 calls one "where is my order" a return: a safety FP
    frame.to_parquet(ws.log_dir / f"queries-{day(2)}.parquet", index=False)
    report = nightly.run_nightly(ws, day(2))
    assert report.model["change"]["first_day"] == "2026-02-02"
    assert report.disabled == ["order_tracking.where"]


def test_revalidate_without_since_starts_at_the_latest_model_change(review_ws):
    ws, store = review_ws, Store.from_workspace(review_ws)
    for n in range(1, 5):
        write_day(ws, day(n), ["model-1" if n < 3 else "model-2"])
        nightly.run_nightly(ws, day(n), monitors=[])
    assert promotion.latest_model_change(store) == day(3)
    result = CliRunner().invoke(app, ["--workspace", str(ws.root), "revalidate", "--within-days", "1000"])
    assert "evidence from 2026-02-03 on: the model changed that day" in result.output
    snapshot = latest_dataset(store, "order_tracking.where")
    assert snapshot.meta["model_versions"] == {"model-2": 80}  # days 3 and 4 only: 40 labelled fires a day


def test_the_health_page_shows_each_model_change_and_where_its_review_stands(review_ws):
    from rulelife.report.data import gather
    from rulelife.report.html import render_report

    ws, store = review_ws, Store.from_workspace(review_ws)

    def changes_on_page() -> str:
        page = render_report(gather(ws, store, residual=False))
        start = page.index('data-model="changes"')
        return page[start:page.index("</div>", start)]

    for n in range(1, 6):  # the change on day 4; a 3-day window: days 4-6
        write_day(ws, day(n), ["model-1" if n < 4 else "model-2"])
        nightly.run_nightly(ws, day(n))
    shown = changes_on_page()
    assert '<td class="">2026-02-04</td><td class="">model-1</td><td class="">model-2</td>' in shown
    assert "in review until 2026-02-06" in shown

    write_day(ws, day(6), ["model-2"])
    nightly.run_nightly(ws, day(6))
    (ticket,) = tickets_of(store, "model_revalidation")
    assert f"re-validated on 2026-02-06, ticket #{ticket.id}" in changes_on_page()


def test_the_health_page_says_when_no_model_change_is_recorded(ws):
    from rulelife.report.data import gather
    from rulelife.report.html import render_report

    write_day(ws, day(1), ["model-1"])
    nightly.run_nightly(ws, day(1))  # a start, not a change
    page = render_report(gather(ws, Store.from_workspace(ws), residual=False))
    assert "Model changes: none recorded" in page
