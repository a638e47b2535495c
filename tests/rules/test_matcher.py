import doctest
import importlib
import math

import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rulelife.rules.definition import Rule
from rulelife.rules.matcher import BACKENDS, CompiledRule, Matcher, _is_word_char, compile_rule, locale_applies
from rulelife.rules.normalize import normalize


def rule(rule_id, patterns, **fields):
    fields.setdefault("intent", rule_id.split(".")[0])
    fields.setdefault("owner", "tests")
    return Rule(id=rule_id, patterns=patterns, **fields)


ORDER = rule("order_tracking.order", ["order"])
CANCEL = rule("cancel.cancel_order", ["cancel my order", "cancel"], exclude=["don't cancel"])
RETURN_ES = rule("returns.devolucion", ["devolución"], locales=["es"])
GUNDAM_JA = rule("catalog.gundam", ["ガンダム"], locales=["ja-JP"], match="substring")
REFUND_EN_US = rule("refund.refund", ["refund"], locales=["en-US"])
SHIPPING_ANY = rule("shipping.shipping", ["shipping", "my order"], locales=["*"])
RULES = [ORDER, CANCEL, RETURN_ES, GUNDAM_JA, REFUND_EN_US, SHIPPING_ANY]


@pytest.fixture(scope="module", params=BACKENDS)
def matcher(request):
    """The same rules on each automaton backend: every test using it runs on both."""
    return Matcher.from_rules(RULES).with_backend(request.param)


def winner(matcher, text, locale=None):
    result = matcher.match(text, locale)
    return None if result is None else result.rule_id


@pytest.mark.parametrize(
    ("text", "fires"),
    [
        ("where is my order", True),
        ("order.", True),
        ("#order", True),
        ("(order)", True),
        ("ORDER", True),
        ("reorder", False),
        ("orders", False),
        ("order_id", False),  # "_" is a word character
        ("order2", False),
    ],
)
def test_word_mode_needs_word_boundaries(text, fires):
    m = Matcher.from_rules([ORDER])
    assert (winner(m, text) == ORDER.id) is fires


def test_substring_mode_fires_inside_words_for_japanese(matcher):
    assert winner(matcher, "ガンダムのプラモデルはありますか", "ja-JP") == GUNDAM_JA.id
    assert winner(matcher, "ｶﾞﾝﾀﾞﾑ", "ja-JP") == GUNDAM_JA.id  # half-width normalised


def test_exclude_vetoes_the_rule(matcher):
    assert winner(matcher, "please cancel it") == CANCEL.id
    assert winner(matcher, "don't cancel it") is None


def test_locale_filter(matcher):
    assert winner(matcher, "devolución", "es") == RETURN_ES.id
    assert winner(matcher, "devolucion", "es-MX") == RETURN_ES.id  # bare language covers regions
    assert winner(matcher, "devolución", "en") is None
    assert winner(matcher, "devolución", None) is None  # unknown locale: only "*" rules
    assert winner(matcher, "refund", "en_us") == REFUND_EN_US.id
    assert winner(matcher, "refund", "en") is None  # en-US does not cover all of en
    assert winner(matcher, "free shipping", None) == SHIPPING_ANY.id
    assert winner(matcher, "free shipping", "ja-JP") == SHIPPING_ANY.id


def test_locale_applies():
    assert locale_applies(["*"], None)
    assert locale_applies(["en"], "EN-gb")
    assert locale_applies(["en-US"], "en_us")
    assert not locale_applies(["en-US"], "en")
    assert not locale_applies(["en"], "eng")
    assert not locale_applies(["en"], float("nan"))


def test_winner_by_priority_then_pattern_length_then_id():
    low = rule("a.low", ["order"], priority=0)
    high = rule("z.high", ["order"], priority=5)
    assert Matcher.from_rules([low, high]).match("my order").fired == ("z.high", "a.low")

    short = rule("a.short", ["order"])
    long = rule("z.long", ["my order"])
    result = Matcher.from_rules([short, long]).match("where is my order")
    assert (result.rule_id, result.pattern, result.fired) == ("z.long", "my order", ("z.long", "a.short"))

    first = rule("a.first", ["order"])
    second = rule("b.second", ["order"])
    assert Matcher.from_rules([second, first]).match("order").fired == ("a.first", "b.second")


