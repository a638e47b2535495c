import datetime as dt
import pickle
from collections import Counter

import numpy as np
import pandas as pd
import pytest

import miners.probes
from miners.grouping import excludable
from miners.ngrams import char_ngrams, words
from miners.probes import _A, _B, SIGNATURE_SIZE, RuleCounts
from rulelife.rules.matcher import CompiledRule, Matcher, normalize_locale
from rulelife.rules.normalize import normalize


def rule(rule_id, patterns, locales=("*",), exclude=(), match="word"):
    # As the miner builds its probes: short ids, phrases already normalised.
    return CompiledRule(id=rule_id, version="", intent="order_tracking", patterns=tuple(patterns),
                        exclude=tuple(exclude), locales=tuple(normalize_locale(x) for x in locales), match=match,
                        priority=0)


MATCHER = Matcher([rule("track", ["track"], ["en-US"]), rule("order", ["my order"], exclude=["refund"]),
                   rule("ja", ["配送"], ["ja-JP"], match="substring")])
EXISTING = Matcher([rule("old.status", ["status"])])
TOKEN_RULES, SUBSTRING_RULES, STOP_WORDS = {"order", "ja"}, {"ja"}, {"my"}

# (text, intent, locale); None intent: a rule answered.
ROWS = ([("Track my order", "order_tracking", "en-US")] * 3
        + [("track my order", "faq", "en-US")]
        + [("track my order #12345", "order_tracking", "es-ES")]  # "track" is an en-US rule
        + [("refund my order", "return_request", "en-US")] * 2  # "order" vetoed
        + [("order status track", "order_tracking", "en-US")] * 2  # an existing rule fires too
        + [("配送状況", "order_tracking", "ja-JP")] * 2
        + [("配送", "faq", "ja-JP")]
        + [("track my order", None, "en-US")] * 3  # unlabelled
        + [(None, "faq", "en-US")])  # no text


def chunk(rows=ROWS, query_id=True):
    frame = pd.DataFrame({
        "query_id": [f"q{i}" for i in range(len(rows))],
        "ts": [pd.Timestamp("2026-01-01 22:00", tz="UTC") + pd.Timedelta(hours=i) for i in range(len(rows))],
        "text": pd.array([r[0] for r in rows], dtype="string"),
        "locale": pd.array([r[2] for r in rows], dtype="string"),
        "model_intent": pd.array([r[1] for r in rows], dtype="string"),
        "model_confidence": pd.array([0.99] * len(rows), dtype="Float64"),
    })
    return frame if query_id else frame.drop(columns=["query_id"])


def normalized(frame):
    return [normalize(t) if isinstance(t, str) else None for t in frame["text"]]


def count(frame, **options):
    options = {"existing": EXISTING, "token_rules": TOKEN_RULES, "substring_rules": SUBSTRING_RULES,
               "stop_words": STOP_WORDS, "signatures": True, **options}
    return RuleCounts.from_chunk(frame, normalized(frame), MATCHER, **options)


def reference(frame):
    """Row by row, the definitions of RuleCounts' invariants."""
    intents, new, texts, tokens, signatures = {}, Counter(), {}, {}, {}
    if "query_id" in frame.columns:
        keys = frame["query_id"].astype(str)
    else:
        keys = frame["text"].astype(str) + frame["ts"].astype(str)
    hashes = pd.util.hash_pandas_object(keys, index=False).tolist()
    for text, locale, label, row_hash in zip(normalized(frame), frame["locale"], frame["model_intent"], hashes):
        if text is None or pd.isna(label):
            continue
        locale = None if pd.isna(locale) else locale
        result = MATCHER.match_normalized(text, locale)
        old = EXISTING.match_normalized(text, locale) is not None
        row = np.array([(row_hash * int(a) + int(b)) % 2**64 for a, b in zip(_A, _B)], dtype=np.uint64)
        for rule_id in result.fired if result else ():
            intents.setdefault(rule_id, Counter())[label] += 1
            new[rule_id] += not old
            texts.setdefault(rule_id, Counter())[(text, label)] += 1
            if rule_id in TOKEN_RULES:
                substring = rule_id in SUBSTRING_RULES
                found = {t for t in (char_ngrams(text, 2, 2) if substring else set(words(text)) - STOP_WORDS)
                         if excludable(t, substring)}
                counter = tokens.setdefault(rule_id, Counter())
                for token in found:
                    counter[(token, label)] += 1
            signatures[rule_id] = np.minimum(signatures.get(rule_id, row), row)
    return intents, +new, texts, tokens, signatures


