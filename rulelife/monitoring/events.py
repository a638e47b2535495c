"""Events as the sinks receive them: registry events and ticket events, one message each.

Every message has a stable ``id`` (the same on every retry, so a receiver
de-duplicates on it), a ``type``, a time, a one-line ``summary`` and its
fields. Registry events (:mod:`rulelife.store.events`) become::

    {"id": "evt_…", "type": "rule.disabled", "at": "2026-03-02T02:31:07+00:00", "actor": "nightly",
     "subject": "order_tracking.where_is_my_order", "summary": "…", "data": {…}}

and ticket events keep the ticket beside the event, as they always did::

    {"id": "evt_…", "type": "ticket.opened", "at": "…", "summary": "…", "ticket": {…}, "event": {…}}

With ``webhook_format = "slack"`` the webhook gets ``{"text": summary}``
instead (a Slack or Mattermost incoming webhook).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlmodel import select

from rulelife.store import DeliveryRow, EventDeliveryRow, EventRow, Store, TicketEventRow, TicketRow

__all__ = ["Message", "event_dict", "list_events", "list_undelivered", "registry_message", "retry_dead",
           "ticket_event_uid", "ticket_message"]


@dataclass(frozen=True)
class Message:
    """One event for the sinks: its id, type, one-line summary and JSON payload;
    ``ticket`` (the whole ticket) for a ticket event, which the folder sink rewrites."""

    uid: str
    type: str
    at: str
    summary: str
    payload: dict
    ticket: dict | None = None


def ticket_event_uid(event: TicketEventRow) -> str:
    return event.uid or f"ticket-event-{event.id}"  # rows written before events had ids


def ticket_message(ticket: dict, event: TicketEventRow) -> Message:
    body = json.loads(event.body)
    event_data = {"id": event.id, "kind": event.kind, "at": event.at.isoformat(),
                  "day": event.day.isoformat() if event.day else None, "body": body}
    what = body.get("summary") or body.get("action") or body.get("reason") or ticket["title"]
    summary = (f"[{ticket['severity']}] ticket {ticket['id']} {event.kind} ({ticket['subject']}, {ticket['check']}): "
               f"{what}")
    uid = ticket_event_uid(event)
    payload = {"id": uid, "type": f"ticket.{event.kind}", "at": event_data["at"], "summary": summary,
               "ticket": ticket, "event": event_data}
    return Message(uid, payload["type"], payload["at"], summary, payload, ticket)


def event_dict(row: EventRow) -> dict:
    data = json.loads(row.data)
    return {"id": row.uid, "type": row.type, "at": row.at.isoformat(), "actor": row.actor, "subject": row.subject,
            "summary": _summary(row.type, row.actor, data), "data": data}


def registry_message(row: EventRow) -> Message:
    payload = event_dict(row)
    return Message(row.uid, row.type, payload["at"], payload["summary"], payload)


def _summary(kind: str, actor: str, data: dict) -> str:
    """One line a person reads in a chat channel."""
    rule = data.get("rule_id", "")
    if kind == "model.changed":
        return (f"the model changed from {data.get('previous_version')} to {data.get('version')} on "
                f"{data.get('first_day')}: agreement baselines restart there and the active rules are re-validated")
    if kind == "rule.promotion_refused":
        return f"promotion of {rule} to {data.get('target')} refused ({actor}): " + "; ".join(data.get("reasons", []))
    if kind == "rule.revalidated":
        return f"{rule} re-validated by {actor}: expires {data.get('expires_at')}"
    if kind.startswith("rule."):
        how = " automatically" if data.get("automatic") else ""
        return (f"{rule} {data.get('from_state')} -> {data.get('to_state')} at {data.get('to_version')}{how} "
                f"by {actor}: {data.get('reason')}")
    number = data.get("number")
    if kind == "bundle.unpinned":
        reason = f": {data['reason']}" if data.get("reason") else ""
        return f"the pin on bundle {number} was lifted by {actor}{reason}"
    changes = ", ".join(f"{sign}{len(data[key])}" for sign, key in (("+", "added"), ("-", "removed"), ("~", "changed"))
                        if data.get(key))
    what = f" ({changes} rules)" if changes else ""
    reason = f": {data['reason']}" if data.get("reason") else ""
    if kind == "bundle.rolled_back":
        forced = f"; forced past the registry for {', '.join(data['forced'])}" if data.get("forced") else ""
        return f"CURRENT rolled back to bundle {number} by {actor} and pinned{what}{reason}{forced}"
    return f"bundle {number} published by {actor}{what}{reason}"


def list_events(store: Store, *, subject: str | None = None, kind: str | None = None,
                limit: int = 50) -> list[tuple[dict, list[EventDeliveryRow]]]:
    """The newest registry events (of ``subject`` / ``kind`` if given), each with its deliveries."""
    with store.session() as session:
        query = select(EventRow).order_by(EventRow.at.desc(), EventRow.id.desc()).limit(limit)
        if subject is not None:
            query = query.where(EventRow.subject == subject)
        if kind is not None:
            query = query.where(EventRow.type == kind)
        rows = session.exec(query).all()
        ids = [r.id for r in rows]
        deliveries = session.exec(select(EventDeliveryRow).where(EventDeliveryRow.event_id.in_(ids))).all() \
            if ids else []
    by_event: dict[int, list[EventDeliveryRow]] = {}
    for d in deliveries:
        by_event.setdefault(d.event_id, []).append(d)
    return [(event_dict(r), sorted(by_event.get(r.id, []), key=lambda d: d.sink)) for r in rows]


def list_undelivered(store: Store) -> list[dict]:
    """Every delivery still pending or dead-lettered, tickets' and registry events', oldest first."""
    with store.session() as session:
        registry_rows = session.exec(
            select(EventDeliveryRow, EventRow).join(EventRow, EventRow.id == EventDeliveryRow.event_id)
            .where(EventDeliveryRow.status != "delivered")).all()
        ticket_rows = session.exec(
            select(DeliveryRow, TicketEventRow, TicketRow)
            .join(TicketEventRow, TicketEventRow.id == DeliveryRow.event_id)
            .join(TicketRow, TicketRow.id == TicketEventRow.ticket_id).where(DeliveryRow.status != "delivered")).all()
    keyed = [((e.at, 0, e.id, d.id), _undelivered(d, e.uid, e.type, e.at, e.subject)) for d, e in registry_rows]
    keyed += [((e.at, 1, e.id, d.id), _undelivered(d, ticket_event_uid(e), f"ticket.{e.kind}", e.at,
                                                    f"ticket {t.id}: {t.subject}")) for d, e, t in ticket_rows]
    return [row for _, row in sorted(keyed, key=lambda pair: pair[0])]


def _undelivered(delivery, uid: str, kind: str, at, subject: str) -> dict:
    return {"id": uid, "type": kind, "at": at.isoformat(), "subject": subject, "sink": delivery.sink,
            "status": delivery.status, "attempts": delivery.attempts, "last_error": delivery.last_error,
            "next_attempt_at": delivery.next_attempt_at.isoformat() if delivery.next_attempt_at else None}


def retry_dead(store: Store, uid: str | None = None) -> int:
    """Make dead-lettered deliveries (of event ``uid``, or all) pending again; return how many.

    For after the receiver was fixed: a dead letter is never retried on its own.
    """
    count = 0
    with store.session() as session:
        registry_ids = select(EventRow.id) if uid is None else select(EventRow.id).where(EventRow.uid == uid)
        ticket_ids = select(TicketEventRow.id) if uid is None else select(TicketEventRow.id).where(
            (TicketEventRow.uid == uid) | (TicketEventRow.id == _legacy_id(uid)))
        for model, ids in ((EventDeliveryRow, registry_ids), (DeliveryRow, ticket_ids)):
            for row in session.exec(select(model).where(model.status == "dead", model.event_id.in_(ids))).all():
                row.status, row.next_attempt_at = "pending", None
                session.add(row)
                count += 1
    return count


def _legacy_id(uid: str | None) -> int:
    """The row id in a ``ticket-event-<id>`` uid, or -1."""
    prefix = "ticket-event-"
    tail = uid[len(prefix):] if uid and uid.startswith(prefix) else ""
    return int(tail) if tail.isdigit() else -1
