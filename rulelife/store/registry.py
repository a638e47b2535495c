"""The rule registry: versions, one lifecycle state per rule, and the audit log.

Every change of state goes through :func:`transition`, which checks the
lifecycle, writes the new state and its audit row in one transaction, and
locks the rule's row on PostgreSQL so two writers cannot interleave.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlmodel import Session, select

from rulelife.config import Workspace
from rulelife.errors import LifecycleError, RuleError, UnknownRule
from rulelife.rules.definition import Rule, RuleFile
from rulelife.rules.lifecycle import State, check_transition, parse_state
from rulelife.rules.lint import lint_rules
from rulelife.store import AuditRow, RuleStateRow, RuleVersionRow, Store, events, utcnow

__all__ = [
    "RuleDetails",
    "RuleStatus",
    "SyncReport",
    "active_rules",
    "apply_transition",
    "audit_log",
    "extend_expiry",
    "get_status",
    "last_changes",
    "list_rules",
    "record_forced_serving",
    "record_refusal",
    "rule_definition",
    "rule_details",
    "shadow_rules",
    "sync_rules",
    "sync_workspace",
    "transition",
    "version_history",
]


@dataclass(frozen=True)
class RuleStatus:
    """A rule's lifecycle state as the registry knows it."""

    rule_id: str
    intent: str
    state: State
    version: str
    latest_version: str
    updated_at: datetime
    expires_at: datetime | None

    @property
    def pending_version(self) -> str | None:
        """A newer registered version awaiting promotion, if any."""
        return self.latest_version if self.latest_version != self.version else None

    def to_dict(self) -> dict:
        return {
            "rule_id": self.rule_id,
            "intent": self.intent,
            "state": self.state.value,
            "version": self.version,
            "latest_version": self.latest_version,
            "pending_version": self.pending_version,
            "updated_at": self.updated_at.isoformat(),
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
        }


@dataclass
class SyncReport:
    """What :func:`sync_rules` did, rule id by rule id."""

    registered: list[str] = field(default_factory=list)
    new_versions: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)  # edited while active: old version keeps serving
    unchanged: list[str] = field(default_factory=list)
    retired_ignored: list[str] = field(default_factory=list)
    missing_files: list[str] = field(default_factory=list)  # in the registry, no longer in rules/

    def to_dict(self) -> dict:
        return {k: list(v) for k, v in self.__dict__.items()}


def _status(row: RuleStateRow) -> RuleStatus:
    return RuleStatus(
        rule_id=row.rule_id,
        intent=row.intent,
        state=State(row.state),
        version=row.version,
        latest_version=row.latest_version,
        updated_at=row.updated_at,
        expires_at=row.expires_at,
    )


def _audit(session: Session, **values) -> AuditRow:
    evidence = values.pop("evidence", None) or {}
    row = AuditRow(at=utcnow(), evidence=json.dumps(evidence, sort_keys=True, default=str), **values)
    session.add(row)
    return row


def _state_row(session: Session, rule_id: str, *, lock: bool = False) -> RuleStateRow:
    query = select(RuleStateRow).where(RuleStateRow.rule_id == rule_id)
    if lock:
        query = query.with_for_update()
    row = session.exec(query).first()
    if row is None:
        raise UnknownRule(
            f"rule {rule_id!r} is not in the registry; check the id with `rulelife rules list`, "
            "or run `rulelife sync` if you just added it"
        )
    return row


def sync_rules(store: Store, rule_files: Iterable[RuleFile], *, actor: str) -> SyncReport:
    """Register new rules and new versions of edited rules.

    A new rule becomes a candidate. An edited candidate, shadow, disabled or
    expired rule becomes a candidate at its new version. An edited *active*
    rule keeps serving its old version; the new one is pending until promoted,
    so an edit never silently replaces what is live.
    """
    report = SyncReport()
    seen: set[str] = set()
    with store.session() as session:
        for rule_file in rule_files:
            rule = rule_file.rule
            seen.add(rule.id)
            _sync_one(session, rule, str(rule_file.path), actor, report)
        known = session.exec(select(RuleStateRow.rule_id, RuleStateRow.state)).all()
        report.missing_files = sorted(
            rule_id for rule_id, state in known if rule_id not in seen and state != State.RETIRED
        )
    return report