def assert_equal(counts, expected):
    intents, new, texts, tokens, signatures = expected
    assert counts.intents == intents
    assert counts.new == new
    assert counts.texts == texts
    assert counts.tokens == tokens
    assert counts.signatures.keys() == signatures.keys()
    for rule_id, signature in signatures.items():
        assert counts.signatures[rule_id].shape == (SIGNATURE_SIZE,)
        np.testing.assert_array_equal(counts.signatures[rule_id], signature)


def test_counts_by_hand():
    counts = count(chunk())  # the order number is no exclude token, nor "my" (a stop word)
    assert counts.intents == {"track": Counter(order_tracking=5, faq=1), "order": Counter(order_tracking=4, faq=1),
                              "ja": Counter(order_tracking=2, faq=1)}
    assert counts.new == Counter(track=4, order=5, ja=3)
    assert counts.texts["order"] == Counter({("track my order", "order_tracking"): 3, ("track my order", "faq"): 1,
                                             ("track my order #12345", "order_tracking"): 1})
    assert counts.tokens == {
        "order": Counter({("track", "order_tracking"): 4, ("order", "order_tracking"): 4, ("track", "faq"): 1,
                          ("order", "faq"): 1}),
        "ja": Counter({("配送", "order_tracking"): 2, ("送状", "order_tracking"): 2, ("状況", "order_tracking"): 2,
                       ("配送", "faq"): 1}),
    }
    assert counts.days == {dt.date(2026, 1, 1), dt.date(2026, 1, 2)}


@pytest.mark.parametrize("query_id", [True, False])
def test_counts_equal_row_by_row_reference(query_id):
    assert_equal(count(chunk(query_id=query_id)), reference(chunk(query_id=query_id)))


def test_counts_follow_the_chunk_positions_not_its_index():
    frame = chunk().iloc[::-2]  # reversed, every other row, index kept
    assert_equal(count(frame), reference(frame))


def test_signature_is_the_minimum_over_the_rule_rows():
    # Signatures are exact whatever the grouping: the same as the minimum over each row's hashes.
    rows = [(f"track my order {i % 3}", "order_tracking", "en-US") for i in range(50)]
    assert_equal(count(chunk(rows)), reference(chunk(rows)))


def test_examples_keep_the_most_frequent_first_seen_on_ties(monkeypatch):
    monkeypatch.setattr(miners.probes, "_KEEP_TEXTS", 2)
    rows = ([("my order a", "faq", "en-US")] + [("my order b", "faq", "en-US")] * 2
            + [("my order c", "faq", "en-US")] + [("my order d", "faq", "en-US")] * 2)
    texts = count(chunk(rows)).texts["order"]
    assert list(texts.items()) == [(("my order b", "faq"), 2), (("my order d", "faq"), 2)]
    rows = rows[:1] + rows[3:4] + rows[1:3]  # a, c, b, b
    assert list(count(chunk(rows)).texts["order"].items()) == [(("my order b", "faq"), 2), (("my order a", "faq"), 1)]


def test_options_off():
    counts = count(chunk(), existing=None, token_rules=(), signatures=False, examples=False)
    assert counts.new == Counter(track=6, order=5, ja=3)  # no existing rule: every fire is new
    assert counts.texts == {} and counts.tokens == {} and counts.signatures == {}
    assert counts.intents == count(chunk()).intents


def test_no_rule_fires():
    counts = count(chunk([("hello", "chitchat", "en-US")] * 3))
    assert counts.intents == {} and counts.new == Counter() and counts.signatures == {}
    assert counts.days == {dt.date(2026, 1, 1), dt.date(2026, 1, 2)}  # 22:00, 23:00, 00:00


def test_partials_add_up_and_pickle():
    frame = chunk()
    parts = [count(frame.iloc[i::2].reset_index(drop=True)) for i in range(2)]
    total = parts[0] + parts[1]
    assert_equal(total, reference(frame))
    again = pickle.loads(pickle.dumps(total))
    assert again.intents == total.intents and again.tokens == total.tokens
