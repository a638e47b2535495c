"""Publishing: the one way a set of rules becomes the bundle the runtime serves.

:func:`publish_rules` builds (or reuses) the bundle of a set of compiled rules
and moves ``CURRENT`` to it; :func:`publish_active` is that call on the
registry's active rules (and its shadow rules, flagged) with the workspace's
safety lexicon, and :func:`set_state` a registry transition followed by it.
The CLI, the gate, the nightly job, tests and benchmarks all publish here.

:func:`publish_active` reads the registry while it holds the bundle folder's
lock, so a publish that started before a concurrent ``disable`` cannot
re-serve the rule after the disable's own publish.

A rollback pins the bundle it serves (:mod:`rulelife.serving.rollback`).
While a pin holds, :func:`publish_active` leaves ``CURRENT`` on it and says
what the registry would change (``waiting``); the one exception is a rule
the registry has since taken out of traffic: it is removed from the pinned
bundle at once (a new bundle, pinned in its place), because a disable is a
safety decision a rollback must not undo.

Each move of ``CURRENT`` is a line of the bundle folder's history, and each
line becomes a registry event (``bundle.published``, ``bundle.rolled_back``,
``bundle.unpinned``) whose id is derived from the line, so a publish killed
between the two is completed by the next one, and never recorded twice.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlmodel import select

from rulelife.config import Workspace
from rulelife.errors import BundleError, BundleIntegrityError
from rulelife.rules.definition import Rule
from rulelife.rules.lexicon import Lexicon, load_lexicon
from rulelife.rules.lifecycle import State, parse_state
from rulelife.rules.matcher import CompiledRule, compile_rule
from rulelife.serving.bundle import Bundle, BundleStore, Pin, PublishResult, ServingSettings
from rulelife.store import EventRow, Store, events, registry
from rulelife.store.registry import RuleStatus

__all__ = [
    "Blocked",
    "PublishResult",
    "already_in",
    "blocked_rules",
    "build_bundle",
    "publish_active",
    "publish_rules",
    "record_bundle_events",
    "set_state",
]

# History actions and the event each becomes.
_BUNDLE_EVENTS = {"publish": "bundle.published", "rollback": "bundle.rolled_back", "unpin": "bundle.unpinned"}
# History lines looked back over for ones a killed publish left unrecorded.
_RECONCILE_LINES = 10


def publish_rules(bundles: BundleStore | Path, rules: Sequence[Rule | CompiledRule], *,
                  lexicon: Lexicon | None = None, serving: ServingSettings | None = None,
                  actor: str = "", reason: str = "") -> PublishResult:
    """Build (or reuse) the bundle of ``rules``, ``lexicon`` and ``serving`` settings and point CURRENT at it.

    Idempotent: when CURRENT already names that bundle nothing moves, so a
    job may call this every run. A damaged CURRENT is replaced (and
    ``repaired`` says what was wrong with it).
    """
    bundles = bundles if isinstance(bundles, BundleStore) else BundleStore(Path(bundles))
    return bundles.build_and_point(rules, lexicon=lexicon, serving=serving, actor=actor, reason=reason)


def _registry_rules(store: Store) -> list[Rule | CompiledRule]:
    shadow = [compile_rule(rule, shadow=True) for rule in registry.shadow_rules(store)]
    return [*registry.active_rules(store), *shadow]


def build_bundle(workspace: Workspace, *, store: Store | None = None) -> tuple[Bundle, bool]:
    """Write (or reuse) the bundle of the active rules, the shadow ones flagged and
    the workspace's safety lexicon; CURRENT is not moved. Returns it and whether it is new."""
    store = store or Store.from_workspace(workspace)
    return BundleStore.for_workspace(workspace).build(_registry_rules(store), load_lexicon(workspace.rules_dir),
                                                      ServingSettings.from_settings(workspace.settings))


