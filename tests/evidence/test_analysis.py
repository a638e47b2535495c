import doctest
import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rulelife.evidence.analysis as analysis_module
from rulelife.evidence.analysis import AnalysisCounts, count_chunk, finalize, merge
from rulelife.rules.definition import Rule
from rulelife.rules.matcher import Matcher

MY_ORDER = "order_tracking.my_order"
REFUND = "return_request.refund"
POLICY = "return_request.refund_policy"

MATCHER = Matcher.from_rules(
    [
        Rule(id=MY_ORDER, intent="order_tracking", patterns=["my order"], owner="tests"),
        Rule(id=REFUND, intent="return_request", patterns=["refund"], locales=["en"], priority=10, owner="tests"),
        # Always fires together with REFUND ("refund" is inside), and loses on priority.
        Rule(id=POLICY, intent="return_request", patterns=["refund policy"], owner="tests"),
    ]
)

# (text, locale, model_intent, model_confidence)  # fired, winner first
ROWS = [
    ("where is my order", "en-US", "order_tracking", 0.96),  # A
    ("my order is late", "en-US", "order_tracking", 0.86),  # A
    ("refund my order", "en-US", "return_request", 0.91),  # B, A
    ("refund please", "en-US", "return_request", 0.81),  # B
    ("what is your refund policy", "en-US", "faq", 0.61),  # B, C
    ("refund policy for my order", "en-US", "faq", 0.56),  # B, C, A (C's pattern is longer)
    ("reembolso", "es-ES", "return_request", 0.71),  # -
    ("refund", "es-ES", "return_request", 0.66),  # - (REFUND is English only)
    ("hello", "en-US", "chitchat", 0.99),  # -
    ("hi there", "en-US", "chitchat", 0.97),  # -
    ("my order", "es-ES", "order_tracking", 0.41),  # A
    ("where is my order", "en-US", None, None),  # A, unlabelled
    ("refund policy", "en-US", None, None),  # B, C, unlabelled
    ("talk to a human", "en-US", "escalation", 0.31),  # -
    ("order status", "en-US", "order_tracking", 0.46),  # -
]


def log(rows=ROWS):
    return pd.DataFrame(
        {
            "query_id": [f"q{i}" for i in range(len(rows))],
            "text": pd.array([r[0] for r in rows], dtype="string"),
            "locale": pd.array([r[1] for r in rows], dtype="string"),
            "model_intent": pd.array([r[2] for r in rows], dtype="string"),
            "model_confidence": pd.array([r[3] for r in rows], dtype="Float64"),
        }
    )


@pytest.fixture(scope="module")
def result():
    return finalize(count_chunk(log(), MATCHER))


def test_totals_and_shares(result):
    assert (result.queries, result.labelled, result.answered) == (15, 13, 9)
    assert result.coverage == 9 / 15
    assert result.labelled_coverage == 7 / 13
    assert result.overlap == 4 / 15  # rows 2, 4, 5, 12
    assert result.conflict == 2 / 15  # rows 2 and 5 mix order_tracking and return_request


def test_rule_fires(result):
    frame = result.rule_fires()
    assert frame[["rule_id", "fires", "wins"]].values.tolist() == [[MY_ORDER, 6, 4], [REFUND, 5, 5], [POLICY, 3, 0]]
    assert frame["fire_share"].tolist() == [6 / 15, 5 / 15, 3 / 15]


def test_rule_overlaps_and_conflicts(result):
    assert result.rule_overlaps().values.tolist() == [
        [REFUND, POLICY, "return_request", "return_request", 3, False],
        [MY_ORDER, REFUND, "order_tracking", "return_request", 2, True],
        [MY_ORDER, POLICY, "order_tracking", "return_request", 1, True],
    ]
    assert result.rule_conflicts()["overlap"].tolist() == [2, 1]


def test_shadowed_rules(result):
    assert result.shadowed_rules().values.tolist() == [[POLICY, "return_request", 3, REFUND, 3]]


def test_coverages_per_intent_and_locale(result):
    assert result.coverages()[["model_intent", "locale", "queries", "answered"]].values.tolist() == [
        ["chitchat", "en-US", 2, 0],
        ["escalation", "en-US", 1, 0],
        ["faq", "en-US", 2, 2],
        ["order_tracking", "en-US", 3, 2],
        ["order_tracking", "es-ES", 1, 1],
        ["return_request", "en-US", 2, 2],
        ["return_request", "es-ES", 2, 0],
    ]
    assert result.coverages()["coverage"].tolist() == [0, 0, 1, 2 / 3, 1, 1, 0]