def _sync_one(session: Session, rule: Rule, source: str, actor: str, report: SyncReport) -> None:
    version = rule.version
    now = utcnow()
    exists = session.exec(
        select(RuleVersionRow.id).where(RuleVersionRow.rule_id == rule.id, RuleVersionRow.version == version)
    ).first()
    if exists is None:
        definition = json.dumps(rule.canonical(), sort_keys=True, ensure_ascii=False)
        session.add(
            RuleVersionRow(
                rule_id=rule.id,
                version=version,
                intent=rule.intent,
                definition=definition,
                source_path=source,
                registered_at=now,
                registered_by=actor,
            )
        )
    state = session.exec(select(RuleStateRow).where(RuleStateRow.rule_id == rule.id).with_for_update()).first()
    if state is None:
        session.add(
            RuleStateRow(
                rule_id=rule.id,
                intent=rule.intent,
                state=State.CANDIDATE,
                version=version,
                latest_version=version,
                updated_at=now,
            )
        )
        _audit(session, rule_id=rule.id, actor=actor, action="register", to_state=State.CANDIDATE,
               to_version=version, reason=f"registered from {source}")
        report.registered.append(rule.id)
        return
    if state.latest_version == version:
        report.unchanged.append(rule.id)
        return
    current = State(state.state)
    if current == State.RETIRED:
        report.retired_ignored.append(rule.id)
        return
    state.latest_version = version
    state.updated_at = now
    if current == State.ACTIVE:
        _audit(session, rule_id=rule.id, actor=actor, action="new_version", from_state=current,
               to_state=current, from_version=state.version, to_version=version,
               reason=f"edited in {source}; version {state.version} keeps serving until {version} is promoted")
        report.pending.append(rule.id)
    else:
        _audit(session, rule_id=rule.id, actor=actor, action="new_version", from_state=current,
               to_state=State.CANDIDATE, from_version=state.version, to_version=version,
               reason=f"edited in {source}; the new version must pass the gate again")
        state.state = State.CANDIDATE
        state.version = version
        report.new_versions.append(rule.id)
    session.add(state)


def transition(
    store: Store,
    rule_id: str,
    to: State | str,
    *,
    actor: str,
    reason: str,
    evidence: dict | None = None,
    action: str | None = None,
    expiry_days: int | None = None,
) -> RuleStatus:
    """Move a rule to state ``to`` and record why; raise if the move is illegal.

    Moving to shadow or active always takes the rule's latest version (the one
    evaluated). ``expiry_days`` sets the expiry of a rule made active.
    """
    with store.session() as session:
        return apply_transition(
            session, rule_id, to, actor=actor, reason=reason, evidence=evidence, action=action,
            expiry_days=expiry_days,
        )


def apply_transition(
    session: Session,
    rule_id: str,
    to: State | str,
    *,
    actor: str,
    reason: str,
    evidence: dict | None = None,
    action: str | None = None,
    expiry_days: int | None = None,
) -> RuleStatus:
    """:func:`transition` inside the caller's transaction (for multi-table changes)."""
    target = parse_state(to) if isinstance(to, str) else to
    if not reason.strip():
        raise LifecycleError(f"say why {rule_id} moves to {target.value}: pass a non-empty reason")
    row = _state_row(session, rule_id, lock=True)
    current = State(row.state)
    version = row.latest_version if target in (State.SHADOW, State.ACTIVE) else row.version
    check_transition(rule_id, current, target, same_version=version == row.version)
    now = utcnow()
    audit = _audit(session, rule_id=rule_id, actor=actor, action=action or target.value, from_state=current,
                   to_state=target, from_version=row.version, to_version=version, reason=reason, evidence=evidence)
    session.flush()  # the audit row's id goes in the event
    events.record_transition(session, audit, row.intent)
    row.state = target
    row.version = version
    row.updated_at = now
    if target == State.ACTIVE:
        row.expires_at = now + timedelta(days=expiry_days) if expiry_days else None
    elif target != State.EXPIRED:
        row.expires_at = None
    session.add(row)
    return _status(row)


