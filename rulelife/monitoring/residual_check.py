"""The nightly's residual step: freeze each new bundle's baseline, ticket a drop below it.

Not a monitor plug-in: monitors judge the daily metrics table, and the
model's residual accuracy needs the day's labelled log (a ``true_intent``
column), which not every deployment has. So it is a step the nightly runs
when ``residual_check`` is on, after the monitors and before the findings
are applied (its tickets go through the same path).
"""

from __future__ import annotations

from datetime import date

from rulelife.config import Workspace
from rulelife.model.baseline import check_residual, freeze_baselines
from rulelife.model.run import measure_residual
from rulelife.monitoring.contract import Action, Finding, Severity
from rulelife.store import Store

__all__ = ["CHECK", "residual_findings"]

CHECK = "residual_accuracy"


def residual_findings(workspace: Workspace, store: Store, day: date, source, engine: str, spark,
                      notes: list[str]) -> list[Finding]:
    """Findings for ``day``: one per bundle whose residual accuracy fell below its baseline by the margin.

    A re-run freezes nothing twice (a baseline, once frozen, stays) and files
    the same finding, which the ticket path appends once.
    """
    settings = workspace.settings
    report = measure_residual(workspace, log=source, since=day, until=day, store=store, engine=engine, spark=spark)
    if report.totals()["residual_labelled"] < settings.residual_min_labels:
        notes.append(f"residual check: fewer than {settings.residual_min_labels} labelled residual queries on {day} "
                     "(a true_intent column); not judged")
        return []
    frozen = freeze_baselines(store, report, min_labels=settings.residual_min_labels)
    if frozen:
        notes.append(f"residual baseline frozen for bundle(s) {', '.join(map(str, frozen))} from {day}")
    drops = check_residual(store, report, day, margin=settings.residual_margin,
                           min_labels=settings.residual_min_labels)
    return [Finding(subject=f"bundle:{drop.bundle}", check=CHECK, severity=Severity.WARNING, action=Action.TICKET,
                    day=day, summary=drop.summary, evidence=drop.to_dict()) for drop in drops]
