"""The nightly job: idempotent re-runs, crashes, the lock, tickets and their sinks."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from datetime import date
from http.server import BaseHTTPRequestHandler, HTTPServer

import pandas as pd
import pytest
from sqlmodel import func, select

from rulelife.config import Workspace
from rulelife.errors import JobLocked, LogError
from rulelife.monitoring import nightly, tickets
from rulelife.monitoring.contract import Action, Finding, Monitor, Severity
from rulelife.rules.lifecycle import State
from rulelife.serving.bundle import BundleStore
from rulelife.store import DailyMetricRow, DeliveryRow, NightlyRunRow, Store, TicketEventRow, registry, utcnow

DAY1, DAY2 = date(2026, 2, 1), date(2026, 2, 2)


class LowAgreement(Monitor):
    """A real (small) monitor: disables a rule whose day's agreement is under 0.9."""

    name = "low_agreement"

    def check(self, history, context):
        today = history[history["date"] == pd.Timestamp(context.day)]
        findings = []
        for row in today.itertuples():
            state = context.rules.get(row.rule_id)
            if state is None or state.state != "active" or pd.isna(row.agreement) or row.agreement >= 0.9:
                continue
            findings.append(Finding(subject=row.rule_id, check=self.name, severity=Severity.CRITICAL,
                                    action=Action.DISABLE, day=context.day, locale=row.locale,
                                    summary=f"agreement {row.agreement:.2f} on {row.shadow_n} shadow rows",
                                    evidence={"agreement": float(row.agreement)}))
        return findings


class AlwaysTicket(Monitor):
    """A real (small) monitor: one ticket a day per active rule."""

    name = "always_ticket"

    def check(self, history, context):
        return [Finding(subject=r, check=self.name, severity=Severity.INFO, action=Action.TICKET, day=context.day,
                        summary="daily note") for r, info in sorted(context.rules.items()) if info.state == "active"]


@pytest.fixture
def ws(live_workspace):
    return live_workspace


def runtime_log(ws: Workspace, day: date, where_agree: int, where_disagree: int, *, write: bool = True) -> pd.DataFrame:
    """A day as the runtime writes it: rule hits, shadow rows with the model's label."""
    bundle = BundleStore(ws.bundle_dir).current()
    versions = {r.id: r.version for r in bundle.rules}
    rows = []
    for i in range(where_agree):
        rows.append(("where is my order", "order_tracking.where", True, "order_tracking"))
    for i in range(where_disagree):
        rows.append(("where is my order to return", "order_tracking.where", True, "return_request"))
    rows += [("where is my order", "order_tracking.where", False, None)] * 10
    rows += [("opening hours", "faq.hours", True, "faq")] * 5
    rows += [("hello", None, None, "chitchat")] * 5
    frame = pd.DataFrame(rows, columns=["text", "rule_id", "shadow", "model_intent"])
    frame["query_id"] = [f"q-{day}-{i}" for i in range(len(frame))]
    frame["ts"] = pd.Timestamp(day, tz="UTC") + pd.Timedelta(hours=12)
    frame["locale"] = "en-US"
    frame["model_confidence"] = [0.9 if m else None for m in frame["model_intent"]]
    frame["rule_version"] = [versions.get(r) if r else None for r in frame["rule_id"]]
    frame["bundle_version"] = pd.array([bundle.number if r else None for r in frame["rule_id"]], dtype="Int64")
    frame["shadow"] = frame["shadow"].astype("boolean")
    if write:
        frame.to_parquet(ws.log_dir / f"queries-{day}.parquet", index=False)
    return frame


def count(store, model) -> int:
    with store.session() as session:
        return session.exec(select(func.count()).select_from(model)).one()


def test_metrics_of_a_day_are_replaced_on_rerun(ws):
    runtime_log(ws, DAY1, where_agree=18, where_disagree=2)
    store = Store.from_workspace(ws)
    first = nightly.run_nightly(ws, DAY1, monitors=[])
    again = nightly.run_nightly(ws, DAY1, monitors=[])
    assert first.metric_rows == again.metric_rows == 2  # one row per rule × locale with traffic
    assert count(store, DailyMetricRow) == 2
    history, _ = nightly.load_history(store, DAY1)
    where = history.set_index("rule_id").loc["order_tracking.where"]
    assert (where.fires, where.shadow_n, where.agree_n, where.safety_fp) == (30, 20, 18, 2)
    assert where.agreement == pytest.approx(0.9)