def test_match_result_carries_the_winner(matcher):
    result = matcher.match("Cancel my ORDER now", "en")
    assert result.rule_id == CANCEL.id
    assert result.rule_version == CANCEL.version
    assert result.intent == "cancel"
    assert result.pattern == "cancel my order"
    # "cancel my order" (15) beats "my order" (8) and "order" (5) at equal priority.
    assert result.fired == (CANCEL.id, SHIPPING_ANY.id, ORDER.id)


@pytest.mark.parametrize(
    ("text", "locale"),
    [
        ("cancel my order", "en"),
        ("don't cancel my order", "en"),
        ("don't cancel", "en"),
        ("reorder", None),
        ("devolución", "fr"),
        ("ガンダム", "ja-JP"),
        ("nothing here", "en"),
        ("", None),
    ],
)
def test_explain_agrees_with_match(matcher, text, locale):
    explanation = matcher.explain(text, locale)
    result = matcher.match(text, locale)
    assert explanation.winner == result
    assert explanation.fired == (result.fired if result else ())
    for hit in explanation.hits:
        assert explanation.normalized[hit.start : hit.end] == hit.phrase
    assert explanation.to_dict()["reason"] == explanation.reason


def test_explain_reports_hits_vetoes_and_reasons(matcher):
    vetoed = matcher.explain("don't cancel my order", "en")
    assert vetoed.vetoed == (CANCEL.id,)
    assert vetoed.winner.rule_id == SHIPPING_ANY.id
    assert "cancel.cancel_order was vetoed by \"don't cancel\"" in vetoed.reason
    assert {(h.rule_id, h.phrase, h.kind, h.counted) for h in vetoed.hits} >= {
        (CANCEL.id, "don't cancel", "exclude", True),
        (CANCEL.id, "cancel my order", "pattern", True),
        (ORDER.id, "order", "pattern", True),
    }

    boundary = matcher.explain("reorder", None)
    assert boundary.winner is None
    (hit,) = boundary.hits
    assert (hit.counted, hit.reason) == (False, "not on a word boundary (preceded by 'e')")
    assert boundary.reason.startswith("no pattern counted")

    locale = matcher.explain("devolución", "fr")
    assert "locale fr is not in the rule's locales (es)" in locale.hits[0].reason

    assert matcher.explain("nothing here").reason == "no rule pattern occurs in the query"
    assert "longer pattern" in matcher.explain("cancel my order").reason


def test_match_many_handles_missing_values(matcher):
    texts = ["my order", None, float("nan"), pd.NA, "cancel"]
    results = matcher.match_many(texts, "en")
    assert [r and r.rule_id for r in results] == [SHIPPING_ANY.id, None, None, None, CANCEL.id]
    series = pd.Series(["refund", "refund", "refund"])
    locales = pd.Series(["en-US", None, math.nan])
    assert [r and r.rule_id for r in matcher.match_many(series, locales)] == [REFUND_EN_US.id, None, None]


def test_match_many_refuses_non_text(matcher):
    with pytest.raises(TypeError, match="texts must be strings"):
        matcher.match_many([42])
    with pytest.raises(ValueError, match="got 2 texts but 1 locales"):
        matcher.match_many(["a", "b"], ["en"])


def test_empty_rule_set():
    m = Matcher([])
    assert m.match("my order", "en") is None
    assert m.match_many(["my order", None]) == [None, None]
    assert m.explain("my order").reason == "no rule pattern occurs in the query"


def test_compiled_rule_round_trips_through_a_dict():
    compiled = compile_rule(CANCEL)
    assert CompiledRule.from_dict(compiled.to_dict()) == compiled


def test_duplicate_ids_are_refused():
    with pytest.raises(ValueError, match="repeated: order_tracking.order"):
        Matcher.from_rules([ORDER, ORDER])


_VOCABULARY = ["my", "order", "cancel", "don't", "refund", "shipping", "devolución", "ガンダム", "re", "s", "."]
_NOISE = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=4)
_TEXTS = st.lists(st.sampled_from(_VOCABULARY) | _NOISE, max_size=6).map(" ".join) | _NOISE | st.none()
_LOCALES = st.sampled_from([None, "en", "en-US", "es", "ja-JP", "fr"])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(_TEXTS, _LOCALES), max_size=20))
def test_match_many_equals_match_element_for_element(matcher, rows):
    texts = [text for text, _ in rows]
    locales = [locale for _, locale in rows]
    expected = [None if text is None else matcher.match(text, locale) for text, locale in rows]
    assert matcher.match_many(texts, locales) == expected
    assert matcher.match_many(pd.Series(texts, dtype=object), pd.Series(locales, dtype=object)) == expected
    assert matcher.match_many(pa.array(texts, type=pa.string()), pa.array(locales, type=pa.string())) == expected