def extend_expiry(
    session: Session, rule_id: str, *, days: int, actor: str, reason: str, evidence: dict | None = None
) -> RuleStatus:
    """Re-validate an active rule at its live version: push its expiry ``days`` from now."""
    row = _state_row(session, rule_id, lock=True)
    if row.state != State.ACTIVE:
        raise LifecycleError(f"only an active rule can be re-validated in place; {rule_id} is {row.state}")
    now = utcnow()
    _audit(session, rule_id=rule_id, actor=actor, action="revalidate", from_state=row.state, to_state=row.state,
           from_version=row.version, to_version=row.version, reason=reason, evidence=evidence)
    row.expires_at = now + timedelta(days=days)
    row.updated_at = now
    session.add(row)
    events.record(session, "rule.revalidated", subject=rule_id, actor=actor, data={
        "rule_id": rule_id, "intent": row.intent, "version": row.version, "expires_at": row.expires_at,
        "reason": reason, "evidence": events.scalars(evidence)})
    return _status(row)


# Audit actions that record something about a rule without changing its state or served version.
NOT_CHANGES = ("promote_refused", "revalidate", "rollback_forced")


def record_refusal(session: Session, rule_id: str, *, actor: str, target: State, version: str,
                   reasons: list[str], evidence: dict | None = None) -> None:
    """Put a refused promotion in the audit log and the events; the rule's state is left as it was."""
    row = _state_row(session, rule_id)
    reason = "promotion gate refused: " + "; ".join(reasons)
    _audit(session, rule_id=rule_id, actor=actor, action="promote_refused", from_state=row.state,
           to_state=row.state, from_version=row.version, to_version=version, reason=reason,
           evidence={"target": target.value, "reasons": reasons, **(evidence or {})})
    events.record(session, "rule.promotion_refused", subject=rule_id, actor=actor, data={
        "rule_id": rule_id, "intent": row.intent, "state": row.state, "target": target.value, "version": version,
        "reasons": reasons, "evidence": events.scalars(evidence)})


def record_forced_serving(session: Session, rule_id: str, *, actor: str, version: str, reason: str) -> None:
    """Audit a forced rollback that serves ``version`` of a rule the registry took out of traffic;
    the rule's state is left as it is."""
    row = _state_row(session, rule_id)
    _audit(session, rule_id=rule_id, actor=actor, action="rollback_forced", from_state=row.state,
           to_state=row.state, from_version=row.version, to_version=version, reason=reason)


def last_changes(store: Store, rule_ids: Iterable[str]) -> dict[str, AuditRow]:
    """The newest audit row that changed each rule's state or served version: not a refusal, a
    re-validation, a forced rollback's note, nor an edit of an active rule that waits for promotion."""
    wanted = sorted(set(rule_ids))
    if not wanted:
        return {}
    pending_edit = (AuditRow.action == "new_version") & (AuditRow.from_state == AuditRow.to_state)
    with store.session() as session:
        rows = session.exec(
            select(AuditRow).where(AuditRow.rule_id.in_(wanted), AuditRow.action.notin_(NOT_CHANGES), ~pending_edit)
            .order_by(AuditRow.at, AuditRow.id)
        ).all()
    return {row.rule_id: row for row in rows}  # ascending: the newest wins


def get_status(store: Store, rule_id: str) -> RuleStatus:
    with store.session() as session:
        return _status(_state_row(session, rule_id))


def list_rules(store: Store, *, state: State | str | None = None) -> list[RuleStatus]:
    with store.session() as session:
        query = select(RuleStateRow).order_by(RuleStateRow.rule_id)
        if state is not None:
            query = query.where(RuleStateRow.state == parse_state(str(state)))
        return [_status(row) for row in session.exec(query).all()]


