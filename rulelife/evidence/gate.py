"""The promotion gate: every check a rule version must pass to go live.

Agreement is judged on the lower bound of its 95% Wilson interval by default
(``gate_on = "lower_bound"``), not on the point estimate: a promoted rule
answers without the model, so promoting a rule that only looks good by chance
costs more than waiting for more evidence. At the dataset floor the interval
is narrow enough that a rule agreeing 97% or more passes (at n = 1,000 a point
estimate of 0.97 has a lower bound of about 0.958); ``gate_on = "point"`` is
available for small deployments and says so in every report.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from rulelife.config import Settings
from rulelife.evidence.datasets.neighbourhood import BASE, near_safety
from rulelife.evidence.datasets.snapshot import DatasetSnapshot
from rulelife.evidence.evaluation.evaluate import Evaluation
from rulelife.store.registry import RuleStatus
from rulelife.store.selection import Selection, Window, day_after

__all__ = ["Check", "GateDecision", "check_gate"]


@dataclass(frozen=True)
class Check:
    """One check's verdict: ``detail`` in plain words for a person, and beside it the numbers it
    judged for a program (a report reads these, never the prose: rewording a message changes
    no number anywhere)."""

    name: str
    passed: bool
    detail: str
    value: float | None = None  # what was measured (agreement, rows, false positives seen, age in days)
    threshold: float | None = None  # what it was held to (the floor, the row floor, 0, the maximum age)
    interval: tuple[float, float] | None = None  # the 95% interval of ``value``, where it is an estimate

    def to_dict(self) -> dict:
        """JSON-ready: the numbers that are set, NaN (an estimate on no rows) as null."""
        out = {"name": self.name, "passed": self.passed, "detail": self.detail}
        if self.value is not None:
            out["value"] = _number(self.value)
        if self.threshold is not None:
            out["threshold"] = _number(self.threshold)
        if self.interval is not None:
            out["interval"] = [_number(x) for x in self.interval]
        return out


@dataclass(frozen=True)
class GateDecision:
    checks: tuple[Check, ...]

    def check(self, name: str) -> Check:
        """The check called ``name``; a KeyError naming the checks there are otherwise."""
        for check in self.checks:
            if check.name == name:
                return check
        raise KeyError(f"no {name!r} check in this decision (checks: {', '.join(c.name for c in self.checks)})")

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def reasons(self) -> list[str]:
        """Every failed check, in plain words."""
        return [c.detail for c in self.checks if not c.passed]

    def to_dict(self) -> dict:
        return {"passed": self.passed, "reasons": self.reasons, "checks": [c.to_dict() for c in self.checks]}


def _number(x: float) -> float | None:
    return None if x != x else x


def _pct(x: float | None) -> str:
    return "n/a" if x is None or x != x else f"{x:.1%}"


def evidence_window(snapshot: DatasetSnapshot) -> Window | None:
    """The UTC days the dataset's rows come from (None: it read no row)."""
    start, end = (snapshot.meta.get(k) for k in ("window_start", "window_end"))
    if not start or not end:
        return None
    return Window(date.fromisoformat(start[:10]), date.fromisoformat(end[:10]))


def _held_out(rule: str, snapshot: DatasetSnapshot, selection: Selection | None) -> Check:
    if selection is None:
        return Check("held_out", True, "hand-written rule: no miner chose it on the log, any window is evidence")
    evidence = evidence_window(snapshot)
    chosen = selection.window
    if evidence is None or not evidence.overlaps(chosen):
        return Check("held_out", True, f"evidence {evidence or 'empty'} is disjoint from the days {chosen} "
                                       "that chose the rule")
    return Check("held_out", False, (
        f"the dataset's rows ({evidence}) overlap the days {chosen} the miner chose the rule on, where it looks "
        f"better than it is; rebuild it from later days with `rulelife dataset build {rule} --since "
        f"{day_after(chosen)}` (the default for a mined rule), or promote it to shadow to earn live evidence"))


def _neighbourhood(rule: str, intent: str, snapshot: DatasetSnapshot, settings: Settings,
                   justification: str) -> Check:
    counts = snapshot.meta.get("neighbourhood")
    if counts is None:
        return Check("safety_neighbourhood", False, (
            "the dataset has no neighbourhood counts (built by an older release); rebuild it with "
            f"`rulelife dataset build {rule}`"))
    near = near_safety(counts, intent, min_share=settings.safety_proximity_share,
                       min_rows=settings.safety_proximity_rows, min_lift=settings.safety_proximity_lift)
    if not near:
        return Check("safety_neighbourhood", True, "no content word of the rule lives next to a safety intent")
    base = counts.get(BASE, {})
    where = "; ".join(f"{word!r} in " + ", ".join(
        f"{n} of its {counts[word]['total']} queries labelled {i}"
        + (f" ({n / counts[word]['total']:.0%} vs {base[i] / base['total']:.0%} of all traffic)"
           if base.get(i) and base.get("total") else "")
        for i, n in found.items()) for word, found in near.items())
    if justification:
        return Check("safety_neighbourhood", True, f"next to a safety intent ({where}); allowed: {justification}")
    return Check("safety_neighbourhood", False, (
        f"the rule's words live next to a safety intent ({where}): the next message holding them may be a "
        "safety query the model must answer; narrow the patterns, or record why the rule may answer anyway in "
        "its safety_justification field"))


