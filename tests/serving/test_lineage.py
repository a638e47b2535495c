"""A publish of a few rules' change is served by a matcher derived from the one in service."""

from __future__ import annotations

import json
import logging

import pytest

from rulelife import RuleClassifier
from rulelife._files import atomic_write
from rulelife.errors import BundleIntegrityError
from rulelife.rules.definition import Rule
from rulelife.rules.derived import DerivedMatcher
from rulelife.rules.lexicon import Lexicon, LexiconEntry
from rulelife.rules.matcher import Matcher, compile_rule
from rulelife.serving.bundle import MAGIC, BundleStore, _checksum, _rules_json, encode_bundle, read_bundle
from rulelife.serving.lineage import rule_texts
from rulelife.serving.publish import publish_rules

WHERE = Rule(id="order_tracking.where", intent="order_tracking", patterns=["where is my order"], owner="ds")
HOURS = Rule(id="faq.hours", intent="faq", patterns=["opening hours", "when are you open"], owner="ds")
SALE = Rule(id="promo.sale", intent="promotion", patterns=["sale", "discount"], owner="ds", priority=2)
ODD = Rule(id="faq.odd", intent="faq", owner="ds", patterns=['},{"id":"x', "a\\b"])  # the boundary, quoted
QUERIES = ["where is my order", "when are you open", "is the sale on", "discount on my order", "x", "a\\b"]


def _bundles(tmp_path, *rule_sets, lexicon=None):
    store = BundleStore(tmp_path)
    return store, [store.build(rules, lexicon)[0] for rules in rule_sets]


def test_rule_texts_splits_the_encoders_json_into_one_text_a_rule():
    compiled = [compile_rule(rule) for rule in (WHERE, HOURS, ODD)]
    texts = rule_texts(_rules_json(compiled))
    assert len(texts) == 3  # the boundary inside a pattern is quoted, so no split there
    assert [json.loads(b'{"id":' + text + b"}")["id"] for text in texts] == ["faq.hours", "faq.odd",
                                                                            "order_tracking.where"]
    assert rule_texts(b"[]") == []
    assert rule_texts(b'[ {"id": "a"} ]') is None  # not the encoder's layout: the bundle is loaded whole


def test_a_one_rule_change_is_derived_and_answers_as_the_bundle_loaded_whole(tmp_path):
    _, (first, second) = _bundles(tmp_path, [WHERE, HOURS, ODD], [WHERE, SALE, ODD])
    served = read_bundle(first.path)
    derived = read_bundle(second.path, reuse=served, derive=True)
    whole = read_bundle(second.path)
    assert isinstance(derived.matcher, DerivedMatcher) and not isinstance(whole.matcher, DerivedMatcher)
    assert derived.matcher.base is served.matcher  # the automaton in service is walked, not a new one
    assert (derived.number, derived.content_hash, derived.pattern_count) == (2, whole.content_hash, 5)
    assert derived.rules == whole.rules
    for query in QUERIES:
        assert derived.matcher.match(query) == whole.matcher.match(query)
    assert derived.lineage is served.lineage


def test_back_to_the_content_loaded_whole_serves_that_matcher_again(tmp_path):
    _, (first, second) = _bundles(tmp_path, [WHERE, HOURS], [WHERE])
    served = read_bundle(first.path)
    derived = read_bundle(second.path, reuse=served, derive=True)
    data, header = encode_bundle([WHERE, HOURS], 3)
    atomic_write(first.path.with_name("bundle-000003.rlb"), data)
    back = read_bundle(first.path.with_name("bundle-000003.rlb"), reuse=derived, derive=True)
    assert back.matcher is served.matcher and back.number == 3


