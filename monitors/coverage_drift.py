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

import numpy as np
import pandas as pd

from monitors._series import active_current, check_int, check_positive, points, upto
from rulelife.errors import ConfigError
from rulelife.monitoring.contract import Action, Finding, Monitor, MonitorContext, Severity

__all__ = ["CoverageDrift"]

RULE = ["rule_id", "locale"]
INTENT = ["intent", "locale"]


class CoverageDrift(Monitor):
    """Ticket a rule or an intent whose fire rate moved more than ``tolerance`` off its median.

    Parameters
    ----------
    window_days
        Days before ``context.day`` whose median is the reference.
    min_days
        Days of history that window needs before a verdict.
    tolerance
        Relative band: drift when ``|rate / median - 1| > tolerance``.
    min_z
        Standard deviations of counting noise the day must also exceed.

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

    def __init__(self, *, window_days: int = 90, min_days: int = 14, tolerance: float = 0.20, min_z: float = 4.0):
        self.window_days = check_int(self.name, "window_days", window_days, 1)
        self.min_days = check_int(self.name, "min_days", min_days, 1)
        self.tolerance = check_positive(self.name, "tolerance", tolerance)
        self.min_z = check_positive(self.name, "min_z", min_z)
        if self.min_days > self.window_days:
            raise ConfigError(
                f"{self.name}: min_days={self.min_days} cannot exceed window_days={self.window_days}; "
                "the window would never hold enough days"
            )

    def lookback_days(self) -> int:
        return self.window_days

    def statistics(self, history: pd.DataFrame, context: MonitorContext) -> pd.DataFrame:
        """Every day of every active (rule, locale) series up to ``context.day``, judged as :meth:`check` judges it.

        Columns beyond the contract's: ``fires``, ``traffic``, ``median`` (of
        the ``window_days`` days before), ``history_days`` (days in that
        window) and ``z`` (the day's distance from the median in standard
        deviations of counting noise). ``value`` is the fire rate; ``low`` and
        ``high`` are the band it may move in without a ticket: the median
        ± the larger of ``tolerance`` × median and ``min_z`` standard
        deviations, NaN while there is no verdict (too few days, or a median of 0).
        """
        past = upto(history, context.day)
        return self._judge(_rule_rates(past, past, context), RULE)

    def check(self, history: pd.DataFrame, context: MonitorContext) -> list[Finding]:
        day = pd.Timestamp(context.day)
        past = upto(history, context.day)
        recent = past[past["date"] >= day - pd.Timedelta(days=self.window_days)]
        if recent.empty or not (recent["date"] == day).any():
            return []
        findings = []
        for keys, frame in ((RULE, _rule_rates(past, recent, context)), (INTENT, _intent_rates(past, recent, context))):
            judged = self._judge(frame, keys)
            drifted = judged[judged["alarm"] & (judged["date"] == day)]
            series = judged.groupby(keys, sort=False)
            for key in zip(*(drifted[k] for k in keys)):
                findings.append(self._finding(context, series.get_group(key), *key, rule=keys is RULE))
        return findings

    def _judge(self, rates: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
        """``rates`` with each day's reference median, band and verdict (the contract's statistic columns)."""
        rates = rates.sort_values([*keys, "date"], kind="stable", ignore_index=True)
        if rates.empty:
            return rates.assign(value=np.nan, median=np.nan, history_days=0, z=np.nan, low=np.nan, high=np.nan,
                                alarm=False)
        # The reference is the median of the window_days days before (closed="left": the day itself
        # is excluded, so a change cannot pull its own reference).
        # ``rates`` is sorted by series then date, so the groups (in order of appearance) and their
        # rolling rows line up with its rows.
        window = rates.groupby(keys, sort=False).rolling(f"{self.window_days}D", on="date", closed="left")["rate"]
        median = pd.Series(window.median().to_numpy(), index=rates.index)
        size = pd.Series(window.count().fillna(0).to_numpy(dtype="int64"), index=rates.index)
        # A median of 0 means the series never fired in the window: the relative
        # change is undefined, and a rule that does not fire is dead, not drifting
        # (the reports, not this monitor, chase dead rules).
        judged = (size >= self.min_days) & (median > 0)
        median = median.where(judged)
        expected = median * rates["traffic"]
        # Binomial counting noise of the day's fires around what the median predicts.
        noise = (expected * (1 - median).clip(lower=0)).clip(lower=1e-12) ** 0.5
        z = (rates["fires"] - expected).abs() / noise
        alarm = judged & ((rates["rate"] / median - 1).abs() > self.tolerance) & (z >= self.min_z)
        half = np.maximum(self.tolerance * median, self.min_z * noise / rates["traffic"])
        return rates.assign(value=rates["rate"], median=median, history_days=size, z=z,
                            low=(median - half).clip(lower=0.0), high=median + half, alarm=alarm.astype(bool))

    def _finding(self, context, series, subject_key, locale, *, rule: bool) -> Finding:
        day = pd.Timestamp(context.day)
        today = series[series["date"] == day].iloc[0]
        rate, median = float(today["rate"]), float(today["median"])
        change = rate / median - 1
        subject = subject_key if rule else f"bundle:{subject_key}|{locale}"
        what = f"{subject_key} in {locale}" if rule else f"the {subject_key} intent in {locale}"
        return Finding(
            subject=subject, check=self.name, severity=Severity.WARNING, action=Action.TICKET,
            day=context.day, locale=locale,
            summary=(f"Share of {locale} traffic answered by {what} moved {change:+.0%} "
                     f"({rate:.3%} against a {median:.3%} median); check the rule and the traffic."),
            evidence={
                "locale": locale, "fire_rate": rate, "median": median, "relative_change": change,
                "band": [float(today["low"]), float(today["high"])], "z": float(today["z"]),
                "tolerance": self.tolerance, "min_z": self.min_z, "window_days": self.window_days,
                "min_days": self.min_days, "history_days": int(today["history_days"]),
                "fire_rate_series": points(series["date"], series["rate"], series["traffic"], context.day),
            },
        )


def _traffic(rows: pd.DataFrame) -> pd.Series:
    """Traffic per (date, locale) on the days the locale had any: every row of a locale carries it."""
    traffic = rows.groupby(["date", "locale"])["traffic"].max()
    return traffic[traffic > 0]


def _rule_rates(past: pd.DataFrame, recent: pd.DataFrame, context: MonitorContext) -> pd.DataFrame:
    """Daily fire rates of every active rule's (rule, locale) series over the days of ``recent``."""
    rules = active_current(past, context.rules)
    starts = rules.groupby(RULE)["date"].min().rename("start").reset_index()
    rows = rules[rules["date"] >= recent["date"].min()] if not recent.empty else rules.iloc[0:0]
    return _rates(rows.groupby([*RULE, "date"])["fires"].sum(), starts, _traffic(recent), RULE)


def _intent_rates(past: pd.DataFrame, recent: pd.DataFrame, context: MonitorContext) -> pd.DataFrame:
    """Daily fire rates of each active intent × locale, whichever version fired (what the users saw)."""
    intents = {info.intent for info in context.rules.values() if info.state == "active"}
    starts = past[past["intent"].isin(intents)].groupby(INTENT)["date"].min().rename("start").reset_index()
    fires = recent[recent["intent"].isin(intents)].groupby([*INTENT, "date"])["fires"].sum()
    return _rates(fires, starts, _traffic(recent), INTENT)


def _rates(fires: pd.Series, starts: pd.DataFrame, traffic: pd.Series, keys: list[str]) -> pd.DataFrame:
    """Daily fire rate of every series on every day its locale had traffic since the series began."""
    grid = starts.merge(traffic.reset_index(), on="locale")
    grid = grid[grid["date"] >= grid["start"]]
    grid = grid.merge(fires.reset_index(), on=[*keys, "date"], how="left")
    grid["fires"] = grid["fires"].fillna(0)
    return grid.assign(rate=grid["fires"] / grid["traffic"])