def test_residual_summary(result):
    frame = result.residual_summary()
    assert len(frame) == 20 and frame["bin_low"].iloc[11] == pytest.approx(0.55)
    labelled = {6: 1, 8: 1, 9: 1, 11: 1, 12: 1, 13: 1, 14: 1, 16: 1, 17: 1, 18: 1, 19: 3}
    residual = {6: 1, 9: 1, 13: 1, 14: 1, 19: 2}  # rows 6, 7, 8, 9, 13, 14: labelled, no rule wins
    assert frame["labelled"].tolist() == [labelled.get(i, 0) for i in range(20)]
    assert frame["residual"].tolist() == [residual.get(i, 0) for i in range(20)]
    assert frame["residual_share"].sum() == pytest.approx(1.0)
    labelled_values = [r[3] for r in ROWS if r[3] is not None]
    assert result.labelled_confidence_mean == pytest.approx(sum(labelled_values) / 13)
    assert result.residual_confidence_mean == pytest.approx((0.71 + 0.66 + 0.99 + 0.97 + 0.31 + 0.46) / 6)
    assert result.labelled_low_confidence_share == 3 / 13  # 0.41, 0.31, 0.46
    assert result.residual_low_confidence_share == 2 / 6  # 0.31, 0.46


def test_to_dict_is_plain_json(result):
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert data["coverage"] == 9 / 15
    assert data["shadowed_rules"] == [
        {"rule_id": POLICY, "intent": "return_request", "fires": 3, "shadowed_by": REFUND, "shadowed_by_queries": 3}
    ]
    assert {"rule_fires", "rule_overlaps", "coverages", "residual_summary"} <= set(data)


def same(a: AnalysisCounts, b: AnalysisCounts) -> bool:
    for name in ("intents", "queries", "answered", "labelled", "overlapping", "conflicting"):
        assert getattr(a, name) == getattr(b, name), name
    for name in ("fires", "wins", "pairs", "beaten", "cell_queries", "cell_answered"):
        assert +getattr(a, name) == +getattr(b, name), name  # unary + drops zero counts
    for name in ("labelled_confidence", "residual_confidence"):
        x, y = getattr(a, name), getattr(b, name)
        assert np.array_equal(x.histogram, y.histogram) and (x.scored, x.low) == (y.scored, y.low), name
        assert x.total == pytest.approx(y.total), name
    return True


def test_chunks_add_up_to_the_whole():
    frame = log()
    whole = count_chunk(frame, MATCHER)
    parts = [count_chunk(frame.iloc[i : i + 5], MATCHER) for i in (0, 5, 10)]
    assert same(merge(merge(parts[0], parts[1]), parts[2]), whole)
    assert same(parts[0] + parts[1] + parts[2], whole)
    assert same(AnalysisCounts.empty(MATCHER).add(frame, MATCHER), whole)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, len(ROWS)), max_size=6), st.permutations(range(len(ROWS))))
def test_any_split_in_any_order_adds_up(cuts, order):
    frame = log().iloc[list(order)]
    bounds = [0, *sorted(cuts), len(ROWS)]
    total = AnalysisCounts.empty(MATCHER)
    for start, stop in zip(bounds, bounds[1:]):
        total = total + count_chunk(frame.iloc[start:stop], MATCHER)
    assert same(total, count_chunk(log(), MATCHER))


def test_counts_of_different_bundles_do_not_add():
    other = Matcher.from_rules([Rule(id="chitchat.hello", intent="chitchat", patterns=["hello"], owner="tests")])
    with pytest.raises(ValueError, match="different bundles"):
        count_chunk(log(), MATCHER) + count_chunk(log(), other)


def test_empty_log_has_no_coverage():
    result = finalize(count_chunk(log([]), MATCHER))
    assert result.queries == 0 and math.isnan(result.coverage) and math.isnan(result.residual_confidence_mean)
    assert result.rule_overlaps().empty and result.coverages().empty
    assert result.rule_fires()["fires"].tolist() == [0, 0, 0]
    json.dumps(result.to_dict(), allow_nan=False)


def test_missing_columns_are_named():
    with pytest.raises(ValueError, match="model_confidence"):
        count_chunk(log().drop(columns="model_confidence"), MATCHER)


def test_doctest():
    assert doctest.testmod(analysis_module).failed == 0


def test_the_analysis_step_counts_as_count_chunk_on_every_local_engine(tmp_path):
    import pickle

    from rulelife.engines.fold import fold_log
    from rulelife.evidence.analysis import AnalysisPass

    frame = log().assign(ts=pd.Timestamp("2026-01-01", tz="UTC"))
    folder = tmp_path / "log"
    folder.mkdir()
    frame.iloc[:7].to_parquet(folder / "part-0.parquet", index=False)
    frame.iloc[7:].assign(ts=pd.Timestamp("2026-01-02", tz="UTC")).to_parquet(folder / "part-1.parquet", index=False)
    step = pickle.loads(pickle.dumps(AnalysisPass(list(MATCHER.rules))))  # ships the rules, not the automaton
    whole = count_chunk(log(), MATCHER)
    assert same(fold_log(step, folder), whole)
    assert same(fold_log(step, folder, engine="local-pool", workers=2), whole)