@pytest.mark.parametrize("why", ["another lexicon", "too many new phrases", "no derive asked"])
def test_a_bundle_is_loaded_whole_when_deriving_does_not_fit(tmp_path, why, monkeypatch):
    lexicon = Lexicon(owner="safety", phrases=(LexiconEntry(phrase="money back", intent="return_request"),))
    rules = [WHERE, HOURS]
    new = [WHERE, SALE]
    if why == "too many new phrases":
        monkeypatch.setattr("rulelife.serving.lineage._MAX_NEW_PHRASES", (1, 0.0))
    _, (first, second) = _bundles(tmp_path, rules, new, lexicon=None)
    if why == "another lexicon":
        second = BundleStore(tmp_path).build(new, lexicon)[0]
    served = read_bundle(first.path)
    loaded = read_bundle(second.path, reuse=served, derive=why != "no derive asked")
    assert type(loaded.matcher) is Matcher


def test_a_derivation_that_disagrees_with_the_header_is_loaded_whole_and_said(tmp_path, caplog):
    store, (first,) = _bundles(tmp_path, [WHERE, HOURS])
    data, header = encode_bundle([WHERE, SALE], 2)
    payload = data.split(b"\n", 2)[2]
    header["pattern_count"] += 1  # someone able to write the folder; the checksum recomputed over it
    header["checksum"] = _checksum(header, payload[:header["rules_bytes"]])
    atomic_write(store.path_of(2), MAGIC + json.dumps(header, sort_keys=True).encode() + b"\n" + payload)
    served = read_bundle(first.path)
    with caplog.at_level(logging.WARNING, logger="rulelife.serving.bundle"), \
            pytest.raises(BundleIntegrityError, match="size differs from the header"):
        read_bundle(store.path_of(2), reuse=served, derive=True)
    assert "differs from its header in size" in caplog.text


def test_a_derived_load_never_reads_the_compiled_part_a_whole_load_checks_it(tmp_path):
    _, (first, second) = _bundles(tmp_path, [WHERE, HOURS], [WHERE, SALE])
    data = bytearray(second.path.read_bytes())
    data[-10] ^= 0xFF  # a bit flipped in the automaton's node data
    second.path.write_bytes(bytes(data))
    served = read_bundle(first.path)
    assert read_bundle(second.path, reuse=served, derive=True).matcher.match("big sale").rule_id == "promo.sale"
    with pytest.raises(BundleIntegrityError, match="compiled part was modified"):
        read_bundle(second.path)


def test_a_bundle_written_before_the_compiled_hash_is_read_whole_under_its_one_checksum(tmp_path):
    store, (first,) = _bundles(tmp_path, [WHERE, HOURS])
    data = first.path.read_bytes()
    magic_end = data.index(b"\n") + 1
    header_end = data.index(b"\n", magic_end)
    header = json.loads(data[magic_end:header_end])
    payload = data[header_end + 1:]
    del header["compiled_sha256"]
    header["checksum"] = _checksum(header, payload)  # the older layout: one checksum over everything
    first.path.write_bytes(data[:magic_end] + json.dumps(header, sort_keys=True).encode() + b"\n" + payload)
    assert read_bundle(first.path).matcher.match("where is my order").rule_id == WHERE.id
    tampered = bytearray(first.path.read_bytes())
    tampered[-10] ^= 0xFF
    first.path.write_bytes(bytes(tampered))
    with pytest.raises(BundleIntegrityError, match="fails its checksum"):
        read_bundle(first.path)


def test_the_runtime_derives_a_promotion_and_a_disable_and_answers_as_a_fresh_start(tmp_path):
    store = BundleStore(tmp_path)
    publish_rules(store, [WHERE, HOURS])
    clf = RuleClassifier.from_store(tmp_path)
    for rules in ([WHERE, HOURS, SALE], [WHERE, SALE], [WHERE, HOURS]):
        publish_rules(store, rules)
        assert clf.refresh()
        fresh = RuleClassifier.from_store(tmp_path)
        assert [clf.classify(q) and clf.classify(q).rule_id for q in QUERIES] == \
            [fresh.classify(q) and fresh.classify(q).rule_id for q in QUERIES]
        assert clf.bundle_version == fresh.bundle_version
    assert clf.bundle.matcher is not fresh.bundle.matcher
