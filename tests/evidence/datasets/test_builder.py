"""Dataset builder: strata sizes, proportional allocation, chunk invariance."""

from __future__ import annotations

from collections import Counter

import hypothesis
import pandas as pd
import pytest
from hypothesis import strategies as st

from rulelife.config import Settings
from rulelife.evidence.datasets import DatasetBuilder
from rulelife.evidence.datasets.builder import _allocate
from rulelife.rules.definition import Rule

RULE = Rule(id="order_tracking.where", intent="order_tracking", patterns=["where is my order"],
            exclude=["return"], locales=["en-US"], owner="ds")


def log(n_agree: int, n_faq: int, n_return: int, n_other: int = 0, n_unlabelled: int = 0) -> pd.DataFrame:
    rows = (
        [("where is my order #%d" % i, "order_tracking") for i in range(n_agree)]
        + [("where is my order policy %d" % i, "faq") for i in range(n_faq)]
        + [("where is my order i want it refunded %d" % i, "return_request") for i in range(n_return)]
        + [("opening hours %d" % i, "faq") for i in range(n_other)]
        + [("where is my order #%d" % (10_000 + i), None) for i in range(n_unlabelled)]
    )
    frame = pd.DataFrame(rows, columns=["text", "model_intent"])
    frame["query_id"] = [f"q{i:06d}" for i in range(len(frame))]
    frame["ts"] = pd.date_range("2026-01-01", periods=len(frame), freq="min", tz="UTC")
    frame["locale"] = "en-US"
    frame["model_confidence"] = pd.array([0.9] * len(frame), dtype="Float64")
    for column in ("text", "model_intent", "query_id", "locale"):
        frame[column] = frame[column].astype("string")
    return frame


def settings(**overrides) -> Settings:
    return Settings(**{"dataset_floor": 100, "dataset_floor_high_traffic": 400, "high_traffic_fires": 10_000,
                       **overrides})