def test_a_failing_rule_is_disabled_once_with_evidence_and_republished(ws):
    runtime_log(ws, DAY1, where_agree=10, where_disagree=10)
    store = Store.from_workspace(ws)
    report = nightly.run_nightly(ws, DAY1, monitors=[LowAgreement()])
    assert report.disabled == ["order_tracking.where"]
    assert report.bundle_published and report.bundle == 3  # setup published 1 and 2
    assert [r.id for r in BundleStore(ws.bundle_dir).current().rules] == ["faq.hours"]
    status = registry.get_status(store, "order_tracking.where")
    assert status.state == State.DISABLED
    audit = registry.audit_log(store, "order_tracking.where")[-1]
    assert audit.action == "auto_disable" and json.loads(audit.evidence)["check"] == "low_agreement"
    (ticket,) = tickets.list_tickets(store)
    assert (ticket.subject, ticket.check, ticket.findings) == ("order_tracking.where", "low_agreement", 1)
    # Re-running the day changes nothing: no second disable, ticket event or bundle.
    again = nightly.run_nightly(ws, DAY1, monitors=[LowAgreement()])
    assert again.disabled == [] and not again.bundle_published
    assert count(store, TicketEventRow) == 2  # opened + the disable action


def test_a_ticket_is_appended_per_day_and_never_doubled(ws):
    store = Store.from_workspace(ws)
    for day in (DAY1, DAY1, DAY2):
        runtime_log(ws, day, where_agree=20, where_disagree=0)
        nightly.run_nightly(ws, day, monitors=[AlwaysTicket()])
    open_tickets = tickets.list_tickets(store)
    assert [(t.subject, t.findings) for t in open_tickets] == [("faq.hours", 2), ("order_tracking.where", 2)]
    tickets.close_ticket(store, open_tickets[0].id, actor="ana", reason="known", sinks=["folder"])
    day3 = date(2026, 2, 3)
    runtime_log(ws, day3, where_agree=20, where_disagree=0)
    nightly.run_nightly(ws, day3, monitors=[AlwaysTicket()])
    assert [(t.subject, t.findings) for t in tickets.list_tickets(store)] == [
        ("order_tracking.where", 3), ("faq.hours", 1)]  # a closed ticket is not reopened: a new one starts
    folder = ws.root / "tickets"
    assert (folder / f"ticket-{open_tickets[0].id:05d}.md").read_text().count("**appended**") == 1


@pytest.mark.parametrize("where", ["apply", "publish", "deliver"])
def test_a_crash_anywhere_is_completed_by_a_rerun(ws, monkeypatch, where):
    runtime_log(ws, DAY1, where_agree=10, where_disagree=10)
    store = Store.from_workspace(ws)
    target = {"apply": "rulelife.monitoring.nightly._apply", "publish": "rulelife.monitoring.nightly.publish_active",
              "deliver": "rulelife.monitoring.nightly.deliver_pending"}[where]

    def crash(*args, **kwargs):
        raise RuntimeError("power cut")

    with monkeypatch.context() as patch:
        patch.setattr(target, crash)
        with pytest.raises(RuntimeError, match="power cut"):
            nightly.run_nightly(ws, DAY1, monitors=[LowAgreement()])
    report = nightly.run_nightly(ws, DAY1, monitors=[LowAgreement()])
    assert registry.get_status(store, "order_tracking.where").state == State.DISABLED
    assert [r.id for r in BundleStore(ws.bundle_dir).current().rules] == ["faq.hours"]
    assert count(store, TicketEventRow) == 2
    with store.session() as session:
        pending = session.exec(select(DeliveryRow).where(DeliveryRow.status == "pending")).all()
    assert pending == [] and report.exit_code == 0