def rule_definition(store: Store, rule_id: str, version: str | None = None) -> Rule:
    """The definition of ``rule_id`` at ``version`` (default: the version its state names)."""
    with store.session() as session:
        if version is None:
            version = _state_row(session, rule_id).version
        row = session.exec(
            select(RuleVersionRow).where(RuleVersionRow.rule_id == rule_id, RuleVersionRow.version == version)
        ).first()
        if row is None:
            raise UnknownRule(f"rule {rule_id!r} has no version {version!r}; see `rulelife rules show {rule_id}`")
        return Rule.model_validate(json.loads(row.definition))


def active_rules(store: Store) -> list[Rule]:
    """Definitions of the live version of every active rule, sorted by id."""
    return _rules_in(store, State.ACTIVE)


def shadow_rules(store: Store) -> list[Rule]:
    """Definitions of the version of every shadow rule, sorted by id (matched, never served)."""
    return _rules_in(store, State.SHADOW)


def _rules_in(store: Store, state: State) -> list[Rule]:
    with store.session() as session:
        rows = session.exec(
            select(RuleVersionRow)
            .join(
                RuleStateRow,
                (RuleStateRow.rule_id == RuleVersionRow.rule_id) & (RuleStateRow.version == RuleVersionRow.version),
            )
            .where(RuleStateRow.state == state)
            .order_by(RuleVersionRow.rule_id)
        ).all()
        return [Rule.model_validate(json.loads(row.definition)) for row in rows]


def version_history(store: Store, rule_id: str) -> list[RuleVersionRow]:
    with store.session() as session:
        _state_row(session, rule_id)
        return list(
            session.exec(
                select(RuleVersionRow)
                .where(RuleVersionRow.rule_id == rule_id)
                .order_by(RuleVersionRow.registered_at, RuleVersionRow.id)
            ).all()
        )


def audit_log(store: Store, rule_id: str | None = None) -> list[AuditRow]:
    with store.session() as session:
        query = select(AuditRow).order_by(AuditRow.at, AuditRow.id)
        if rule_id is not None:
            _state_row(session, rule_id)
            query = query.where(AuditRow.rule_id == rule_id)
        return list(session.exec(query).all())


def sync_workspace(workspace: Workspace, *, actor: str, store: Store | None = None) -> SyncReport:
    """Lint the rules folder and register new rules and versions.

    Nothing is registered while any rule has a lint problem: a half-valid
    folder would register some edits and not others.
    """
    report = lint_rules(workspace.rules_dir)
    if not report.ok:
        lines = "\n".join(f"  {p.path}: {p.field}: {p.message}" for p in report.problems)
        raise RuleError(
            f"{len(report.problems)} problem(s) in {workspace.rules_dir}; fix them "
            f"(see `rulelife rules lint`) and sync again:\n{lines}"
        )
    return sync_rules(store or Store.from_workspace(workspace), report.rules, actor=actor)


@dataclass(frozen=True)
class RuleDetails:
    status: RuleStatus
    definition: dict
    versions: list[dict]
    audit: list[dict]

    def to_dict(self) -> dict:
        return {
            "status": self.status.to_dict(),
            "definition": self.definition,
            "versions": self.versions,
            "audit": self.audit,
        }


def rule_details(workspace: Workspace, rule_id: str, *, store: Store | None = None) -> RuleDetails:
    """A rule's state, its latest definition, every version and its audit trail."""
    store = store or Store.from_workspace(workspace)
    status = get_status(store, rule_id)
    definition = rule_definition(store, rule_id, status.latest_version)
    versions = [
        {
            "version": v.version,
            "registered_at": v.registered_at.isoformat(),
            "registered_by": v.registered_by,
            "source_path": v.source_path,
        }
        for v in version_history(store, rule_id)
    ]
    audit = [
        {
            "at": a.at.isoformat(),
            "actor": a.actor,
            "action": a.action,
            "from_state": a.from_state,
            "to_state": a.to_state,
            "from_version": a.from_version,
            "to_version": a.to_version,
            "reason": a.reason,
            "evidence": json.loads(a.evidence),
        }
        for a in audit_log(store, rule_id)
    ]
    return RuleDetails(status, definition.model_dump(mode="json"), versions, audit)
