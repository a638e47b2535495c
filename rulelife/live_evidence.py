"""Promotion of a shadow rule on its live evidence instead of a dataset.

A shadow rule is matched by the runtime but never answers; the nightly
counts, per day, the queries it would have answered and, where the model
was called, whether the model agreed (``DailyMetricRow`` rows with
``serving = "shadow"``). Those rows are rows the rule never saw when it
was written or mined, so they are honest evidence. Promoting it to active
sums them for its current version (on any day outside the days a miner chose
it on) and runs the promotion gate's checks on the sum: agreement judged on ``gate_on`` (the 95%
Wilson interval's lower bound by default) against ``agreement_floor``, zero
safety false positives, and at least ``dataset_floor`` labelled rows.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import date, timedelta

from sqlmodel import select

from rulelife import registry
from rulelife.config import Settings, Workspace
from rulelife.errors import GateRefused
from rulelife.evaluation.stats import wilson_interval
from rulelife.gate import Check, GateDecision
from rulelife.lifecycle import State
from rulelife.selection import latest_selection
from rulelife.operations import PublishResult, publish_active
from rulelife.store import AuditRow, DailyMetricRow, PromotionRow, Store, utcnow

__all__ = ["LiveEvidence", "LivePromotionResult", "check_live", "live_evidence", "promote_live"]

RECENT_DAYS = 7  # the window of the daily labelling rate that estimates the days still needed
KIND = "live shadow"


@dataclass(frozen=True)
class LiveEvidence:
    """The summed live evidence of one shadow rule version."""

    rule_id: str
    rule_version: str
    since: date  # the day the version last entered shadow (wall clock; informative)
    first_day: date | None  # first and last day with a metrics row
    last_day: date | None
    fires: int  # queries it would have answered
    labelled: int  # of those, the ones the model labelled
    agree: int
    safety_fp: int
    fp_by_class: dict[str, int]
    recent_daily_labelled: float  # labelled rows a day over the last RECENT_DAYS days with rows

    def to_dict(self) -> dict:
        data = dict(self.__dict__)
        for key in ("since", "first_day", "last_day"):
            data[key] = None if data[key] is None else data[key].isoformat()
        return data


def _entered_shadow(store: Store, rule_id: str, version: str) -> date:
    with store.session() as session:
        row = session.exec(
            select(AuditRow).where(AuditRow.rule_id == rule_id, AuditRow.to_state == State.SHADOW.value,
                                   AuditRow.to_version == version).order_by(AuditRow.at.desc(), AuditRow.id.desc())
        ).first()
    return row.at.date() if row is not None else date.min


def live_evidence(store: Store, rule_id: str) -> LiveEvidence:
    """Sum the shadow metrics rows of ``rule_id``'s current version.

    Rows are the log's days, not the wall clock's: a backfilled or simulated
    day after the rule went to shadow is dated before the audit row that put
    it there. A shadow row exists only for a day a bundle served the version
    in shadow, so every such row is live evidence, except on days a miner
    chose the rule on (a replay of old logs must not judge a rule on the rows
    that chose it).
    """
    status = registry.get_status(store, rule_id)
    since = _entered_shadow(store, rule_id, status.version)
    chosen = latest_selection(store, rule_id)
    query = select(DailyMetricRow).where(DailyMetricRow.rule_id == rule_id,
                                         DailyMetricRow.rule_version == status.version,
                                         DailyMetricRow.serving == "shadow")
    if chosen is not None:
        query = query.where((DailyMetricRow.day < chosen.window.start) | (DailyMetricRow.day > chosen.window.end))
    with store.session() as session:
        rows = session.exec(query.order_by(DailyMetricRow.day)).all()
    by_class: dict[str, int] = {}
    daily: dict[date, int] = {}
    for row in rows:
        for intent, n in json.loads(row.fp_by_class).items():
            by_class[intent] = by_class.get(intent, 0) + int(n)
        daily[row.day] = daily.get(row.day, 0) + row.shadow_n
    days = sorted(daily)
    recent = [daily[d] for d in days if d > days[-1] - timedelta(days=RECENT_DAYS)] if days else []
    return LiveEvidence(
        rule_id=rule_id, rule_version=status.version, since=since,
        first_day=days[0] if days else None, last_day=days[-1] if days else None,
        fires=sum(r.fires for r in rows), labelled=sum(r.shadow_n for r in rows),
        agree=sum(r.agree_n for r in rows), safety_fp=sum(r.safety_fp for r in rows), fp_by_class=by_class,
        recent_daily_labelled=sum(recent) / len(recent) if recent else 0.0,
    )


def _days_needed(more: int, rate: float) -> str:
    if rate <= 0:
        return "the days it needs cannot be estimated until it fires on labelled traffic"
    days = math.ceil(more / rate)
    return f"at the recent rate of {rate:.1f} labelled rows a day, about {days} more day{'s' if days != 1 else ''}"


def check_live(evidence: LiveEvidence, settings: Settings) -> GateDecision:
    """The gate's checks on live evidence; every check runs, so a refusal lists all."""
    floor = settings.dataset_floor
    n = evidence.labelled
    if n == 0:
        floor_check = Check("evidence_floor", False, (
            f"no live evidence yet: no labelled shadow row for version {evidence.rule_version} since "
            f"{evidence.since if evidence.since != date.min else 'it entered shadow'}; it needs {floor} "
            f"labelled rows, and {_days_needed(floor, evidence.recent_daily_labelled)}"))
    else:
        enough = n >= floor
        window = f"{evidence.first_day}..{evidence.last_day}"
        floor_check = Check("evidence_floor", enough, (
            f"{n} labelled live rows in {window} (floor {floor})" + ("" if enough else
            f": {floor - n} more needed; {_days_needed(floor - n, evidence.recent_daily_labelled)}")))
    low, high = wilson_interval(evidence.agree, n)
    estimate = evidence.agree / n if n else math.nan
    judged = low if settings.gate_on == "lower_bound" else estimate
    target = settings.agreement_floor
    agree_ok = n > 0 and judged >= target
    on = "the interval's lower bound" if settings.gate_on == "lower_bound" else "the point estimate"
    shown = "n/a" if n == 0 else f"{estimate:.1%}"
    agreement = Check("agreement", agree_ok, (
        f"live agreement with the model {shown} (95% interval {low:.1%}-{high:.1%}, {n} labelled rows); "
        f"the gate needs {on} >= {target:.0%}"))
    safe = evidence.safety_fp == 0
    unsafe = {k: v for k, v in sorted(evidence.fp_by_class.items()) if k in settings.safety_intents}
    safety = Check("safety", safe, "no false positive on safety intents in the live evidence" if safe else (
        f"the rule would have answered {evidence.safety_fp} live quer{'y' if evidence.safety_fp == 1 else 'ies'} "
        f"the model labelled as safety intents ({', '.join(f'{k}: {v}' for k, v in unsafe.items()) or 'safety'}); "
        "add exclude phrases for them or narrow the patterns"))
    return GateDecision((floor_check, agreement, safety))