def check_gate(
    evaluation: Evaluation,
    snapshot: DatasetSnapshot,
    status: RuleStatus,
    settings: Settings,
    now: datetime | None = None,
    selection: Selection | None = None,
    intent: str | None = None,
    justification: str = "",
) -> GateDecision:
    """Run every check; never stop at the first failure, so a refusal lists all.

    ``selection``: the days a miner chose the rule on (None for a hand-written
    rule); the dataset must come from other days. ``intent`` and
    ``justification`` (the rule's ``safety_justification``) judge its
    neighbourhood: content words that live next to a safety intent refuse it
    unless a person recorded why it may answer anyway.
    """
    rule = evaluation.rule_id
    checks = [_held_out(rule, snapshot, selection)]
    if intent is not None:
        checks.append(_neighbourhood(rule, intent, snapshot, settings, justification))

    same = snapshot.rule_version == status.latest_version
    checks.append(Check("dataset_version", same, (
        f"dataset {snapshot.content_hash[:12]} is for version {snapshot.rule_version}"
        + ("" if same else f", but the rule is now at {status.latest_version}; rebuild it with "
           f"`rulelife dataset build {rule}`"))))

    age_days = snapshot.age(now).total_seconds() / 86400
    fresh = not snapshot.is_stale(settings.dataset_max_age_days, now)
    checks.append(Check("dataset_fresh", fresh, (
        f"dataset built {age_days:.1f} days ago" + ("" if fresh else
        f", older than {settings.dataset_max_age_days} days; rebuild it with `rulelife dataset build {rule}`")),
        value=age_days, threshold=settings.dataset_max_age_days))

    floor = int(snapshot.meta.get("target_size", settings.dataset_floor))
    enough = evaluation.rows >= floor
    traffic = "high-traffic rule, " if snapshot.meta.get("high_traffic") else ""
    checks.append(Check("evidence_floor", enough, (
        f"{evaluation.rows} dataset rows ({traffic}floor {floor})" + ("" if enough else
        ": not enough evidence; widen the log window (--since) or wait for more traffic")),
        value=evaluation.rows, threshold=floor))

    est = evaluation.production
    target = settings.agreement_floor
    judged = est.low if settings.gate_on == "lower_bound" else est.estimate
    agree_ok = est.n > 0 and judged == judged and judged >= target
    settle = evaluation.samples_to_settle
    more = "" if settle in (None, 0) else f"; about {settle} more production samples would settle it"
    on = "the interval's lower bound" if settings.gate_on == "lower_bound" else "the point estimate"
    checks.append(Check("agreement", agree_ok, (
        f"agreement with the model {_pct(est.estimate)} (95% interval {_pct(est.low)}-{_pct(est.high)}, "
        f"{est.n} production rows); the gate needs {on} >= {target:.0%}" + ("" if agree_ok else more)),
        value=est.estimate, threshold=target, interval=(est.low, est.high)))

    in_dataset = evaluation.safety_false_positives
    in_log = sum(evaluation.safety_fp_in_log.values())
    safe = in_dataset == 0 and in_log == 0
    if safe:
        bounds = [s for s in evaluation.strata if s.n]
        bound = ", ".join(f"{s.stratum} <= {_pct(s.safety_fp_upper_bound)}" for s in bounds)
        detail = f"no false positive on safety intents in any stratum (95% upper bounds by rule of three: {bound})"
    else:
        where = [f"{s.stratum}: {sum(s.safety_false_positives.values())}" for s in evaluation.strata
                 if s.safety_false_positives]
        log_part = ", ".join(f"{k}: {v}" for k, v in sorted(evaluation.safety_fp_in_log.items()))
        example = evaluation.safety_examples[0]["text"] if evaluation.safety_examples else None
        detail = (f"the rule fires on queries the model labels as safety intents ({', '.join(where) or 'none sampled'}; "
                  f"in the whole log window: {log_part or 'none'})"
                  + (f", e.g. {example!r}" if example else "")
                  + "; add exclude phrases for them or narrow the patterns")
    # Seen in the dataset's strata plus in the whole log window (an error in both counts twice).
    checks.append(Check("safety", safe, detail, value=in_dataset + in_log, threshold=0))
    return GateDecision(tuple(checks))
