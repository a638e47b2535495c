"""Many rules at once: datasets from one pass over the log, evaluations and
promotions with one verdict a rule and one publish for the lot.

A batch never stops at the first rule that fails: a refusal or a lifecycle
error is that rule's verdict, with every reason, and the others proceed.
What a single-rule call would refuse for the whole batch (an unknown rule id,
a target state promotion cannot reach) is refused before anything changes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from rulelife import progress
from rulelife.config import Workspace
from rulelife.errors import GateRefused, LifecycleError, UnknownRule
from rulelife.evidence.evaluation import Evaluation
from rulelife.evidence.evaluation.stats import wilson_interval
from rulelife.evidence.live import LiveEvidence, LivePromotionResult, live_evidence
from rulelife.evidence.promotion import DatasetResult, PromotionResult, build_datasets, evaluate, promote
from rulelife.querylog import LogReport
from rulelife.rules.lifecycle import State, parse_state
from rulelife.serving.publish import PublishResult, publish_active
from rulelife.store import Store, registry
from rulelife.store.registry import RuleStatus

__all__ = [
    "BatchResult",
    "DatasetBatch",
    "RuleVerdict",
    "build_many",
    "evaluate_many",
    "promote_many",
    "rules_in_state",
]

# The verdicts of each batch action, passing one first (also the order of the totals).
VERDICTS = {"promote": ("promoted", "refused", "error"), "evaluate": ("passed", "failed", "error")}


def rules_in_state(store: Store, state: State | str) -> list[str]:
    """Ids of every rule the registry holds in ``state``, sorted (e.g. every mined candidate)."""
    return [status.rule_id for status in registry.list_rules(store, state=state)]


def _statuses(store: Store, rule_ids: Sequence[str]) -> list[RuleStatus]:
    """The status of each id, in order and once each; every unknown id is named in one error."""
    known = {status.rule_id: status for status in registry.list_rules(store)}
    wanted = list(dict.fromkeys(rule_ids))
    unknown = [rule_id for rule_id in wanted if rule_id not in known]
    if unknown:
        raise UnknownRule(f"not in the registry: {', '.join(unknown)}; nothing was changed. Check the ids with "
                          "`rulelife rules list`, or run `rulelife sync` if you just added them")
    return [known[rule_id] for rule_id in wanted]


@dataclass(frozen=True)
class RuleVerdict:
    """What a batch said about one rule, with the numbers behind it.

    ``agreement``, ``low`` and ``high`` are the production agreement with the
    model and its 95% interval; they and ``rows`` are None where the rule was
    not evaluated (no dataset, or an error before the gate).
    """

    rule_id: str
    intent: str
    version: str
    verdict: str
    to: str | None  # the target state of a promotion
    agreement: float | None
    low: float | None
    high: float | None
    rows: int | None
    reasons: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return self.verdict in ("promoted", "passed")

    def to_dict(self) -> dict:
        return {"rule_id": self.rule_id, "intent": self.intent, "version": self.version, "verdict": self.verdict,
                "to": self.to, "agreement": self.agreement, "low": self.low, "high": self.high, "rows": self.rows,
                "reasons": list(self.reasons)}


def _verdict(status: RuleStatus, verdict: str, to: State | None, evaluation: Evaluation | LiveEvidence | None,
             reasons: Sequence[str] = ()) -> RuleVerdict:
    numbers = (None, None, None, None)
    if isinstance(evaluation, LiveEvidence):
        # A shadow rule is judged on its live evidence: the same numbers, from the nightly's counts.
        if evaluation.labelled:
            low, high = wilson_interval(evaluation.agree, evaluation.labelled)
            numbers = (evaluation.agree / evaluation.labelled, low, high, evaluation.labelled)
    elif evaluation is not None:
        p = evaluation.production
        # No production row gives a NaN estimate; None keeps the JSON valid.
        numbers = tuple(None if x is None or math.isnan(x) else float(x) for x in (p.estimate, p.low, p.high)) \
            + (evaluation.rows,)
    return RuleVerdict(status.rule_id, status.intent, status.latest_version, verdict,
                       None if to is None else to.value, *numbers, tuple(reasons))


@dataclass(frozen=True)
class BatchResult:
    """One verdict a rule, in the order asked, and the bundle published at the end (if any)."""

    action: str  # promote | evaluate
    verdicts: tuple[RuleVerdict, ...]
    published: PublishResult | None = None

    @property
    def passed(self) -> bool:
        """Every rule passed (true of an empty batch)."""
        return all(v.passed for v in self.verdicts)

    def counts(self) -> dict[str, int]:
        """Rules per verdict, every verdict of the action named, passing first."""
        return {name: sum(v.verdict == name for v in self.verdicts) for name in VERDICTS[self.action]}

    def to_dict(self) -> dict:
        bundle = self.published.bundle.number if self.published else None
        return {"action": self.action, "passed": self.passed, "counts": self.counts(), "bundle": bundle,
                "bundle_published": bool(self.published and self.published.published),
                "rules": [v.to_dict() for v in self.verdicts]}


def _promotion_target(to: State | str) -> State:
    target = parse_state(str(to))
    if target not in (State.SHADOW, State.ACTIVE):
        raise LifecycleError(f"promote moves a rule to shadow or active, not {target.value}; "
                             "use `rulelife disable` or `rulelife retire` otherwise")
    return target


def promote_many(workspace: Workspace, rule_ids: Sequence[str], *, actor: str, to: State | str = State.ACTIVE,
                 store: Store | None = None, now: datetime | None = None) -> BatchResult:
    """Promote each rule's latest version through the gate, then publish once.

    Each rule goes through :func:`~rulelife.evidence.promotion.promote` on its own, so
    a refusal changes nothing for that rule and the others proceed. A refused
    rule is evaluated again, unrecorded, for the numbers behind its reasons.

    Parameters
    ----------
    rule_ids
        The rules, in the order of the verdicts; a repeated id counts once.
    actor
        Who promotes (recorded with each promotion and the publish).
    to
        ``shadow`` or ``active``, for every rule.

    Returns
    -------
    BatchResult
        A ``promoted``, ``refused`` or ``error`` verdict a rule, with every
        reason, and the bundle published if any rule moved.

    Raises
    ------
    LifecycleError
        ``to`` is not a state promotion reaches; nothing was changed.
    UnknownRule
        Some ids are not in the registry (all are named); nothing was changed.
    """
    target = _promotion_target(to)
    store = store or Store.from_workspace(workspace)
    verdicts: list[RuleVerdict] = []
    moved = False
    try:
        statuses = _statuses(store, rule_ids)
        for number, status in enumerate(statuses, 1):
            progress.step(f"gate {number} of {len(statuses)}: {status.rule_id}")
            try:
                result = promote(workspace, status.rule_id, actor=actor, to=target, store=store, now=now,
                                 republish=False)
            except GateRefused as refused:
                verdicts.append(_verdict(status, "refused", target, _numbers(workspace, store, status, now),
                                         refused.reasons))
            except LifecycleError as error:
                verdicts.append(_verdict(status, "error", target, None, [str(error)]))
            else:
                # A rule already there counts as promoted (so a re-run of an interrupted batch says what the
                # whole run would have said) and publishes, which finishes the interrupted publish.
                moved = True
                reasons = [f"already {target.value} at {result.status.version}: nothing to promote"] \
                    if result.unchanged else []
                verdicts.append(_verdict(status, "promoted", target, _judged(result), reasons))
    finally:
        # Publish what moved even when an unexpected error ends the batch, so
        # the bundle never lags behind promotions the registry has recorded.
        published = publish_active(workspace, actor=actor, store=store,
                                   reason=f"batch promotion to {target.value}") if moved else None
    return BatchResult("promote", tuple(verdicts), published)


def _judged(result: PromotionResult | LivePromotionResult) -> Evaluation | LiveEvidence | None:
    """What the gate judged a promotion on: a dataset's evaluation, live evidence, or nothing (to shadow)."""
    if isinstance(result, LivePromotionResult):
        return result.evidence
    return result.evaluation.evaluation if result.evaluation is not None else None


