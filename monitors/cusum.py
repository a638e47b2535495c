"""One-sided lower CUSUM on a rule's daily agreement with the model.

Each (rule, locale) series at the rule's current version is standardised day
by day, ``z_t = (mu0 - x_t) / sqrt(mu0 (1 - mu0) / n_t)`` with ``x_t`` the
agreement and ``n_t`` the shadow sample, and accumulated as
``S_t = max(0, S_{t-1} + z_t - k)``; the monitor alarms while ``S_t > h``.

``h`` is not a free knob: it is derived from the in-control average run length
``arl0`` (days between false alarms on a stable rule) with Siegmund's
approximation for a CUSUM of unit-variance normal increments::

    ARL0(h) ≈ (exp(2 k b) - 2 k b - 1) / (2 k²),   b = h + 1.166

solved numerically for ``h`` (bisection; ARL0 increases with ``h``). With the
defaults ``k = 0.5`` and ``arl0 = 2000`` this gives ``h ≈ 5.750``. A
deployment of 50 rules × 3 locales (150 series) should then expect about
150 / 2000 = 0.075 false alarms a day: one false ticket every ~13 days, ~27 a
year. Raise ``cusum_arl0`` to trade detection delay for fewer of them.

That figure is nominal: Siegmund's formula assumes normal increments and a
known ``mu0``. Measured by simulation (n = 50 a day, p = 0.97, 200 series ×
2000 days, reset after each alarm), the false-alarm rate is about 0.9 × 1/ARL0
for normal increments, about 2.8 × for the binomial z above with ``mu0``
known (few disagreements a day make z right-skewed), and about 12 × with
``mu0`` estimated from a 14-day baseline (a ``mu0`` set too high by its own
noise is a permanent shift; a 28-day baseline gives about 7 ×). So at the
defaults, 150 series should expect roughly 0.2 false tickets a day from the
detector and up to ~0.9 with the estimated baseline. ``tests/monitors/test_cusum.py``
checks the known-``mu0`` rate by simulation.
"""

from __future__ import annotations

import math
from datetime import date
from functools import lru_cache

import numpy as np
import pandas as pd
import ruptures as rpt

from monitors._series import SERIES, active_current, check_int, check_positive, points, upto
from rulelife.errors import ConfigError
from rulelife.monitoring import Action, Finding, MonitorContext, Severity

__all__ = ["AgreementCusum", "lower_cusum", "siegmund_h", "standardise"]

# Siegmund's correction for the overshoot of a discrete-time CUSUM over h.
_OVERSHOOT = 1.166
# mu0 is clipped so the binomial variance mu0 (1 - mu0) never vanishes: at
# mu0 = 1 one disagreement would be infinitely many standard errors. Below 0.5
# a rule is far under any floor and the floor monitor, not this one, acts.
_MU0_RANGE = (0.5, 0.995)


def _siegmund_arl(h: float, k: float) -> float:
    x = 2 * k * (h + _OVERSHOOT)
    return (math.expm1(x) - x) / (2 * k * k)


@lru_cache(maxsize=64)
def siegmund_h(k: float, arl0: float) -> float:
    """The decision interval ``h`` whose Siegmund in-control ARL is ``arl0`` for reference ``k``.

    Examples
    --------
    >>> round(siegmund_h(0.5, 2000.0), 3)
    5.75
    """
    if _siegmund_arl(0.0, k) >= arl0:
        raise ConfigError(
            f"agreement_cusum: arl0={arl0!r} is below the run length of h=0 for k={k!r} "
            f"({_siegmund_arl(0.0, k):.2f} days); raise cusum_arl0"
        )
    lo, hi = 0.0, 1.0
    while _siegmund_arl(hi, k) < arl0:
        lo, hi = hi, 2 * hi
    for _ in range(100):  # bisection to float precision; the ARL is increasing in h
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _siegmund_arl(mid, k) < arl0 else (lo, mid)
    return (lo + hi) / 2


