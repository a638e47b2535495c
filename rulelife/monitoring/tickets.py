"""Tickets: findings a person must look at, deduplicated, with an outbox.

One open ticket per subject × check (``Finding.dedupe_key``); a new finding
appends an event to it. Each event is put in the outbox once per sink, in the
same transaction, and delivered after the commit (:mod:`rulelife.monitoring.outbox`);
a failed delivery stays in the outbox for the next run, so a ticket is never
lost, and the event's fingerprint (key and day) means a re-run of a day never
appends twice. Each event has an id (``uid``) a receiver de-duplicates on.
"""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path

from sqlmodel import Session, select

from rulelife._files import atomic_write
from rulelife.errors import RulelifeError, UnknownTicket
from rulelife.monitoring.contract import Finding
from rulelife.monitoring.events import Message
from rulelife.store import DeliveryRow, Store, TicketEventRow, TicketRow, utcnow
from rulelife.store.events import new_uid

__all__ = [
    "FolderSink",
    "UnknownTicket",
    "close_ticket",
    "get_ticket",
    "list_tickets",
    "record_event",
    "record_finding",
    "render_markdown",
    "ticket_dict",
]

_SEVERITY_ORDER = {"info": 0, "warning": 1, "critical": 2}



def _queue(session: Session, event: TicketEventRow, sinks: list[str]) -> None:
    now = utcnow()
    for sink in sinks:
        session.add(DeliveryRow(event_id=event.id, sink=sink, updated_at=now))


def record_finding(session: Session, finding: Finding, sinks: list[str]) -> TicketRow | None:
    """Open or append to the finding's ticket; None if this day's finding is already there."""
    key = finding.dedupe_key
    fingerprint = f"{key}@{finding.day.isoformat()}"
    ticket = session.exec(select(TicketRow).where(TicketRow.open_key == key).with_for_update()).first()
    now = utcnow()
    if ticket is None:
        ticket = TicketRow(
            dedupe_key=key, open_key=key, subject=finding.subject, check=finding.check, locale=finding.locale,
            severity=finding.severity.value, title=finding.summary, created_at=now, updated_at=now,
            findings=0, first_day=finding.day, last_day=finding.day,
        )
        session.add(ticket)
        session.flush()
        kind = "opened"
    else:
        seen = session.exec(
            select(TicketEventRow.id).where(TicketEventRow.ticket_id == ticket.id,
                                            TicketEventRow.fingerprint == fingerprint)
        ).first()
        if seen is not None:
            return None
        kind = "appended"
        if _SEVERITY_ORDER[finding.severity.value] > _SEVERITY_ORDER.get(ticket.severity, 0):
            ticket.severity = finding.severity.value
        ticket.title = finding.summary
    ticket.findings += 1
    ticket.updated_at = now
    ticket.last_day = max(ticket.last_day, finding.day) if ticket.last_day else finding.day
    ticket.evidence = json.dumps(finding.evidence, default=str)
    session.add(ticket)
    event = TicketEventRow(ticket_id=ticket.id, fingerprint=fingerprint, kind=kind, at=now, day=finding.day,
                           body=json.dumps(finding.to_dict(), default=str), uid=new_uid())
    session.add(event)
    session.flush()
    _queue(session, event, sinks)
    return ticket


def record_event(session: Session, ticket: TicketRow, kind: str, fingerprint: str, body: dict,
                 sinks: list[str], day: date | None = None) -> bool:
    """Add a non-finding event (an action taken, a close) once per fingerprint."""
    seen = session.exec(
        select(TicketEventRow.id).where(TicketEventRow.ticket_id == ticket.id, TicketEventRow.fingerprint == fingerprint)
    ).first()
    if seen is not None:
        return False
    event = TicketEventRow(ticket_id=ticket.id, fingerprint=fingerprint, kind=kind, at=utcnow(), day=day,
                           body=json.dumps(body, default=str), uid=new_uid())
    session.add(event)
    session.flush()
    _queue(session, event, sinks)
    return True


def list_tickets(store: Store, *, status: str | None = "open") -> list[TicketRow]:
    with store.session() as session:
        query = select(TicketRow).order_by(TicketRow.id)
        if status and status != "all":
            query = query.where(TicketRow.status == status)
        return list(session.exec(query).all())


def get_ticket(store: Store, ticket_id: int) -> tuple[TicketRow, list[TicketEventRow]]:
    with store.session() as session:
        ticket = session.get(TicketRow, ticket_id)
        if ticket is None:
            raise UnknownTicket(f"no ticket {ticket_id}; see `rulelife tickets list --status all`")
        events = session.exec(
            select(TicketEventRow).where(TicketEventRow.ticket_id == ticket_id).order_by(TicketEventRow.id)
        ).all()
        return ticket, list(events)


