"""One-sided lower CUSUM on a rule's daily agreement with the model.

Each (rule, locale) series at the rule's current version is turned into daily
shortfalls on the arcsine-square-root scale,
``z_t = 2 sqrt(n_t) (ref - asin sqrt(x_t))`` with ``x_t`` the agreement and
``n_t`` the shadow sample, and accumulated as ``S_t = max(0, S_{t-1} + z_t - k)``;
the monitor alarms while ``S_t > h``. ``ref = asin sqrt(mu0) - 1 / (2 sqrt(N0))``
is the level of the first ``baseline_days`` known days (``mu0``, pooled over
their ``N0`` shadow samples) lowered by one standard error of that estimate.

False-alarm rate: at most ``1 / arl0`` per series-day (``arl0 = 2000``: at
most 0.075 false tickets a day for 50 rules × 3 locales), with ``mu0``
estimated as the monitor estimates it. ``h`` is chosen so that Siegmund's
approximation of the in-control run length, averaged over the error of a
``baseline_days`` estimate (normal with variance ``1 / baseline_days`` in
daily standard errors, Gauss-Hermite quadrature), gives exactly ``1 / arl0``;
at the defaults (``k = 0.5``, ``arl0 = 2000``, 14 days) ``h = 5.846``.
Verified by ``benchmarks/bench_cusum_calibration.py`` (400 binomial series ×
2000 days per setting, ``mu0`` re-estimated per series, restart after each
alarm) over p in {0.93, 0.97, 0.99, 0.995} × n in {20, 50, 100, uniform
20-100}: false alarms per day are 0.03-0.60 × 1 / arl0 (seed 0; the worst
setting is 0.50-0.76 × over seeds 0-3), highest in the near-normal corner
p = 0.93 and lowest where disagreements are rare (p = 0.995, n = 20). The
previous design (binomial z, known-mean Siegmund h = 5.75) measured 2.9-20 ×
on the same grid.

Detection (same benchmark, change 50 days after the baseline, median over
400 series): a drop from 0.97 to 0.90 at n = 50 alarms on the 5th day of the
drop (4th-5th with n uniform in 20-100), 0.97 to 0.93 on the 11th-13th
(9th-10th); the previous design took 3 and 5 days while filing 10-20 × the
false tickets. A 28-day baseline (``baseline_days=28``, ``h = 5.333``) alarms
a day or more sooner (4th and 9th day), is quieter (≤ 0.48 ×) and leaves a
new version unwatched two weeks longer; the agreement floor monitor covers
gross drops meanwhile, so 14 stays the default.

Why each piece (numbers from the benchmark):

- Arcsine square root: its variance ``1 / (4 n)`` does not depend on p, so a
  misestimated ``mu0`` no longer also rescales every day (near p = 1 the
  binomial ``mu0 (1 - mu0)`` doubles when ``mu0`` moves from 0.995 to 0.99),
  and it shortens the right tail of a single rare disagreement. Being convex
  above p = 1/2 it runs a little high on small days near p = 1, which only
  makes the monitor quieter there; centring it on its exact binomial mean
  measured worse in a trial run (up to 18 × nominal: the skew returns).
- The one-standard-error margin: ``mu0`` estimated from 14 days is off by
  about 1 / sqrt(14) = 0.27 daily standard errors, a permanent shift as large
  as half of ``k``, and series whose baseline ran high dominate the false
  alarms (13 × nominal at p = 0.97, n = 50 with the old statistic). The margin plus a calibrated
  ``h`` detects faster than a larger ``h`` alone: with no margin the same
  rate needs ``h = 13.05``, and Siegmund's delays for the two drops above
  grow from about 5 and 11 days to 9 and 17.
- ``h`` by quadrature rather than by a Monte-Carlo run at construction: it is
  deterministic, takes microseconds for any ``k``, ``arl0`` and baseline, and
  the simulation shows it errs on the quiet side.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import pandas as pd
import ruptures as rpt

from monitors._series import SERIES, active_current, check_int, check_positive, points, since_model_change, upto
from rulelife.errors import ConfigError
from rulelife.monitoring.contract import Action, Finding, Monitor, MonitorContext, Severity

__all__ = ["AgreementCusum", "calibrated_h", "lower_cusum", "siegmund_h", "standardise"]

# Siegmund's correction for the overshoot of a discrete-time CUSUM over h.
_OVERSHOOT = 1.166
# Below 0.5 a rule is far under any floor and the floor monitor, not this one,
# acts. No upper clip: the arcsine scale stays finite at mu0 = 1.
_MU0_RANGE = (0.5, 1.0)
# The reference sits this many standard errors of the baseline estimate below
# it: a drop must beat the baseline's own noise before it counts.
_BASELINE_MARGIN = 1.0
# Gauss-Hermite nodes for averaging the run length over the baseline error;
# 40 integrate the smooth rate to well below the Monte-Carlo error.
_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(40)
_WEIGHTS = _WEIGHTS / _WEIGHTS.sum()


def _siegmund_arl(h: float, k: float, drift=0.0):
    """Siegmund's run length of ``max(0, S + z - k)`` over ``h`` for unit-variance z of mean ``drift``."""
    d = np.asarray(drift, dtype=float) - k
    x = -2 * d * (h + _OVERSHOOT)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        arl = np.where(d == 0, (h + _OVERSHOOT) ** 2, np.expm1(x) - x) / np.where(d == 0, 1.0, 2 * d * d)
    return float(arl) if arl.ndim == 0 else arl


