"""The outbox: every ticket event and registry event delivered to every sink, at least once, in order.

A ticket event gets one outbox row per sink when it is recorded; a registry
event (recorded by layers that know no sinks) gets them at its first
delivery, for the sinks configured then. Delivery walks the pending rows
oldest first:

- delivered: the row is done;
- a transient failure (a webhook down, slow, 5xx, 429): the row stays pending
  for the next run, and the sink is not tried again in this run, so a
  receiver that hangs costs one bounded attempt series, not one per event;
- a permanent refusal (HTTP 400, 401, 404...): the row is dead-lettered,
  reported, and kept; `rulelife events retry` makes it pending again.

Nothing is ever deleted, so no event is lost; a receiver de-duplicates on the
event id, the same on every attempt.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlmodel import select, update

from rulelife.config import Workspace
from rulelife.errors import DeliveryError
from rulelife.monitoring.events import Message, registry_message, ticket_message
from rulelife.monitoring.tickets import FolderSink, get_ticket, ticket_dict
from rulelife.monitoring.webhook import WebhookSink
from rulelife.store import DeliveryRow, EventDeliveryRow, EventRow, Store, TicketEventRow, utcnow

__all__ = ["DeliveryReport", "deliver_pending", "deliver_workspace", "sinks_for"]

Sink = FolderSink | WebhookSink


def sinks_for(workspace: Workspace, *, attempts: int | None = None) -> dict[str, Sink]:
    """The workspace's sinks by name: the ticket folder, and the webhook when ``webhook_url`` is set.

    ``attempts`` overrides ``webhook_attempts`` (a command delivering on its
    way out tries once and leaves the retries to the nightly).
    """
    settings = workspace.settings
    sinks: dict[str, Sink] = {"folder": FolderSink(workspace.resolve(settings.ticket_dir))}
    if settings.webhook_url:
        sinks["webhook"] = WebhookSink(settings.webhook_url, attempts=attempts or settings.webhook_attempts,
                                       timeout=settings.webhook_timeout, secret=settings.webhook_secret,
                                       format=settings.webhook_format, max_wait=settings.webhook_max_wait)
    return sinks


@dataclass
class DeliveryReport:
    delivered: int = 0
    failed: list[str] = field(default_factory=list)  # one line per delivery still pending
    dead: list[str] = field(default_factory=list)  # one line per delivery the receiver refused for good, this run

    @property
    def pending(self) -> bool:
        """Something needs a person or the next run: a delivery pending, or one dead-lettered now."""
        return bool(self.failed or self.dead)

    def to_dict(self) -> dict:
        return {"delivered": self.delivered, "failed": self.failed, "dead": self.dead}


def deliver_workspace(workspace: Workspace, *, store: Store | None = None,
                      attempts: int | None = None) -> DeliveryReport:
    """:func:`deliver_pending` to the workspace's sinks."""
    return deliver_pending(store or Store.from_workspace(workspace), sinks_for(workspace, attempts=attempts))


def _queue_new_events(store: Store, sinks: list[str]) -> None:
    """Give each registry event not yet queued one outbox row per sink.

    The guarded update claims an event, so two processes delivering at once
    queue it once (the second's update matches no row).
    """
    with store.session() as session:
        ids = session.exec(select(EventRow.id).where(EventRow.queued.is_(False)).order_by(EventRow.id)).all()
    now = utcnow()
    for event_id in ids:
        with store.session() as session:
            claimed = session.exec(update(EventRow).where(EventRow.id == event_id, EventRow.queued.is_(False))
                                   .values(queued=True))
            if claimed.rowcount == 1:
                for sink in sinks:
                    session.add(EventDeliveryRow(event_id=event_id, sink=sink, updated_at=now))


@dataclass(frozen=True)
class _Pending:
    model: type  # DeliveryRow or EventDeliveryRow
    id: int
    event_id: int
    sink: str
    at: datetime
    next_attempt_at: datetime | None

    @property
    def label(self) -> str:
        kind = "ticket event" if self.model is DeliveryRow else "event"
        return f"{kind} {self.event_id} to {self.sink}"


def _pending(store: Store) -> list[_Pending]:
    """Every pending row of both outboxes, oldest event first."""
    with store.session() as session:
        rows = [_Pending(DeliveryRow, d.id, d.event_id, d.sink, at, d.next_attempt_at) for d, at in session.exec(
            select(DeliveryRow, TicketEventRow.at).join(TicketEventRow, TicketEventRow.id == DeliveryRow.event_id)
            .where(DeliveryRow.status == "pending")).all()]
        rows += [_Pending(EventDeliveryRow, d.id, d.event_id, d.sink, at, d.next_attempt_at) for d, at in session.exec(
            select(EventDeliveryRow, EventRow.at).join(EventRow, EventRow.id == EventDeliveryRow.event_id)
            .where(EventDeliveryRow.status == "pending")).all()]
    return sorted(rows, key=lambda p: (p.at, p.model is DeliveryRow, p.event_id, p.id))


def deliver_pending(store: Store, sinks: dict[str, Sink]) -> DeliveryReport:
    """Deliver every pending outbox row to its sink (see the module docstring)."""
    _queue_new_events(store, list(sinks))
    report = DeliveryReport()
    tickets: dict[int, dict] = {}
    broken: dict[str, str] = {}  # sink -> why it is not tried again this run
    now = utcnow()
    for row in _pending(store):
        sink = sinks.get(row.sink)
        if sink is None:
            report.failed.append(f"{row.label}: sink {row.sink!r} is not configured")
            continue
        if row.sink in broken:
            report.failed.append(f"{row.label}: not tried, {broken[row.sink]}")
            continue
        if row.next_attempt_at is not None and row.next_attempt_at > now:
            # A Retry-After speaks for the receiver, not one event: nothing more goes to it this run.
            broken[row.sink] = f"{row.sink} asked not to be called before {row.next_attempt_at:%Y-%m-%d %H:%M:%S} UTC"
            report.failed.append(f"{row.label}: waiting until {row.next_attempt_at:%Y-%m-%d %H:%M:%S} UTC, "
                                 "as the receiver asked")
            continue
        error = None
        try:
            sink.deliver(_message(store, row, tickets))
        except DeliveryError as exc:
            error = exc
        except OSError as exc:  # the folder sink: disk full, permissions
            error = DeliveryError(f"{row.sink}: {exc}")
        _record(store, row, error)
        if error is None:
            report.delivered += 1
        elif error.permanent:
            report.dead.append(f"{row.label}: {error}")
        else:
            broken[row.sink] = f"{row.sink} failed earlier in this run"
            report.failed.append(f"{row.label}: {error}")
    return report


def _message(store: Store, row: _Pending, tickets: dict[int, dict]) -> Message:
    with store.session() as session:
        if row.model is EventDeliveryRow:
            return registry_message(session.get(EventRow, row.event_id))
        event = session.get(TicketEventRow, row.event_id)
    if event.ticket_id not in tickets:
        ticket, events = get_ticket(store, event.ticket_id)
        tickets[event.ticket_id] = ticket_dict(ticket, events)
    return ticket_message(tickets[event.ticket_id], event)


def _record(store: Store, row: _Pending, error: DeliveryError | None) -> None:
    with store.session() as session:
        saved = session.get(row.model, row.id)
        saved.attempts += 1
        saved.updated_at = utcnow()
        saved.last_error = None if error is None else str(error)
        saved.status = "delivered" if error is None else "dead" if error.permanent else "pending"
        saved.next_attempt_at = error.retry_at if error is not None else None
        session.add(saved)
