"""The webhook sink against a real HTTP server on 127.0.0.1: what a receiver gets, and what rulelife does
when the receiver refuses, asks to wait, fails, hangs, trickles or redirects."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlmodel import select
from typer.testing import CliRunner

from rulelife._version import __version__
from rulelife.cli import app
from rulelife.config import Workspace
from rulelife.monitoring import outbox, tickets
from rulelife.monitoring.contract import Action, Finding, Severity
from rulelife.serving import publish
from rulelife.store import EventDeliveryRow, EventRow, Store, utcnow

SECRET = "s3cret"
runner = CliRunner()


class Receiver:
    """A real HTTP server whose answers a test scripts, one per request (then ``default``).

    An answer is ``(status, headers)``, ``"hang"`` (never answer) or ``"trickle"`` (a byte every 0.2 s).
    """

    def __init__(self, host: str = "127.0.0.1"):
        self.answers: list = []
        self.default = (200, {})
        self.requests: list[dict] = []
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the stdlib's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append({"path": self.path, "headers": dict(self.headers), "body": body,
                                          "at": time.monotonic()})
                answer = receiver.answers.pop(0) if receiver.answers else receiver.default
                if answer == "hang":
                    receiver.release.wait(30)
                    return
                if answer == "trickle":
                    try:
                        while not receiver.release.wait(0.2):
                            self.wfile.write(b"H")
                            self.wfile.flush()
                    except OSError:  # the client gave up
                        pass
                    return
                status, headers = answer
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"no")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/hook"

    def payloads(self) -> list[dict]:
        return [json.loads(r["body"]) for r in self.requests]

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def make_ws(rules_workspace, rule_texts, receiver, monkeypatch):
    """A workspace with one rule (faq.hours), sending to ``receiver`` (settings as RULELIFE_* keywords)."""
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):  # straight to the loopback server
        monkeypatch.delenv(name, raising=False)

    def make(**settings: str):
        return rules_workspace({"faq/hours.yaml": rule_texts["faq/hours.yaml"]}, webhook_url=receiver.url,
                               **settings)

    return make


def activate(ws) -> None:
    """Two registry events: rule.promoted, then bundle.published."""
    publish.set_state(ws, "faq.hours", "active", actor="ana", reason="launch")


def deliveries(ws) -> list[EventDeliveryRow]:
    with Store.from_workspace(ws).session() as session:
        return list(session.exec(select(EventDeliveryRow).where(EventDeliveryRow.sink == "webhook")
                                 .order_by(EventDeliveryRow.id)).all())


def test_each_request_carries_the_event_id_a_signature_and_the_project_user_agent(make_ws, receiver):
    ws = make_ws(webhook_secret=SECRET)
    activate(ws)
    with Store.from_workspace(ws).session() as session:  # a ticket event rides the same outbox
        tickets.record_finding(session, Finding("faq.hours", "demo", Severity.WARNING, Action.TICKET,
                                                date(2026, 3, 1), "a finding"), ["folder", "webhook"])
    report = outbox.deliver_workspace(ws)
    assert (report.delivered, report.failed, report.dead) == (6, [], [])  # 3 events x (folder, webhook)
    assert sorted(p["type"] for p in receiver.payloads()) == ["bundle.published", "rule.promoted", "ticket.opened"]
    with Store.from_workspace(ws).session() as session:
        uids = [e.uid for e in session.exec(select(EventRow).order_by(EventRow.id)).all()]
    for request, payload in zip(receiver.requests, receiver.payloads(), strict=True):
        headers = request["headers"]
        assert headers["Idempotency-Key"] == headers["X-Rulelife-Event-Id"] == payload["id"]
        assert headers["X-Rulelife-Event-Type"] == payload["type"]
        assert headers["User-Agent"] == f"rulelife/{__version__}"
        assert headers["Content-Type"] == "application/json"
        signed = headers["X-Rulelife-Timestamp"].encode() + b"." + request["body"]
        expected = hmac.new(SECRET.encode(), signed, hashlib.sha256).hexdigest()
        assert headers["X-Rulelife-Signature"] == f"sha256={expected}"
        assert abs(int(headers["X-Rulelife-Timestamp"]) - time.time()) < 300
    sent = {p["type"]: p for p in receiver.payloads()}
    assert {sent["rule.promoted"]["id"], sent["bundle.published"]["id"]} == set(uids)
    assert sent["ticket.opened"]["ticket"]["subject"] == "faq.hours"


def test_without_a_secret_nothing_is_signed_and_slack_gets_one_line(make_ws, receiver):
    ws = make_ws(webhook_format="slack")
    activate(ws)
    outbox.deliver_workspace(ws)
    headers = receiver.requests[0]["headers"]
    assert "X-Rulelife-Signature" not in headers and headers["Idempotency-Key"].startswith("evt_")
    text = receiver.payloads()[0]
    assert list(text) == ["text"] and text["text"].startswith("faq.hours candidate -> active at ")


def test_a_permanent_4xx_is_dead_lettered_once_reported_and_retried_only_on_request(make_ws, receiver):
    ws = make_ws(webhook_attempts="3")
    activate(ws)
    receiver.default = (400, {})
    report = outbox.deliver_workspace(ws)
    # One request per event, not three: a 400 will not turn into a 200 by asking again.
    assert len(receiver.requests) == 2 and report.failed == []
    assert len(report.dead) == 2 and "refused the event for good: HTTP 400: no" in report.dead[0]
    assert [d.status for d in deliveries(ws)] == ["dead", "dead"]
    assert outbox.deliver_workspace(ws).pending is False and len(receiver.requests) == 2  # not retried nightly
    pending = runner.invoke(app, ["--workspace", str(ws.root), "events", "pending", "--json"])
    assert [(r["type"], r["sink"], r["status"]) for r in json.loads(pending.output)] == [
        ("rule.promoted", "webhook", "dead"), ("bundle.published", "webhook", "dead")]
    receiver.default = (200, {})  # the receiver was fixed
    first_ids = [r["headers"]["Idempotency-Key"] for r in receiver.requests]
    result = runner.invoke(app, ["--workspace", str(ws.root), "events", "retry"])
    assert result.exit_code == 0 and "2 dead-lettered deliveries pending again" in result.output
    assert [r["headers"]["Idempotency-Key"] for r in receiver.requests[2:]] == first_ids  # the same ids
    assert [d.status for d in deliveries(ws)] == ["delivered", "delivered"]


def test_retry_after_is_waited_for_within_a_run(make_ws, receiver):
    ws = make_ws(webhook_attempts="2")
    activate(ws)
    receiver.answers = [(429, {"Retry-After": "1"})]
    report = outbox.deliver_workspace(ws)
    assert report.delivered == 4 and not report.pending
    first, second = receiver.requests[:2]
    assert second["at"] - first["at"] >= 1.0  # asked for one second: not retried sooner
    assert first["headers"]["Idempotency-Key"] == second["headers"]["Idempotency-Key"]


def test_a_retry_after_longer_than_a_run_waits_is_kept_until_then(make_ws, receiver):
    ws = make_ws(webhook_attempts="3")
    activate(ws)
    receiver.answers = [(503, {"Retry-After": "3600"})]
    report = outbox.deliver_workspace(ws)
    assert len(receiver.requests) == 1  # no retry inside the run, nor for the next event
    assert "asked not to be called before" in report.failed[0] and "not tried" in report.failed[1]
    waiting = deliveries(ws)[0].next_attempt_at
    assert 3600 <= (waiting - utcnow()).total_seconds() <= 3602
    report = outbox.deliver_workspace(ws)
    assert len(receiver.requests) == 1 and "as the receiver asked" in report.failed[0]


def test_a_failing_receiver_keeps_every_event_and_the_command_exits_4(make_ws, receiver):
    ws = make_ws()
    activate(ws)
    receiver.default = (500, {})
    result = runner.invoke(app, ["--workspace", str(ws.root), "disable", "faq.hours", "--reason", "closed"])
    assert result.exit_code == 4, result.output
    assert "delivery pending (kept for the next run)" in result.output and "HTTP 500" in result.output
    assert len(receiver.requests) == 1  # one attempt from a command; the rest wait for the next run
    receiver.default = (200, {})
    result = runner.invoke(app, ["--workspace", str(ws.root), "events", "deliver"])
    assert result.exit_code == 0, result.output
    with Store.from_workspace(ws).session() as session:
        recorded = {e.uid for e in session.exec(select(EventRow)).all()}
    delivered = [p["id"] for p in receiver.payloads()[1:]]
    assert sorted(delivered) == sorted(recorded) and len(recorded) == 4  # nothing lost, nothing doubled


@pytest.mark.parametrize("answer", ["hang", "trickle"])
def test_a_receiver_that_hangs_or_trickles_costs_one_bounded_attempt_series(make_ws, receiver, answer):
    ws = make_ws(webhook_attempts="2", webhook_timeout="0.5")
    activate(ws)
    receiver.default = answer
    started = time.monotonic()
    report = outbox.deliver_workspace(ws)
    elapsed = time.monotonic() - started
    # Two attempts of at most 0.5 s for the first event; the second is not tried (the receiver would
    # hold it 30 s): kept for the next run.
    assert len(receiver.requests) == 2 and elapsed < 10
    assert "no answer within 0.5 s" in report.failed[0] and "not tried" in report.failed[1]
    assert [d.status for d in deliveries(ws)] == ["pending", "pending"]


def test_redirects_are_followed_only_to_the_same_host(make_ws, receiver):
    other = Receiver()
    try:
        ws = make_ws(webhook_attempts="1")
        activate(ws)
        receiver.answers = [(307, {"Location": f"http://127.0.0.1:{other.server.server_port}/hook"})]
        report = outbox.deliver_workspace(ws)
        assert other.requests == [] and f"redirect to 127.0.0.1:{other.server.server_port} not followed" in \
            report.failed[0]
        receiver.answers = [(308, {"Location": f"http://localhost:{receiver.server.server_port}/hook"}),
                            (302, {"Location": "/elsewhere"})]
        report = outbox.deliver_workspace(ws)
        assert "redirect to localhost" in report.failed[0]
        report = outbox.deliver_workspace(ws)
        assert "HTTP 302 redirect not followed" in report.failed[0]
        receiver.answers = [(307, {"Location": "/moved"})]  # same host: followed, body and headers kept
        report = outbox.deliver_workspace(ws)
        assert report.delivered == 2 and not report.pending
        moved = receiver.requests[-2]
        assert moved["path"] == "/moved" and json.loads(moved["body"])["type"] == "rule.promoted"
    finally:
        other.close()


def test_tickets_close_says_when_its_delivery_is_pending(make_ws, receiver):
    ws = make_ws()
    with Store.from_workspace(ws).session() as session:
        ticket = tickets.record_finding(session, Finding("faq.hours", "demo", Severity.WARNING, Action.TICKET,
                                                         date(2026, 3, 1), "a finding"), ["folder", "webhook"])
    receiver.default = (503, {})
    result = runner.invoke(app, ["--workspace", str(ws.root), "tickets", "close", str(ticket.id), "--reason", "ok"])
    assert result.exit_code == 4, result.output
    assert f"closed ticket {ticket.id}" in result.output and "delivery pending" in result.output


def test_a_proxy_from_the_environment_is_used(make_ws, receiver, monkeypatch):
    ws = make_ws()
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{receiver.server.server_port}")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.setenv("RULELIFE_WEBHOOK_URL", "http://hooks.example.invalid/rulelife")
    activate(ws)
    report = outbox.deliver_workspace(Workspace.load(ws.root))
    # The proxy (our receiver) got the absolute URL, as an HTTP proxy expects.
    assert report.delivered == 4
    assert [r["path"] for r in receiver.requests] == ["http://hooks.example.invalid/rulelife"] * 2
