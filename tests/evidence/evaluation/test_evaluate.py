"""Evaluation on a hand-made dataset whose every number can be checked by hand."""

from __future__ import annotations

import pandas as pd
import pytest

from rulelife.config import Settings
from rulelife.evidence.evaluation import evaluate_rule
from rulelife.evidence.evaluation.evaluate import SILENT
from rulelife.rules.definition import Rule

RULE = Rule(id="order_tracking.where", intent="order_tracking", patterns=["where is my order"],
            exclude=["return"], locales=["en-US"], owner="ds")

KEY_OT, KEY_FAQ, KEY_RET = "order_tracking|en-US|short", "faq|en-US|short", "return_request|en-US|medium"


def rows() -> pd.DataFrame:
    data = [
        # production: the rule fires on all ten; 8 agree, 1 faq, 1 return_request (a safety FP)
        *[("production", KEY_OT, f"where is my order {i}", "order_tracking", 0.95) for i in range(8)],
        ("production", KEY_FAQ, "where is my order policy", "faq", 0.6),
        ("production", KEY_RET, "where is my order, it broke!!", "return_request", 0.9),
        # hard negatives: two silent (agree), one fires on a faq query (disagree)
        ("hard_negative", "excluded", "where is my order to return", "return_request", 0.9),
        ("hard_negative", "shared_vocabulary", "my order arrived late", "complaint", 0.7),
        ("hard_negative", "fires", "where is my order form", "faq", 0.8),
        # adversarial: one fires and agrees, one the model calls order tracking but the rule misses
        ("adversarial", "adversarial", "WHERE is my order??", "order_tracking", None),
        ("adversarial", "adversarial", "order status please", "order_tracking", None),
    ]
    frame = pd.DataFrame(data, columns=["stratum", "stratum_key", "text", "model_intent", "model_confidence"])
    frame["query_id"] = [f"q{i}" for i in range(len(frame))]
    frame["locale"] = "en-US"
    frame["model_confidence"] = frame["model_confidence"].astype("Float64")
    for column in ("stratum", "stratum_key", "text", "model_intent", "query_id", "locale"):
        frame[column] = frame[column].astype("string")
    return frame


META = {"population": {KEY_OT: 80, KEY_FAQ: 10, KEY_RET: 10}, "fires": 100, "safety_fp_in_log": {"return_request": 10},
        "window_start": "2026-01-01T00:00:00+00:00", "window_end": "2026-01-11T00:00:00+00:00"}


@pytest.fixture
def evaluation():
    return evaluate_rule(RULE, rows(), META, Settings(), dataset_hash="abc")


def test_production_agreement_is_weighted_by_traffic(evaluation):
    # Weights 0.8 / 0.1 / 0.1, per-stratum agreement 1 / 0 / 0 → 0.8; raw 8 of 10.
    assert evaluation.production.estimate == pytest.approx(0.8)
    assert evaluation.production_raw == (8, 10)


def test_per_stratum_agreement_and_false_positives(evaluation):
    by = {s.stratum: s for s in evaluation.strata}
    assert (by["production"].n, by["production"].agree, by["production"].false_positives) == (10, 8, 2)
    assert (by["hard_negative"].n, by["hard_negative"].agree, by["hard_negative"].false_positives) == (3, 2, 1)
    assert (by["adversarial"].n, by["adversarial"].agree, by["adversarial"].fires) == (2, 1, 1)
    assert by["production"].safety_false_positives == {"return_request": 1}
    assert by["production"].safety_fp_upper_bound is None
    # No safety FP among the 3 hard negatives: rule of three gives 3 / 3 = 1.0.
    assert by["hard_negative"].safety_fp_upper_bound == pytest.approx(1.0)
    assert evaluation.safety_false_positives == 1


def test_disagreement_confusion_and_dominant_class(evaluation):
    assert evaluation.disagreements == {"faq": 2, "return_request": 1, SILENT: 1}
    assert evaluation.dominant_disagreement is None  # 2 of 4 is not more than half


def test_per_class_fp_rates_and_severity(evaluation):
    # faq rows: 2 (production, hard negative), both false positives; return_request rows: 2, one FP.
    assert evaluation.class_fp_rates["faq"] == pytest.approx(2 / 2)
    assert evaluation.class_fp_rates["return_request"] == pytest.approx(1 / 2)
    assert evaluation.class_fp_rates["complaint"] == 0.0
    assert evaluation.severity_weighted_fp == pytest.approx(2 * 1.0 + 1 * 10.0)


def test_slices_separate_confident_from_unsure_disagreements(evaluation):
    bands = {r["value"]: (r["n"], r["agree"]) for r in evaluation.slices["confidence"]}
    assert bands == {"high": (9, 8), "medium": (1, 0)}
    lengths = {r["value"]: r["n"] for r in evaluation.slices["length"]}
    assert sum(lengths.values()) == 10


def test_fire_count_and_rate(evaluation):
    assert evaluation.fire_count == 100
    assert evaluation.fires_per_day == pytest.approx(10.0)
    assert evaluation.safety_fp_in_log == {"return_request": 10}


def test_dominant_class_is_flagged():
    frame = rows()
    frame = frame[frame["text"] != "where is my order, it broke!!"]
    frame = frame[frame["text"] != "order status please"]
    result = evaluate_rule(RULE, frame, META, Settings())
    assert result.disagreements == {"faq": 2}
    assert result.dominant_disagreement == "faq"
