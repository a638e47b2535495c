"""Dataset build, evaluation, promotion and re-validation of rules.

``promote`` is all-or-nothing: the gate runs on the rule's latest version and
its newest dataset; a refusal raises :class:`GateRefused` listing every reason
and changes nothing about the rule (the evaluation, a ``promote_refused``
audit row and its event are recorded, so the refusal shows in ``rules show``);
a success writes the evaluation, the promotion and the state change in one
transaction, then republishes the bundle. Promoting a rule already where it
was asked to go only republishes, so a command whose publish was interrupted
is finished by running it again.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from sqlmodel import select

from rulelife.config import Workspace
from rulelife.engines.fold import fold_log
from rulelife.errors import GateRefused, LifecycleError
from rulelife.evidence.datasets import DatasetSnapshot, NoDataset, latest_dataset, load_rows, save_dataset
from rulelife.evidence.datasets.adversarial import adversarial_path, read_adversarial
from rulelife.evidence.datasets.partials import DatasetPass, merge_builders
from rulelife.evidence.evaluation import Evaluation, evaluate_rule
from rulelife.evidence.gate import GateDecision, check_gate, evidence_window
from rulelife.evidence.live import promote_live
from rulelife.plugins import MINERS, load_plugin
from rulelife.querylog import LogReport
from rulelife.rules.lexicon import load_lexicon
from rulelife.rules.lifecycle import State, check_transition
from rulelife.rules.matcher import compile_lexicon
from rulelife.serving.publish import PublishResult, already_in, publish_active, set_state
from rulelife.store import EvaluationRow, ModelChangeRow, PromotionRow, Store, registry, utcnow
from rulelife.store.selection import day_after, latest_selection

__all__ = [
    "EvaluationResult",
    "PromotionResult",
    "RevalidationResult",
    "build_datasets",
    "build_rule_dataset",
    "evaluate",
    "latest_model_change",
    "promote",
    "revalidate",
]


@dataclass(frozen=True)
class DatasetResult:
    snapshot: DatasetSnapshot
    log: LogReport

    def to_dict(self) -> dict:
        return {"dataset": self.snapshot.to_dict(), "log": self.log.to_dict()}


def build_datasets(
    workspace: Workspace,
    rule_ids: Sequence[str],
    *,
    log: Path | Sequence[Path] | None = None,
    since: date | None = None,
    until: date | None = None,
    actor: str = "cli",
    store: Store | None = None,
    now: datetime | None = None,
    engine: str = "local",
    workers: int | None = None,
    spark=None,
) -> list[DatasetResult]:
    """Build and store the datasets of several rules' latest versions in one
    pass over the log (the log is read and normalised once, whatever the count).

    Without ``since``, a mined rule's dataset starts the day after the days
    that chose it (:mod:`rulelife.store.selection`), so its evidence is held out;
    a hand-written rule's takes the whole window.

    ``engine`` (``local``, ``local-pool`` with ``workers`` processes, or
    ``spark`` on session ``spark``) says where the pass runs; every engine
    builds the same rows (the samples are bottom-k by hash, the counts sums).
    """
    store = store or Store.from_workspace(workspace)
    settings = workspace.settings
    miner_class = load_plugin(MINERS, "hard_negatives")
    rules, miners, adversarials, starts = [], [], [], []
    for rule_id in dict.fromkeys(rule_ids):
        status = registry.get_status(store, rule_id)
        rule = registry.rule_definition(store, rule_id, status.latest_version)
        adversarials.append(read_adversarial(adversarial_path(workspace.rules_dir, rule_id)))  # fail early
        rules.append(rule)
        miners.append(miner_class().fit(rule))
        chosen = latest_selection(store, rule_id) if since is None else None
        starts.append(day_after(chosen.window) if chosen else None)
    report = LogReport()
    source = log if log is not None else workspace.log_dir
    first = None if since is not None or None in starts else min(starts)
    lexicon = compile_lexicon(load_lexicon(workspace.rules_dir))
    builders = fold_log(DatasetPass(rules, settings, miners, starts, lexicon), source, combine=merge_builders,
                        since=since or first,
                        until=until, engine=engine, known_intents=settings.intents or None,
                        quarantine_dir=workspace.quarantine_dir, report=report, workers=workers, spark=spark)
    sources = [str(p) for p in ([source] if isinstance(source, (str, Path)) else source)]
    results = []
    for builder, adversarial in zip(builders, adversarials, strict=True):
        built = builder.finish(adversarial, sources=sources)
        snapshot = save_dataset(store, built, workspace.root / "datasets", actor=actor, now=now)
        results.append(DatasetResult(snapshot, report))
    return results


def build_rule_dataset(workspace: Workspace, rule_id: str, **options) -> DatasetResult:
    """Build and store the dataset of ``rule_id``'s latest version from the log."""
    return build_datasets(workspace, [rule_id], **options)[0]


