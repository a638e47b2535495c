"""Residual baselines: frozen per bundle, so a later drop is attributed to the model, not the rules.

When a bundle changes, what the model serves changes with it, and its
residual accuracy moves even though the model did not. A baseline frozen on
the bundle's first labelled traffic is the yardstick for the rest of its
life: a day under the same bundle whose residual accuracy falls more than a
margin below it is a :class:`ResidualDrop` (the nightly files it as a ticket).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from sqlmodel import select

from rulelife.model.residual import ResidualReport, accuracy
from rulelife.store import ResidualBaselineRow, Store, utcnow

__all__ = ["ResidualDrop", "baselines", "check_residual", "freeze_baselines"]


def freeze_baselines(store: Store, report: ResidualReport, *, min_labels: int, actor: str = "nightly",
                     replace: bool = False) -> list[int]:
    """Freeze a baseline for every bundle of ``report`` that has none (each, or all with ``replace``).

    A bundle with fewer than ``min_labels`` labelled residual queries in the
    report waits for more traffic. Returns the bundle versions frozen.
    """
    frozen = []
    frame = report.bundles()
    with store.session() as session:
        for row in frame.itertuples(index=False):
            if row.residual_labelled < min_labels:
                continue
            existing = session.get(ResidualBaselineRow, int(row.bundle))
            if existing is not None and not replace:
                continue
            if existing is not None:
                session.delete(existing)
                session.flush()
            session.add(ResidualBaselineRow(
                bundle_version=int(row.bundle), first_day=dt.date.fromisoformat(row.first_day),
                last_day=dt.date.fromisoformat(row.last_day), frozen_at=utcnow(), frozen_by=actor,
                queries=int(row.queries), residual=int(row.residual), labelled=int(row.labelled),
                correct=int(row.correct), residual_labelled=int(row.residual_labelled),
                residual_correct=int(row.residual_correct),
                summary=json.dumps({"residual_share": row.residual_share,
                                    "all_accuracy": accuracy(int(row.correct), int(row.labelled)),
                                    "residual_accuracy": accuracy(int(row.residual_correct),
                                                                  int(row.residual_labelled))}),
            ))
            frozen.append(int(row.bundle))
    return frozen


def baselines(store: Store) -> dict[int, ResidualBaselineRow]:
    """Every frozen baseline, by bundle version."""
    with store.session() as session:
        return {row.bundle_version: row for row in session.exec(select(ResidualBaselineRow)).all()}


@dataclass(frozen=True)
class ResidualDrop:
    """A day's residual accuracy under one bundle, below that bundle's baseline by more than the margin."""

    day: dt.date
    bundle: int
    accuracy: dict  # the day's residual accuracy (see rulelife.model.residual.accuracy)
    baseline: dict  # the baseline's
    margin: float

    @property
    def summary(self) -> str:
        a, b = self.accuracy, self.baseline
        return (f"the model's accuracy on the residual of bundle {self.bundle} fell to {a['accuracy']:.3f} "
                f"(95% {a['low']:.3f}-{a['high']:.3f}, n={a['n']}) from its baseline {b['accuracy']:.3f} "
                f"(n={b['n']}), more than the margin {self.margin:.3f}: the rules did not change, so look at the "
                "model or at what the traffic asks")

    def to_dict(self) -> dict:
        return {"day": self.day.isoformat(), "bundle": self.bundle, "residual_accuracy": self.accuracy,
                "baseline": self.baseline, "margin": self.margin}


def check_residual(store: Store, report: ResidualReport, day: dt.date, *, margin: float, min_labels: int
                   ) -> list[ResidualDrop]:
    """The bundles whose residual accuracy on ``day`` is below their baseline minus ``margin``.

    The point estimate is compared, not an interval bound: the margin is the
    tolerance a team sets, and ``min_labels`` keeps a thin day from being judged.
    """
    frozen = baselines(store)
    frame = report.bundles()
    drops = []
    for row in frame.itertuples(index=False):
        base = frozen.get(int(row.bundle))
        if base is None or row.residual_labelled < min_labels or base.residual_labelled == 0:
            continue
        today = accuracy(int(row.residual_correct), int(row.residual_labelled))
        before = accuracy(base.residual_correct, base.residual_labelled)
        if today["accuracy"] < before["accuracy"] - margin:
            drops.append(ResidualDrop(day, int(row.bundle), today, before, margin))
    return drops

