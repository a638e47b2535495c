"""Which log days chose a mined rule, so its evidence can come from other days.

A miner picks phrases that were pure in its window; measured on that same
window they look better than they are (the winner's curse: a phrase that was
156/156 because it was chosen for being 156/156). So the miner records the
days it selected on, and the gate only accepts evidence from days outside
them: later days of the log, or the rule's live shadow traffic.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta

from sqlmodel import Session, select

from rulelife.store import SelectionRow, Store, utcnow

__all__ = ["Selection", "Window", "day_after", "has_selection", "latest_selection", "record_selection"]


@dataclass(frozen=True)
class Window:
    """An inclusive range of UTC days.

    >>> Window(date(2026, 1, 1), date(2026, 1, 15)).overlaps(Window(date(2026, 1, 15), date(2026, 1, 30)))
    True
    >>> str(Window(date(2026, 1, 1), date(2026, 1, 15)))
    '2026-01-01..2026-01-15'
    """

    start: date
    end: date

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"a window ends on or after its start, got {self.start}..{self.end}")

    def overlaps(self, other: Window) -> bool:
        return self.start <= other.end and other.start <= self.end

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def to_list(self) -> list[str]:
        return [self.start.isoformat(), self.end.isoformat()]

    def __str__(self) -> str:
        return f"{self.start}..{self.end}"


def day_after(window: Window) -> date:
    return window.end + timedelta(days=1)


@dataclass(frozen=True)
class Selection:
    """A mined rule's selection window, and the held-out window its miner reported on."""

    rule_id: str
    window: Window
    heldout: Window | None
    figures: dict

    def to_dict(self) -> dict:
        return {"selection_window": self.window.to_list(),
                "heldout_window": self.heldout.to_list() if self.heldout else None, "figures": self.figures}


def record_selection(session: Session, rule_id: str, version: str, window: Window, *, heldout: Window | None,
                     actor: str, figures: dict) -> None:
    """Remember that ``window`` chose ``rule_id`` (in the caller's transaction)."""
    session.add(SelectionRow(
        rule_id=rule_id, rule_version=version, window_start=window.start, window_end=window.end,
        heldout_start=heldout.start if heldout else None, heldout_end=heldout.end if heldout else None,
        at=utcnow(), actor=actor, figures=json.dumps(figures, default=str)))


def has_selection(session: Session, rule_id: str, version: str, window: Window, heldout: Window | None) -> bool:
    """Whether ``window`` (and ``heldout``) is already recorded as having chosen this rule version."""
    query = select(SelectionRow.id).where(
        SelectionRow.rule_id == rule_id, SelectionRow.rule_version == version,
        SelectionRow.window_start == window.start, SelectionRow.window_end == window.end,
        SelectionRow.heldout_start == (heldout.start if heldout else None),
        SelectionRow.heldout_end == (heldout.end if heldout else None))
    return session.exec(query).first() is not None


def latest_selection(store: Store, rule_id: str) -> Selection | None:
    """The newest selection record of ``rule_id``; None for a hand-written rule."""
    with store.session() as session:
        row = session.exec(select(SelectionRow).where(SelectionRow.rule_id == rule_id)
                           .order_by(SelectionRow.at.desc(), SelectionRow.id.desc())).first()
    if row is None:
        return None
    heldout = Window(row.heldout_start, row.heldout_end) if row.heldout_start and row.heldout_end else None
    return Selection(row.rule_id, Window(row.window_start, row.window_end), heldout, json.loads(row.figures))
