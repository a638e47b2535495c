"""Find pluggable parts (miners, monitors, log expectations) by name through entry points.

The core never imports ``miners`` or ``monitors`` by name: a team adds its
own monitor by declaring an entry point in its package, e.g.::

    [project.entry-points."rulelife.monitors"]
    my_check = "my_team.monitors:MyCheck"
"""

from __future__ import annotations

import inspect
from importlib.metadata import entry_points
from typing import Any

from rulelife.errors import ConfigError

__all__ = ["LOG_EXPECTATIONS", "MINERS", "MONITORS", "available", "keyword_parameters", "load_plugin"]

MINERS = "rulelife.miners"
MONITORS = "rulelife.monitors"
# A team's own great-expectations checks of the query log (see rulelife.querylog.validate).
LOG_EXPECTATIONS = "rulelife.log_expectations"


def available(group: str) -> dict[str, Any]:
    """Entry points of ``group`` by name (not loaded)."""
    return {ep.name: ep for ep in entry_points(group=group)}


def load_plugin(group: str, name: str) -> Any:
    """The object registered as ``name`` in ``group``; a clear refusal otherwise."""
    found = available(group)
    if name not in found:
        known = ", ".join(sorted(found)) or "none installed"
        raise ConfigError(
            f"unknown {group.rsplit('.', 1)[-1][:-1]} {name!r}; expected one of: {known}. "
            "If it is yours, declare it as an entry point in your package and reinstall it"
        )
    return found[name].load()


def keyword_parameters(cls: type) -> dict[str, Any] | None:
    """The named parameters of ``cls(...)`` and their defaults (``inspect.Parameter.empty``: required).

    A plug-in's signature is the one source of its parameters' defaults.
    None when it also takes ``**kwargs``: then any name may be valid.
    """
    params = inspect.signature(cls).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return {p.name: p.default for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
