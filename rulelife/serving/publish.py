"""Publishing: the one way a set of rules becomes the bundle the runtime serves.

:func:`publish_rules` builds (or reuses) the bundle of a set of compiled rules
and moves ``CURRENT`` to it; :func:`publish_active` is that call on the
registry's active rules (and its shadow rules, flagged) with the workspace's
safety lexicon, and :func:`set_state` a registry transition followed by it.
The CLI, the gate, the nightly job, tests and benchmarks all publish here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rulelife.config import Workspace
from rulelife.rules.definition import Rule
from rulelife.rules.lexicon import Lexicon, load_lexicon
from rulelife.rules.lifecycle import State
from rulelife.rules.matcher import CompiledRule, compile_rule
from rulelife.serving.bundle import Bundle, BundleStore, PublishResult, ServingSettings
from rulelife.store import Store, registry
from rulelife.store.registry import RuleStatus

__all__ = ["PublishResult", "build_bundle", "publish_active", "publish_rules", "set_state"]


def publish_rules(bundles: BundleStore | Path, rules: Sequence[Rule | CompiledRule], *,
                  lexicon: Lexicon | None = None, serving: ServingSettings | None = None,
                  actor: str = "") -> PublishResult:
    """Build (or reuse) the bundle of ``rules``, ``lexicon`` and ``serving`` settings and point CURRENT at it.

    Idempotent: when CURRENT already names that bundle nothing moves, so a
    job may call this every run. A damaged CURRENT is replaced (and
    ``repaired`` says what was wrong with it).
    """
    bundles = bundles if isinstance(bundles, BundleStore) else BundleStore(Path(bundles))
    return bundles.build_and_point(rules, lexicon=lexicon, serving=serving, actor=actor)


def _registry_rules(store: Store) -> list[Rule | CompiledRule]:
    shadow = [compile_rule(rule, shadow=True) for rule in registry.shadow_rules(store)]
    return [*registry.active_rules(store), *shadow]


def build_bundle(workspace: Workspace, *, store: Store | None = None) -> tuple[Bundle, bool]:
    """Write (or reuse) the bundle of the active rules, the shadow ones flagged and
    the workspace's safety lexicon; CURRENT is not moved. Returns it and whether it is new."""
    store = store or Store.from_workspace(workspace)
    return BundleStore.for_workspace(workspace).build(_registry_rules(store), load_lexicon(workspace.rules_dir),
                                                      ServingSettings.from_settings(workspace.settings))


def publish_active(workspace: Workspace, *, actor: str, store: Store | None = None) -> PublishResult:
    """Bundle the active rule versions, and the shadow ones flagged, and point CURRENT at the bundle.

    The runtime serves the active rules and only reports what the shadow
    rules would have answered. The workspace's safety lexicon (the file beside
    the rules) is compiled in: a message holding one of its phrases goes to
    the model, and editing the lexicon makes a new bundle as a rule edit does.
    The workspace's serving settings (shadow rate, maximum text length) travel
    in the header, so the runtime needs no copy of them; changing one makes a
    new bundle too.
    Idempotent: unchanged rules and lexicon reuse the newest bundle and leave
    CURRENT alone, so the nightly job can call this every run.
    """
    store = store or Store.from_workspace(workspace)
    return publish_rules(BundleStore.for_workspace(workspace), _registry_rules(store),
                         lexicon=load_lexicon(workspace.rules_dir),
                         serving=ServingSettings.from_settings(workspace.settings), actor=actor)


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
    store = store or Store.from_workspace(workspace)
    status = registry.transition(
        store, rule_id, state, actor=actor, reason=reason, evidence=evidence,
        expiry_days=workspace.settings.expiry_days,
    )
    published = publish_active(workspace, actor=actor, store=store) if republish else None
    return status, published
