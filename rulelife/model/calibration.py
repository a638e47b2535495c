"""Calibration of each model version, and the confidence threshold that keeps the miner's precision.

The miner's seeds are predictions at confidence >= :data:`~rulelife.mining.MIN_CONFIDENCE`,
a point on a curve that moves when the model is retrained: a new version
may be surer of itself (so 0.95 lets in more wrong answers) or less sure.
Where labels exist, :class:`CalibrationCounts` keeps, per model version
(the optional ``model_version`` log column; ``unknown`` where absent), a
fixed histogram of confidences in :data:`BUCKETS` buckets, split by
right and wrong answers. Memory is flat in the log's length, the counts add
up with ``+`` (so :class:`CalibrationPass` runs on every engine of
:func:`~rulelife.engines.fold.fold_log`), and every figure is computed
from the histograms: the expected calibration error over 10 equal-width
bins, the reliability curve, the precision at the miner's threshold with
its Wilson interval, and the lowest threshold at which a version's
precision reaches the reference version's.

Labels, in this order: a labelled file joined by query id, the
``true_intent`` column; without any, the shadow sample, where a rule
answered and the model answered too, with the rule's intent as a proxy
label (the rule's agreement with the model was what promoted it, so this
measures calibration against the rules, and the report says so).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from rulelife.errors import ConfigError, NoLabels
from rulelife.mining import MIN_CONFIDENCE
from rulelife.model.residual import accuracy

__all__ = ["BINS", "BUCKETS", "UNKNOWN_VERSION", "CalibrationCounts", "CalibrationPass", "CalibrationReport",
           "VersionCalibration", "calibrate", "threshold_for_precision"]

# Confidence resolution of the histograms (and of a threshold): 1/10,000. A
# bucket i holds confidences in [i / BUCKETS, (i + 1) / BUCKETS); 1.0 goes in the last.
BUCKETS = 10_000
BINS = 10  # equal-width bins of the calibration error and the reliability curve
UNKNOWN_VERSION = "unknown"  # rows without a model_version
BASES = ("true", "shadow")  # label sources: a true label, or the rule's intent on the shadow sample
_WRONG, _RIGHT = 0, 1


@dataclass
class CalibrationCounts:
    """Partial counts of one or more chunks; ``a + b`` counts both.

    Invariants: ``hist[(version, basis)]`` is an int64 array of shape
    ``(2, BUCKETS)``, row 0 the wrong answers and row 1 the right ones per
    confidence bucket; ``conf_sum[(version, basis)]`` the sum of the
    confidences per bucket (for the bins' exact mean confidence);
    ``first_seen[version]`` the version's earliest row in the log.
    """

    hist: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    conf_sum: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    first_seen: dict[str, pd.Timestamp] = field(default_factory=dict)

    def __add__(self, other: CalibrationCounts) -> CalibrationCounts:
        if not isinstance(other, CalibrationCounts):
            return NotImplemented
        hist, conf = dict(self.hist), dict(self.conf_sum)
        for key in other.hist:
            hist[key] = hist[key] + other.hist[key] if key in hist else other.hist[key]
            conf[key] = conf[key] + other.conf_sum[key] if key in conf else other.conf_sum[key]
        seen = dict(self.first_seen)
        for version, ts in other.first_seen.items():
            seen[version] = min(seen[version], ts) if version in seen else ts
        return CalibrationCounts(hist, conf, seen)

    def versions(self, basis: str) -> list[str]:
        """The versions with labelled rows on ``basis``, oldest first (by their first row)."""
        present = {v for (v, b), h in self.hist.items() if b == basis and h.sum()}
        return sorted(present, key=lambda v: (self.first_seen.get(v, pd.Timestamp.max.tz_localize("UTC")), v))

    def basis(self) -> str | None:
        """True labels where any exist, else the shadow sample; None without either."""
        return next((b for b in BASES if self.versions(b)), None)


def _versions(chunk: pd.DataFrame) -> pd.Series:
    if "model_version" not in chunk:
        return pd.Series(UNKNOWN_VERSION, index=chunk.index, dtype=object)
    version = chunk["model_version"].astype("string").str.strip()
    return version.mask(version == "").fillna(UNKNOWN_VERSION).astype(object)


class CalibrationPass:
    """The per-chunk step: ``step(chunk) -> CalibrationCounts`` (picklable, position-free).

    ``rule_intents`` maps each rule id the log may name to its intent (for
    the shadow sample's proxy labels); ``labels`` maps query ids to true
    intents, and wins over the log's ``true_intent`` column.
    """

    def __init__(self, rule_intents: Mapping[str, str], labels: Mapping[str, str] | None = None):
        self.rule_intents = dict(rule_intents)
        self.labels = dict(labels) if labels else None

    def __call__(self, chunk: pd.DataFrame) -> CalibrationCounts:
        chunk = chunk.reset_index(drop=True)
        version = _versions(chunk)
        first = chunk.groupby(version.to_numpy(), sort=False)["ts"].min()
        counts = CalibrationCounts(first_seen={str(v): ts for v, ts in first.items() if not pd.isna(ts)})
        model = chunk["model_intent"]
        confidence = chunk["model_confidence"].to_numpy(dtype=float, na_value=np.nan)
        truth = (chunk["true_intent"].astype("string") if "true_intent" in chunk
                 else pd.Series(pd.NA, index=chunk.index, dtype="string"))
        if self.labels is not None:
            truth = chunk["query_id"].astype("string").map(self.labels).astype("string").fillna(truth)
        rule_label = chunk["rule_id"].map(self.rule_intents).astype("string")
        scored = model.notna().to_numpy(dtype=bool) & ~np.isnan(confidence)
        # Confidences are in [0, 1] by the log contract (the reader quarantines the rest).
        bucket = np.clip(np.floor(np.nan_to_num(confidence) * BUCKETS), 0, BUCKETS - 1).astype(np.int64)
        for basis, label in (("true", truth), ("shadow", rule_label)):
            rows = scored & label.notna().to_numpy(dtype=bool)
            if basis == "shadow":
                rows &= chunk["rule_id"].notna().to_numpy(dtype=bool)
            if not rows.any():
                continue
            right = (model == label).fillna(False).to_numpy(dtype=bool)[rows].astype(np.int64)
            codes, names = pd.factorize(version[rows])
            index = (codes * 2 + right) * BUCKETS + bucket[rows]
            hist = np.bincount(index, minlength=len(names) * 2 * BUCKETS).reshape(len(names), 2, BUCKETS)
            sums = np.bincount(codes * BUCKETS + bucket[rows], weights=confidence[rows],
                               minlength=len(names) * BUCKETS).reshape(len(names), BUCKETS)
            for i, name in enumerate(names):
                counts.hist[(str(name), basis)] = hist[i].astype(np.int64)
                counts.conf_sum[(str(name), basis)] = sums[i]
        return counts


def _start(threshold: float) -> int:
    """The first bucket at or above ``threshold`` (a threshold is read at the histograms' resolution)."""
    return min(BUCKETS, max(0, math.ceil(round(threshold * BUCKETS, 6))))


def threshold_for_precision(hist: np.ndarray, target: float) -> float | None:
    """The lowest confidence threshold whose precision (right answers at or above it) reaches ``target``.

    The lowest such threshold keeps the most predictions (the most recall)
    at the precision asked for. Computed with scikit-learn's
    ``precision_recall_curve`` on the histogram (each bucket's lower edge a
    score, its counts the weights); None when no threshold reaches it.

    >>> hist = np.zeros((2, BUCKETS), dtype=np.int64)
    >>> hist[1, 9000], hist[0, 8000], hist[1, 8000] = 9, 1, 1   # 9 right at 0.90; 1 right, 1 wrong at 0.80
    >>> threshold_for_precision(hist, 0.9), threshold_for_precision(hist, 0.95)
    (0.8, 0.9)
    """
    from sklearn.metrics import precision_recall_curve

    present = np.flatnonzero(hist.sum(axis=0))
    if not hist[_RIGHT].sum():
        return None
    edges = present / BUCKETS
    y = np.concatenate([np.ones(len(present)), np.zeros(len(present))])
    weight = np.concatenate([hist[_RIGHT, present], hist[_WRONG, present]]).astype(float)
    used = weight > 0
    precision, _, thresholds = precision_recall_curve(y[used], np.concatenate([edges, edges])[used],
                                                      sample_weight=weight[used])
    # precision[i] is the precision of scores >= thresholds[i] (the last entry has no threshold);
    # the tolerance absorbs float noise when the target is this same histogram's own ratio.
    reached = np.flatnonzero(precision[:-1] >= target - 1e-12)
    return float(thresholds[reached[0]]) if len(reached) else None


@dataclass(frozen=True)
class VersionCalibration:
    """One model version: its calibration and where its threshold should sit."""

    version: str
    n: int  # labelled rows with a confidence
    ece: float  # expected calibration error over BINS equal-width bins
    curve: list[dict]  # per bin: low, high, n, confidence (mean), accuracy
    precision: dict  # right answers at confidence >= the threshold, with the 95% Wilson interval
    threshold: float | None  # lowest threshold whose precision reaches the reference's; None: none does
    kept: int  # rows at or above that threshold
    first_seen: str | None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _version(name: str, hist: np.ndarray, conf_sum: np.ndarray, threshold: float, target: float | None,
             first_seen) -> VersionCalibration:
    n = int(hist.sum())
    width = BUCKETS // BINS
    right = hist[_RIGHT].reshape(BINS, width).sum(axis=1)
    count = hist.sum(axis=0).reshape(BINS, width).sum(axis=1)
    confidence = conf_sum.reshape(BINS, width).sum(axis=1)
    # ECE = sum over bins of (n_b / n) * |accuracy_b - confidence_b| = sum |right_b - confidence sum_b| / n.
    ece = float(np.abs(right - confidence).sum() / n) if n else float("nan")
    curve = [{"low": b / BINS, "high": (b + 1) / BINS, "n": int(count[b]),
              "confidence": float(confidence[b] / count[b]) if count[b] else None,
              "accuracy": float(right[b] / count[b]) if count[b] else None} for b in range(BINS)]
    start = _start(threshold)
    at = accuracy(int(hist[_RIGHT, start:].sum()), int(hist[:, start:].sum()))
    keep = threshold_for_precision(hist, target) if target is not None and not math.isnan(target) else None
    kept = int(hist[:, _start(keep):].sum()) if keep is not None else 0
    return VersionCalibration(name, n, ece, curve, at, keep, kept,
                              first_seen.isoformat() if first_seen is not None else None)


@dataclass(frozen=True)
class CalibrationReport:
    """Every version's calibration on one label basis, against the reference version's precision."""

    basis: str  # "true" (labels) or "shadow" (the rules' intents on the shadow sample)
    threshold: float  # the miner's confidence threshold
    reference: str
    target: float  # the reference version's precision at the threshold
    versions: list[VersionCalibration]

    def version(self, name: str) -> VersionCalibration:
        return next(v for v in self.versions if v.version == name)

    def to_dict(self) -> dict:
        return {"basis": self.basis, "threshold": self.threshold, "reference": self.reference,
                "reference_precision": None if math.isnan(self.target) else self.target, "versions": [v.to_dict() for v in self.versions]}

    def lines(self) -> list[str]:
        """One line a version, as the CLI and the health page print it."""
        basis = "true labels" if self.basis == "true" else "the rules' answers on the shadow sample (no true labels)"
        reference = (f"precision {self.target:.3f} at confidence >= {self.threshold:.2f}"
                     if not math.isnan(self.target) else f"no labelled row at confidence >= {self.threshold:.2f}, "
                     "so no precision to keep")
        out = [f"calibration against {basis}; reference version {self.reference}: {reference}"]
        for v in self.versions:
            p = v.precision
            at = (f"precision at >= {self.threshold:.2f} {p['accuracy']:.3f} (95% {p['low']:.3f}-{p['high']:.3f}, "
                  f"n={p['n']:,})" if p["n"] else f"no labelled row at >= {self.threshold:.2f}")
            keep = (f"threshold {v.threshold:.4f} keeps the reference's precision ({v.kept:,} rows at or above)"
                    if v.threshold is not None else "no threshold reaches the reference's precision")
            out.append(f"model {v.version}: n={v.n:,}, ECE {v.ece:.3f}; {at}; {keep}")
        return out


def calibrate(counts: CalibrationCounts, *, reference: str | None = None, threshold: float = MIN_CONFIDENCE
              ) -> CalibrationReport:
    """The report of ``counts``: each version's calibration, and the threshold that keeps ``reference``'s
    precision at ``threshold`` (default reference: the oldest version in the window, by its first row).

    Raises :class:`~rulelife.errors.NoLabels` when no row has a label, and
    :class:`~rulelife.errors.ConfigError` for a reference version the window does not hold.
    """
    if not 0.0 < threshold <= 1.0:
        raise ConfigError(f"the confidence threshold must be above 0 and at most 1, got {threshold}")
    basis = counts.basis()
    if basis is None:
        raise NoLabels("no labelled row in the log window to measure calibration against: add a true_intent "
                       "column, join a labelled file by query id with --labels-file, or keep a shadow sample "
                       "(rows a rule answered that the model answered too)")
    names = counts.versions(basis)
    reference = reference if reference is not None else names[0]
    if reference not in names:
        raise ConfigError(f"model version {reference!r} has no labelled row in the window; versions with labels: "
                          f"{', '.join(names)}. Pass one of them with --reference")
    hist = counts.hist[(reference, basis)]
    start = _start(threshold)
    n = int(hist[:, start:].sum())
    target = hist[_RIGHT, start:].sum() / n if n else float("nan")
    versions = [_version(name, counts.hist[(name, basis)], counts.conf_sum[(name, basis)], threshold, target,
                         counts.first_seen.get(name)) for name in names]
    return CalibrationReport(basis, threshold, reference, float(target), versions)
