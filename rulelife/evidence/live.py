"""Promotion of a shadow rule on its live evidence instead of a dataset.

A shadow rule is matched by the runtime but never answers; the nightly
counts, per day, the queries it would have answered and, where the model
was called, whether the model agreed (``DailyMetricRow`` rows with
``serving = "shadow"``). Those rows are rows the rule never saw when it
was written or mined, so they are honest evidence. Promoting it to active
sums them for its current version (on any day outside the days a miner chose
it on) and runs the promotion gate's checks on the sum: agreement judged on
``gate_on`` (the 95% Wilson interval's lower bound by default) against ``agreement_floor``, zero
safety false positives, and at least ``dataset_floor`` labelled rows.

With ``shadow_auto_promote`` on, the nightly calls :func:`promote_ready`
after its monitors have acted: every rule still in shadow is judged on its
evidence up to that night, the ones that clear the gate are promoted (the
caller republishes once), and the others get a one-line reason saying what
they still need (:class:`ShadowStanding`). A rule already promoted is no
longer in shadow, so a re-run of the same night promotes nothing twice.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import date, timedelta

from sqlmodel import select

from rulelife.config import Settings, Workspace
from rulelife.errors import GateRefused, LifecycleError
from rulelife.evidence.evaluation.stats import samples_to_settle, wilson_interval
from rulelife.evidence.gate import Check, GateDecision
from rulelife.rules.lifecycle import State
from rulelife.serving.publish import PublishResult, publish_active
from rulelife.store import AuditRow, DailyMetricRow, PromotionRow, Store, registry, utcnow
from rulelife.store.selection import latest_selection

__all__ = [
    "LiveEvidence",
    "LivePromotionResult",
    "ShadowOutcome",
    "ShadowStanding",
    "check_live",
    "live_evidence",
    "promote_live",
    "promote_ready",
    "shadow_standing",
    "standing_of",
]

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
    # Labelled rows by the model version that was dominant on their day (the metrics name no finer source).
    model_versions: dict[str, int] = field(default_factory=dict)

    @property
    def agreement(self) -> float | None:
        """Share of the labelled rows on which the model agreed (None: no labelled row)."""
        return self.agree / self.labelled if self.labelled else None

    @property
    def interval(self) -> tuple[float, float]:
        """The agreement's 95% Wilson interval, as the gate judges it."""
        return wilson_interval(self.agree, self.labelled)

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


def live_evidence(store: Store, rule_id: str, *, until: date | None = None) -> LiveEvidence:
    """Sum the shadow metrics rows of ``rule_id``'s current version (up to the day ``until``, included;
    None: every day written).

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
    if until is not None:
        query = query.where(DailyMetricRow.day <= until)
    with store.session() as session:
        rows = session.exec(query.order_by(DailyMetricRow.day)).all()
    by_class: dict[str, int] = {}
    daily: dict[date, int] = {}
    models: dict[str, int] = {}
    for row in rows:
        if row.model_version is not None:
            models[row.model_version] = models.get(row.model_version, 0) + row.shadow_n
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
        model_versions=dict(sorted(models.items())),
    )


def _days_for(more: int, rate: float) -> int | None:
    """Days ``more`` labelled rows take at ``rate`` a day (None: it has not fired on labelled traffic)."""
    return math.ceil(more / rate) if rate > 0 else None


def _days_needed(more: int, rate: float) -> str:
    days = _days_for(more, rate)
    if days is None:
        return "the days it needs cannot be estimated until it fires on labelled traffic"
    return f"at the recent rate of {rate:.1f} labelled rows a day, about {days} more day{'s' if days != 1 else ''}"


def check_live(evidence: LiveEvidence, settings: Settings) -> GateDecision:
    """The gate's checks on live evidence; every check runs, so a refusal lists all."""
    floor = settings.dataset_floor
    n = evidence.labelled
    if n == 0:
        floor_check = Check("evidence_floor", False, (
            f"no live evidence yet: no labelled shadow row for version {evidence.rule_version} since "
            f"{evidence.since if evidence.since != date.min else 'it entered shadow'}; it needs {floor} "
            f"labelled rows, and {_days_needed(floor, evidence.recent_daily_labelled)}"), value=0, threshold=floor)
    else:
        enough = n >= floor
        window = f"{evidence.first_day}..{evidence.last_day}"
        floor_check = Check("evidence_floor", enough, (
            f"{n} labelled live rows in {window} (floor {floor})" + ("" if enough else
            f": {floor - n} more needed; {_days_needed(floor - n, evidence.recent_daily_labelled)}")),
            value=n, threshold=floor)
    low, high = wilson_interval(evidence.agree, n)
    estimate = evidence.agree / n if n else math.nan
    judged = low if settings.gate_on == "lower_bound" else estimate
    target = settings.agreement_floor
    agree_ok = n > 0 and judged >= target
    on = "the interval's lower bound" if settings.gate_on == "lower_bound" else "the point estimate"
    shown = "n/a" if n == 0 else f"{estimate:.1%}"
    agreement = Check("agreement", agree_ok, (
        f"live agreement with the model {shown} (95% interval {low:.1%}-{high:.1%}, {n} labelled rows); "
        f"the gate needs {on} >= {target:.0%}"), value=None if n == 0 else estimate, threshold=target,
        interval=(low, high))
    safe = evidence.safety_fp == 0
    unsafe = {k: v for k, v in sorted(evidence.fp_by_class.items()) if k in settings.safety_intents}
    safety = Check("safety", safe, "no false positive on safety intents in the live evidence" if safe else (
        f"the rule would have answered {evidence.safety_fp} live quer{'y' if evidence.safety_fp == 1 else 'ies'} "
        f"the model labelled as safety intents ({', '.join(f'{k}: {v}' for k, v in unsafe.items()) or 'safety'}); "
        "add exclude phrases for them or narrow the patterns"), value=evidence.safety_fp, threshold=0)
    return GateDecision((floor_check, agreement, safety))