def test_two_runs_cannot_interleave(ws):
    runtime_log(ws, DAY1, where_agree=20, where_disagree=0)
    store = Store.from_workspace(ws)
    with store.job_lock("nightly"):
        with pytest.raises(JobLocked, match="holds"):
            nightly.run_nightly(ws, DAY1, monitors=[], store=Store.from_workspace(ws))
    assert nightly.run_nightly(ws, DAY1, monitors=[]).status == "ok"


def runs(store) -> list[tuple[str, bool]]:
    """Each nightly_runs row's status and whether it has a finish time, oldest first."""
    with store.session() as session:
        rows = session.exec(select(NightlyRunRow).order_by(NightlyRunRow.id)).all()
    return [(r.status, r.finished_at is not None) for r in rows]


# A nightly process killed (SIGKILL: nothing of it runs after) while its monitors run.
_KILLED_NIGHTLY = """
import os, signal, sys
from datetime import date
from rulelife.config import Workspace
from rulelife.monitoring import nightly
from rulelife.monitoring.contract import Monitor

class Killed(Monitor):
    name = "killed"
    def check(self, history, context):
        os.kill(os.getpid(), signal.SIGKILL)

nightly.run_nightly(Workspace.load(sys.argv[1]), date.fromisoformat(sys.argv[2]), monitors=[Killed()])
"""


def test_a_killed_run_is_marked_crashed_by_the_next_run(ws):
    runtime_log(ws, DAY1, where_agree=20, where_disagree=0)
    store = Store.from_workspace(ws)
    killed = subprocess.run([sys.executable, "-c", _KILLED_NIGHTLY, str(ws.root), DAY1.isoformat()],
                            capture_output=True, check=False)
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()
    assert runs(store) == [("running", False)]
    before = utcnow()
    for _ in range(50):  # PostgreSQL frees a dead session's advisory lock once it notices the session is gone
        try:
            report = nightly.run_nightly(ws, DAY1, monitors=[])
            break
        except JobLocked:
            time.sleep(0.2)
    else:
        pytest.fail("the killed run's job lock was never freed")
    assert runs(store) == [("crashed", True), ("ok", True)]
    with store.session() as session:
        crashed = session.exec(select(NightlyRunRow).where(NightlyRunRow.status == "crashed")).one()
    assert crashed.finished_at >= before
    assert "marked 1 earlier run(s) left 'running' by a killed job as 'crashed'" in report.notes
    nightly.run_nightly(ws, DAY1, monitors=[])  # nothing left to mark: the rows stay as they are
    assert runs(store) == [("crashed", True), ("ok", True), ("ok", True)]


def test_a_run_holding_the_lock_is_never_marked_crashed(ws):
    runtime_log(ws, DAY1, where_agree=20, where_disagree=0)
    store = Store.from_workspace(ws)
    with store.job_lock("nightly"):
        with store.session() as session:  # the row of the run that holds the lock, still at work
            session.add(NightlyRunRow(day=DAY1, started_at=utcnow()))
        with pytest.raises(JobLocked):
            nightly.run_nightly(ws, DAY1, monitors=[], store=Store.from_workspace(ws))
        assert runs(store) == [("running", False)]
    # The holder let go of the lock without finishing its row: it is gone.
    nightly.run_nightly(ws, DAY1, monitors=[])
    assert runs(store) == [("crashed", True), ("ok", True)]


class _Hook(BaseHTTPRequestHandler):
    fail_left = 0
    received: list = []

    def do_POST(self):  # noqa: N802 - the stdlib's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if _Hook.fail_left > 0:
            _Hook.fail_left -= 1
            self.send_response(503)
        else:
            _Hook.received.append(json.loads(body))
            self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook():
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Hook.received = []
    yield server, f"http://127.0.0.1:{server.server_port}/hook"
    server.shutdown()


