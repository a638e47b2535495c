"""Which model labelled a day's traffic: the versions a day's log names and the dominant one.

The dominant version of a day is the one that labelled most of its rows
(ties go to the name that sorts first, so every engine picks the same). A
day's minority versions are a canary, or the tail of a roll-out: only a
change of the dominant version from one counted day to the next is a model
change (:mod:`rulelife.monitoring.model_changes`).

>>> dominant({"model-1": 950, "model-2": 50})
'model-1'
>>> dominant({"b": 5, "a": 5}), dominant({})
('a', None)
>>> changes([("d1", "m1"), ("d2", None), ("d3", "m1"), ("d4", "m2"), ("d5", "m2")])
[('d4', 'm1', 'm2')]
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any

import pandas as pd

__all__ = ["changes", "day_versions", "dominant", "versions_json"]


def dominant(versions: Mapping[str, int]) -> str | None:
    """The version with the most rows (ties: the first name in sort order); None when none is named."""
    if not versions:
        return None
    return min(versions, key=lambda v: (-versions[v], v))


def changes(dominants: Iterable[tuple[Any, str | None]]) -> list[tuple[Any, str, str]]:
    """``(first_day, previous, version)`` of each model change in days given in order with their dominant version.

    A day naming no version is not counted (the next counted day compares with
    the last one that named one); the first version is a start, not a change.
    """
    found, last = [], None
    for day, version in dominants:
        if version is None:
            continue
        if last is not None and version != last:
            found.append((day, last, version))
        last = version
    return found


def day_versions(models: pd.DataFrame) -> dict[date, dict[str, int]]:
    """Per UTC day, version -> rows, from :attr:`MetricCounts.models <rulelife.monitoring.metrics.MetricCounts>`."""
    out: dict[date, dict[str, int]] = {}
    for row in models.itertuples(index=False):
        out.setdefault(pd.Timestamp(row.date).date(), {})[str(row.model_version)] = int(row.n)
    return {day: dict(sorted(found.items())) for day, found in sorted(out.items())}


def versions_json(versions: Mapping[str, int]) -> str | None:
    """The versions a day names as JSON text (any version text round-trips), None when none."""
    return json.dumps(dict(sorted(versions.items())), ensure_ascii=False) if versions else None
