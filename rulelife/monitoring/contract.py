"""The monitor contract: every hook a monitor may implement, with its default.

A monitor decides; the nightly job acts. A monitor never writes, so monitors
can be run over any history (a backfill, a what-if, the quality report) with
no side effects. Monitors are found by name through the ``rulelife.monitors``
entry-point group, so a team adds its own without editing the core::

    [project.entry-points."rulelife.monitors"]
    my_check = "my_team.monitors:MyCheck"

A monitor is a subclass of :class:`Monitor`. The nightly job and the report
call these hooks and nothing else:

``name``
    Class attribute: its entry-point name, and the name of its
    ``[monitors.<name>]`` settings table.
``__init__(*, ...)``
    Keyword parameters with their defaults: the one place a parameter's
    default lives. Validate each once, here, with a message that names it.
``from_settings(table)``
    Build it from its ``[monitors.<name>]`` table. Default: the table's keys
    as keyword arguments, an unknown key refused with the table's name.
``parameters()``
    Its keyword parameters and their defaults. Default: read from the
    signature of ``__init__``.
``check(history, context)``
    Required: the findings for ``context.day``.
``statistics(history, context)``
    What the report may plot: a frame of :data:`STATISTIC_COLUMNS`, one row
    per (rule, locale, day) the monitor judged, with the band it held the
    value to and its verdict. Default: None, nothing to plot.
``lookback_days()``
    Days before a judged day that the monitor reads, so a report of a window
    can load enough history. Default: None, its whole history.

``history`` is the daily metrics table as a DataFrame (see
:data:`METRIC_COLUMNS`), one row per (date, rule_id, rule_version, locale), for
days up to and including ``context.day``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any, ClassVar, Self

import pandas as pd

from rulelife.config import Settings
from rulelife.errors import ConfigError
from rulelife.plugins import MONITORS, keyword_parameters, load_plugin

__all__ = [
    "METRIC_COLUMNS",
    "STATISTIC_COLUMNS",
    "Action",
    "Finding",
    "Monitor",
    "MonitorContext",
    "RuleInfo",
    "Severity",
    "empty_history",
    "load_monitor",
    "load_monitors",
    "require_monitors",
]

# The daily metrics table, as monitors see it.
METRIC_COLUMNS = {
    "date": "datetime64[ns]",  # the UTC day (midnight)
    "rule_id": "string",
    "rule_version": "string",
    "intent": "string",  # the rule's intent
    "locale": "string",
    "traffic": "int64",  # queries in this locale that day (all of them, not only fires)
    "fires": "int64",  # times this rule answered in this locale
    "fire_rate": "float64",  # fires / traffic
    "shadow_n": "int64",  # fires in the shadow sample (the model's label is known)
    "agree_n": "int64",  # shadow fires where the model said the rule's intent
    "agreement": "Float64",  # agree_n / shadow_n; NA when shadow_n == 0
    "safety_fp": "int64",  # shadow fires where the model said a safety intent
    "fp_by_class": "object",  # dict model intent -> shadow fires the model labelled so
}


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class Action(StrEnum):
    TICKET = "ticket"  # file (or append to) a ticket for a person to look at
    DISABLE = "disable"  # take the rule out of traffic now, and file a ticket


@dataclass(frozen=True)
class Finding:
    """One monitor's verdict on one rule (or bundle scope) for one day.

    ``subject`` is a rule id, or ``bundle:<intent>|<locale>`` for
    bundle-level checks. ``evidence`` is JSON-serialisable: the metric
    series, the change point, the locale, example queries.
    """

    subject: str
    check: str
    severity: Severity
    action: Action
    day: date
    summary: str
    evidence: dict[str, Any] = field(default_factory=dict)
    locale: str | None = None

    @property
    def rule_id(self) -> str | None:
        return None if self.subject.startswith("bundle:") else self.subject

    @property
    def dedupe_key(self) -> str:
        """One open ticket per subject × check."""
        return f"{self.subject}::{self.check}"

    def to_dict(self) -> dict:
        return {
            "subject": self.subject,
            "check": self.check,
            "severity": self.severity.value,
            "action": self.action.value,
            "day": self.day.isoformat(),
            "summary": self.summary,
            "locale": self.locale,
            "evidence": self.evidence,
        }


@dataclass(frozen=True)
class RuleInfo:
    """What a monitor may know of a rule beyond its metrics."""

    rule_id: str
    intent: str
    state: str
    version: str
    expires_at: datetime | None


@dataclass(frozen=True)
class MonitorContext:
    """The day being monitored, the settings, and the registry's view of the rules.

    ``model_changed_on`` is the first day of the latest change of the model
    that labels the traffic, on or before ``day`` (None: none known). A
    monitor judging agreement treats the days before it as another model's
    evidence; :attr:`in_model_review` says the day falls in the review window
    that follows it (``settings.model_revalidate_days`` days).
    """

    day: date
    settings: Settings
    rules: Mapping[str, RuleInfo]
    examples: Mapping[str, list[dict]] = field(default_factory=dict)  # rule id -> example disagreeing queries
    model_changed_on: date | None = None

    @property
    def in_model_review(self) -> bool:
        """``day`` is one of the ``model_revalidate_days`` days that start at ``model_changed_on``."""
        if self.model_changed_on is None:
            return False
        return 0 <= (self.day - self.model_changed_on).days < self.settings.model_revalidate_days


# What statistics() returns: one row per (rule_id, locale, date) the monitor judged, in date order
# within a series. A monitor may add columns of its own (and documents them).
STATISTIC_COLUMNS = {
    "rule_id": "string",
    "locale": "string",
    "date": "datetime64[ns]",
    "value": "float64",  # the quantity judged that day (a CUSUM statistic, a fire rate)
    "low": "float64",  # the band the monitor held value to that day (NaN: no bound, or no verdict yet) ...
    "high": "float64",  # ... for drawing; ``alarm`` is the verdict itself, exact at the band's edges
    "alarm": "bool",  # the monitor acts on this series on this day (what check() decides on that day)
}


class Monitor(ABC):
    """The base of every monitor (see the module docstring for each hook).

    Examples
    --------
    >>> class Quiet(Monitor):
    ...     name = "quiet"
    ...     def __init__(self, *, level: int = 3):
    ...         self.level = level
    ...     def check(self, history, context):
    ...         return []
    >>> Quiet.from_settings({"level": 5}).level, Quiet.parameters()
    (5, {'level': 3})
    >>> Quiet.from_settings({"levle": 5})
    Traceback (most recent call last):
    rulelife.errors.ConfigError: [monitors.quiet]: unknown key 'levle'; quiet takes level. Fix or remove it in the workspace settings
    """

    name: ClassVar[str]

    @classmethod
    def parameters(cls) -> dict[str, Any] | None:
        """Its keyword parameters and their defaults, read from ``__init__``'s signature (None: ``**kwargs``)."""
        return keyword_parameters(cls)

    @classmethod
    def from_settings(cls, table: Mapping[str, Any]) -> Self:
        """The monitor built from its ``[monitors.<name>]`` table: each key a keyword argument."""
        allowed = cls.parameters()
        unknown = [] if allowed is None else sorted(set(table) - set(allowed))
        if unknown:
            raise ConfigError(
                f"[monitors.{cls.name}]: unknown key {', '.join(map(repr, unknown))}; {cls.name} takes "
                f"{', '.join(allowed) or 'no parameter'}. Fix or remove it in the workspace settings"
            )
        return cls(**table)

    @abstractmethod
    def check(self, history: pd.DataFrame, context: MonitorContext) -> list[Finding]:
        """Findings for ``context.day`` from the metrics ``history``; never writes."""

    def statistics(self, history: pd.DataFrame, context: MonitorContext) -> pd.DataFrame | None:
        """What the report may plot (:data:`STATISTIC_COLUMNS`) up to ``context.day``; None: nothing."""
        return None

    def lookback_days(self) -> int | None:
        """Days before a judged day that the monitor reads (None: all of its history)."""
        return None


