"""Evaluate a rule version on its dataset: does the rule agree with the model?

The label is always the model's answer. On a row the rule fires on, the
rule agrees when the model says the rule's intent; on a row it stays silent
on, it agrees when the model says anything else. A false positive is a fire
where the model said another intent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from rulelife.config import Settings
from rulelife.evidence.datasets.strata import confidence_band, length_bucket
from rulelife.evidence.evaluation.stats import (
    StratifiedEstimate,
    rule_of_three,
    samples_to_settle,
    stratified_agreement,
    wilson_interval,
)
from rulelife.rules.definition import Rule
from rulelife.rules.matcher import LexiconPhrase, Matcher, compile_rule

__all__ = ["Evaluation", "StratumResult", "evaluate_rule"]

SILENT = "(rule silent)"  # disagreement class: the model said the rule's intent, the rule did not fire


@dataclass(frozen=True)
class StratumResult:
    stratum: str
    n: int
    agree: int
    agreement: float | None
    low: float | None
    high: float | None
    fires: int
    false_positives: int
    safety_false_positives: dict[str, int]
    safety_fp_upper_bound: float | None  # rule of three when there are none


@dataclass
class Evaluation:
    """Everything the gate and a reviewer need about one rule version."""

    rule_id: str
    rule_version: str
    intent: str
    dataset_hash: str
    rows: int
    production: StratifiedEstimate
    production_raw: tuple[int, int]  # (agree, n), unweighted, for hand checks
    samples_to_settle: int | None
    strata: list[StratumResult]
    disagreements: dict[str, int]  # disagreement count by model class
    dominant_disagreement: str | None  # a class taking more than half of them
    class_fp_rates: dict[str, float]  # false positives / rows, per model class
    severity_weighted_fp: float
    safety_false_positives: int  # over every stratum
    safety_examples: list[dict]
    slices: dict[str, list[dict]]  # locale / length / confidence band -> rows
    fire_count: int
    fires_per_day: float | None
    safety_fp_in_log: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["production"] = self.production.to_dict()
        return data


def _fires(rule: Rule, rows: pd.DataFrame, lexicon: Sequence[LexiconPhrase] = ()) -> np.ndarray:
    matcher = Matcher([compile_rule(rule)], lexicon=lexicon)
    results = matcher.match_many(rows["text"], rows["locale"])
    return np.fromiter((r is not None for r in results), dtype=bool, count=len(results))


def _agree(fires: np.ndarray, model_intent: pd.Series, intent: str) -> np.ndarray:
    said_rule_intent = (model_intent == intent).fillna(False).to_numpy(dtype=bool)
    return np.where(fires, said_rule_intent, ~said_rule_intent)


def _stratum(name: str, frame: pd.DataFrame, safety: list[str]) -> StratumResult:
    n = len(frame)
    agree = int(frame["_agree"].sum())
    fp = frame[frame["_fires"] & ~frame["_said_intent"]]
    unsafe = fp[fp["model_intent"].isin(safety)]
    by_intent = {str(k): int(v) for k, v in unsafe["model_intent"].value_counts().items()}
    low, high = wilson_interval(agree, n) if n else (None, None)
    return StratumResult(
        stratum=name, n=n, agree=agree, agreement=agree / n if n else None, low=low, high=high,
        fires=int(frame["_fires"].sum()), false_positives=len(fp), safety_false_positives=by_intent,
        safety_fp_upper_bound=rule_of_three(n) if not by_intent else None,
    )


def _slices(production: pd.DataFrame) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    groups = {
        "locale": production["locale"].astype(str),
        "length": length_bucket(production["text"]).astype(str),
        "confidence": confidence_band(production["model_confidence"]).fillna("unknown").astype(str),
    }
    for name, key in groups.items():
        rows = []
        for value, frame in production.groupby(key, sort=True):
            n, agree = len(frame), int(frame["_agree"].sum())
            low, high = wilson_interval(agree, n)
            rows.append({"value": value, "n": n, "agree": agree, "agreement": agree / n, "low": low, "high": high})
        out[name] = rows
    return out


def evaluate_rule(
    rule: Rule, rows: pd.DataFrame, meta: dict, settings: Settings, *, dataset_hash: str = "",
    lexicon: Sequence[LexiconPhrase] = (),
) -> Evaluation:
    """Evaluate ``rule`` on dataset ``rows`` built with metadata ``meta``.

    ``lexicon``: the safety lexicon the runtime will serve with it; a row it
    vetoes is a row the rule does not answer, offline as online.
    """
    frame = rows.copy()
    frame["_fires"] = _fires(rule, frame, lexicon)
    frame["_said_intent"] = (frame["model_intent"] == rule.intent).fillna(False).to_numpy(dtype=bool)
    frame["_agree"] = _agree(frame["_fires"].to_numpy(), frame["model_intent"], rule.intent)
    safety = [i for i in settings.safety_intents if i != rule.intent]

    strata = [_stratum(name, frame[frame["stratum"] == name], safety)
              for name in ("production", "hard_negative", "adversarial")]
    production = frame[frame["stratum"] == "production"]
    by_key = production.groupby("stratum_key")
    estimate = stratified_agreement(
        agree=by_key["_agree"].sum().astype(int).to_dict(),
        sampled=by_key.size().to_dict(),
        population=meta.get("population", {}),
    )
    raw_agree, raw_n = int(production["_agree"].sum()), len(production)

    disagreeing = frame[~frame["_agree"]]
    classes = np.where(disagreeing["_fires"], disagreeing["model_intent"].astype(str), SILENT)
    disagreements = {str(k): int(v) for k, v in pd.Series(classes).value_counts().items()}
    total_dis = sum(disagreements.values())
    dominant = next((k for k, v in disagreements.items() if total_dis and v > total_dis / 2), None)

    fp = frame[frame["_fires"] & ~frame["_said_intent"]]
    labelled = frame[frame["model_intent"].notna()]
    class_rows = labelled["model_intent"].value_counts()
    fp_counts = fp["model_intent"].value_counts()
    class_fp_rates = {str(c): int(fp_counts.get(c, 0)) / int(n) for c, n in class_rows.items() if c != rule.intent}
    weights = settings.severity_weights
    severity = float(sum(weights.get(str(c), 1.0) * int(v) for c, v in fp_counts.items()))

    unsafe = fp[fp["model_intent"].isin(safety)]
    examples = [
        {"stratum": r.stratum, "query_id": r.query_id, "text": r.text, "model_intent": r.model_intent}
        for r in unsafe.head(10).itertuples()
    ]
    fires_per_day = None
    if meta.get("window_start") and meta.get("window_end"):
        span = pd.Timestamp(meta["window_end"]) - pd.Timestamp(meta["window_start"])
        days = max(span.total_seconds() / 86400.0, 1.0)
        fires_per_day = meta.get("fires", 0) / days
    return Evaluation(
        rule_id=rule.id,
        rule_version=rule.version,
        intent=rule.intent,
        dataset_hash=dataset_hash,
        rows=len(frame),
        production=estimate,
        production_raw=(raw_agree, raw_n),
        samples_to_settle=samples_to_settle(estimate.estimate * estimate.effective_n, estimate.effective_n,
                                            floor=settings.agreement_floor) if raw_n else None,
        strata=strata,
        disagreements=disagreements,
        dominant_disagreement=dominant,
        class_fp_rates=class_fp_rates,
        severity_weighted_fp=severity,
        safety_false_positives=len(unsafe),
        safety_examples=examples,
        slices=_slices(production) if raw_n else {},
        fire_count=int(meta.get("fires", 0)),
        fires_per_day=fires_per_day,
        safety_fp_in_log=dict(meta.get("safety_fp_in_log", {})),
        notes=list(meta.get("notes", [])),
    )
