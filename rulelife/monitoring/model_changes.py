"""A retrained model as an event: the nightly records which model labelled each day and when it changed.

The model labels the evidence every rule is judged on; when it is retrained
a rule's agreement can move with no change to the rule. So, per counted day:

1. :func:`record_day` keeps the versions the day's log named and the dominant
   one (a ``model_days`` row; a re-run replaces it);
2. :func:`detect_change` compares the day's dominant version with the
   previous counted day's. The first version ever seen is a start, not a
   change; a minority version (a canary) changes no dominant version. A
   change is a ``model_changes`` row (one per first day, so a re-run adds
   none) and a ``model.changed`` registry event (its id derived from the
   change, so it is recorded once);
3. the monitors are told the latest change (``MonitorContext.model_changed_on``):
   the CUSUM restarts its baseline there and, for ``model_revalidate_days``
   days (the review window), the agreement floor tickets instead of disabling;
4. at the window's end :func:`revalidate_change` re-validates every active
   rule against the new model's labels and files one ``model:<version>``
   ticket listing the rules whose agreement moved.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta

from sqlmodel import delete, select

from rulelife.monitoring.model_versions import dominant
from rulelife.store import ModelChangeRow, ModelDayRow, Store, events, utcnow

__all__ = ["ModelChange", "all_changes", "detect_change", "latest_change", "record_day", "review_window"]


@dataclass(frozen=True)
class ModelChange:
    """The dominant model version changed from ``previous_version`` to ``version`` on ``first_day``."""

    version: str
    previous_version: str
    first_day: date
    revalidated_on: date | None = None
    ticket_id: int | None = None

    @classmethod
    def of(cls, row: ModelChangeRow) -> ModelChange:
        return cls(row.version, row.previous_version, row.first_day, row.revalidated_on, row.ticket_id)

    def to_dict(self) -> dict:
        return {"version": self.version, "previous_version": self.previous_version,
                "first_day": self.first_day.isoformat(),
                "revalidated_on": None if self.revalidated_on is None else self.revalidated_on.isoformat(),
                "ticket_id": self.ticket_id}


def review_window(first_day: date, days: int) -> tuple[date, date]:
    """The days after a change (inclusive) in which the rules are reviewed, not judged: ``days`` of them."""
    return first_day, first_day + timedelta(days=days - 1)


def record_day(store: Store, day: date, versions: dict[str, int]) -> str | None:
    """Keep the versions ``day``'s log named (replacing a re-run's) and return the dominant one (None: none named)."""
    top = dominant(versions)
    with store.session() as session:
        session.exec(delete(ModelDayRow).where(ModelDayRow.day == day))
        if top is not None:
            session.add(ModelDayRow(day=day, model_version=top, versions=json.dumps(dict(sorted(versions.items()))),
                                    counted_at=utcnow()))
    return top


def detect_change(store: Store, day: date, *, actor: str, notes: list[str]) -> ModelChange | None:
    """The change ``day`` makes (recorded once, with its event), or None: no version, a start, or the same model."""
    with store.session() as session:
        today = session.get(ModelDayRow, day)
        if today is None:
            return None
        before = session.exec(select(ModelDayRow).where(ModelDayRow.day < day)
                              .order_by(ModelDayRow.day.desc())).first()
        if before is None:
            notes.append(f"model {today.model_version} labelled the traffic of {day}: the first model version seen "
                         "(a start, not a change)")
            return None
        if before.model_version == today.model_version:
            return None
        row = session.exec(select(ModelChangeRow).where(ModelChangeRow.first_day == day)).first()
        if row is None:
            row = ModelChangeRow(first_day=day, version=today.model_version, previous_version=before.model_version,
                                 detected_at=utcnow())
            session.add(row)
            events.record(session, "model.changed", subject=f"model:{today.model_version}", actor=actor,
                          uid=f"model.changed:{day.isoformat()}:{today.model_version}"[:64],
                          data={"version": today.model_version, "previous_version": before.model_version,
                                "first_day": day.isoformat(), "previous_day": before.day.isoformat(),
                                "versions": json.loads(today.versions)})
            notes.append(f"the model changed from {before.model_version} to {today.model_version} on {day}")
        return ModelChange.of(row)


def latest_change(store: Store, until: date | None = None) -> ModelChange | None:
    """The newest model change whose first day is on or before ``until`` (None: the newest of all)."""
    query = select(ModelChangeRow).order_by(ModelChangeRow.first_day.desc())
    if until is not None:
        query = query.where(ModelChangeRow.first_day <= until)
    with store.session() as session:
        row = session.exec(query).first()
    return None if row is None else ModelChange.of(row)


def all_changes(store: Store) -> list[ModelChange]:
    """Every recorded model change, oldest first."""
    with store.session() as session:
        rows = session.exec(select(ModelChangeRow).order_by(ModelChangeRow.first_day)).all()
    return [ModelChange.of(row) for row in rows]