def load_monitor(name: str, settings: Settings) -> Monitor:
    """The monitor registered as ``name``, built from its ``[monitors.<name>]`` table."""
    cls = load_plugin(MONITORS, name)
    if not (isinstance(cls, type) and issubclass(cls, Monitor)):
        raise ConfigError(
            f"monitor {name!r} ({cls!r}) is not a subclass of rulelife.monitoring.contract.Monitor; "
            "derive it from Monitor so the nightly job and the report know which hooks it has"
        )
    if cls.name != name:
        raise ConfigError(f"monitor {name!r} is registered for class {cls.__name__}, whose name is {cls.name!r}; "
                          "make the entry point's name and the class's name attribute the same")
    return cls.from_settings(settings.monitors.get(name, {}))


def load_monitors(names: Sequence[str], settings: Settings) -> list[Monitor]:
    """The named monitors (entry points of ``rulelife.monitors``), each built from its settings table."""
    return [load_monitor(name, settings) for name in names]


def require_monitors(monitors: Sequence[Any]) -> list[Monitor]:
    """``monitors`` unchanged, once each is known to be a :class:`Monitor`; a clear refusal otherwise."""
    for monitor in monitors:
        if not isinstance(monitor, Monitor):
            raise ConfigError(f"{monitor!r} is not a Monitor; derive its class from "
                              "rulelife.monitoring.contract.Monitor")
    return list(monitors)


def empty_history() -> pd.DataFrame:
    """An empty metrics table with the right columns and dtypes."""
    return pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in METRIC_COLUMNS.items()})