def _numbers(workspace: Workspace, store: Store, status: RuleStatus,
             now: datetime | None) -> Evaluation | LiveEvidence | None:
    if status.state == State.SHADOW and status.latest_version == status.version:
        return live_evidence(store, status.rule_id)
    try:
        return evaluate(workspace, status.rule_id, store=store, now=now, record=False).evaluation
    except GateRefused:  # no dataset for the version: nothing to measure
        return None


def evaluate_many(workspace: Workspace, rule_ids: Sequence[str], *, actor: str = "cli", store: Store | None = None,
                  now: datetime | None = None) -> BatchResult:
    """Evaluate and record each rule's latest version on its newest dataset; change no state."""
    store = store or Store.from_workspace(workspace)
    verdicts = []
    for status in _statuses(store, rule_ids):
        try:
            result = evaluate(workspace, status.rule_id, actor=actor, store=store, now=now)
        except GateRefused as refused:
            verdicts.append(_verdict(status, "failed", None, None, refused.reasons))
        except LifecycleError as error:
            verdicts.append(_verdict(status, "error", None, None, [str(error)]))
        else:
            decision = result.decision
            verdicts.append(_verdict(status, "passed" if decision.passed else "failed", None, result.evaluation,
                                     decision.reasons))
    return BatchResult("evaluate", tuple(verdicts))


@dataclass(frozen=True)
class DatasetBatch:
    """The datasets of a batch, in the order asked, and the one read of the log behind all of them."""

    datasets: tuple[DatasetResult, ...]
    intents: tuple[str, ...]
    log: LogReport

    def to_dict(self) -> dict:
        return {"log": self.log.to_dict(),
                "datasets": [{"intent": intent, **d.snapshot.to_dict()}
                             for d, intent in zip(self.datasets, self.intents, strict=True)]}


def build_many(workspace: Workspace, rule_ids: Sequence[str], *, store: Store | None = None,
               **options) -> DatasetBatch:
    """Build and store the datasets of several rules in one pass over the log.

    ``options`` are those of :func:`~rulelife.evidence.promotion.build_datasets`
    (``log``, ``since``, ``until``, ``actor``, ``engine`` ...). An empty
    batch reads nothing.
    """
    store = store or Store.from_workspace(workspace)
    statuses = _statuses(store, rule_ids)
    if not statuses:
        return DatasetBatch((), (), LogReport())
    progress.step(f"building the datasets of {len(statuses)} rules in one read of the log")
    results = build_datasets(workspace, [s.rule_id for s in statuses], store=store, **options)
    return DatasetBatch(tuple(results), tuple(s.intent for s in statuses), results[0].log)
