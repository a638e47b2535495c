"""What the rules leave to the model: the residual's share, confidence and accuracy.

Rules answer the easy queries, so the model serves a harder residual: its
accuracy there is not its accuracy on all traffic, and a model that did not
change looks degraded once a bundle grows. :class:`ResidualCounts` counts, per
(day, bundle, intent, locale) cell of the query log, what a rule answered,
what it left, and, where a ``true_intent`` label exists, how often the model
was right on each; they add up with ``+``, so :class:`ResidualPass` runs on
every engine of :func:`~rulelife.engines.fold.fold_log`.

A cell's *intent* is the answer served: the rule's intent where a rule
answered, the model's otherwise. *All traffic* accuracy is over every row
with both a model answer and a label: the residual plus, where a rule
answered, the shadow sample (in a production log the model is called on a
rule's query only there; on a fully labelled log the figures are exact).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from rulelife.evidence.analysis import ConfidenceCounts
from rulelife.evidence.evaluation.stats import wilson_interval

__all__ = ["CELL_FIELDS", "ResidualCounts", "ResidualPass", "ResidualReport", "accuracy"]

NO_BUNDLE = -1  # a row the runtime did not stamp with a bundle (a log from before the rules)
UNKNOWN = "<none>"  # no rule answered and no model answer: the row has no served intent

# Per cell, in this order: what each counter counts.
CELL_FIELDS = (
    "queries",
    "residual",  # no rule answered: the model served it
    "labelled",  # a model answer and a true label
    "correct",  # ... the model's answer was the label
    "residual_labelled",
    "residual_correct",
    "shadow",  # a rule answered and the model answered too (the shadow sample)
    "shadow_agree",  # ... the model said the rule's intent
    "shadow_labelled",  # ... and a true label exists
    "shadow_correct",  # ... the model's answer was the label
)


def accuracy(correct: int, n: int) -> dict:
    """``correct / n`` with its 95% Wilson interval (NaN and (0, 1) when ``n`` is 0).

    >>> accuracy(45, 50)
    {'n': 50, 'correct': 45, 'accuracy': 0.9, 'low': 0.7864, 'high': 0.9565}
    """
    low, high = wilson_interval(correct, n)
    return {"n": int(n), "correct": int(correct), "accuracy": correct / n if n else float("nan"),
            "low": round(low, 4), "high": round(high, 4)}


@dataclass
class ResidualCounts:
    """Partial counts of one or more chunks; ``a + b`` counts both.

    Invariant: ``cells[key]`` is an int64 vector over :data:`CELL_FIELDS` for
    ``key = (day ISO string, bundle, intent, locale)``; ``confidence[day]``
    holds all traffic's and the residual's :class:`ConfidenceCounts`.
    """

    cells: dict[tuple, np.ndarray] = field(default_factory=dict)
    confidence: dict[str, tuple[ConfidenceCounts, ConfidenceCounts]] = field(default_factory=dict)

    def __add__(self, other: ResidualCounts) -> ResidualCounts:
        if not isinstance(other, ResidualCounts):
            return NotImplemented
        cells = dict(self.cells)
        for key, vector in other.cells.items():
            cells[key] = cells[key] + vector if key in cells else vector
        confidence = dict(self.confidence)
        for day, (everything, residual) in other.confidence.items():
            if day in confidence:
                mine = confidence[day]
                confidence[day] = (mine[0] + everything, mine[1] + residual)
            else:
                confidence[day] = (everything, residual)
        return ResidualCounts(cells, confidence)


class ResidualPass:
    """The per-chunk step: ``step(chunk) -> ResidualCounts`` (picklable, position-free).

    ``rule_intents`` maps each rule id the log may name to its intent.
    """

    def __init__(self, rule_intents: Mapping[str, str]):
        self.rule_intents = dict(rule_intents)

    def __call__(self, chunk: pd.DataFrame) -> ResidualCounts:
        chunk = chunk.reset_index(drop=True)  # a reader's filtered chunk keeps gaps in its index
        answered = chunk["rule_id"].notna().to_numpy()
        rule_intent = chunk["rule_id"].map(self.rule_intents).astype("string")
        model = chunk["model_intent"]
        served = rule_intent.where(pd.Series(answered, index=chunk.index), model).fillna(UNKNOWN)
        truth = chunk["true_intent"] if "true_intent" in chunk else pd.Series(pd.NA, index=chunk.index, dtype="string")
        has_model, has_truth = model.notna().to_numpy(), truth.notna().to_numpy()
        labelled = has_model & has_truth
        correct = labelled & (model == truth).fillna(False).to_numpy(dtype=bool)
        shadow = answered & has_model
        residual = ~answered
        flags = {
            "queries": np.ones(len(chunk), dtype=bool),
            "residual": residual,
            "labelled": labelled,
            "correct": correct,
            "residual_labelled": residual & labelled,
            "residual_correct": residual & correct,
            "shadow": shadow,
            "shadow_agree": shadow & (model == rule_intent).fillna(False).to_numpy(dtype=bool),
            "shadow_labelled": shadow & labelled,
            "shadow_correct": shadow & correct,
        }
        day = chunk["ts"].dt.strftime("%Y-%m-%d")
        keys = pd.DataFrame({"day": day, "bundle": chunk["bundle_version"].fillna(NO_BUNDLE).astype("int64"),
                             "intent": served.astype(object), "locale": chunk["locale"].astype(object)})
        sums = pd.concat([keys, pd.DataFrame({k: v.astype(np.int64) for k, v in flags.items()})], axis=1
                         ).groupby(["day", "bundle", "intent", "locale"], sort=False).sum()
        cells = {key: row.astype(np.int64) for key, row in zip(sums.index, sums.to_numpy())}
        confidence = {}
        values = chunk["model_confidence"].to_numpy(dtype=float, na_value=np.nan)
        for one_day, where in pd.Series(np.arange(len(chunk))).groupby(day.to_numpy(), sort=False):
            rows = where.to_numpy()
            confidence[one_day] = (ConfidenceCounts.of(values[rows]), ConfidenceCounts.of(values[rows][residual[rows]]))
        return ResidualCounts(cells, confidence)


@dataclass
class ResidualReport:
    """The finished view of :class:`ResidualCounts` (see :meth:`cells`, :meth:`days`, :meth:`bundles`)."""

    counts: ResidualCounts

    def cells(self) -> pd.DataFrame:
        """One row per (day, bundle, intent, locale): the counters and the residual share.

        A row without a bundle stamp (a replayed or simulated log stamps only
        the rows a rule touched) counts under its day's most-stamped bundle.
        """
        keys = sorted(self.counts.cells)
        frame = pd.DataFrame([self.counts.cells[k] for k in keys], columns=list(CELL_FIELDS), dtype="int64")
        frame.insert(0, "locale", [k[3] for k in keys])
        frame.insert(0, "intent", [k[2] for k in keys])
        frame.insert(0, "bundle", pd.array([k[1] for k in keys], dtype="int64"))
        frame.insert(0, "day", [k[0] for k in keys])
        stamped = frame[frame["bundle"] != NO_BUNDLE]
        if not stamped.empty:
            served = stamped.groupby(["day", "bundle"])["queries"].sum().reset_index()
            served = served.sort_values(["day", "queries", "bundle"], ascending=[True, False, False])
            dominant = served.drop_duplicates("day").set_index("day")["bundle"]
            unstamped = frame["bundle"] == NO_BUNDLE
            frame.loc[unstamped, "bundle"] = frame.loc[unstamped, "day"].map(dominant).fillna(NO_BUNDLE).astype("int64")
            frame = frame.groupby(["day", "bundle", "intent", "locale"], sort=True)[list(CELL_FIELDS)].sum().reset_index()
        frame["residual_share"] = frame["residual"] / frame["queries"]
        return frame

    def _grouped(self, by: list[str]) -> pd.DataFrame:
        cells = self.cells()
        if cells.empty:
            return pd.DataFrame(columns=[*by, *CELL_FIELDS])
        return cells.groupby(by, sort=True)[list(CELL_FIELDS)].sum().reset_index()

    def intents(self) -> pd.DataFrame:
        """Per (intent, locale) over the window: residual share and the two accuracies."""
        return _with_accuracy(self._grouped(["intent", "locale"]))

    def days(self) -> pd.DataFrame:
        """Per day: residual share, the two accuracies and the mean confidences."""
        frame = _with_accuracy(self._grouped(["day"]))
        conf = self.counts.confidence
        frame["confidence_mean"] = [conf[d][0].mean if d in conf else np.nan for d in frame["day"]]
        frame["residual_confidence_mean"] = [conf[d][1].mean if d in conf else np.nan for d in frame["day"]]
        return frame

    def bundles(self) -> pd.DataFrame:
        """Per bundle version: what a baseline freezes (residual share and the two accuracies)."""
        frame = self._grouped(["bundle"])
        days = self.cells().groupby("bundle")["day"].agg(["min", "max"]) if self.counts.cells else None
        frame = _with_accuracy(frame)
        if days is not None:
            frame["first_day"] = frame["bundle"].map(days["min"])
            frame["last_day"] = frame["bundle"].map(days["max"])
        return frame

    def totals(self) -> dict[str, int]:
        vector = sum(self.counts.cells.values(), np.zeros(len(CELL_FIELDS), dtype=np.int64))
        return {name: int(v) for name, v in zip(CELL_FIELDS, vector)}

    def confidence(self) -> tuple[ConfidenceCounts, ConfidenceCounts]:
        """All traffic's and the residual's confidence counts over the window."""
        everything, residual = ConfidenceCounts(), ConfidenceCounts()
        for a, r in self.counts.confidence.values():
            everything, residual = everything + a, residual + r
        return everything, residual

    def summary(self) -> dict:
        """The window in one record: shares, both accuracies with intervals, mean confidences."""
        t = self.totals()
        everything, residual = self.confidence()
        return {
            "queries": t["queries"],
            "residual": t["residual"],
            "residual_share": t["residual"] / t["queries"] if t["queries"] else float("nan"),
            "all_accuracy": accuracy(t["correct"], t["labelled"]),
            "residual_accuracy": accuracy(t["residual_correct"], t["residual_labelled"]),
            "confidence_mean": everything.mean,
            "residual_confidence_mean": residual.mean,
            "low_confidence_share": everything.low_share,
            "residual_low_confidence_share": residual.low_share,
        }


def _with_accuracy(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    frame["residual_share"] = _ratio(frame["residual"], frame["queries"])
    for prefix, correct, n in (("all", "correct", "labelled"), ("residual", "residual_correct", "residual_labelled")):
        frame[f"{prefix}_accuracy"] = _ratio(frame[correct], frame[n])
        bounds = [wilson_interval(int(c), int(k)) if k else (np.nan, np.nan) for c, k in zip(frame[correct], frame[n])]
        frame[f"{prefix}_low"] = [b[0] for b in bounds]
        frame[f"{prefix}_high"] = [b[1] for b in bounds]
    return frame


def _ratio(part: pd.Series, whole: pd.Series) -> pd.Series:
    # No labelled row is "unknown", not an accuracy of 0.
    return part.astype(float) / whole.where(whole > 0).astype(float)