def test_webhook_retries_and_keeps_failed_deliveries(ws, webhook, monkeypatch):
    server, url = webhook
    monkeypatch.setenv("RULELIFE_WEBHOOK_URL", url)
    monkeypatch.setenv("RULELIFE_WEBHOOK_ATTEMPTS", "2")
    ws = Workspace.load(ws.root)
    runtime_log(ws, DAY1, where_agree=20, where_disagree=0)
    _Hook.fail_left = 1  # the first attempt fails, the retry succeeds
    report = nightly.run_nightly(ws, DAY1, monitors=[AlwaysTicket()])
    assert report.exit_code == 0
    tickets_sent = [p for p in _Hook.received if p["type"].startswith("ticket.")]
    assert sorted(p["ticket"]["subject"] for p in tickets_sent) == ["faq.hours", "order_tracking.where"]
    # The set-up's registry events go out too: two promotions and the two publishes they made.
    assert sorted(p["type"] for p in _Hook.received if not p["type"].startswith("ticket.")) == [
        "bundle.published", "bundle.published", "rule.promoted", "rule.promoted"]

    _Hook.fail_left = 10  # down for the whole of the next run
    runtime_log(ws, DAY2, where_agree=20, where_disagree=0)
    report = nightly.run_nightly(ws, DAY2, monitors=[AlwaysTicket()])
    assert report.exit_code == nightly.EXIT_DELIVERY_PENDING
    # The first event is tried twice (503 each time); the second is not tried once the webhook failed.
    assert len(report.deliveries.failed) == 2 and "503" in report.deliveries.failed[0]
    assert "not tried, webhook failed earlier in this run" in report.deliveries.failed[1]
    _Hook.fail_left = 0  # back up: the next run delivers what was kept
    report = nightly.run_nightly(ws, DAY2, monitors=[AlwaysTicket()])
    assert report.exit_code == 0 and report.deliveries.delivered == 2
    assert len(_Hook.received) == 8


def test_bad_input_is_explained(ws):
    runtime_log(ws, DAY1, where_agree=20, where_disagree=0)
    with pytest.raises(LogError, match="no log rows for 2026-02-05"):
        nightly.run_nightly(ws, date(2026, 2, 5), monitors=[])
    frame = runtime_log(ws, DAY2, 20, 0, write=False).drop(columns=["rule_id", "shadow"])
    frame.to_parquet(ws.log_dir / f"queries-{DAY2}.parquet", index=False)
    with pytest.raises(LogError, match="runtime column"):
        nightly.run_nightly(ws, DAY2, monitors=[])


def test_a_day_with_no_traffic_still_runs_the_monitors(ws):
    runtime_log(ws, DAY1, 20, 0).iloc[:0].to_parquet(ws.log_dir / f"queries-{DAY2}.parquet", index=False)
    report = nightly.run_nightly(ws, DAY2, monitors=[AlwaysTicket()])
    assert report.status == "no_traffic" and report.metric_rows == 0
    assert report.tickets_opened == 2


def test_a_day_of_zero_byte_files_is_a_day_without_traffic(ws):
    (ws.log_dir / f"queries-{DAY2}.parquet").write_bytes(b"")
    (ws.log_dir / f"queries-{DAY2}.csv").write_bytes(b"")
    report = nightly.run_nightly(ws, DAY2, monitors=[])
    assert report.status == "no_traffic" and report.metric_rows == 0
    assert len(report.log["files_empty"]) == 2


def test_a_bad_byte_costs_its_row_and_an_empty_file_costs_nothing(ws):
    frame = runtime_log(ws, DAY2, where_agree=20, where_disagree=0, write=False)
    frame.to_csv(ws.log_dir / f"queries-{DAY2}.csv", index=False)
    raw = (ws.log_dir / f"queries-{DAY2}.csv").read_bytes()
    # The first agreeing shadow row of order_tracking.where loses its text to a byte that is not UTF-8.
    (ws.log_dir / f"queries-{DAY2}.csv").write_bytes(raw.replace(b"where is my order", b"where is my \xffrder", 1))
    (ws.log_dir / f"queries-{DAY2}.parquet").write_bytes(b"")

    report = nightly.run_nightly(ws, DAY2, monitors=[])

    assert report.status == "ok"
    assert (report.log["rows_read"], report.log["rows_valid"], report.log["rows_quarantined"]) == (len(frame),
                                                                                                 len(frame) - 1, 1)
    assert report.log["reasons"] == {"expect_column_values_to_be_utf8(text)": 1}
    with Store.from_workspace(ws).session() as session:
        where = session.exec(select(DailyMetricRow).where(DailyMetricRow.rule_id == "order_tracking.where")).one()
    assert where.shadow_n == 19  # 20 labelled shadow rows, one quarantined