def build(frame: pd.DataFrame, chunks: int = 1, adversarial=None, **overrides):
    builder = DatasetBuilder(RULE, settings(**overrides))
    size = -(-len(frame) // chunks)
    for start in range(0, len(frame), size):
        builder.add(frame.iloc[start : start + size])
    return builder.finish(adversarial, sources=["test"])


def test_allocation_is_proportional_with_largest_remainders():
    assert _allocate(Counter({"a": 600, "b": 300, "c": 100}), 10) == {"a": 6, "b": 3, "c": 1}
    # 7 of 10 split 2:1 is 4.67 / 2.33: the larger remainder takes the last row.
    assert _allocate(Counter({"a": 200, "b": 100}), 7) == {"a": 5, "b": 2}
    # A tiny stratum still gets one row when the target allows it.
    assert _allocate(Counter({"a": 999, "b": 1}), 10) == {"a": 9, "b": 1}


def test_production_only_fires_on_labelled_rows_and_counts_populations():
    built = build(log(n_agree=800, n_faq=150, n_return=50, n_other=500, n_unlabelled=70))
    meta = built.meta
    assert meta["fires"] == 800 + 150 + 50 + 70
    assert meta["labelled_fires"] == 1000
    assert sum(meta["population"].values()) == 1000
    # No adversarial file: its 15% goes to production; no miner: neither do hard negatives.
    assert built.counts == {"production": 100}
    # Lengths: "where is my order #0".."#9" are 20 characters (short), the rest
    # 21-38 (medium). Population 10 / 790 / 150 / 50 of 1,000 → 1 / 79 / 15 / 5 of 100.
    assert meta["population"] == {
        "order_tracking|en-US|short": 10, "order_tracking|en-US|medium": 790,
        "faq|en-US|medium": 150, "return_request|en-US|medium": 50,
    }
    assert meta["allocation"] == {
        "faq|en-US|medium": 15, "order_tracking|en-US|medium": 79, "order_tracking|en-US|short": 1,
        "return_request|en-US|medium": 5,
    }
    assert meta["safety_fp_in_log"] == {"return_request": 50}
    assert any("no adversarial file" in n for n in meta["notes"])


def test_short_production_is_not_padded_and_is_said():
    built = build(log(n_agree=30, n_faq=0, n_return=0, n_other=100))
    assert built.counts == {"production": 30}
    assert any("production stratum short: 30" in n for n in built.meta["notes"])


def test_adversarial_rows_come_from_the_curated_file():
    adversarial = pd.DataFrame({"text": ["where is my order??", "order status"], "locale": ["en-US"] * 2,
                                "model_intent": ["order_tracking"] * 2, "note": ["typo", "paraphrase"]})
    built = build(log(n_agree=300, n_faq=0, n_return=0), adversarial=adversarial.astype("string"))
    assert built.counts == {"adversarial": 2, "production": 98}
    assert set(built.rows.loc[built.rows["stratum"] == "adversarial", "reason"]) == {"typo", "paraphrase"}


def test_high_traffic_rules_get_the_larger_floor():
    built = build(log(n_agree=600, n_faq=0, n_return=0), high_traffic_fires=500)
    assert built.meta["high_traffic"] is True
    assert built.meta["target_size"] == 400
    assert built.counts == {"production": 400}


@pytest.mark.parametrize("chunks", [2, 3, 7])
def test_any_chunking_gives_the_same_dataset(chunks):
    frame = log(n_agree=500, n_faq=80, n_return=20, n_other=300)
    whole = build(frame)
    split = build(frame, chunks=chunks)
    assert split.content_hash == whole.content_hash
    assert split.meta["population"] == whole.meta["population"]
    pd.testing.assert_frame_equal(split.rows, whole.rows)


def test_the_hash_changes_with_the_rule_version():
    frame = log(n_agree=200, n_faq=0, n_return=0)
    other = Rule(**{**RULE.model_dump(), "patterns": ["where is my order", "track my order"]})
    a = build(frame)
    builder = DatasetBuilder(other, settings())
    builder.add(frame)
    b = builder.finish(None, sources=["test"])
    assert a.content_hash != b.content_hash


def test_hard_negatives_come_from_the_miner_plugin():
    from rulelife.plugins import MINERS, load_plugin

    frame = log(n_agree=300, n_faq=40, n_return=0, n_other=0)
    extra = log(0, 0, 0).iloc[:0]
    negatives = pd.DataFrame({"text": ["where is my order to return %d" % i for i in range(30)],
                              "model_intent": ["return_request"] * 30})
    negatives["query_id"] = [f"n{i}" for i in range(30)]
    negatives["ts"] = pd.Timestamp("2026-01-02", tz="UTC")
    negatives["locale"] = "en-US"
    negatives["model_confidence"] = pd.array([0.8] * 30, dtype="Float64")
    frame = pd.concat([frame, extra, negatives.astype({c: "string" for c in ("text", "model_intent", "query_id", "locale")})],
                      ignore_index=True)
    miner = load_plugin(MINERS, "hard_negatives")().fit(RULE)
    builder = DatasetBuilder(RULE, settings(), miner)
    builder.add(frame)
    built = builder.finish(None, sources=["test"])
    hard = built.rows[built.rows["stratum"] == "hard_negative"]
    # 25 wanted (25% of 100): the 40 faq fires come first (the rule fires against the model).
    assert len(hard) == 25
    assert set(hard["reason"]) == {"fires"}
    assert built.counts["production"] == 75


@hypothesis.settings(max_examples=25, deadline=None)
@hypothesis.given(cuts=st.lists(st.integers(0, 260), max_size=5), order=st.randoms(use_true_random=False))
def test_builders_of_any_split_merged_in_any_order_build_the_whole_dataset(cuts, order):
    # The fold's contract for the Spark and pool engines: parts built apart and merged in
    # whatever order partitions finish give the dataset one builder of the whole log gives.
    from miners.hard_negatives import HardNegativeMiner

    frame = log(n_agree=150, n_faq=40, n_return=30, n_other=30, n_unlabelled=10)
    miner = HardNegativeMiner().fit(RULE)
    whole = DatasetBuilder(RULE, settings(), miner)
    whole.add(frame)
    bounds = [0, *sorted(cuts), len(frame)]
    parts = []
    for start, stop in zip(bounds, bounds[1:]):
        part = DatasetBuilder(RULE, settings(), miner)
        part.add(frame.iloc[start:stop])
        parts.append(part)
    order.shuffle(parts)
    merged = parts[0]
    for part in parts[1:]:
        merged = merged.merge(part)
    expected, got = whole.finish(None, sources=["t"]), merged.finish(None, sources=["t"])
    assert got.content_hash == expected.content_hash
    assert got.meta == expected.meta
