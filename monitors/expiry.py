"""Expiry: an active rule past its re-validation date.

Reads only ``context.rules``. A rule is valid through its ``expires_at`` day.
From the next day it gets a ticket asking for ``rulelife revalidate``; a rule
still unrenewed more than ``grace_days`` days after expiry is disabled, since
nobody has checked that its boundary still fits the model it shadows. The
grace period exists so an owner on holiday does not lose a healthy rule on the
first day.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd

from monitors._series import check_int
from rulelife.monitoring.contract import Action, Finding, Monitor, MonitorContext, Severity

__all__ = ["Expiry"]


class Expiry(Monitor):
    """Ticket an expired active rule, and disable it once the grace period is over.

    Parameters
    ----------
    grace_days
        Days past ``expires_at`` before the rule is disabled.

    Examples
    --------
    >>> from datetime import date, timedelta
    >>> from monitors._series import demo_context
    >>> monitor = Expiry(grace_days=7)
    >>> for i in range(12):
    ...     day = date(2026, 3, 1) + timedelta(days=i)
    ...     found = monitor.check(None, demo_context(day, expires_at=datetime(2026, 3, 2, 9, 30)))
    ...     if found:
    ...         print(day, found[0].action.value)
    2026-03-03 ticket
    2026-03-04 ticket
    2026-03-05 ticket
    2026-03-06 ticket
    2026-03-07 ticket
    2026-03-08 ticket
    2026-03-09 ticket
    2026-03-10 disable
    2026-03-11 disable
    2026-03-12 disable
    """

    name = "expiry"

    def __init__(self, *, grace_days: int = 7):
        self.grace_days = check_int(self.name, "grace_days", grace_days, 0)

    def check(self, history: pd.DataFrame | None, context: MonitorContext) -> list[Finding]:
        """``history`` is not read: expiry is a registry fact, not a metric."""
        grace = self.grace_days
        findings = []
        for rule_id, info in sorted(context.rules.items()):
            if info.state != "active" or info.expires_at is None:
                continue
            # The UTC calendar day of expiry (the registry stores aware UTC datetimes).
            expired = info.expires_at.date() if isinstance(info.expires_at, datetime) else info.expires_at
            if expired >= context.day:
                continue
            overdue = (context.day - expired).days
            disable = overdue > grace
            deadline = expired + timedelta(days=grace)
            findings.append(Finding(
                subject=rule_id, check=self.name,
                severity=Severity.CRITICAL if disable else Severity.WARNING,
                action=Action.DISABLE if disable else Action.TICKET, day=context.day,
                summary=(f"{rule_id} expired on {expired} and was not re-validated within {grace} days, "
                         "so it is disabled; re-validate with `rulelife revalidate` and promote it again."
                         if disable else
                         f"{rule_id} expired on {expired}; re-validate it with `rulelife revalidate` "
                         f"before {deadline + timedelta(days=1)} or it will be disabled."),
                evidence={"expires_at": info.expires_at.isoformat(), "days_overdue": overdue,
                          "grace_days": grace, "disable_on": (deadline + timedelta(days=1)).isoformat(),
                          "rule_version": info.version},
            ))
        return findings