def publish_active(workspace: Workspace, *, actor: str, store: Store | None = None,
                   reason: str = "") -> PublishResult:
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
    While a rollback's pin holds, CURRENT stays on the pinned bundle (see the
    module docstring); ``result.pin`` says so and ``result.waiting`` what the
    registry would change.
    """
    store = store or Store.from_workspace(workspace)
    bundles = BundleStore.for_workspace(workspace)
    lexicon = load_lexicon(workspace.rules_dir)
    serving = ServingSettings.from_settings(workspace.settings)
    with bundles.locked():
        rules = _registry_rules(store)  # under the lock: see the module docstring
        pin = bundles.pinned()
        if pin is None:
            result = bundles.build_and_point(rules, lexicon=lexicon, serving=serving, actor=actor, reason=reason)
        else:
            result = _hold_pin(bundles, store, pin, rules, lexicon, serving, actor)
        record_bundle_events(store, bundles, known=[result.bundle])
    return result


def _hold_pin(bundles: BundleStore, store: Store, pin: Pin, rules: list[Rule | CompiledRule], lexicon,
              serving: ServingSettings, actor: str) -> PublishResult:
    """Keep CURRENT on the pinned bundle, less any rule the registry has since taken out of traffic."""
    try:
        pinned = bundles.load(pin.number)
    except BundleError as exc:
        raise BundleError(f"bundle {pin.number}, pinned by {pin.actor} ({pin.reason}), cannot be served: {exc}. "
                          "Roll back to another bundle, or lift the pin with `rulelife bundle unpin`") from None
    blocked = blocked_rules(store, pinned.rules, forced=pin.forced)
    if blocked:
        kept = [rule for rule in pinned.rules if rule.id not in blocked]
        why = "; ".join(b.line for b in blocked.values())
        result = bundles.build_and_point(kept, lexicon=lexicon, serving=serving, actor=actor,
                                         reason=f"pinned bundle {pin.number} less what the registry took out: {why}",
                                         extra={"narrowed": sorted(blocked), "pinned": True})
        pin = bundles.pin(result.bundle.number, actor=pin.actor, reason=pin.reason, forced=pin.forced)
        bundle, built, published, repaired = result.bundle, result.built, result.published, result.repaired
    else:
        bundle, built, repaired = pinned, False, None
        try:
            pointer = bundles.pointer()
        except BundleIntegrityError as exc:
            pointer, repaired = None, str(exc)
        published = pointer is None or pointer["number"] != pin.number
        if published:  # CURRENT was moved off the pin by hand, or damaged: put it back
            bundles.publish(pin.number, actor=actor, reason=f"back to pinned bundle {pin.number}",
                            extra={"pinned": True})
    return PublishResult(bundle, built, published, repaired, pin=pin, narrowed=tuple(sorted(blocked)),
                         waiting=_waiting(bundle.rules, rules))


def _waiting(served: Sequence[CompiledRule], wanted: Sequence[Rule | CompiledRule]) -> dict | None:
    """What publishing the registry would change in ``served``: rules added, removed and changed; None if nothing."""
    have = {r.id: (r.version, r.shadow) for r in served}
    want = {r.id: (r.version, isinstance(r, CompiledRule) and r.shadow) for r in wanted}
    change = {"added": sorted(want.keys() - have.keys()), "removed": sorted(have.keys() - want.keys()),
              "changed": sorted(k for k in want.keys() & have.keys() if want[k] != have[k])}
    return change if any(change.values()) else None


@dataclass(frozen=True)
class Blocked:
    """A rule of a bundle the registry has taken out of traffic, and the change that did."""

    rule_id: str
    state: str  # the registry's state, or "unknown" for a rule it does not hold
    shadow: bool  # the bundle holds it as a shadow rule
    at: datetime | None = None
    actor: str | None = None
    reason: str | None = None

    @property
    def line(self) -> str:
        if self.state == "unknown":
            return f"{self.rule_id}: not in the registry"
        when = f" on {self.at.date()} by {self.actor}" if self.at else ""
        why = f" ({self.reason})" if self.reason else ""
        return f"{self.rule_id}: {self.state}{when}{why}"

    def to_dict(self) -> dict:
        return {"rule_id": self.rule_id, "state": self.state, "shadow": self.shadow,
                "at": self.at.isoformat() if self.at else None, "actor": self.actor, "reason": self.reason}


# A serving rule must be active in the registry (at any version: rolling back
# to an older version is the point); a shadow rule never answers, so it is
# refused only once the registry has taken the rule out for good or for cause.
_SHADOW_BLOCKED = {State.DISABLED, State.EXPIRED, State.RETIRED}


def blocked_rules(store: Store, rules: Sequence[CompiledRule], *,
                  forced: dict[str, str] | None = None) -> dict[str, Blocked]:
    """The rules of a bundle the registry has taken out of traffic, by id.

    ``forced`` exempts a rule while its state is still the one a forced
    rollback served it past.
    """
    states = {s.rule_id: s.state for s in registry.list_rules(store)}
    out: dict[str, Blocked] = {}
    for rule in rules:
        state = states.get(rule.id)
        if state is None:
            out[rule.id] = Blocked(rule.id, "unknown", rule.shadow)
        elif (state in _SHADOW_BLOCKED if rule.shadow else state != State.ACTIVE) and \
                (forced or {}).get(rule.id) != state.value:
            out[rule.id] = Blocked(rule.id, state.value, rule.shadow)
    changes = registry.last_changes(store, out)
    for rule_id, change in changes.items():
        b = out[rule_id]
        out[rule_id] = Blocked(rule_id, b.state, b.shadow, change.at, change.actor, change.reason)
    return out


def _line_uid(line: str) -> str:
    return "evt_" + hashlib.sha256(line.encode()).hexdigest()[:32]


def record_bundle_events(store: Store, bundles: BundleStore, *, known: Sequence[Bundle] = ()) -> int:
    """Record the events of the newest history lines not recorded yet; return how many.

    Called by every writer of the history while it holds the bundle lock. A
    store that has recorded no bundle event yet (a new one, or one that
    predates events) takes only the newest line, so an upgrade does not
    replay the past. ``known`` bundles are not read again.
    """
    try:
        lines = [line for line in bundles.history_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    except FileNotFoundError:
        return 0
    with store.session() as session:
        any_recorded = session.exec(select(EventRow.id).where(EventRow.type.in_(_BUNDLE_EVENTS.values()))).first()
        window = lines[-_RECONCILE_LINES:] if any_recorded is not None else lines[-1:]
        seen = set(session.exec(select(EventRow.uid).where(EventRow.uid.in_([_line_uid(x) for x in window]))).all())
        todo = []
        loaded = {bundle.number: bundle for bundle in known}
        for line in reversed(window):  # back to the newest line recorded
            if _line_uid(line) in seen:
                break
            todo.append(line)
        for line in reversed(todo):
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # someone else's line: the folder may be writable by others
            if not isinstance(entry, dict) or entry.get("action") not in _BUNDLE_EVENTS:
                continue
            events.record(session, _BUNDLE_EVENTS[entry["action"]], subject=f"bundle:{entry.get('number')}",
                          actor=str(entry.get("actor", "")), data=_bundle_event_data(bundles, entry, loaded),
                          uid=_line_uid(line))
    return len(todo)


def _bundle_event_data(bundles: BundleStore, entry: dict, loaded: dict[int, Bundle]) -> dict:
    """A history line, plus the rules added, removed and changed (version, or shadow to serving and back)
    against the bundle it replaced."""
    data = {key: value for key, value in entry.items() if key != "at"}
    data["history_at"] = entry.get("at")
    if entry.get("action") == "unpin":
        return data
    def rules(number) -> dict[str, tuple[str, bool]]:
        number = int(number)
        if number not in loaded:
            loaded[number] = bundles.load(number)
        return {r.id: (r.version, r.shadow) for r in loaded[number].rules}

    try:
        new = rules(entry["number"])
        old = rules(entry["previous"]) if entry.get("previous") is not None else {}
    except (BundleError, KeyError, TypeError, ValueError):
        return data  # a bundle gone or damaged since: the line alone
    data |= {"rules": len(new), "added": sorted(new.keys() - old.keys()), "removed": sorted(old.keys() - new.keys()),
             "changed": sorted(k for k in new.keys() & old.keys() if new[k] != old[k])}
    return data


def already_in(status: RuleStatus, target: State) -> bool:
    """The rule is in ``target`` already (at its latest version, for shadow and active)."""
    if status.state != target:
        return False
    return target not in (State.SHADOW, State.ACTIVE) or status.latest_version == status.version


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
    """Move a rule to ``state`` and republish the bundle if that changes what is live.

    Idempotent: a rule already in ``state`` is left as it is and the bundle is
    published all the same, so re-running a command whose publish was
    interrupted (after the registry committed) finishes it.
    """
    store = store or Store.from_workspace(workspace)
    target = parse_state(state) if isinstance(state, str) else state
    status = registry.get_status(store, rule_id)
    if not already_in(status, target):
        status = registry.transition(
            store, rule_id, target, actor=actor, reason=reason, evidence=evidence,
            expiry_days=workspace.settings.expiry_days,
        )
    published = publish_active(workspace, actor=actor, store=store,
                                reason=f"{rule_id} {target.value}: {reason}") if republish else None
    return status, published