def _bisect_h(rate, arl0: float, what: str, k: float) -> float:
    """The ``h`` at which the decreasing false-alarm ``rate(h)`` is ``1 / arl0``."""
    if rate(0.0) <= 1 / arl0:
        raise ConfigError(
            f"agreement_cusum: arl0={arl0!r} is below the run length of h=0 for k={k!r}{what} "
            f"({1 / rate(0.0):.2f} days); raise arl0 in the [monitors.agreement_cusum] table"
        )
    lo, hi = 0.0, 1.0
    while rate(hi) > 1 / arl0:
        lo, hi = hi, 2 * hi
    for _ in range(100):  # bisection to float precision; the rate decreases in h
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if rate(mid) > 1 / arl0 else (lo, mid)
    return (lo + hi) / 2


@lru_cache(maxsize=64)
def siegmund_h(k: float, arl0: float) -> float:
    """The ``h`` whose Siegmund in-control ARL is ``arl0`` for reference ``k`` and a known mean.

    Examples
    --------
    >>> round(siegmund_h(0.5, 2000.0), 3)
    5.75
    """
    return _bisect_h(lambda h: 1 / _siegmund_arl(h, k), arl0, "", k)


@lru_cache(maxsize=64)
def calibrated_h(k: float, arl0: float, baseline_days: int) -> float:
    """The ``h`` giving ``1 / arl0`` false alarms a day with ``mu0`` estimated as the monitor does.

    The baseline's error in daily standard errors is ``delta ~ N(0, 1 / baseline_days)``
    (days of about equal size); the reference then sits at ``delta - margin / sqrt(baseline_days)``
    and the false-alarm rate is Siegmund's ``1 / ARL`` averaged over ``delta``.

    Examples
    --------
    >>> round(calibrated_h(0.5, 2000.0, 14), 3)
    5.846
    """
    sd = 1 / math.sqrt(baseline_days)
    drifts = _NODES * sd - _BASELINE_MARGIN * sd

    def rate(h):
        return float(_WEIGHTS @ (1 / _siegmund_arl(h, k, drifts)))

    return _bisect_h(rate, arl0, f", baseline_days={baseline_days!r}", k)


def standardise(agree_n, shadow_n, mu0, baseline_n=np.inf):
    """Daily agreement shortfall in standard errors on the arcsine scale.

    ``2 sqrt(n) (asin sqrt(mu0) - margin / (2 sqrt(baseline_n)) - asin sqrt(x))``:
    ``asin sqrt`` of a binomial rate has standard error ``1 / (2 sqrt(n))``
    whatever p, so a 500-sample day moves S more than a 20-sample day for the
    same agreement; ``baseline_n`` (the shadow samples behind ``mu0``; infinite
    for a known level) sets the safety margin.
    """
    n = np.asarray(shadow_n, dtype=float)
    ref = np.arcsin(np.sqrt(np.asarray(mu0, dtype=float))) - _BASELINE_MARGIN / (2 * np.sqrt(baseline_n))
    return 2 * np.sqrt(n) * (ref - np.arcsin(np.sqrt(np.asarray(agree_n, dtype=float) / n)))


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