@dataclass(frozen=True)
class LivePromotionResult:
    """A promotion decided on live evidence (``to_dict`` as the dataset path's result)."""

    status: registry.RuleStatus
    evidence: LiveEvidence
    decision: GateDecision
    published: PublishResult | None
    unchanged = False  # a live promotion always moves the rule (as PromotionResult.unchanged says)

    def to_dict(self) -> dict:
        return {"status": self.status.to_dict(), "bundle": self.published.bundle.number if self.published else None,
                "gate": self.decision.to_dict(), "evidence": {"kind": KIND, **self.evidence.to_dict()}}


def promote_live(workspace: Workspace, rule_id: str, *, actor: str, store: Store, republish: bool = True,
                 reason: str = "promotion gate passed on live shadow evidence",
                 until: date | None = None) -> LivePromotionResult:
    """Promote a shadow rule to active if its live evidence (up to ``until``) clears the gate;
    raise GateRefused otherwise."""
    evidence = live_evidence(store, rule_id, until=until)
    decision = check_live(evidence, workspace.settings)
    if not decision.passed:
        with store.session() as session:  # in the audit and the events; the rule stays in shadow
            registry.record_refusal(session, rule_id, actor=actor, target=State.ACTIVE,
                                    version=evidence.rule_version, reasons=decision.reasons,
                                    evidence={"kind": KIND, "labelled": evidence.labelled, "agree": evidence.agree,
                                              "safety_fp": evidence.safety_fp})
        raise GateRefused(rule_id, decision.reasons)
    settings = workspace.settings
    window = {"first_day": evidence.first_day.isoformat(), "last_day": evidence.last_day.isoformat()}
    with store.session() as session:
        status = registry.apply_transition(
            session, rule_id, State.ACTIVE, actor=actor, reason=f"{reason} ({window['first_day']}..{window['last_day']})",
            evidence={"kind": KIND, **evidence.to_dict()}, action="promote", expiry_days=settings.expiry_days)
        if status.version != evidence.rule_version:
            # The file was edited and synced since the evidence was read (sync
            # makes the rule a candidate at the new version, which may go
            # active): the evidence vouches for the old version only. Rolls back.
            raise LifecycleError(
                f"{rule_id} was edited while it was judged: the live evidence is for version "
                f"{evidence.rule_version}, the rule is now at {status.version}; move it to shadow to gather live "
                f"evidence for it, or build a dataset and `rulelife promote {rule_id}`")
        session.add(PromotionRow(
            rule_id=rule_id, rule_version=status.version, dataset_hash=KIND, evaluation_id=None, at=utcnow(),
            actor=actor, from_state=State.SHADOW.value, to_state=State.ACTIVE.value, kind="promote",
            expires_at=status.expires_at,
            metrics=json.dumps({"evidence": KIND, "window": window, "labelled": evidence.labelled,
                                "agree": evidence.agree, "safety_false_positives": evidence.safety_fp}),
            model_versions=json.dumps(evidence.model_versions) if evidence.model_versions else None,
        ))
    published = publish_active(workspace, actor=actor, store=store,
                               reason=f"{rule_id} promoted on live evidence") if republish else None
    return LivePromotionResult(status, evidence, decision, published)


def _rows_still_needed(evidence: LiveEvidence, settings: Settings, safe: bool) -> int | None:
    """Labelled rows still needed for the gate to pass if the observed agreement held.

    None when no number of rows would do: a live safety false positive stays
    in the evidence of this version, and an agreement below the floor stays
    below it at any sample size.
    """
    n, floor = evidence.labelled, settings.agreement_floor
    short = max(settings.dataset_floor - n, 0)
    if not safe:
        return None
    if settings.gate_on == "point":
        return short if n == 0 or evidence.agree / n >= floor else None
    # Judged on the interval's lower bound: the rows at which it would clear
    # the floor if the observed rate held (before any row, a perfect rate:
    # the fewest rows that could ever pass).
    agree, size = (evidence.agree, n) if n else (1, 1)
    if agree / size < floor:
        return None
    if n and wilson_interval(agree, size)[0] >= floor:
        return short
    settle = samples_to_settle(agree, size, floor)
    return None if settle is None else max(short, size + settle - n)