@dataclass(frozen=True)
class EvaluationResult:
    evaluation: Evaluation
    decision: GateDecision
    snapshot: DatasetSnapshot
    evaluation_id: int | None = None

    def to_dict(self) -> dict:
        return {
            "evaluation_id": self.evaluation_id,
            "gate": self.decision.to_dict(),
            "dataset": {"content_hash": self.snapshot.content_hash, "built_at": self.snapshot.built_at.isoformat(),
                        "rule_version": self.snapshot.rule_version},
            "evaluation": self.evaluation.to_dict(),
        }


def _evaluate(store: Store, workspace: Workspace, rule_id: str, now: datetime | None) -> EvaluationResult:
    """The gate's verdict on the rule's latest version and its newest dataset."""
    status = registry.get_status(store, rule_id)
    rule = registry.rule_definition(store, rule_id, status.latest_version)
    try:
        snapshot = latest_dataset(store, rule_id, status.latest_version)
    except NoDataset:
        try:
            other = latest_dataset(store, rule_id)
        except NoDataset:
            raise GateRefused(rule_id, [
                f"no dataset for {rule_id}; build one with `rulelife dataset build {rule_id}`"]) from None
        raise GateRefused(rule_id, [
            f"the newest dataset was built for version {other.rule_version}, but the rule is at "
            f"{status.latest_version}; rebuild it with `rulelife dataset build {rule_id}`"]) from None
    evaluation = evaluate_rule(rule, load_rows(snapshot), snapshot.meta, workspace.settings,
                               lexicon=compile_lexicon(load_lexicon(workspace.rules_dir)),
                               dataset_hash=snapshot.content_hash)
    decision = check_gate(evaluation, snapshot, status, workspace.settings, now,
                          selection=latest_selection(store, rule_id), intent=rule.intent,
                          justification=rule.safety_justification)
    return EvaluationResult(evaluation, decision, snapshot)


def _evaluation_row(result: EvaluationResult, actor: str) -> EvaluationRow:
    e = result.evaluation
    return EvaluationRow(rule_id=e.rule_id, rule_version=e.rule_version, dataset_hash=e.dataset_hash, at=utcnow(),
                         actor=actor, passed=result.decision.passed, reasons=json.dumps(result.decision.reasons),
                         metrics=json.dumps(e.to_dict(), default=str))


def evaluate(workspace: Workspace, rule_id: str, *, actor: str = "cli", store: Store | None = None,
             now: datetime | None = None, record: bool = True) -> EvaluationResult:
    """Evaluate the rule's latest version on its newest dataset and record the result."""
    store = store or Store.from_workspace(workspace)
    result = _evaluate(store, workspace, rule_id, now)
    if not record:
        return result
    with store.session() as session:
        row = _evaluation_row(result, actor)
        session.add(row)
        session.flush()
        return EvaluationResult(result.evaluation, result.decision, result.snapshot, row.id)


def _windows(store: Store, rule_id: str, snapshot: DatasetSnapshot) -> dict:
    """The days that chose the rule (None: hand-written) and the days its evidence came from."""
    chosen = latest_selection(store, rule_id)
    evidence = evidence_window(snapshot)
    return {"selection_window": chosen.window.to_list() if chosen else None,
            "evidence_window": evidence.to_list() if evidence else None}


def model_versions_of(snapshot: DatasetSnapshot) -> str | None:
    """The model versions whose labels a dataset holds (JSON, version -> labelled fires), None if unnamed."""
    found = snapshot.meta.get("model_versions") or {}
    return json.dumps(found, sort_keys=True) if found else None


