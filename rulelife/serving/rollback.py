"""Rollback that respects the registry, the pin it leaves, and bundle diffs with their reasons.

Rolling back re-points ``CURRENT`` at an earlier bundle, but never at one
that would serve a rule the registry has since disabled, expired or retired
(a safety decision must not be undone by the command an on-call engineer runs
in a hurry): such a rollback is refused with every such rule and the change
that took it out, unless forced with a reason, which is audited on each rule.

A rollback pins the bundle: publishing (the nightly's included) leaves
``CURRENT`` on it, says so, and only removes from it rules the registry takes
out of traffic afterwards (see :mod:`rulelife.serving.publish`), until
:func:`unpin`, which publishes the registry's rules again.
"""

from __future__ import annotations

from dataclasses import dataclass

from rulelife.config import Workspace
from rulelife.errors import LifecycleError, RollbackRefused
from rulelife.serving.bundle import Bundle, BundleStore, Pin, PublishResult
from rulelife.serving.publish import Blocked, blocked_rules, publish_active, record_bundle_events
from rulelife.store import Store, registry

__all__ = ["DiffEntry", "RollbackResult", "explain_diff", "rollback", "unpin"]


@dataclass(frozen=True)
class RollbackResult:
    bundle: Bundle
    pin: Pin
    forced: tuple[Blocked, ...]  # rules served although the registry took them out (--force)

    def to_dict(self) -> dict:
        return {**self.bundle.summary(), "pin": self.pin.to_dict(), "forced": [b.to_dict() for b in self.forced]}


def rollback(workspace: Workspace, number: int | None = None, *, actor: str, reason: str = "",
             force: bool = False, store: Store | None = None) -> RollbackResult:
    """Point CURRENT at bundle ``number`` (default: the one published before it) and pin it.

    Raises :class:`~rulelife.errors.RollbackRefused` when the bundle holds
    rules the registry took out of traffic, unless ``force`` (which needs a
    ``reason``, audited on each of those rules).
    """
    if force and not reason.strip():
        raise LifecycleError("--force serves rules the registry took out of traffic; say why with --reason "
                             "(it is recorded in each rule's audit log)")
    store = store or Store.from_workspace(workspace)
    bundles = BundleStore.for_workspace(workspace)
    with bundles.locked():
        target = bundles.rollback_target(number)
        bundle = bundles.load(target)
        blocked = blocked_rules(store, bundle.rules)
        if blocked and not force:
            raise RollbackRefused(target, [b.line for b in blocked.values()])
        if blocked:
            versions = {r.id: r.version for r in bundle.rules}
            with store.session() as session:
                for b in blocked.values():
                    if b.state != "unknown":
                        registry.record_forced_serving(session, b.rule_id, actor=actor, version=versions[b.rule_id],
                                                       reason=f"rollback to bundle {target} forced: {reason}")
        bundles.publish(target, actor=actor, action="rollback", reason=reason,
                        extra={"pinned": True, "forced": sorted(blocked)})
        pin = bundles.pin(target, actor=actor, reason=reason or f"rolled back to bundle {target}",
                          forced={b.rule_id: b.state for b in blocked.values()})
        record_bundle_events(store, bundles)
    return RollbackResult(bundle, pin, tuple(blocked.values()))


def unpin(workspace: Workspace, *, actor: str, reason: str = "",
          store: Store | None = None) -> tuple[Pin | None, PublishResult]:
    """Lift the pin and publish the registry's rules; return the pin lifted (None: there was none)."""
    store = store or Store.from_workspace(workspace)
    bundles = BundleStore.for_workspace(workspace)
    with bundles.locked():
        pin = bundles.unpin(actor=actor, reason=reason)
        record_bundle_events(store, bundles)
        published = publish_active(workspace, actor=actor, store=store,
                                   reason=f"unpinned: {reason}" if reason else "unpinned")
    return pin, published


@dataclass(frozen=True)
class DiffEntry:
    """One rule that differs between two bundles, its patterns, and the registry change behind it."""

    rule_id: str
    change: str  # added | removed | changed
    versions: tuple[str | None, str | None]  # in a, in b
    patterns_added: tuple[str, ...]
    patterns_removed: tuple[str, ...]
    state: str | None  # the registry's state now (None: not in the registry)
    why: str | None  # the newest change of state: when, who, why

    def to_dict(self) -> dict:
        return {"rule_id": self.rule_id, "change": self.change, "from": self.versions[0], "to": self.versions[1],
                "patterns_added": list(self.patterns_added), "patterns_removed": list(self.patterns_removed),
                "state": self.state, "why": self.why}


def explain_diff(workspace: Workspace, a: int, b: int, *, store: Store | None = None) -> list[DiffEntry]:
    """Rules added, removed and changed from bundle ``a`` to ``b``, with their patterns and the state
    change behind each (the registry's newest one for that rule)."""
    store = store or Store.from_workspace(workspace)
    bundles = BundleStore.for_workspace(workspace)
    old = {r.id: r for r in bundles.load(a).rules}
    new = {r.id: r for r in bundles.load(b).rules}
    differ = sorted(k for k in old.keys() | new.keys()
                    if k not in old or k not in new or old[k].version != new[k].version
                    or old[k].shadow != new[k].shadow)
    states = {s.rule_id: s.state.value for s in registry.list_rules(store)}
    changes = registry.last_changes(store, differ)
    entries = []
    for rule_id in differ:
        before, after = old.get(rule_id), new.get(rule_id)
        was = set(before.patterns) if before else set()
        now = set(after.patterns) if after else set()
        change = changes.get(rule_id)
        why = (f"{change.action} on {change.at.date()} by {change.actor}: {change.reason}" if change else None)
        entries.append(DiffEntry(
            rule_id, "added" if before is None else "removed" if after is None else "changed",
            (before.version if before else None, after.version if after else None),
            tuple(sorted(now - was)), tuple(sorted(was - now)), states.get(rule_id), why))
    return entries