def standardise(agree_n, shadow_n, mu0):
    """Daily agreement drop in standard errors, ``(mu0 - x) / sqrt(mu0 (1 - mu0) / n)``.

    The binomial standard error of the day's own sample size: a 500-sample day
    moves S more than a 20-sample day for the same agreement.
    """
    n = np.asarray(shadow_n, dtype=float)
    mu0 = np.asarray(mu0, dtype=float)
    return (mu0 - np.asarray(agree_n, dtype=float) / n) / np.sqrt(mu0 * (1 - mu0) / n)


def lower_cusum(steps: np.ndarray) -> np.ndarray:
    """``S_t = max(0, S_{t-1} + steps_t)`` from ``S_0 = 0``, without a Python loop.

    Lindley's recursion has the closed form ``S_t = C_t - min(0, min_{s<=t} C_s)``
    with ``C`` the cumulative sum of the steps; a zero step (an unknown day)
    leaves ``S`` unchanged, which is how unknown days are carried.

    >>> lower_cusum(np.array([1.0, -2.0, 0.5, 0.0, 3.0])).tolist()
    [1.0, 0.0, 0.5, 0.5, 3.5]
    """
    c = np.cumsum(steps, axis=-1)
    return c - np.minimum(np.minimum.accumulate(c, axis=-1), 0.0)


