import doctest

import pandas as pd
import pytest

from miners import hard_negatives
from miners.hard_negatives import REASONS, HardNegativeMiner
from rulelife.errors import NotFittedError
from rulelife.plugins import MINERS, load_plugin
from rulelife.rules.definition import Rule

TRACK = Rule(
    id="order_tracking.track_order",
    intent="order_tracking",
    patterns=["track my order", "tracking number"],
    exclude=["refund"],
    locales=["en-US"],
    owner="tests",
)

# (text, locale, model_intent, expected reason or None)
ROWS = [
    ("Please TRACK my order!", "en-US", "shipping", "fires"),
    ("my tracking number is wrong", "en-US", "complaint", "fires"),
    ("track my order for a refund", "en-US", "return_request", "excluded"),
    ("order 42, can you track it", "en-US", "faq", "partial_pattern"),  # both tokens, not the phrase
    ("what is a tracking code", "en-US", "faq", "shared_vocabulary"),  # 1 of 2 tokens of "tracking number"
    ("cancel my order", "en-US", "cancel", "shared_vocabulary"),
    ("the number on the order", "en-US", "faq", "shared_vocabulary"),  # one token of each pattern
    ("track my order", "en-US", "order_tracking", None),  # same intent as the rule
    ("track my order", "en-GB", "shipping", None),  # a locale the rule does not apply to
    ("track my order", "en-US", None, None),  # no model label: a rule answered outside the shadow sample
    ("hello there", "en-US", "chitchat", None),  # unrelated
    ("I'd like to retrack my orders", "en-US", "faq", None),  # substrings only, no whole token
]


def log(rows):
    return pd.DataFrame(
        {
            "query_id": [f"q{i}" for i in range(len(rows))],
            "text": pd.array([r[0] for r in rows], dtype="string"),
            "locale": pd.array([r[1] for r in rows], dtype="string"),
            "model_intent": pd.array([r[2] for r in rows], dtype="string"),
            "model_confidence": pd.array([0.9] * len(rows), dtype="Float64"),
        }
    )


def expected(rows):
    return {i: r[3] for i, r in enumerate(rows) if r[3] is not None}


def test_candidates_are_exactly_the_hand_labelled_rows():
    found = HardNegativeMiner().fit(TRACK).candidates(log(ROWS))
    assert dict(zip(found.index, found["hard_negative_reason"].astype(str))) == expected(ROWS)
    assert list(found.columns) == [*log(ROWS).columns, "hard_negative_reason"]
    assert list(found["hard_negative_reason"].cat.categories) == list(REASONS)


def test_one_token_counts_as_partial_when_allowed():
    found = HardNegativeMiner(min_partial_tokens=1).fit(TRACK).candidates(log(ROWS))
    reasons = dict(zip(found.index, found["hard_negative_reason"].astype(str)))
    assert reasons[4] == reasons[5] == reasons[6] == "partial_pattern"
    assert reasons[0] == "fires" and reasons[2] == "excluded"


def test_min_shared_tokens_drops_single_word_overlaps():
    found = HardNegativeMiner(min_shared_tokens=2).fit(TRACK).candidates(log(ROWS))
    reasons = dict(zip(found.index, found["hard_negative_reason"].astype(str)))
    assert reasons == {0: "fires", 1: "fires", 2: "excluded", 3: "partial_pattern", 6: "shared_vocabulary"}


def test_fit_returns_self_and_learns_the_vocabulary():
    miner = HardNegativeMiner()
    assert miner.fit(TRACK) is miner
    assert miner.vocabulary_ == {"track", "order", "tracking", "number"}  # "my" is a stop word
    assert miner.pattern_tokens_ == (frozenset({"order", "track"}), frozenset({"number", "tracking"}))
    assert miner.rule_.id == TRACK.id and "my" in miner.stop_words_
    assert miner.matcher_.match("track my order") is not None
    assert miner.matcher_.match("track my order, refund") is None
    assert miner.unvetoed_matcher_.match("track my order, refund") is not None


def test_substring_rule_uses_character_bigrams():
    rule = Rule(
        id="order_tracking.ja_delivery",
        intent="order_tracking",
        patterns=["配送状況", "いつ届きますか"],
        locales=["ja-JP"],
        match="substring",
        owner="tests",
    )
    miner = HardNegativeMiner().fit(rule)
    # Hiragana-only bigrams (いつ, きま, ます, すか) are grammar, left out.
    assert miner.pattern_tokens_ == (frozenset({"配送", "送状", "状況"}), frozenset({"つ届", "届き"}))
    rows = [
        ("配送状況を教えて", "ja-JP", "faq", "fires"),
        ("配送の状況は？", "ja-JP", "faq", "partial_pattern"),  # 配送 + 状況: 2 of 3 bigrams
        ("商品が届きました", "ja-JP", "return_request", "shared_vocabulary"),  # 届き
        ("返品できますか", "ja-JP", "return_request", None),  # only ます / すか
        ("配送状況", "en-US", "faq", None),
    ]
    found = miner.candidates(log(rows))
    assert dict(zip(found.index, found["hard_negative_reason"].astype(str))) == expected(rows)


def test_all_hiragana_pattern_keeps_its_bigrams():
    rule = Rule(id="chitchat.hello", intent="chitchat", patterns=["こんにちは"], match="substring", owner="tests")
    assert HardNegativeMiner().fit(rule).pattern_tokens_ == (frozenset({"こん", "んに", "にち", "ちは"}),)


def test_candidates_before_fit_is_refused():
    with pytest.raises(NotFittedError, match=r"not fitted yet; call fit\(rule\)"):
        HardNegativeMiner().candidates(log(ROWS))


def test_missing_columns_are_named():
    with pytest.raises(ValueError, match="model_intent"):
        HardNegativeMiner().fit(TRACK).candidates(log(ROWS).drop(columns="model_intent"))


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"min_shared_tokens": 0}, "min_shared_tokens must be a whole number of at least 1, got 0"),
        ({"min_shared_tokens": 1.5}, "min_shared_tokens must be a whole number"),
        ({"min_partial_tokens": 0}, "min_partial_tokens must be a whole number of at least 1, got 0"),
        ({"partial_fraction": 0}, r"partial_fraction must be in \(0, 1\], got 0"),
        ({"partial_fraction": 1.5}, r"partial_fraction must be in \(0, 1\], got 1.5"),
    ],
)
def test_bad_parameters_are_refused_at_fit(params, message):
    miner = HardNegativeMiner(**params)  # __init__ only stores
    with pytest.raises(ValueError, match=message):
        miner.fit(TRACK)


def test_empty_chunk_and_no_candidates():
    miner = HardNegativeMiner().fit(TRACK)
    assert miner.candidates(log([])).empty
    assert miner.candidates(log([("hello", "en-US", "chitchat", None)])).empty


def test_registered_as_a_miner_entry_point():
    assert load_plugin(MINERS, "hard_negatives") is HardNegativeMiner


def test_doctest():
    assert doctest.testmod(hard_negatives).failed == 0
