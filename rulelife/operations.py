"""Workspace-level operations, one function per CLI command that changes state.

The CLI only parses options and prints; everything here is callable from a
test, a notebook or an orchestrator.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from rulelife import registry
from rulelife.bundle import Bundle, BundleStore
from rulelife.config import Workspace
from rulelife.errors import RuleError
from rulelife.lexicon import load_lexicon
from rulelife.lifecycle import State
from rulelife.lint import lint_rules
from rulelife.matcher import compile_rule
from rulelife.registry import RuleStatus, SyncReport
from rulelife.store import Store

__all__ = [
    "PublishResult",
    "RuleDetails",
    "analyze",
    "build_bundle",
    "open_store",
    "publish_active",
    "rule_details",
    "set_state",
    "sync",
]


def open_store(workspace: Workspace) -> Store:
    return Store.from_workspace(workspace)


def sync(workspace: Workspace, *, actor: str, store: Store | None = None) -> SyncReport:
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
    store = store or open_store(workspace)
    return registry.sync_rules(store, report.rules, actor=actor)


@dataclass(frozen=True)
class PublishResult:
    bundle: Bundle
    built: bool  # a new bundle file was written
    published: bool  # CURRENT moved


def build_bundle(workspace: Workspace, *, store: Store | None = None) -> tuple[Bundle, bool]:
    """Write (or reuse) the bundle of the active rules, the shadow ones flagged and
    the workspace's safety lexicon; CURRENT is not moved. Returns it and whether it is new."""
    store = store or open_store(workspace)
    shadow = [compile_rule(rule, shadow=True) for rule in registry.shadow_rules(store)]
    return BundleStore(workspace.bundle_dir).build([*registry.active_rules(store), *shadow],
                                                   load_lexicon(workspace.rules_dir))


def publish_active(workspace: Workspace, *, actor: str, store: Store | None = None) -> PublishResult:
    """Bundle the active rule versions, and the shadow ones flagged, and point CURRENT at the bundle.

    The runtime serves the active rules and only reports what the shadow
    rules would have answered. The workspace's safety lexicon (the file beside
    the rules) is compiled in: a message holding one of its phrases goes to
    the model, and editing the lexicon makes a new bundle as a rule edit does.
    Idempotent: unchanged rules and lexicon reuse the newest bundle and leave
    CURRENT alone, so the nightly job can call this every run.
    """
    bundle, built = build_bundle(workspace, store=store)
    bundles = BundleStore(workspace.bundle_dir)
    pointer = bundles.pointer()
    if pointer is not None and pointer["number"] == bundle.number:
        return PublishResult(bundle, built, False)
    return PublishResult(bundles.publish(bundle.number, actor=actor), built, True)


def set_state(
    workspace: Workspace,
    rule_id: str,
    state: State | str,
    *,
    actor: str,
    reason: str,
    evidence: dict | None = None,
    store: Store | None = None,
    republish: bool = True,
) -> tuple[RuleStatus, PublishResult | None]:
    """Move a rule to ``state`` and republish the bundle if that changes what is live."""
    store = store or open_store(workspace)
    status = registry.transition(
        store, rule_id, state, actor=actor, reason=reason, evidence=evidence,
        expiry_days=workspace.settings.expiry_days,
    )
    published = publish_active(workspace, actor=actor, store=store) if republish else None
    return status, published


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
    store = store or open_store(workspace)
    status = registry.get_status(store, rule_id)
    definition = registry.rule_definition(store, rule_id, status.latest_version)
    versions = [
        {
            "version": v.version,
            "registered_at": v.registered_at.isoformat(),
            "registered_by": v.registered_by,
            "source_path": v.source_path,
        }
        for v in registry.version_history(store, rule_id)
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
        for a in registry.audit_log(store, rule_id)
    ]
    return RuleDetails(status, definition.model_dump(mode="json"), versions, audit)


def analyze(
    workspace: Workspace,
    *,
    log=None,
    since=None,
    until=None,
    bundle_number: int | None = None,
    engine: str = "local",
    spark=None,
):
    """Overlap, conflicts, shadowing, coverage and residual traffic of the
    published bundle (or bundle ``bundle_number``) over the query log,
    counted on ``engine`` (see :func:`rulelife.engines.fold.fold_log`)."""
    from rulelife.analysis import AnalysisPass, finalize
    from rulelife.engines.fold import fold_log

    bundles = BundleStore(workspace.bundle_dir)
    bundle = bundles.current() if bundle_number is None else bundles.load(bundle_number)
    counts = fold_log(AnalysisPass(list(bundle.matcher.rules)), log if log is not None else workspace.log_dir,
                      since=since, until=until, engine=engine, spark=spark,
                      known_intents=workspace.settings.intents or None, quarantine_dir=workspace.quarantine_dir)
    return bundle, finalize(counts)
