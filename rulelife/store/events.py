"""Registry events: what changed in the registry or in the served bundle, kept for the sinks.

An event is written in the transaction of the change it reports (a rule's
state change and its audit row, a refused promotion), so it exists exactly
when the change does; :mod:`rulelife.monitoring.events` delivers it to the
folder and webhook sinks. Bundle events come from the bundle folder's
publish history (see :mod:`rulelife.serving.publish`) with an id derived from
the history line, so recording one twice is a no-op.

Event types (the README's Events section documents their payloads):

=========================  ==================================================
``rule.promoted``          a rule went active (the gate passed, on a dataset or live evidence)
``rule.shadowed``          a rule went to shadow (matched, never answering)
``rule.disabled``          disabled by a person, or by the nightly (``automatic``)
``rule.expired``           moved to expired
``rule.retired``           retired for good
``rule.demoted``           sent back to candidate
``rule.revalidated``       an active rule's expiry pushed back after a passing gate
``rule.promotion_refused`` the gate said no; every reason is in ``reasons``
``bundle.published``       CURRENT moved to a new bundle
``bundle.rolled_back``     CURRENT re-pointed at an earlier bundle, which is now pinned
``bundle.unpinned``        the pin was lifted: publishes follow the registry again
``model.changed``          the log's dominant ``model_version`` changed (the nightly; once per change)
=========================  ==================================================
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime

from sqlmodel import Session, select

from rulelife.rules.lifecycle import State
from rulelife.store.db import utcnow
from rulelife.store.models import AuditRow, EventRow

__all__ = ["TRANSITION_EVENTS", "new_uid", "record", "record_transition", "scalars"]

TRANSITION_EVENTS = {
    State.ACTIVE: "rule.promoted",
    State.SHADOW: "rule.shadowed",
    State.DISABLED: "rule.disabled",
    State.EXPIRED: "rule.expired",
    State.RETIRED: "rule.retired",
    State.CANDIDATE: "rule.demoted",
}


def new_uid() -> str:
    """A fresh event id: random, so two deployments posting to one receiver never collide."""
    return f"evt_{uuid.uuid4().hex}"


def scalars(evidence: dict | None) -> dict:
    """The plain fields of an evidence dict (numbers, strings, flags).

    Nested values (metric series, example queries, which may quote users'
    messages) stay in the audit log and are not sent to a chat channel.
    """
    return {k: v for k, v in (evidence or {}).items() if v is None or isinstance(v, (str, int, float, bool))}


def record(session: Session, type: str, *, subject: str, actor: str, data: dict, uid: str | None = None,
           at: datetime | None = None) -> EventRow | None:
    """Add an event to the caller's transaction; None when ``uid`` is already recorded."""
    if uid is not None and session.exec(select(EventRow.id).where(EventRow.uid == uid)).first() is not None:
        return None
    row = EventRow(uid=uid or new_uid(), type=type, at=at or utcnow(), actor=actor, subject=subject,
                   data=json.dumps(data, sort_keys=True, default=str))
    session.add(row)
    return row


def record_transition(session: Session, audit: AuditRow, intent: str) -> EventRow:
    """The event of a state change, from its audit row (flushed, so it has an id)."""
    data = {
        "rule_id": audit.rule_id, "intent": intent, "action": audit.action,
        "automatic": audit.action.startswith("auto_"),
        "from_state": audit.from_state, "to_state": audit.to_state,
        "from_version": audit.from_version, "to_version": audit.to_version,
        "reason": audit.reason, "audit_id": audit.id, "evidence": scalars(json.loads(audit.evidence)),
    }
    return record(session, TRANSITION_EVENTS[State(audit.to_state)], subject=audit.rule_id, actor=audit.actor,
                  data=data, at=audit.at)
