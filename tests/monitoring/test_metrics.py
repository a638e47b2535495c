"""Daily metrics from the runtime's log: hand-counted, and additive across chunks."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rulelife.monitoring.metrics import MetricCounts, RuleVersionInfo, count_chunk, finalize

INTENTS = {"order_tracking.where": "order_tracking", "faq.hours": "faq"}
RULES = [
    RuleVersionInfo("order_tracking.where", "v1", "order_tracking", ("en-us",)),
    RuleVersionInfo("faq.hours", "v7", "faq", ("*",)),
]
SAFETY = ["return_request", "escalation"]


def day_log() -> pd.DataFrame:
    rows = [
        # rule, version, shadow, model_intent, locale
        ("order_tracking.where", "v1", True, "order_tracking", "en-US"),
        ("order_tracking.where", "v1", True, "order_tracking", "en-US"),
        ("order_tracking.where", "v1", True, "return_request", "en-US"),  # a safety false positive
        ("order_tracking.where", "v1", True, "faq", "en-US"),
        ("order_tracking.where", "v1", False, None, "en-US"),
        ("order_tracking.where", "v1", False, None, "en-US"),
        ("faq.hours", "v7", True, "faq", "ja-JP"),
        (None, None, None, "chitchat", "en-US"),
        (None, None, None, "faq", "ja-JP"),
        (None, None, None, "faq", "es-ES"),
    ]
    frame = pd.DataFrame(rows, columns=["rule_id", "rule_version", "shadow", "model_intent", "locale"])
    frame["query_id"] = [f"q{i:02d}" for i in range(len(frame))]
    frame["text"] = [f"text {i}" for i in range(len(frame))]
    frame["ts"] = pd.Timestamp("2026-02-01 10:00", tz="UTC")
    frame["bundle_version"] = pd.array([3] * len(frame), dtype="Int64")
    frame["shadow"] = frame["shadow"].astype("boolean")
    for column in ("rule_id", "rule_version", "model_intent", "locale", "query_id", "text"):
        frame[column] = frame[column].astype("string")
    return frame


def table(frame: pd.DataFrame) -> pd.DataFrame:
    return finalize(count_chunk(frame, INTENTS, SAFETY), RULES)


def test_hand_counted_metrics():
    t = table(day_log()).set_index(["rule_id", "locale"])
    where = t.loc[("order_tracking.where", "en-US")]
    # en-US traffic: 6 rule answers + 1 other = 7; 4 shadow rows, 2 agree.
    assert (where.traffic, where.fires, where.shadow_n, where.agree_n, where.safety_fp) == (7, 6, 4, 2, 1)
    assert where.fire_rate == pytest.approx(6 / 7)
    assert where.agreement == pytest.approx(2 / 4)
    assert where.fp_by_class == {"faq": 1, "return_request": 1}
    # faq.hours covers every locale: it gets a row for each locale with traffic, fires 0 where it did not fire.
    hours = t.loc["faq.hours"]
    assert sorted(hours.index) == ["en-US", "es-ES", "ja-JP"]
    assert (hours.loc["ja-JP"].fires, hours.loc["ja-JP"].traffic, hours.loc["ja-JP"].agreement) == (1, 2, 1.0)
    assert hours.loc["es-ES"].fires == 0 and pd.isna(hours.loc["es-ES"].agreement)
    # order_tracking.where is en-US only: no ja-JP or es-ES rows.
    assert ("order_tracking.where", "ja-JP") not in t.index


def test_examples_are_the_disagreeing_shadow_queries():
    counts = count_chunk(day_log(), INTENTS, SAFETY)
    assert [e["model_intent"] for e in counts.examples["order_tracking.where"]] == ["return_request", "faq"]


def test_a_rule_id_no_bundle_holds_is_refused():
    frame = day_log()
    frame.loc[0, "rule_id"] = "ghost.rule"
    with pytest.raises(KeyError, match="ghost.rule"):
        count_chunk(frame, INTENTS, SAFETY)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=9), min_size=1, max_size=4))
def test_counts_add_up_over_any_split(cuts):
    frame = pd.concat([day_log()] * 3, ignore_index=True)
    frame["query_id"] = [f"q{i:03d}" for i in range(len(frame))]
    bounds = sorted({0, len(frame), *[min(c * 3, len(frame)) for c in cuts]})
    total = MetricCounts()
    for a, b in zip(bounds, bounds[1:]):
        total = total + count_chunk(frame.iloc[a:b], INTENTS, SAFETY)
    whole = finalize(count_chunk(frame, INTENTS, SAFETY), RULES)
    pd.testing.assert_frame_equal(finalize(total, RULES), whole)


def weighted_log() -> tuple[pd.DataFrame, list[int]]:
    """Distinct rows and how many log rows each stands for (as the Spark engine groups them)."""
    rows = [
        # rule, version, shadow, model_intent, locale, weight
        ("order_tracking.where", "v1", True, "order_tracking", "en-US", 3),
        ("order_tracking.where", "v1", True, "return_request", "en-US", 2),  # safety false positives
        ("order_tracking.where", "v1", True, "faq", "en-US", 1),
        ("order_tracking.where", "v1", False, None, "en-US", 4),
        ("faq.hours", "v7", True, "faq", "ja-JP", 2),
        (None, None, None, "chitchat", "en-US", 5),
        (None, None, None, "faq", "ja-JP", 1),
        (None, None, None, "faq", "es-ES", 7),
    ]
    frame = day_log().iloc[: len(rows)].copy()
    for i, column in enumerate(["rule_id", "rule_version", "shadow", "model_intent", "locale"]):
        frame[column] = pd.array([r[i] for r in rows], dtype=frame[column].dtype)
    return frame, [r[5] for r in rows]


def test_a_weighted_chunk_counts_as_its_rows_expanded():
    frame, weights = weighted_log()
    counts = count_chunk(frame, INTENTS, SAFETY, weights=weights)
    t = finalize(counts, RULES).set_index(["rule_id", "locale"])
    # en-US: 3 + 2 + 1 + 4 rule answers + 5 others = 15; shadow 3 + 2 + 1 = 6, of which 3 agree.
    expected = {("order_tracking.where", "en-US"): dict(traffic=15, fires=10, shadow_n=6, agree_n=3, safety_fp=2,
                                                        fire_rate=10 / 15, agreement=3 / 6),
                ("faq.hours", "ja-JP"): dict(traffic=3, fires=2, shadow_n=2, agree_n=2, agreement=1.0),
                ("faq.hours", "es-ES"): dict(traffic=7, fires=0, shadow_n=0)}
    for key, values in expected.items():
        assert t.loc[key, list(values)].to_dict() == pytest.approx(values), key
    assert t.loc[("order_tracking.where", "en-US"), "fp_by_class"] == {"faq": 1, "return_request": 2}
    # A query counted twice is one example.
    assert [e["query_id"] for e in counts.examples["order_tracking.where"]] == ["q01", "q02"]

    expanded = frame.loc[frame.index.repeat(weights)].reset_index(drop=True)
    assert len(expanded) == 25
    once = count_chunk(expanded, INTENTS, SAFETY)
    pd.testing.assert_frame_equal(finalize(counts, RULES), finalize(once, RULES))
    assert counts.examples == once.examples


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=5), min_size=10, max_size=10))
def test_any_weights_count_as_the_rows_repeated(weights):
    frame = day_log()
    expanded = frame.loc[frame.index.repeat(weights)].reset_index(drop=True)
    weighted = count_chunk(frame, INTENTS, SAFETY, weights=weights)
    once = count_chunk(expanded, INTENTS, SAFETY)
    pd.testing.assert_frame_equal(finalize(weighted, RULES), finalize(once, RULES))
    assert weighted.examples == once.examples


@pytest.mark.parametrize(("weights", "message"), [
    ([1, 2], r"one value a row: got shape \(2,\) for a chunk of 10 rows"),
    ([1] * 9 + [0], "positive integers .* minimum 0"),
    ([1.5] * 10, "positive integers .* got float64"),
])
def test_weights_that_are_not_one_positive_integer_a_row_are_refused(weights, message):
    with pytest.raises(ValueError, match=message):
        count_chunk(day_log(), INTENTS, SAFETY, weights=weights)


def test_the_day_names_its_dominant_model_version_and_every_version_seen():
    frame = day_log()
    # 6 rows by model-1, 3 by model-2 (a canary), one row naming none (blank counts as none).
    frame["model_version"] = pd.array(["model-1"] * 6 + ["model-2"] * 3 + ["  "], dtype="string")
    counts = count_chunk(frame.iloc[:4], INTENTS, SAFETY) + count_chunk(frame.iloc[4:], INTENTS, SAFETY)
    assert counts.models["n"].tolist() == [6, 3]
    t = finalize(counts, RULES)
    assert set(t["model_version"]) == {"model-1"}
    assert set(t["model_versions"]) == {'{"model-1": 6, "model-2": 3}'}


def test_a_log_without_model_version_names_none():
    t = table(day_log())
    assert t["model_version"].isna().all() and t["model_versions"].isna().all()
