"""Coverage drift: a fire rate far from its recent median.

Judged per (rule, locale) at the rule's current version and, for the bundle,
per intent × locale (all rows of the intent's rules in that locale, whichever
version fired: the bundle's coverage is what the users saw). The fire rate of
``context.day`` is compared with the median of the ``window_days`` days before
it (the day itself excluded, so a change cannot pull its own reference).

Counting noise: a rule that fires 50 times a day moves ±14% (one Poisson
standard deviation) by chance alone, so a ±20% band would ticket it every
few days. A day is therefore flagged only when it is both outside the band
and improbable under the median rate: the day's fires must sit at least
``min_z`` standard deviations from the fires the median predicts (binomial
variance T·r·(1-r)). With the default 4, a stable series is flagged about
once in 16,000 days, while a large rule is still held to the ±20% band.

Missing rows: a locale's traffic on a day comes from any row of that locale,
so a rule (or an intent) with no row on a day its locale had traffic fired 0
times, which is a real drop. A day on which the locale has no row at all is
unknown and skipped. A rule's series starts on its version's first row.
"""

from __future__ import annotations

import pandas as pd

from monitors._series import active_current, check_int, check_positive, points, upto
from rulelife.errors import ConfigError
from rulelife.monitoring.contract import Action, Finding, MonitorContext, Severity

__all__ = ["CoverageDrift"]


class CoverageDrift:
    """Ticket a rule or an intent whose fire rate moved more than ``tolerance`` off its median.

    Parameters
    ----------
    window_days
        Days before ``context.day`` whose median is the reference (None: ``settings.coverage_window_days``).
    min_days
        Days of history that window needs before a verdict (None: ``settings.coverage_min_days``).
    tolerance
        Relative band: drift when ``|rate / median - 1| > tolerance`` (None: ``settings.coverage_tolerance``).
    min_z
        Standard deviations of counting noise the day must also exceed (None: ``settings.coverage_min_z``).

    Examples
    --------
    >>> import numpy as np
    >>> from datetime import date, timedelta
    >>> from monitors._series import demo_context, demo_history
    >>> rng = np.random.default_rng(5)
    >>> fires = rng.poisson(np.r_[np.full(30, 400.0), np.full(5, 250.0)])  # a synonym stops matching on day 30
    >>> history = demo_history([40] * 35, [40] * 35, fires=fires)
    >>> monitor = CoverageDrift()
    >>> for i in range(35):
    ...     found = monitor.check(history, demo_context(date(2026, 1, 1) + timedelta(days=i)))
    ...     if found:
    ...         print(f"Drift on day {i}: {[f.subject for f in found]}")
    ...         break
    Drift on day 30: ['faq.opening_hours', 'bundle:faq|en-US']
    """

    name = "coverage_drift"

    def __init__(self, *, window_days: int | None = None, min_days: int | None = None,
                 tolerance: float | None = None, min_z: float | None = None):
        self.window_days = check_int(self.name, "window_days", window_days, 1, "coverage_window_days")
        self.min_days = check_int(self.name, "min_days", min_days, 1, "coverage_min_days")
        self.tolerance = check_positive(self.name, "tolerance", tolerance, "coverage_tolerance")
        self.min_z = check_positive(self.name, "min_z", min_z, "coverage_min_z")
        if self.window_days is not None and self.min_days is not None and self.min_days > self.window_days:
            raise ConfigError(
                f"{self.name}: min_days={self.min_days} cannot exceed window_days={self.window_days}; "
                "the window would never hold enough days"
            )

    @classmethod
    def from_settings(cls, settings) -> CoverageDrift:
        return cls(window_days=settings.coverage_window_days, min_days=settings.coverage_min_days,
                   tolerance=settings.coverage_tolerance, min_z=settings.coverage_min_z)

    def check(self, history: pd.DataFrame, context: MonitorContext) -> list[Finding]:
        s = context.settings
        window = self.window_days if self.window_days is not None else s.coverage_window_days
        min_days = self.min_days if self.min_days is not None else s.coverage_min_days
        tol = self.tolerance if self.tolerance is not None else s.coverage_tolerance
        min_z = self.min_z if self.min_z is not None else s.coverage_min_z
        day = pd.Timestamp(context.day)
        past = upto(history, context.day)
        recent = past[past["date"] >= day - pd.Timedelta(days=window)]
        if recent.empty or not (recent["date"] == day).any():
            return []
        traffic = recent.groupby(["date", "locale"])["traffic"].max()
        traffic = traffic[traffic > 0]

        rules = active_current(past, context.rules)
        starts = rules.groupby(["rule_id", "locale"])["date"].min().rename("start").reset_index()
        rule_rows = rules[rules["date"] >= day - pd.Timedelta(days=window)]
        rule_fires = rule_rows.groupby(["rule_id", "locale", "date"])["fires"].sum()
        per_rule = _rates(rule_fires, starts, traffic, ["rule_id", "locale"])

        active_intents = {info.intent for info in context.rules.values() if info.state == "active"}
        bundle = past[past["intent"].isin(active_intents)]
        starts = bundle.groupby(["intent", "locale"])["date"].min().rename("start").reset_index()
        intent_fires = recent[recent["intent"].isin(active_intents)].groupby(["intent", "locale", "date"])["fires"].sum()
        per_intent = _rates(intent_fires, starts, traffic, ["intent", "locale"])

        findings = []
        for keys, series in _drifted(per_rule, day, min_days, tol, min_z, ["rule_id", "locale"]):
            findings.append(self._finding(context, series, keys[0], keys[1], keys[0], window, min_days, tol))
        for keys, series in _drifted(per_intent, day, min_days, tol, min_z, ["intent", "locale"]):
            subject = f"bundle:{keys[0]}|{keys[1]}"
            findings.append(self._finding(context, series, subject, keys[1], None, window, min_days, tol))
        return findings

    def _finding(self, context, series, subject, locale, rule_id, window, min_days, tol) -> Finding:
        day = pd.Timestamp(context.day)
        rate = float(series.loc[series["date"] == day, "rate"].iloc[0])
        median = float(series.loc[series["date"] < day, "rate"].median())
        change = rate / median - 1
        what = f"{rule_id} in {locale}" if rule_id else f"the {subject[7:].rpartition('|')[0]} intent in {locale}"
        return Finding(
            subject=subject, check=self.name, severity=Severity.WARNING, action=Action.TICKET,
            day=context.day, locale=locale,
            summary=(f"Share of {locale} traffic answered by {what} moved {change:+.0%} "
                     f"({rate:.3%} against a {median:.3%} median); check the rule and the traffic."),
            evidence={
                "locale": locale, "fire_rate": rate, "median": median, "relative_change": change,
                "tolerance": tol, "window_days": window, "min_days": min_days,
                "history_days": int((series["date"] < day).sum()),
                "fire_rate_series": points(series["date"], series["rate"], series["traffic"], context.day),
            },
        )


