"""Agreement floor: disable a rule below the floor on N consecutive known days.

A day is *known* when its shadow sample has at least ``min_shadow`` rows; any
other day (a small sample, or no row at all because the rule did not fire) is
*unknown*. Unknown days are skipped: the run is counted over known days only,
so "low, unknown, low, low" is a run of three and "low, unknown, high" is
broken by the high day, never by the unknown one. An unknown day neither
extends the run nor passes the rule, because a 5-sample day says nothing
either way. The run must end on ``context.day`` itself: when ``context.day`` is
unknown, the finding waits for the next known day rather than disabling on
stale evidence (and a re-run of an earlier day still reproduces its verdict).

In the review window after a model change (``context.in_model_review``) the
finding is a ticket, not a disable: the labels moved under the rule, and the
nightly's re-validation of the change asks a person to judge it. Once the
window is over, a run below the floor disables as before.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from monitors._series import SERIES, active_current, check_fraction, check_int, points, upto
from rulelife.monitoring.contract import Action, Finding, Monitor, MonitorContext, Severity

__all__ = ["AgreementFloor"]


class AgreementFloor(Monitor):
    """Disable a rule whose agreement stays under the floor on ``days`` consecutive known days.

    Parameters
    ----------
    floor
        Minimum daily agreement; a day exactly on the floor passes. Unset: the
        promotion gate's ``agreement_floor``, so a rule is held to the floor it
        was promoted at (two separate defaults would drift apart).
    days
        Consecutive known days below the floor that disable.
    min_shadow
        Shadow samples a day needs to be known.

    Examples
    --------
    >>> import numpy as np
    >>> from datetime import date, timedelta
    >>> from monitors._series import demo_context, demo_history
    >>> rng = np.random.default_rng(11)
    >>> p = np.r_[np.full(20, 0.98), np.full(10, 0.85)]  # agreement falls on day 20
    >>> history = demo_history(rng.binomial(60, p), [60] * 30)
    >>> monitor = AgreementFloor()
    >>> for i in range(30):
    ...     if found := monitor.check(history, demo_context(date(2026, 1, 1) + timedelta(days=i))):
    ...         print(f"Disable on day {i}: {found[0].evidence['run_dates']}")
    ...         break
    Disable on day 22: ['2026-01-21', '2026-01-22', '2026-01-23']
    """

    name = "agreement_floor"

    def __init__(self, *, floor: float | None = None, days: int = 3, min_shadow: int = 20):
        self.floor = None if floor is None else check_fraction(self.name, "floor", floor)
        self.days = check_int(self.name, "days", days, 1)
        self.min_shadow = check_int(self.name, "min_shadow", min_shadow, 1)

    def floor_for(self, context: MonitorContext) -> float:
        """The floor judged in ``context``: this monitor's own, else the promotion gate's."""
        return self.floor if self.floor is not None else context.settings.agreement_floor

    def statistics(self, history: pd.DataFrame, context: MonitorContext) -> pd.DataFrame:
        """Per known day of every active series: ``value`` (the agreement), ``low`` (the floor),
        ``run`` (known days below the floor in a row, ending that day) and ``alarm``."""
        return self._judge(active_current(upto(history, context.day), context.rules), self.floor_for(context))

    def _judge(self, rows: pd.DataFrame, floor: float) -> pd.DataFrame:
        known = rows[rows["shadow_n"] >= self.min_shadow]
        below = known["agree_n"] < floor * known["shadow_n"]  # exact, no float division
        keys = [known[c] for c in SERIES]
        # run[t] counts the known days below the floor since the series' last known day on or above it.
        passes = (~below).astype("int64").groupby(keys, sort=False).cumsum()
        run = below.astype("int64").groupby([*keys, passes], sort=False).cumsum()
        return known.assign(value=known["agree_n"] / known["shadow_n"], low=floor, high=np.nan, run=run,
                            alarm=run >= self.days)

    def check(self, history: pd.DataFrame, context: MonitorContext) -> list[Finding]:
        floor = self.floor_for(context)
        rows = active_current(upto(history, context.day), context.rules)
        stats = self._judge(rows, floor)
        # The run must end on context.day itself: a verdict never rests on stale evidence.
        hit = stats[stats["alarm"] & (stats["date"] == pd.Timestamp(context.day))]
        if hit.empty:
            return []
        own, known = rows.groupby(SERIES, sort=False), stats.groupby(SERIES, sort=False)
        return [self._finding(context, own.get_group(key), known.get_group(key).tail(self.days), *key, floor,
                              self.days, self.min_shadow)
                for key in zip(hit["rule_id"], hit["locale"])]

    def _finding(self, context, own, run, rule_id, locale, floor, days, min_shadow) -> Finding:
        agreement = own["agree_n"] / own["shadow_n"].where(own["shadow_n"] > 0)
        first = run["date"].min()
        skipped = own[(own["date"] > first) & (own["shadow_n"] < min_shadow)]["date"]
        run_values = ", ".join(f"{a / n:.1%}" for a, n in zip(run["agree_n"], run["shadow_n"]))
        review = context.in_model_review
        verdict = (f"; the model changed on {context.model_changed_on}, so it is ticketed for review, not "
                   "disabled" if review else ", so it is disabled")
        return Finding(
            subject=rule_id, check=self.name, severity=Severity.WARNING if review else Severity.CRITICAL,
            action=Action.TICKET if review else Action.DISABLE, day=context.day, locale=locale,
            summary=(f"{rule_id} agreed with the model less than {floor:.0%} of the time in {locale} "
                     f"on {days} consecutive measured days ({run_values}){verdict}."),
            evidence={
                "model_changed_on": None if context.model_changed_on is None else context.model_changed_on.isoformat(),
                "in_model_review": review,
                "locale": locale, "rule_version": str(run["rule_version"].iloc[0]),
                "floor": floor, "days": days, "min_shadow": min_shadow,
                "run_dates": [d.date().isoformat() for d in run["date"]],
                "skipped_unknown_dates": [d.date().isoformat() for d in skipped],
                "agreement": points(own["date"], agreement, own["shadow_n"], context.day),
                "examples": list(context.examples.get(rule_id, [])),
            },
        )