@dataclass(frozen=True)
class PromotionResult:
    status: registry.RuleStatus
    evaluation: EvaluationResult | None  # None for a move to shadow (no gate), or when unchanged
    published: PublishResult | None
    unchanged: bool = False  # the rule was there already: only the publish ran

    def to_dict(self) -> dict:
        return {
            "status": self.status.to_dict(),
            "bundle": self.published.bundle.number if self.published else None,
            "unchanged": self.unchanged,
            **(self.evaluation.to_dict() if self.evaluation else {}),
        }


def _refuse(store: Store, rule_id: str, target: State, version: str, reasons: list[str], actor: str,
            result: EvaluationResult | None = None) -> GateRefused:
    """Record a refusal (the evaluation if one ran, the audit row, the event) and return the error to raise."""
    with store.session() as session:
        evidence = {}
        if result is not None:
            row = _evaluation_row(result, actor)
            session.add(row)
            session.flush()
            evidence = {"evaluation_id": row.id, "dataset": result.snapshot.content_hash,
                        "agreement": result.evaluation.production.estimate,
                        "agreement_low": result.evaluation.production.low}
        registry.record_refusal(session, rule_id, actor=actor, target=target, version=version, reasons=reasons,
                                evidence=evidence)
    return GateRefused(rule_id, reasons)


def promote(workspace: Workspace, rule_id: str, *, actor: str, to: State | str = State.ACTIVE,
            store: Store | None = None, now: datetime | None = None, republish: bool = True) -> PromotionResult:
    """Promote the rule's latest version to shadow or active through the gate.

    ``republish=False`` leaves the bundle alone, for a caller promoting many
    rules that publishes once at the end.
    """
    target = State(to)
    if target not in (State.SHADOW, State.ACTIVE):
        raise LifecycleError(f"promote moves a rule to shadow or active, not {target.value}; "
                             "use `rulelife disable` or `rulelife retire` otherwise")
    store = store or Store.from_workspace(workspace)
    status = registry.get_status(store, rule_id)
    if already_in(status, target):
        published = publish_active(workspace, actor=actor, store=store,
                                   reason=f"{rule_id} already {target.value}") if republish else None
        return PromotionResult(status, None, published, unchanged=True)
    check_transition(rule_id, status.state, target, same_version=status.latest_version == status.version)
    if target == State.SHADOW:
        # Shadow never answers: no dataset, no gate; it starts gathering live evidence.
        new_status, published = set_state(workspace, rule_id, State.SHADOW, actor=actor, store=store,
                                          reason="moved to shadow to gather live evidence", republish=republish)
        return PromotionResult(new_status, None, published)
    if status.state == State.SHADOW and status.latest_version == status.version:
        return promote_live(workspace, rule_id, actor=actor, store=store, republish=republish)
    try:
        result = _evaluate(store, workspace, rule_id, now)
    except GateRefused as refused:  # no dataset for the version
        raise _refuse(store, rule_id, target, status.latest_version, refused.reasons, actor) from None
    if not result.decision.passed:
        raise _refuse(store, rule_id, target, status.latest_version, result.decision.reasons, actor, result)
    settings = workspace.settings
    with store.session() as session:
        row = _evaluation_row(result, actor)
        session.add(row)
        session.flush()
        windows = _windows(store, rule_id, result.snapshot)
        evidence = {"evaluation_id": row.id, "dataset": result.snapshot.content_hash,
                    "agreement": result.evaluation.production.estimate,
                    "agreement_low": result.evaluation.production.low, **windows}
        new_status = registry.apply_transition(
            session, rule_id, target, actor=actor, reason="promotion gate passed", evidence=evidence,
            action="promote", expiry_days=settings.expiry_days,
        )
        session.add(PromotionRow(
            rule_id=rule_id, rule_version=new_status.version, dataset_hash=result.snapshot.content_hash,
            evaluation_id=row.id, at=utcnow(), actor=actor, from_state=status.state.value, to_state=target.value,
            kind="promote", expires_at=new_status.expires_at,
            metrics=json.dumps({"agreement": result.evaluation.production.to_dict(),
                                "safety_false_positives": result.evaluation.safety_false_positives, **windows}),
            model_versions=model_versions_of(result.snapshot),
        ))
        evaluated = EvaluationResult(result.evaluation, result.decision, result.snapshot, row.id)
    published = publish_active(workspace, actor=actor, store=store,
                               reason=f"{rule_id} promoted to {target.value}") if republish else None
    return PromotionResult(new_status, evaluated, published)


