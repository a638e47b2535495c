"""Shadow rules in bundles, the matcher, the runtime and replay: matched, reported, never answering."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rulelife import RuleClassifier
from rulelife.querylog.schema import coerce, parse_reason
from rulelife.rules.definition import Rule
from rulelife.rules.matcher import BACKENDS, CompiledRule, Matcher, compile_rule
from rulelife.serving.bundle import MAGIC, MAGIC_SHADOW, BundleStore, read_bundle
from rulelife.serving.publish import publish_rules
from rulelife.serving.replay import replay
from rulelife.serving.runtime import format_shadow_rules, parse_shadow_rules


def rule(rule_id: str, *patterns: str, **extra) -> Rule:
    return Rule(id=rule_id, intent=rule_id.split(".")[0], patterns=list(patterns), owner="ds", **extra)


ORDER = rule("order_tracking.order", "order", "my order")
CANCEL = rule("cancel.cancel", "cancel my order", exclude=["don't cancel"], priority=1)
HOURS = rule("faq.hours", "opening hours")
# The shadow rules: one that would outrank every serving rule (priority 9),
# one that would veto nothing although its exclude phrase occurs, one in Spanish.
STATUS = rule("order_tracking.status", "order status", "my order", priority=9, exclude=["cancel"])
SALE = rule("promotion.sale", "sale", "order")
ES = rule("faq.horario", "horario", locales=["es"])
SERVING = [compile_rule(r) for r in (ORDER, CANCEL, HOURS)]
SHADOW = [compile_rule(r, shadow=True) for r in (STATUS, SALE, ES)]


@pytest.fixture(scope="module")
def both():
    return Matcher([*SERVING, *SHADOW])


@pytest.fixture(scope="module")
def alone():
    return Matcher(SERVING)


def test_a_shadow_rule_never_wins_nor_vetoes(both, alone):
    # STATUS has priority 9 and a longer pattern, yet ORDER still answers.
    assert both.match("what is my order status", "en") == alone.match("what is my order status", "en")
    assert both.match("what is my order status", "en").rule_id == "order_tracking.order"
    assert both.match("what is my order status", "en").fired == ("order_tracking.order",)
    # STATUS's exclude "cancel" vetoes STATUS only, never CANCEL.
    assert both.match("cancel my order", "en").rule_id == "cancel.cancel"
    # A shadow rule alone answers nothing.
    assert both.match("summer sale", "en") is None


def test_shadow_fired_names_the_shadow_rules_sorted_by_id(both):
    assert both.shadow_fired("my order status", "en") == ("order_tracking.status", "promotion.sale")
    assert both.shadow_fired("cancel my order", "en") == ("promotion.sale",)  # STATUS vetoed by its own exclude
    assert both.shadow_fired("horario", "es-ES") == ("faq.horario",)
    assert both.shadow_fired("horario", "en") == ()
    assert both.shadow_fired("opening hours", "en") == ()
    assert both.shadow_many(["my order", None, "sale"], "en") == [
        ("order_tracking.status", "promotion.sale"), (), ("promotion.sale",)]


def test_explain_verdict_is_unchanged_and_lists_shadow_rules(both, alone):
    with_shadow, without = both.explain("my order status", "en"), alone.explain("my order status", "en")
    assert (with_shadow.winner, with_shadow.fired, with_shadow.reason, with_shadow.hits) == (
        without.winner, without.fired, without.reason, without.hits)
    assert with_shadow.shadow_fired == ("order_tracking.status", "promotion.sale")
    assert with_shadow.to_dict()["shadow_fired"] == ["order_tracking.status", "promotion.sale"]
    assert without.shadow_fired == ()


def test_matcher_keeps_shadow_rules_apart(both):
    assert [r.id for r in both.rules] == ["cancel.cancel", "faq.hours", "order_tracking.order"]
    assert [(r.id, r.shadow) for r in both.shadow_rules] == [
        ("faq.horario", True), ("order_tracking.status", True), ("promotion.sale", True)]
    assert both.rule("promotion.sale").shadow and not both.rule("faq.hours").shadow
    with pytest.raises(ValueError, match="repeated: faq.hours"):
        Matcher([compile_rule(HOURS), compile_rule(HOURS, shadow=True)])


def test_shadow_flag_round_trips_and_is_absent_from_a_serving_rule_dict():
    shadow = compile_rule(SALE, shadow=True)
    assert CompiledRule.from_dict(shadow.to_dict()) == shadow
    assert shadow.to_dict()["shadow"] is True
    assert "shadow" not in compile_rule(SALE).to_dict()
    old = {k: v for k, v in compile_rule(SALE).to_dict().items()}  # a dict written before the flag existed
    assert CompiledRule.from_dict(old).shadow is False


def test_bundle_without_shadow_rules_keeps_format_and_hash(tmp_path):
    store = BundleStore(tmp_path)
    plain, _ = store.build([ORDER, HOURS])
    assert plain.path.read_bytes().startswith(MAGIC)
    # Adding a shadow rule is new content; the serving rules' hash part is unchanged.
    shadowed, built = store.build([ORDER, HOURS, compile_rule(SALE, shadow=True)])
    assert built and shadowed.content_hash != plain.content_hash
    assert shadowed.path.read_bytes().startswith(MAGIC_SHADOW)
    # The same rule, promoted (no flag), is other content again.
    promoted, built = store.build([ORDER, HOURS, SALE])
    assert built and promoted.content_hash not in (plain.content_hash, shadowed.content_hash)


def test_bundle_ships_and_reloads_the_shadow_matcher(tmp_path, monkeypatch):
    store = BundleStore(tmp_path)
    bundle, _ = store.build([*SERVING, *SHADOW])
    assert [r.id for r in bundle.rules] == sorted(r.id for r in (*SERVING, *SHADOW))
    assert [r.id for r in bundle.shadow_rules] == ["faq.horario", "order_tracking.status", "promotion.sale"]

    def no_build(phrases):
        raise AssertionError("a bundle load must not rebuild an automaton")

    monkeypatch.setattr(Matcher, "_build", staticmethod(no_build))
    loaded = read_bundle(bundle.path)
    assert loaded.rules == bundle.rules
    assert loaded.matcher.shadow_fired("my order status", "en") == ("order_tracking.status", "promotion.sale")
    assert loaded.matcher.match("my order status", "en").rule_id == "order_tracking.order"
    assert store.peek_header(bundle.path)["shadow_rule_count"] == 3


def test_bundle_with_shadow_rules_is_rebuilt_from_json_when_the_automaton_is_unreadable(tmp_path, monkeypatch):
    store = BundleStore(tmp_path)
    bundle, _ = store.build([*SERVING, *SHADOW])
    monkeypatch.setattr("rulelife.serving.bundle._AUTOMATON_FORMAT", "pyahocorasick-99-pickle5")
    loaded = read_bundle(bundle.path)
    assert loaded.rules == bundle.rules
    assert loaded.matcher.match("summer sale", "en") is None
    assert loaded.matcher.shadow_fired("summer sale", "en") == ("promotion.sale",)


@pytest.fixture(scope="module", params=BACKENDS)
def classifier(tmp_path_factory, request):
    root = tmp_path_factory.mktemp("bundles")
    publish_rules(BundleStore(root), [*SERVING, *SHADOW])
    return RuleClassifier.from_store(root, shadow_rate=0.5, matcher_backend=request.param)


def test_decide_reports_hits_misses_and_shadow_rules(classifier):
    hit = classifier.decide("where is my order", locale="en", query_id="q-1")
    assert hit.match == classifier.classify("where is my order", locale="en", query_id="q-1")
    assert (hit.match.rule_id, hit.bundle_version, hit.shadow, hit.shadow_rules) == (
        "order_tracking.order", 1, hit.match.shadow, ("order_tracking.status", "promotion.sale"))
    miss = classifier.decide("big sale today", locale="en", query_id="q-2")
    assert miss == (None, 1, False, ("promotion.sale",), None)
    assert classifier.decide("hello", locale="en", query_id="q-3") == (None, 1, False, (), None)


_WORDS = ["my", "order", "status", "cancel", "don't", "sale", "opening", "hours", "horario", "x"]
_TEXTS = st.lists(st.sampled_from(_WORDS), max_size=5).map(" ".join) | st.none()
_LOCALES = st.sampled_from([None, "en", "en-US", "es", "es-ES", "ja-JP"])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(_TEXTS, _LOCALES), max_size=15))
def test_shadow_rules_change_no_answer_and_decide_ties_to_classify(classifier, alone, rows):
    texts = [t for t, _ in rows]
    locales = [loc for _, loc in rows]
    ids = [f"q-{i}" for i in range(len(rows))]
    both = classifier.bundle.matcher
    decisions = classifier.decide_many(texts, locales, ids)
    assert [d.match for d in decisions] == classifier.classify_many(texts, locales, ids)
    for (text, locale), query_id, decision in zip(rows, ids, decisions):
        if text is None:
            assert decision == (None, 1, False, (), None)
            continue
        assert decision == classifier.decide(text, locale=locale, query_id=query_id)
        # The offline matcher without the shadow rules gives the same answer and verdict.
        offline = alone.match(text, locale)
        assert both.match(text, locale) == offline
        assert (decision.match and decision.match.rule_id) == (offline and offline.rule_id)
        assert classifier.explain(text, locale=locale).winner == offline
        # A shadow rule is reported exactly when it would have fired on its own.
        expected = tuple(sorted(r.id for r in SHADOW if Matcher([r._replace(shadow=False)]).match(text, locale)))
        assert decision.shadow_rules == expected
        assert decision.shadow == (decision.match is not None and decision.match.shadow)


def test_shadow_rules_cell_format_round_trips():
    cell = format_shadow_rules([("faq.hours", "0a1b2c"), ("promotion.sale", "ff")])
    assert cell == "faq.hours@0a1b2c;promotion.sale@ff"
    assert parse_shadow_rules(cell) == [("faq.hours", "0a1b2c"), ("promotion.sale", "ff")]
    assert format_shadow_rules([]) is None


def _log(texts, locales):
    n = len(texts)
    return pd.DataFrame({
        "query_id": [f"q-{i}" for i in range(n)],
        "ts": pd.to_datetime(["2026-11-02 10:00"] * n, utc=True),
        "text": texts, "locale": locales,
        "model_intent": ["order_tracking"] * n, "model_confidence": [0.9] * n,
    })


def test_replay_fills_shadow_rules(classifier):
    log = _log(["my order status", "summer sale", "hello", "horario", "cancel my order"],
               ["en", "en", "en", "es-ES", "en"])
    out = replay(log, classifier)
    v = {r.id: r.version for r in SHADOW}
    assert out["shadow_rules"].dtype == "string"
    assert out["shadow_rules"].tolist() == [
        f"order_tracking.status@{v['order_tracking.status']};promotion.sale@{v['promotion.sale']}",
        f"promotion.sale@{v['promotion.sale']}",
        pd.NA,
        f"faq.horario@{v['faq.horario']}",
        f"promotion.sale@{v['promotion.sale']}",
    ]
    # Shadow rules never answer: only serving rules appear as rule_id.
    assert out["rule_id"].tolist() == ["order_tracking.order", pd.NA, pd.NA, pd.NA, "cancel.cancel"]
    # A miss with shadow rules names the bundle holding their versions; a plain miss does not.
    assert out["bundle_version"].tolist() == [1, 1, pd.NA, 1, 1]
    # The model answered the misses, so their label stays.
    assert out["model_intent"].iloc[1] == "order_tracking"


def test_replay_through_a_bundle_without_shadow_rules_leaves_the_column_empty(tmp_path):
    publish_rules(BundleStore(tmp_path), [ORDER])
    out = replay(_log(["my order"], ["en"]), RuleClassifier.from_store(tmp_path))
    assert out["shadow_rules"].isna().all()


def test_a_log_without_shadow_rules_reads_as_none_and_a_bad_cell_does_not_parse(tmp_path):
    table = pa.table({"query_id": ["a"], "text": ["x"]})
    frame, failures = coerce(table, tmp_path / "log.csv")
    assert frame["shadow_rules"].isna().all() and parse_reason("shadow_rules") not in failures
    cells = pa.table({"shadow_rules": ["faq.hours@0a1b;promotion.sale@ff", "", None, "faq.hours", "a@b c",
                                       "faq.hours@0A1B"]})
    frame, failures = coerce(cells, tmp_path / "log.csv")
    assert frame["shadow_rules"].tolist()[:3] == ["faq.hours@0a1b;promotion.sale@ff", pd.NA, pd.NA]
    assert failures[parse_reason("shadow_rules")].tolist() == [False, False, False, True, True, True]
    assert parse_reason("shadow_rules") == "expect_column_values_to_be_parseable(shadow_rules)"