def _rates(fires: pd.Series, starts: pd.DataFrame, traffic: pd.Series, keys: list[str]) -> pd.DataFrame:
    """Daily fire rate of every series on every day its locale had traffic since the series began."""
    grid = starts.merge(traffic.reset_index(), on="locale")
    grid = grid[grid["date"] >= grid["start"]]
    grid = grid.merge(fires.reset_index(), on=[*keys, "date"], how="left")
    grid["fires"] = grid["fires"].fillna(0)
    return grid.assign(rate=grid["fires"] / grid["traffic"]).sort_values([*keys, "date"], kind="stable")


def _drifted(rates: pd.DataFrame, day: pd.Timestamp, min_days: int, tol: float, min_z: float, keys: list[str]):
    """(keys, series) of each series out of its band, beyond counting noise, on ``day``."""
    if rates.empty:
        return []
    before = rates[rates["date"] < day].groupby(keys)["rate"].agg(["median", "size"])
    today = rates[rates["date"] == day].set_index(keys)[["rate", "fires", "traffic"]].rename(columns={"rate": "today"})
    judged = before.join(today, how="inner")
    # A median of 0 means the series never fired in the window: the relative
    # change is undefined, and a rule that does not fire is dead, not drifting
    # (the reports, not this monitor, chase dead rules).
    judged = judged[(judged["size"] >= min_days) & (judged["median"] > 0)]
    expected = judged["median"] * judged["traffic"]
    noise = (expected * (1 - judged["median"]).clip(lower=0)).clip(lower=1e-12) ** 0.5
    z = (judged["fires"] - expected).abs() / noise
    out = judged[((judged["today"] / judged["median"] - 1).abs() > tol) & (z >= min_z)]
    groups = rates.groupby(keys, sort=False)
    return [(k, groups.get_group(k)) for k in out.index]