@dataclass(frozen=True)
class LivePromotionResult:
    """A promotion decided on live evidence (``to_dict`` as the dataset path's result)."""

    status: registry.RuleStatus
    evidence: LiveEvidence
    decision: GateDecision
    published: PublishResult | None

    def to_dict(self) -> dict:
        return {"status": self.status.to_dict(), "bundle": self.published.bundle.number if self.published else None,
                "gate": self.decision.to_dict(), "evidence": {"kind": KIND, **self.evidence.to_dict()}}


def promote_live(workspace: Workspace, rule_id: str, *, actor: str, store: Store, republish: bool = True,
                 reason: str = "promotion gate passed on live shadow evidence") -> LivePromotionResult:
    """Promote a shadow rule to active if its live evidence clears the gate; raise GateRefused otherwise."""
    evidence = live_evidence(store, rule_id)
    decision = check_live(evidence, workspace.settings)
    if not decision.passed:
        raise GateRefused(rule_id, decision.reasons)
    settings = workspace.settings
    window = {"first_day": evidence.first_day.isoformat(), "last_day": evidence.last_day.isoformat()}
    with store.session() as session:
        status = registry.apply_transition(
            session, rule_id, State.ACTIVE, actor=actor, reason=f"{reason} ({window['first_day']}..{window['last_day']})",
            evidence={"kind": KIND, **evidence.to_dict()}, action="promote", expiry_days=settings.expiry_days)
        session.add(PromotionRow(
            rule_id=rule_id, rule_version=status.version, dataset_hash=KIND, evaluation_id=None, at=utcnow(),
            actor=actor, from_state=State.SHADOW.value, to_state=State.ACTIVE.value, kind="promote",
            expires_at=status.expires_at,
            metrics=json.dumps({"evidence": KIND, "window": window, "labelled": evidence.labelled,
                                "agree": evidence.agree, "safety_false_positives": evidence.safety_fp}),
        ))
    published = publish_active(workspace, actor=actor, store=store) if republish else None
    return LivePromotionResult(status, evidence, decision, published)