def test_doctests():
    assert doctest.testmod(importlib.import_module("rulelife.rules.matcher")).failed == 0


def test_random_locale_strings_share_the_bundle_locales_sets_of_rules():
    from rulelife.rules.definition import Rule
    from rulelife.rules.matcher import Matcher, compile_rule

    rules = [Rule(id=f"faq.r{i}", intent="faq", patterns=[f"word{i}"], locales=[loc], owner="t")
             for i, loc in enumerate(["en", "en-US", "ja-JP", "*", "es-ES"])]
    matcher = Matcher([compile_rule(r) for r in rules])
    assert matcher.match("word0", "en-GB").rule_id == "faq.r0" and matcher.match("word1", "en-GB") is None
    assert matcher.match("word3", "xx-random") .rule_id == "faq.r3" and matcher.match("word2", "xx-random") is None
    for i in range(10_000):
        matcher.match("word3", f"zz-{i:05d}")
    # Every unknown locale meets only "*": one shared set, whatever the clients send.
    shared = {id(matcher._allowed(f"zz-{i:05d}")) for i in range(0, 10_000, 97)}
    assert len(shared) == 1 and len(matcher._by_specs) <= 4


def _reference_match(rules, text, locale):
    """What match() must answer, by definition and without an automaton: every
    occurrence of every phrase (str.find), word boundaries, locales, excludes,
    then priority, longest pattern, smallest id."""
    normalized = normalize(text)

    def counts(phrase, word):
        start = normalized.find(phrase)
        while start >= 0:
            end = start + len(phrase)
            before = normalized[start - 1] if start else " "
            after = normalized[end] if end < len(normalized) else " "
            left_ok = not (word and _is_word_char(phrase[0]) and _is_word_char(before))
            right_ok = not (word and _is_word_char(phrase[-1]) and _is_word_char(after))
            if left_ok and right_ok:
                yield len(phrase), end
            start = normalized.find(phrase, start + 1)

    fired = {}
    for rule in rules:
        if not locale_applies(rule.locales, locale):
            continue
        word = rule.match == "word"
        if any(True for phrase in rule.exclude for _ in counts(phrase, word)):
            continue
        # The longest counted pattern; of equal ones, the one that ends first.
        hits = sorted((-length, end, phrase) for phrase in rule.patterns for length, end in counts(phrase, word))
        if hits:
            fired[rule.id] = (rule, -hits[0][0], hits[0][2])
    if not fired:
        return None
    ranked = sorted(fired.values(), key=lambda x: (-x[0].priority, -x[1], x[0].id))
    return ranked[0][0].id, ranked[0][2], tuple(rule.id for rule, _, _ in ranked)


_PHRASES = st.sampled_from(["order", "my order", "cancel", "cancel my order", "re", "der", "r m", "ガンダム", "ダム",
                            "order?", "_x", "refund"])
# Texts glue phrases with separators that make and break word boundaries.
_SEPARATORS = st.sampled_from([" ", "", "x", "?", " my ", "_"])
_GLUED = st.tuples(_SEPARATORS, st.lists(st.tuples(_PHRASES, _SEPARATORS), min_size=1, max_size=4)).map(
    lambda glued: glued[0] + "".join(phrase + sep for phrase, sep in glued[1]))
_RULE_SETS = st.lists(
    st.tuples(st.lists(_PHRASES, min_size=1, max_size=3), st.lists(_PHRASES, max_size=1),
              st.sampled_from([["*"], ["*"], ["en"], ["en-US"], ["ja"]]), st.sampled_from(["word", "substring"]),
              st.integers(0, 1)),
    min_size=1, max_size=6)


@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=300, deadline=None)
@given(_RULE_SETS, _GLUED | _NOISE, st.sampled_from(["en-US", "en", None, "ja-JP"]))
def test_match_is_the_definition_of_a_match(backend, specs, text, locale):
    rules = [compile_rule(Rule(id=f"intent_{i}.r{i}", intent=f"intent_{i}", patterns=patterns, exclude=exclude,
                               locales=locales, match=match, priority=priority, owner="tests"))
             for i, (patterns, exclude, locales, match, priority) in enumerate(specs)]
    result = Matcher(rules).with_backend(backend).match(text, locale)
    expected = _reference_match(rules, text, locale)
    assert (None if result is None else (result.rule_id, result.pattern, result.fired)) == expected
