"""Safety false positive: a rule answered a query the model put in a safety intent.

``safety_fp`` already counts only shadow fires where the model said a safety
intent other than the rule's own, so any count above zero on ``context.day``
disables the rule at once. No sample-size threshold and no run of days: the
promotion gate demands zero such errors, and one observed error is proof, not
an estimate (a customer asking for a refund got a canned answer instead).
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from monitors._series import active_current, upto
from rulelife.errors import ConfigError
from rulelife.monitoring.contract import Action, Finding, Monitor, MonitorContext, Severity

__all__ = ["SafetyFalsePositive"]


class SafetyFalsePositive(Monitor):
    """Disable a rule on the first day it fires on a query the model labels a safety intent.

    Parameters
    ----------
    safety_intents
        Intents named in the evidence as safety classes. Unset: the deployment's
        ``safety_intents``, the list the nightly job computed the ``safety_fp``
        metric with (the decision itself reads that metric).

    Examples
    --------
    >>> import numpy as np
    >>> from datetime import date, timedelta
    >>> from monitors._series import demo_context, demo_history
    >>> rng = np.random.default_rng(8)
    >>> fp = rng.binomial(30, np.r_[np.zeros(12), np.full(3, 0.03)])  # a new phrase catches refund requests
    >>> history = demo_history(30 - fp, [30] * 15, safety_fp=fp)
    >>> monitor = SafetyFalsePositive()
    >>> for i in range(15):
    ...     if found := monitor.check(history, demo_context(date(2026, 1, 1) + timedelta(days=i))):
    ...         print(f"Disable on day {i}: {found[0].evidence['safety_by_class']}")
    ...         break
    Disable on day 13: {'return_request': 3}
    """

    name = "safety_fp"

    def __init__(self, *, safety_intents: Sequence[str] | None = None):
        if safety_intents is not None and (
            isinstance(safety_intents, str)
            or not all(isinstance(i, str) and i for i in safety_intents)
        ):
            raise ConfigError(
                f"{self.name}: safety_intents must be a list of intent names, got {safety_intents!r}; "
                "set e.g. ['return_request', 'escalation'] in the [monitors.safety_fp] table, or leave it out "
                "for the deployment's safety_intents"
            )
        self.safety_intents = None if safety_intents is None else list(safety_intents)

    def check(self, history: pd.DataFrame, context: MonitorContext) -> list[Finding]:
        safety = self.safety_intents if self.safety_intents is not None else context.settings.safety_intents
        today = history[history["date"] == pd.Timestamp(context.day)]
        today = upto(today, context.day)
        # A shadow rule is judged on its live evidence like an active one: one
        # would-have-been answer the model puts in a safety intent disables it.
        rows = pd.concat([active_current(today, context.rules), active_current(today, context.rules, state="shadow")])
        rows = rows[rows["safety_fp"] > 0]
        findings = []
        for row in rows.itertuples(index=False):  # only offending rows: a handful at most
            by_class = {str(k): int(v) for k, v in dict(row.fp_by_class or {}).items()}
            own = context.rules[row.rule_id].intent
            hits = {i: by_class.get(i, 0) for i in safety if i != own and by_class.get(i, 0)}
            shadow = context.rules[row.rule_id].state == "shadow"
            answered = "would have answered" if shadow else "answered"
            kind = "labelled" if shadow else "shadow"
            findings.append(Finding(
                subject=row.rule_id, check=self.name, severity=Severity.CRITICAL, action=Action.DISABLE,
                day=context.day, locale=row.locale,
                summary=(f"{row.rule_id} {answered} {int(row.safety_fp)} {row.locale} {kind} quer"
                         f"{'y' if row.safety_fp == 1 else 'ies'} the model labelled "
                         f"{' / '.join(hits) or 'a safety intent'}, so it is disabled."),
                evidence={
                    "locale": row.locale, "rule_version": row.rule_version, "safety_fp": int(row.safety_fp),
                    "safety_by_class": hits, "safety_intents": list(safety), "shadow_n": int(row.shadow_n),
                    "fp_by_class": by_class, "examples": list(context.examples.get(row.rule_id, [])),
                },
            ))
        return findings
