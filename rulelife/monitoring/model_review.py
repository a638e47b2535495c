"""Re-validation of the active rules after a model change, and its one ticket.

At the end of a change's review window (``model_revalidate_days`` days from
its first day) every active rule, at its current version, is judged again on
the new model's labels: its agreement over the window's days against its
agreement over as many days before the change, each with the gate's 95%
Wilson interval (:func:`rulelife.evidence.evaluation.stats.wilson_interval`),
on the same live shadow rows the gate and the monitors read. A rule whose
two intervals do not overlap *moved*: the model now labels its traffic
otherwise. One ``model:<version>`` ticket (check ``model_revalidation``)
lists them, filed once: the change row remembers it, so neither a re-run nor
a closed ticket brings a second one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import date, timedelta

import pandas as pd
from sqlmodel import select

from rulelife.evidence.evaluation.stats import wilson_interval
from rulelife.monitoring.contract import Action, Finding, RuleInfo, Severity
from rulelife.monitoring.model_changes import ModelChange, review_window
from rulelife.monitoring.tickets import record_finding
from rulelife.store import DailyMetricRow, ModelChangeRow, Store

__all__ = ["CHECK", "AgreementShift", "agreement_shifts", "revalidate_change", "shifts_in"]

CHECK = "model_revalidation"


@dataclass(frozen=True)
class AgreementShift:
    """A rule's agreement with the old model's labels (``before``) and the new one's (``after``)."""

    rule_id: str
    rule_version: str
    before_n: int
    before_agree: int
    after_n: int
    after_agree: int

    @property
    def before(self) -> tuple[float, float]:
        return wilson_interval(self.before_agree, self.before_n)

    @property
    def after(self) -> tuple[float, float]:
        return wilson_interval(self.after_agree, self.after_n)

    @property
    def moved(self) -> bool:
        """Both windows measured and their 95% intervals do not overlap."""
        if not (self.before_n and self.after_n):
            return False
        (low0, high0), (low1, high1) = self.before, self.after
        return high1 < low0 or low1 > high0

    def to_dict(self) -> dict:
        return {**asdict(self), "before_interval": list(self.before), "after_interval": list(self.after),
                "before_agreement": self.before_agree / self.before_n if self.before_n else None,
                "after_agreement": self.after_agree / self.after_n if self.after_n else None, "moved": self.moved}


def agreement_shifts(store: Store, rules: Mapping[str, RuleInfo], before: tuple[date, date],
                     after: tuple[date, date]) -> list[AgreementShift]:
    """Each active rule's labelled fires and agreements (all locales) in the two inclusive day windows."""
    with store.session() as session:
        rows = session.exec(select(DailyMetricRow).where(DailyMetricRow.day >= before[0],
                                                         DailyMetricRow.day <= after[1])).all()
    history = pd.DataFrame([{"date": pd.Timestamp(r.day), "rule_id": r.rule_id, "rule_version": r.rule_version,
                             "serving": r.serving, "shadow_n": r.shadow_n, "agree_n": r.agree_n} for r in rows],
                           columns=["date", "rule_id", "rule_version", "serving", "shadow_n", "agree_n"])
    return shifts_in(history, rules, before, after)


def shifts_in(history: pd.DataFrame, rules: Mapping[str, RuleInfo], before: tuple[date, date],
              after: tuple[date, date]) -> list[AgreementShift]:
    """:func:`agreement_shifts` of a metrics table (the monitors' ``history``) instead of the store."""
    active = {rid: info.version for rid, info in rules.items() if info.state == "active"}
    serving = history["serving"].fillna("active") if "serving" in history else pd.Series("active", index=history.index)
    current = history["rule_id"].map(active)
    rows = history[(serving == "active").to_numpy(dtype=bool)
                   & (history["rule_version"] == current).fillna(False).to_numpy(dtype=bool)]
    day = rows["date"].dt.date

    def sums(window: tuple[date, date]) -> pd.DataFrame:
        inside = rows[((day >= window[0]) & (day <= window[1])).to_numpy(dtype=bool)]
        return inside.groupby("rule_id")[["shadow_n", "agree_n"]].sum()

    old, new = sums(before), sums(after)

    def get(frame: pd.DataFrame, rid: str, column: str) -> int:
        return int(frame.at[rid, column]) if rid in frame.index else 0

    return [AgreementShift(rid, active[rid], get(old, rid, "shadow_n"), get(old, rid, "agree_n"),
                           get(new, rid, "shadow_n"), get(new, rid, "agree_n")) for rid in sorted(active)]


def revalidate_change(store: Store, day: date, change: ModelChange, rules: dict[str, RuleInfo], days: int,
                      sinks: list[str]) -> dict | None:
    """Re-validate the active rules once ``day`` closes ``change``'s review window, and file its one ticket.

    Returns what was found (None: the window is still open, or the change was re-validated already).
    """
    start, end = review_window(change.first_day, days)
    if change.revalidated_on is not None or day < end:
        return None
    before = (start - timedelta(days=days), start - timedelta(days=1))
    shifts = agreement_shifts(store, rules, before, (start, end))
    moved = [s for s in shifts if s.moved]
    listed = "; ".join(f"{s.rule_id} {_share(s.before_agree, s.before_n)} -> {_share(s.after_agree, s.after_n)}"
                       for s in moved)
    summary = (f"The model changed from {change.previous_version} to {change.version} on {change.first_day}. "
               f"Re-validated {len(shifts)} active rule(s) on its labels ({start}..{end} against "
               f"{before[0]}..{before[1]}): "
               + (f"agreement moved for {len(moved)}: {listed}. Review each: fix the rule, or accept that the "
                  "new model labels its traffic otherwise." if moved else "no rule's agreement moved."))
    evidence = {"version": change.version, "previous_version": change.previous_version,
                "first_day": change.first_day.isoformat(), "after_window": [start.isoformat(), end.isoformat()],
                "before_window": [before[0].isoformat(), before[1].isoformat()],
                "moved": [s.rule_id for s in moved], "rules": [s.to_dict() for s in shifts]}
    finding = Finding(subject=f"model:{change.version}", check=CHECK, day=day, summary=summary, evidence=evidence,
                      severity=Severity.WARNING if moved else Severity.INFO, action=Action.TICKET)
    with store.session() as session:
        row = session.exec(select(ModelChangeRow).where(ModelChangeRow.first_day == change.first_day)
                           .with_for_update()).one()
        if row.revalidated_on is not None:
            return None
        ticket = record_finding(session, finding, sinks)
        row.revalidated_on, row.ticket_id = day, None if ticket is None else ticket.id
        session.add(row)
    return {"ticket_id": row.ticket_id, "moved": evidence["moved"], "rules": len(shifts)}


def _share(agree: int, n: int) -> str:
    return f"{agree / n:.1%} (n={n})" if n else "unmeasured"
