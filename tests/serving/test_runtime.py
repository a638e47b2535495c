"""The embedded runtime: answers, shadow sample, hot reload, last good bundle."""

from __future__ import annotations

import sys
import threading

import pandas as pd
import pytest

from rulelife import RuleClassifier
from rulelife.errors import BundleError, ConfigError
from rulelife.rules.definition import Rule
from rulelife.rules.matcher import BACKENDS
from rulelife.serving.bundle import BundleStore
from rulelife.serving.publish import publish_rules
from rulelife.serving.runtime import in_shadow_sample


def rule(rule_id: str, *patterns: str, **extra) -> Rule:
    return Rule(id=rule_id, intent=rule_id.split(".")[0], patterns=list(patterns), owner="ds", **extra)


@pytest.fixture
def published(tmp_path):
    store = BundleStore(tmp_path)
    publish_rules(store, [rule("order_tracking.where", "where is my order", exclude=["return"])])
    return store


def test_classify_returns_the_rule_answer(published):
    clf = RuleClassifier.from_store(published.root)
    match = clf.classify("Where is my order #123?", locale="en-US", query_id="q-1")
    assert (match.intent, match.rule_id, match.bundle_version, match.pattern) == (
        "order_tracking", "order_tracking.where", 1, "where is my order",
    )
    assert clf.classify("where is my order, I want to return it", locale="en-US", query_id="q-2") is None
    assert clf.classify("hello", locale="en-US", query_id="q-3") is None


def test_shadow_sample_is_deterministic_and_at_the_rate():
    ids = [f"q-{i}" for i in range(20_000)]
    sampled = [in_shadow_sample(q, 0.05) for q in ids]
    assert sampled == [in_shadow_sample(q, 0.05) for q in ids]
    # 5% of 20,000 is 1,000; the binomial sd is ~31, so ±150 is ~5 sd.
    assert 850 <= sum(sampled) <= 1150
    assert not any(in_shadow_sample(q, 0.0) for q in ids[:100])
    assert all(in_shadow_sample(q, 1.0) for q in ids[:100])


@pytest.mark.parametrize("backend", BACKENDS)
def test_classify_many_equals_classify(published, backend):
    clf = RuleClassifier.from_store(published.root, shadow_rate=0.5, matcher_backend=backend)
    texts = pd.Series(["where is my order", "hi", None, "WHERE IS MY ORDER?", "return where is my order"])
    ids = [f"q-{i}" for i in range(len(texts))]
    batch = clf.classify_many(texts, "en-US", ids)
    single = [
        clf.classify(t, locale="en-US", query_id=q) if isinstance(t, str) else None for t, q in zip(texts, ids)
    ]
    assert batch == single
    assert [m is not None for m in batch] == [True, False, False, True, False]


def test_refresh_picks_up_a_new_bundle_without_restart(published):
    clf = RuleClassifier.from_store(published.root)
    assert clf.classify("opening hours", locale="en-US") is None
    assert not clf.refresh()
    publish_rules(published, [rule("faq.hours", "opening hours")])
    assert clf.refresh()
    assert clf.bundle_version == 2
    assert clf.classify("opening hours", locale="en-US").rule_id == "faq.hours"


def test_a_bad_new_bundle_is_refused_and_the_last_good_keeps_serving(published):
    clf = RuleClassifier.from_store(published.root)
    bundle, _ = published.build([rule("faq.hours", "opening hours")])
    published.publish(bundle.number)
    bundle.path.write_bytes(bundle.path.read_bytes()[:-5])  # truncated after publishing
    assert not clf.refresh()
    assert "truncated" in clf.last_error
    assert clf.bundle_version == 1
    assert clf.classify("where is my order", locale="en-US").rule_id == "order_tracking.where"


def test_background_poll_reloads(published):
    clf = RuleClassifier.from_store(published.root)
    clf.start_polling(interval=0.01)
    try:
        publish_rules(published, [rule("faq.hours", "opening hours")])
        for _ in range(500):
            if clf.bundle_version == 2:
                break
            threading.Event().wait(0.01)
        assert clf.bundle_version == 2
    finally:
        clf.stop_polling()


def test_classify_is_safe_while_bundles_swap(published):
    clf = RuleClassifier.from_store(published.root)
    errors: list[BaseException] = []

    def reader():
        try:
            for _ in range(3000):
                match = clf.classify("where is my order", locale="en-US", query_id="q")
                # Every bundle in this test keeps the rule, so it always answers.
                assert match is not None and match.rule_id == "order_tracking.where"
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    extra = [rule("faq.hours", "opening hours"), rule("promotion.sale", "summer sale")]
    for i in range(6):
        publish_rules(published, 
            [rule("order_tracking.where", "where is my order", exclude=["return"]), *extra[: i % 3]]
        )
        clf.refresh()
    for t in threads:
        t.join()
    assert errors == []


def test_missing_bundle_is_a_clear_error(tmp_path):
    with pytest.raises(BundleError, match="bundle publish"):
        RuleClassifier.from_store(tmp_path)


def test_invalid_shadow_rate_is_refused(published):
    with pytest.raises(ValueError, match="between 0 and 1"):
        RuleClassifier.from_store(published.root, shadow_rate=5)


def test_an_unknown_matcher_backend_is_refused_with_the_choices(published, monkeypatch):
    with pytest.raises(ValueError, match="Unknown matcher backend 'hyperscan', expected one of pyahocorasick"):
        RuleClassifier.from_store(published.root, matcher_backend="hyperscan")
    monkeypatch.setenv("RULELIFE_MATCHER_BACKEND", "ahocorasick_rs")
    clf = RuleClassifier.from_store(published.root)
    assert clf.matcher_backend == "ahocorasick_rs" and clf.bundle.matcher.backend == "pyahocorasick"
    assert clf.classify("where is my order", locale="en").rule_id == "order_tracking.where"
    monkeypatch.setitem(sys.modules, "ahocorasick_rs", None)  # as where the package is not installed
    with pytest.raises(ConfigError, match=r"pip install 'rulelife\[rs\]'"):
        RuleClassifier.from_store(published.root)
