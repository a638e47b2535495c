"""Helpers the monitors share: the rows a monitor may judge, evidence, validation.

Every monitor judges ``context.day`` from rows dated on or before it, and only
rules the registry says are active, at the version the registry says is
current (a new version is a new decision boundary, so its series starts over).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import date

import numpy as np
import pandas as pd

from rulelife.errors import ConfigError
from rulelife.monitoring.contract import METRIC_COLUMNS, MonitorContext, RuleInfo

__all__ = [
    "EVIDENCE_DAYS",
    "SERIES",
    "active_current",
    "check_fraction",
    "check_int",
    "check_positive",
    "demo_context",
    "demo_history",
    "points",
    "since_model_change",
    "upto",
]

# Days of metric series a finding carries: enough to see the shape of a change
# without making a ticket unreadable.
EVIDENCE_DAYS = 30
# One series is one rule in one locale (at its current version).
SERIES = ["rule_id", "locale"]


def upto(history: pd.DataFrame, day: date) -> pd.DataFrame:
    """Rows dated on or before ``day``: a monitor never looks into the future."""
    return history[history["date"] <= pd.Timestamp(day)]


def since_model_change(rows: pd.DataFrame, context: MonitorContext) -> pd.DataFrame:
    """Rows dated on or after the latest model change (all rows when none is known).

    Agreement is measured against the model's labels: before a retrain the
    rule was judged by another model, so a level learned there says nothing
    about the rule under the new one.
    """
    if context.model_changed_on is None:
        return rows
    return rows[rows["date"] >= pd.Timestamp(context.model_changed_on)]


def active_current(history: pd.DataFrame, rules: Mapping[str, RuleInfo], *, state: str = "active") -> pd.DataFrame:
    """Rows of rules in ``state`` at their registry version, sorted by rule, locale, date.

    An active rule's series holds only the days it answered (its shadow days
    measured would-have-fired on other traffic); a shadow rule's holds its
    shadow days. Rows without ``serving`` are active ones.
    """
    current = {rid: info.version for rid, info in rules.items() if info.state == state}
    if not current or history.empty:
        return history.iloc[0:0]
    if "serving" in history:
        serving = history["serving"].fillna("active")
        history = history[(serving == "shadow" if state == "shadow" else serving != "shadow").to_numpy(dtype=bool)]
    wanted = history["rule_id"].map(current)
    rows = history[wanted.notna().to_numpy() & (history["rule_version"] == wanted).fillna(False).to_numpy()]
    return rows.sort_values(["rule_id", "locale", "date"], kind="stable")


def points(dates, values, ns, day: date, days: int = EVIDENCE_DAYS) -> list[dict]:
    """The last ``days`` days up to ``day`` as ``[{date, value, n}]`` (JSON-ready; NaN → None)."""
    start = pd.Timestamp(day) - pd.Timedelta(days=days - 1)
    out = []
    for d, v, n in zip(dates, values, ns):
        if start <= d <= pd.Timestamp(day):
            value = None if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)) else float(v)
            out.append({"date": pd.Timestamp(d).date().isoformat(), "value": value, "n": int(n)})
    return out


def _fail(monitor: str, name: str, value, expected: str) -> ConfigError:
    return ConfigError(
        f"{monitor}: {name} must be {expected}, got {value!r}; "
        f"set a valid {name} in the [monitors.{monitor}] table, or leave it out for the default"
    )


def check_int(monitor: str, name: str, value, minimum: int) -> int:
    """``value`` as an int when it is one ≥ ``minimum``; a ConfigError otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise _fail(monitor, name, value, f"an integer >= {minimum}")
    return int(value)


def check_positive(monitor: str, name: str, value, above: float = 0.0) -> float:
    """``value`` as a float when it is a finite number > ``above``; a ConfigError otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= above:
        raise _fail(monitor, name, value, f"a finite number > {above:g}")
    return float(value)


def check_fraction(monitor: str, name: str, value) -> float:
    """``value`` as a float when it is a number in (0, 1]; a ConfigError otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        raise _fail(monitor, name, value, "a number in (0, 1]")
    return float(value)


def demo_history(agree_n: Iterable[int], shadow_n: Iterable[int], *, start: str = "2026-01-01",
                 rule_id: str = "faq.opening_hours", intent: str = "faq", locale: str = "en-US",
                 version: str = "v1", fires: Iterable[int] | None = None, traffic: int = 10_000,
                 safety_fp: Iterable[int] | None = None) -> pd.DataFrame:
    """A one-rule, one-locale metrics table from daily counts (for doctests and examples)."""
    agree = np.asarray(list(agree_n), dtype="int64")
    shadow = np.asarray(list(shadow_n), dtype="int64")
    fire = shadow * 20 if fires is None else np.asarray(list(fires), dtype="int64")
    fp = np.zeros(len(agree), dtype="int64") if safety_fp is None else np.asarray(list(safety_fp), dtype="int64")
    frame = pd.DataFrame({
        "date": pd.date_range(start, periods=len(agree), freq="D"),
        "rule_id": rule_id, "rule_version": version, "intent": intent, "locale": locale,
        "traffic": traffic, "fires": fire, "fire_rate": fire / traffic, "shadow_n": shadow,
        "agree_n": agree, "agreement": pd.array(np.where(shadow > 0, agree / np.maximum(shadow, 1), np.nan)),
        "safety_fp": fp,
        # Safety errors are booked as "return_request"; the rest of the disagreements as "other".
        "fp_by_class": [{k: v for k, v in {intent: int(a), "return_request": int(f), "other": int(s - a - f)}.items()
                         if v} for a, s, f in zip(agree, shadow, fp)],
    })
    return frame.astype({name: dtype for name, dtype in METRIC_COLUMNS.items() if name != "fp_by_class"})


def demo_context(day: date, *, rule_id: str = "faq.opening_hours", intent: str = "faq", version: str = "v1",
                 state: str = "active", expires_at=None, settings=None,
                 model_changed_on: date | None = None) -> MonitorContext:
    """A context knowing one rule (for doctests and examples)."""
    from rulelife.config import Settings

    info = RuleInfo(rule_id=rule_id, intent=intent, state=state, version=version, expires_at=expires_at)
    return MonitorContext(day=day, settings=settings or Settings(), rules={rule_id: info},
                          model_changed_on=model_changed_on)