class AgreementCusum:
    """Ticket a rule whose daily agreement drifts below its own in-control level.

    Parameters
    ----------
    k
        Reference value in standard errors of daily agreement (None: ``settings.cusum_k``).
        0.5 is tuned to detect a shift of one standard error fastest.
    arl0
        Target in-control average run length in days (None: ``settings.cusum_arl0``); ``h`` follows.
    baseline_days
        Known days, from the start of the current version, that estimate ``mu0``.
    min_shadow
        Shadow samples a day needs to count (None: ``settings.monitor_min_shadow``).
        Days with fewer are unknown: skipped, neither a pass nor a reset.

    Examples
    --------
    >>> from datetime import timedelta
    >>> from monitors._series import demo_context, demo_history
    >>> rng = np.random.default_rng(0)
    >>> p = np.r_[np.full(40, 0.97), np.full(20, 0.90)]  # agreement drops on day 40
    >>> history = demo_history(rng.binomial(50, p), [50] * 60)
    >>> monitor = AgreementCusum()
    >>> for i in range(60):
    ...     day = date(2026, 1, 1) + timedelta(days=i)
    ...     if found := monitor.check(history, demo_context(day)):
    ...         print(f"Change detected on day {i}, change point {found[0].evidence['change_point']}")
    ...         break
    Change detected on day 42, change point 2026-02-10
    """

    name = "agreement_cusum"

    def __init__(self, *, k: float | None = None, arl0: float | None = None, baseline_days: int = 14,
                 min_shadow: int | None = None):
        self.k = check_positive(self.name, "k", k, "cusum_k")
        self.arl0 = check_positive(self.name, "arl0", arl0, "cusum_arl0", above=1.0)
        # At least 2 days, so mu0 is never one day's noise.
        self.baseline_days = check_int(self.name, "baseline_days", baseline_days, 2, "(none; default 14)")
        self.min_shadow = check_int(self.name, "min_shadow", min_shadow, 1, "monitor_min_shadow")

    @classmethod
    def from_settings(cls, settings) -> AgreementCusum:
        return cls(k=settings.cusum_k, arl0=settings.cusum_arl0, min_shadow=settings.monitor_min_shadow)

    def _params(self, settings) -> tuple[float, float, int]:
        k = self.k if self.k is not None else settings.cusum_k
        h = siegmund_h(k, self.arl0 if self.arl0 is not None else settings.cusum_arl0)
        return k, h, self.min_shadow if self.min_shadow is not None else settings.monitor_min_shadow

    def statistics(self, history: pd.DataFrame, context: MonitorContext) -> pd.DataFrame:
        """Per known day after the baseline: ``mu0``, ``x``, ``z`` and ``S`` of every active series."""
        k, _, min_shadow = self._params(context.settings)
        rows = active_current(upto(history, context.day), context.rules)
        # Unknown days contribute a zero step, so dropping them is exact.
        known = rows[rows["shadow_n"] >= min_shadow]
        rank = known.groupby(SERIES, sort=False).cumcount()
        base = known[rank < self.baseline_days].groupby(SERIES)
        # Pooled, not a mean of daily rates: a 500-sample day weighs ten 50-sample days.
        mu0 = (base["agree_n"].sum() / base["shadow_n"].sum()).clip(*_MU0_RANGE).rename("mu0")
        mu0 = mu0[base.size() >= self.baseline_days]
        mon = known[rank >= self.baseline_days].join(mu0, on=SERIES, how="inner")
        mon = mon.assign(x=mon["agree_n"] / mon["shadow_n"],
                         z=standardise(mon["agree_n"], mon["shadow_n"], mon["mu0"]))
        keys = [mon[c] for c in SERIES]
        c = (mon["z"] - k).groupby(keys, sort=False).cumsum()
        return mon.assign(S=c - np.minimum(c.groupby(keys, sort=False).cummin(), 0.0))

    def check(self, history: pd.DataFrame, context: MonitorContext) -> list[Finding]:
        k, h, min_shadow = self._params(context.settings)
        stats = self.statistics(history, context)
        if stats.empty:
            return []
        # S on context.day is S on the last known day: unknown days carry it.
        last = stats.groupby(SERIES, sort=False)["S"].last()
        alarmed = last.index[last.to_numpy() > h]
        if alarmed.empty:
            return []
        rows = active_current(upto(history, context.day), context.rules).groupby(SERIES, sort=False)
        stat_groups = stats.groupby(SERIES, sort=False)
        return [self._finding(context, stat_groups.get_group(key), rows.get_group(key), min_shadow, k, h)
                for key in alarmed]

    def _finding(self, context, series, rows, min_shadow, k, h) -> Finding:
        rule_id, locale = str(series["rule_id"].iloc[0]), str(series["locale"].iloc[0])
        dates, S = series["date"].to_numpy(), series["S"].to_numpy()
        below = np.flatnonzero(S <= h)
        since = dates[below[-1] + 1] if below.size else dates[0]
        zeros = np.flatnonzero(S[: np.searchsorted(dates, since)] <= 0)
        # Classical CUSUM estimate of the change: the first day after S last sat at zero.
        cusum_start = _iso(dates[zeros[-1] + 1] if zeros.size else dates[0])
        known = rows[rows["shadow_n"] >= min_shadow]
        change = _change_point(known["date"].to_numpy(), (known["agree_n"] / known["shadow_n"]).to_numpy(float))
        mu0 = float(series["mu0"].iloc[0])
        agreement = rows["agree_n"] / rows["shadow_n"].where(rows["shadow_n"] > 0)
        return Finding(
            subject=rule_id, check=self.name, severity=Severity.WARNING, action=Action.TICKET,
            day=context.day, locale=locale,
            summary=(f"Agreement of {rule_id} in {locale} has drifted below its usual {mu0:.1%} "
                     f"since about {change or cusum_start}; look at the disagreeing queries."),
            evidence={
                "locale": locale, "rule_version": str(series["rule_version"].iloc[0]),
                "mu0": mu0, "k": k, "h": h, "min_shadow": min_shadow, "statistic": float(S[-1]),
                "alarm_since": _iso(since), "cusum_start": cusum_start, "change_point": change,
                "agreement": points(rows["date"], agreement, rows["shadow_n"], context.day),
                "cusum": points(series["date"], series["S"], series["shadow_n"], context.day),
                "examples": list(context.examples.get(rule_id, [])),
            },
        )


def _iso(day) -> str:
    return pd.Timestamp(day).date().isoformat()


def _change_point(dates: np.ndarray, agreement: np.ndarray) -> str | None:
    """Date of the single best l2 break in the known agreement series of the current version.

    The whole series (baseline included) is searched, so a change soon after
    the baseline still has a long clean segment before it.
    """
    if len(agreement) < 4:
        return None
    # jump=1: ruptures' default grid of 5 days would round the change to a week; min_size=1
    # so the first alarm day, often the only day after the change, can be a segment.
    bkps = rpt.Binseg(model="l2", min_size=1, jump=1).fit(agreement.reshape(-1, 1)).predict(n_bkps=1)
    return _iso(dates[bkps[0]])