@dataclass(frozen=True)
class ShadowStanding:
    """Where a shadow rule stands on its live evidence: the gate's decision and what it still needs.

    ``more_rows`` is the count of labelled rows still needed (0: ready; None:
    more rows would not pass it), ``days`` the days they take at the recent
    labelling rate (None: cannot be estimated).
    """

    evidence: LiveEvidence
    decision: GateDecision
    more_rows: int | None
    days: int | None

    @property
    def summary(self) -> str:
        """One line: ready, or what the rule still needs."""
        e = self.evidence
        if self.decision.passed:
            return f"ready: clears the gate on {e.labelled} labelled live rows ({e.first_day}..{e.last_day})"
        if e.safety_fp:
            return (f"would have answered {e.safety_fp} live quer{'y' if e.safety_fp == 1 else 'ies'} labelled as "
                    "safety intents; this version will not be promoted")
        if self.more_rows is None and not e.labelled:
            return "no labelled live rows yet, and no number of rows can clear an agreement floor of 100%"
        if self.more_rows is None:
            return (f"live agreement {e.agree / e.labelled:.1%} on {e.labelled} labelled rows is below the floor; "
                    "more rows will not lift it: narrow the patterns")
        when = ("days unknown until it fires on labelled traffic" if self.days is None
                else f"about {self.days} day{'s' if self.days != 1 else ''}")
        return f"{self.more_rows} more labelled rows, {when}"

    def to_dict(self) -> dict:
        return {"evidence": self.evidence.to_dict(), "gate": self.decision.to_dict(), "more_rows": self.more_rows,
                "days": self.days, "summary": self.summary}


def standing_of(evidence: LiveEvidence, settings: Settings) -> ShadowStanding:
    """The gate's decision on ``evidence`` (:func:`check_live`), and what the rule still needs."""
    decision = check_live(evidence, settings)
    safe = all(c.passed for c in decision.checks if c.name == "safety")
    more = 0 if decision.passed else _rows_still_needed(evidence, settings, safe)
    days = None if more is None else 0 if more == 0 else _days_for(more, evidence.recent_daily_labelled)
    return ShadowStanding(evidence, decision, more, days)


def shadow_standing(store: Store, rule_id: str, settings: Settings, *, until: date | None = None) -> ShadowStanding:
    """Where ``rule_id`` stands on its live evidence up to ``until`` (None: every day written)."""
    return standing_of(live_evidence(store, rule_id, until=until), settings)


@dataclass(frozen=True)
class ShadowOutcome:
    """What an auto-promotion pass did with one shadow rule."""

    rule_id: str
    version: str
    promoted: bool
    reason: str  # the audit reason when promoted; what the rule still needs otherwise
    standing: ShadowStanding

    def to_dict(self) -> dict:
        return {"rule_id": self.rule_id, "version": self.version, "promoted": self.promoted, "reason": self.reason,
                "standing": self.standing.to_dict()}


def _audit_reason(day: date, evidence: LiveEvidence) -> str:
    low, high = evidence.interval
    # promote_live appends the evidence window in parentheses.
    return (f"nightly auto-promotion of {day}: live agreement {evidence.agreement:.1%} "
            f"(95% interval {low:.1%}-{high:.1%}, {evidence.labelled} labelled rows), no safety false positive; "
            "promotion gate passed on live shadow evidence")


def promote_ready(workspace: Workspace, store: Store, day: date, actor: str) -> list[ShadowOutcome]:
    """Promote every shadow rule whose live evidence up to ``day`` clears the gate; the caller republishes.

    Idempotent: only rules still in shadow are judged, so a re-run of the
    same night finds the rules it promoted active and leaves them alone.
    """
    outcomes = []
    for status in registry.list_rules(store, state=State.SHADOW):
        standing = shadow_standing(store, status.rule_id, workspace.settings, until=day)
        if not standing.decision.passed:
            outcomes.append(ShadowOutcome(status.rule_id, status.version, False, standing.summary, standing))
            continue
        reason = _audit_reason(day, standing.evidence)
        try:
            result = promote_live(workspace, status.rule_id, actor=actor, store=store, republish=False,
                                  reason=reason, until=day)
        except (GateRefused, LifecycleError) as exc:  # changed by someone else since it was listed
            outcomes.append(ShadowOutcome(status.rule_id, status.version, False, str(exc), standing))
            continue
        window = f" ({result.evidence.first_day}..{result.evidence.last_day})"
        outcomes.append(ShadowOutcome(status.rule_id, result.status.version, True, reason + window, standing))
    return outcomes
