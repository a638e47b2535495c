"""Lifecycle states of a rule and the transitions allowed between them.

``candidate → active → disabled | expired → retired``, with ``shadow`` between
candidate and active. The state belongs to the rule (one per rule id) and names
the version it applies to; the registry records every transition in the audit
log.
"""

from __future__ import annotations

from enum import StrEnum

from rulelife.errors import LifecycleError

__all__ = ["ALLOWED", "State", "check_transition"]


class State(StrEnum):
    CANDIDATE = "candidate"
    SHADOW = "shadow"
    ACTIVE = "active"
    DISABLED = "disabled"
    EXPIRED = "expired"
    RETIRED = "retired"


# ALLOWED[a] is the set of states a rule in state a may move to. active → active
# is the promotion of a newer version of a live rule; a disabled rule goes back
# through candidate, so it cannot return to traffic without passing the gate.
ALLOWED: dict[State, frozenset[State]] = {
    State.CANDIDATE: frozenset({State.SHADOW, State.ACTIVE, State.RETIRED}),
    State.SHADOW: frozenset({State.ACTIVE, State.CANDIDATE, State.DISABLED, State.RETIRED}),
    State.ACTIVE: frozenset({State.ACTIVE, State.DISABLED, State.EXPIRED}),
    State.DISABLED: frozenset({State.CANDIDATE, State.RETIRED}),
    State.EXPIRED: frozenset({State.ACTIVE, State.CANDIDATE, State.DISABLED, State.RETIRED}),
    State.RETIRED: frozenset(),
}


def parse_state(value: str) -> State:
    try:
        return State(value)
    except ValueError:
        allowed = ", ".join(s.value for s in State)
        raise LifecycleError(f"unknown state {value!r}; expected one of {allowed}") from None


def check_transition(rule_id: str, current: State, target: State, *, same_version: bool) -> None:
    """Raise :class:`LifecycleError` unless ``current → target`` is allowed."""
    if current == target == State.ACTIVE and same_version:
        raise LifecycleError(
            f"{rule_id} is already active at this version; edit the rule and "
            "`rulelife sync` to make a new version to promote"
        )
    if target not in ALLOWED[current]:
        allowed = ", ".join(sorted(s.value for s in ALLOWED[current])) or "none (retired is final)"
        raise LifecycleError(
            f"cannot move {rule_id} from {current.value} to {target.value}; "
            f"allowed from {current.value}: {allowed}"
        )