@dataclass(frozen=True)
class RevalidationResult:
    rule_id: str
    passed: bool
    action: str  # extended | reactivated | refused | skipped
    detail: list[str]

    def to_dict(self) -> dict:
        return {"rule_id": self.rule_id, "passed": self.passed, "action": self.action, "detail": self.detail}


def latest_model_change(store: Store) -> date | None:
    """The first day of the newest model change the nightly recorded (None: the model never changed)."""
    with store.session() as session:
        row = session.exec(select(ModelChangeRow).order_by(ModelChangeRow.first_day.desc())).first()
    return None if row is None else row.first_day


def revalidate(workspace: Workspace, *, actor: str, log: Path | Sequence[Path] | None = None,
               since: date | None = None, until: date | None = None, within_days: int | None = None,
               store: Store | None = None, now: datetime | None = None, engine: str = "local",
               spark=None) -> list[RevalidationResult]:
    """Rebuild datasets (on ``engine``) and re-run the gate for active rules expiring within
    ``within_days`` and for expired rules. A pass extends an active rule's
    expiry or brings an expired rule back; a refusal changes nothing.

    Without ``since`` the datasets start at the latest model change, when
    there is one (:func:`latest_model_change`): a rule is re-validated against
    the labels of the model that serves now, not a mix with its predecessor's.
    """
    store = store or Store.from_workspace(workspace)
    since = since if since is not None else latest_model_change(store)
    now = now or utcnow()
    horizon = now + timedelta(days=workspace.settings.revalidate_within_days if within_days is None else within_days)
    due = [s for s in registry.list_rules(store)
           if (s.state == State.ACTIVE and s.expires_at is not None and s.expires_at <= horizon)
           or s.state == State.EXPIRED]
    results = []
    for status in due:
        if status.pending_version:
            # Re-validation vouches for what is live; a pending edit needs a deliberate promotion.
            results.append(RevalidationResult(status.rule_id, False, "skipped", [
                f"version {status.pending_version} is pending; evaluate and promote it with "
                f"`rulelife promote {status.rule_id}`, which also renews the expiry"]))
            continue
        build_rule_dataset(workspace, status.rule_id, log=log, since=since, until=until, actor=actor, store=store,
                           now=now, engine=engine, spark=spark)
        if status.state == State.EXPIRED:
            try:
                promote(workspace, status.rule_id, actor=actor, store=store, now=now)
                results.append(RevalidationResult(status.rule_id, True, "reactivated", []))
            except GateRefused as refused:
                results.append(RevalidationResult(status.rule_id, False, "refused", refused.reasons))
            continue
        result = _evaluate(store, workspace, status.rule_id, now)
        if not result.decision.passed:
            results.append(RevalidationResult(status.rule_id, False, "refused", result.decision.reasons))
            continue
        with store.session() as session:
            row = _evaluation_row(result, actor)
            session.add(row)
            session.flush()
            new = registry.extend_expiry(session, status.rule_id, days=workspace.settings.expiry_days, actor=actor,
                                         reason="re-validated: gate passed on a fresh dataset",
                                         evidence={"evaluation_id": row.id, "dataset": result.snapshot.content_hash})
            session.add(PromotionRow(
                rule_id=status.rule_id, rule_version=new.version, dataset_hash=result.snapshot.content_hash,
                evaluation_id=row.id, at=utcnow(), actor=actor, from_state="active", to_state="active",
                kind="revalidate", expires_at=new.expires_at,
                metrics=json.dumps({"agreement": result.evaluation.production.to_dict()}),
                model_versions=model_versions_of(result.snapshot),
            ))
        results.append(RevalidationResult(status.rule_id, True, "extended", []))
    return results
