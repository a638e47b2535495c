"""The monitor contract: a pure function of the metrics history that returns findings.

A monitor decides; the nightly job acts. A monitor never writes, so monitors
can be run over any history (a backfill, a what-if, the quality report) with
no side effects. Monitors are found by name through the ``rulelife.monitors``
entry-point group, so a team adds its own without editing the core::

    [project.entry-points."rulelife.monitors"]
    my_check = "my_team.monitors:MyCheck"

A monitor is a class with a ``name`` attribute, built with keyword
parameters, whose ``check(history, context)`` returns a list of
:class:`Finding`.

``history`` is the daily metrics table as a DataFrame (see
:data:`METRIC_COLUMNS`), one row per (date, rule_id, rule_version, locale), for
days up to and including ``context.day``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any, Protocol

import pandas as pd

from rulelife.config import Settings

__all__ = [
    "METRIC_COLUMNS",
    "Action",
    "Finding",
    "Monitor",
    "MonitorContext",
    "RuleInfo",
    "Severity",
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
    """The day being monitored, the settings, and the registry's view of the rules."""

    day: date
    settings: Settings
    rules: Mapping[str, RuleInfo]
    examples: Mapping[str, list[dict]] = field(default_factory=dict)  # rule id -> example disagreeing queries


class Monitor(Protocol):
    name: str

    def check(self, history: pd.DataFrame, context: MonitorContext) -> list[Finding]:
        """Findings for ``context.day`` from the metrics ``history``; never writes."""
        ...


def empty_history() -> pd.DataFrame:
    """An empty metrics table with the right columns and dtypes."""
    return pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in METRIC_COLUMNS.items()})