class AgreementCusum(Monitor):
    """Ticket a rule whose daily agreement drifts below its own in-control level.

    Parameters
    ----------
    k
        Reference value in standard errors of daily agreement.
        0.5 is tuned to detect a shift of one standard error fastest.
    arl0
        Target in-control average run length in days; the alarm threshold ``h`` follows.
    baseline_days
        Known days, from the start of the current version, that estimate ``mu0``; ``h``
        is calibrated for the error of that estimate (``calibrated_h``).
    min_shadow
        Shadow samples a day needs to count.
        Days with fewer are unknown: skipped, neither a pass nor a reset.

    A series starts at the rule's current version and, when the context
    names a model change (``model_changed_on``), again at the change: the
    baseline is the first ``baseline_days`` known days under the new model.

    Examples
    --------
    >>> from datetime import date, timedelta
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
    Change detected on day 45, change point 2026-02-10
    """

    name = "agreement_cusum"

    def __init__(self, *, k: float = 0.5, arl0: float = 2000.0, baseline_days: int = 14, min_shadow: int = 20):
        self.k = check_positive(self.name, "k", k)
        self.arl0 = check_positive(self.name, "arl0", arl0, above=1.0)
        # At least 2 days, so mu0 is never one day's noise.
        self.baseline_days = check_int(self.name, "baseline_days", baseline_days, 2)
        self.min_shadow = check_int(self.name, "min_shadow", min_shadow, 1)
        self.h = calibrated_h(self.k, self.arl0, self.baseline_days)  # refuses an arl0 no h can reach

    @staticmethod
    def _rows(history: pd.DataFrame, context: MonitorContext) -> pd.DataFrame:
        # A model change restarts the baseline: mu0 is learned again from the new model's labels, so a
        # shift the retrain caused is not blamed on the rule (it goes to the re-validation ticket instead).
        return since_model_change(active_current(upto(history, context.day), context.rules), context)

    def statistics(self, history: pd.DataFrame, context: MonitorContext) -> pd.DataFrame:
        """Per known day after the baseline of every active series: ``mu0``, ``x``, ``z`` and ``S``;
        ``value`` is ``S``, ``high`` the alarm threshold ``h`` and ``alarm`` is ``S > h``."""
        rows = self._rows(history, context)
        # Unknown days contribute a zero step, so dropping them is exact.
        known = rows[rows["shadow_n"] >= self.min_shadow]
        rank = known.groupby(SERIES, sort=False).cumcount()
        base = known[rank < self.baseline_days].groupby(SERIES)
        # Pooled, not a mean of daily rates: a 500-sample day weighs ten 50-sample days.
        n0 = base["shadow_n"].sum().rename("baseline_n")
        mu0 = (base["agree_n"].sum() / n0).clip(*_MU0_RANGE).rename("mu0")
        level = pd.concat([mu0, n0], axis=1)[base.size() >= self.baseline_days]
        mon = known[rank >= self.baseline_days].join(level, on=SERIES, how="inner")
        mon = mon.assign(x=mon["agree_n"] / mon["shadow_n"],
                         z=standardise(mon["agree_n"], mon["shadow_n"], mon["mu0"], mon["baseline_n"]))
        mon = mon.drop(columns="baseline_n")
        keys = [mon[c] for c in SERIES]
        c = (mon["z"] - self.k).groupby(keys, sort=False).cumsum()
        S = c - np.minimum(c.groupby(keys, sort=False).cummin(), 0.0)
        return mon.assign(S=S, value=S, low=np.nan, high=self.h, alarm=(S > self.h).astype(bool))

    def check(self, history: pd.DataFrame, context: MonitorContext) -> list[Finding]:
        stats = self.statistics(history, context)
        if stats.empty:
            return []
        # The verdict on context.day is that of the last known day: unknown days carry S.
        last = stats.groupby(SERIES, sort=False)["alarm"].last()
        alarmed = last.index[last.to_numpy()]
        if alarmed.empty:
            return []
        rows = self._rows(history, context).groupby(SERIES, sort=False)
        stat_groups = stats.groupby(SERIES, sort=False)
        return [self._finding(context, stat_groups.get_group(key), rows.get_group(key), self.min_shadow, self.k,
                              self.h)
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