def close_ticket(store: Store, ticket_id: int, *, actor: str, reason: str, sinks: list[str]) -> TicketRow:
    with store.session() as session:
        ticket = session.get(TicketRow, ticket_id)
        if ticket is None:
            raise UnknownTicket(f"no ticket {ticket_id}; see `rulelife tickets list --status all`")
        if ticket.status == "closed":
            raise RulelifeError(f"ticket {ticket_id} is already closed (by {ticket.closed_by})")
        ticket.status = "closed"
        ticket.open_key = None
        ticket.closed_at = utcnow()
        ticket.closed_by = actor
        ticket.close_reason = reason
        session.add(ticket)
        record_event(session, ticket, "closed", f"closed@{ticket.closed_at.isoformat()}",
                     {"actor": actor, "reason": reason}, sinks)
        return ticket


def ticket_dict(ticket: TicketRow, events: list[TicketEventRow] | None = None) -> dict:
    data = {
        "id": ticket.id, "subject": ticket.subject, "check": ticket.check, "locale": ticket.locale,
        "severity": ticket.severity, "status": ticket.status, "title": ticket.title,
        "created_at": ticket.created_at.isoformat(), "updated_at": ticket.updated_at.isoformat(),
        "closed_at": ticket.closed_at.isoformat() if ticket.closed_at else None, "closed_by": ticket.closed_by,
        "close_reason": ticket.close_reason, "findings": ticket.findings,
        "first_day": ticket.first_day.isoformat() if ticket.first_day else None,
        "last_day": ticket.last_day.isoformat() if ticket.last_day else None,
        "evidence": json.loads(ticket.evidence),
    }
    if events is not None:
        data["events"] = [{"id": e.id, "kind": e.kind, "at": e.at.isoformat(),
                           "day": e.day.isoformat() if e.day else None, "body": json.loads(e.body)} for e in events]
    return data


class FolderSink:
    """Writes ``ticket-<id>.json`` and ``ticket-<id>.md`` (the whole ticket, rewritten on each event), and
    each registry event as ``events/<time>-<type>-<id>.json`` (the webhook's payload; a redelivery rewrites it)."""

    name = "folder"

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def deliver(self, message: Message) -> None:
        if message.ticket is not None:
            base = self.folder / f"ticket-{message.ticket['id']:05d}"
            atomic_write(base.with_suffix(".json"), json.dumps(message.ticket, indent=2, default=str))
            atomic_write(base.with_suffix(".md"), render_markdown(message.ticket))
            return
        stamp = re.sub(r"[^0-9T]", "", message.at[:19]) + "Z"
        path = self.folder / "events" / f"{stamp}-{message.type}-{message.uid}.json"
        atomic_write(path, json.dumps(message.payload, indent=2, default=str, ensure_ascii=False))


def render_markdown(ticket: dict) -> str:
    """The ticket as Markdown; subjects, titles and evidence are quoted, so an intent's name shows as it is."""
    lines = [
        f"# Ticket {ticket['id']}: {_md(ticket['title'])}",
        "",
        f"- subject: {_code(ticket['subject'])}  check: {_code(ticket['check'])}  "
        f"locale: {_md(ticket['locale'] or '-')}",
        f"- severity: **{ticket['severity']}**, status: **{ticket['status']}**, findings: {ticket['findings']}",
        f"- opened {ticket['created_at']}, updated {ticket['updated_at']}",
        "",
        "## Events",
    ]
    for event in ticket.get("events", []):
        body = event["body"]
        what = body.get("summary") or body.get("action") or body.get("reason") or ""
        lines.append(f"- {event['at']} **{event['kind']}** {event['day'] or ''} {_md(what)}")
    evidence = json.dumps(ticket["evidence"], indent=2, default=str)
    fence = "`" * max(3, _longest_backtick_run(evidence) + 1)
    lines += ["", "## Latest evidence", "", f"{fence}json", evidence, fence, ""]
    return "\n".join(lines)


# The characters Markdown may read as syntax inside a line (emphasis, code,
# links, HTML, entities, tables, a heading's closing #); a backslash makes each
# literal. Line-start syntax (lists, headings) cannot occur: text never starts a line.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>#|~&])")


def _md(text: object) -> str:
    """``text`` as literal Markdown (intent names hold ``*``, ``_``, ``<``, ``|``...), on one line."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(str(text).split()))


def _longest_backtick_run(text: str) -> int:
    return max((len(run) for run in re.findall(r"`+", text)), default=0)


def _code(text: object) -> str:
    """``text`` as an inline code span, fenced by more backticks than it holds."""
    text = " ".join(str(text).split())
    fence = "`" * (_longest_backtick_run(text) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"
