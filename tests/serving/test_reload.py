"""What a reload does with what it reads: an equal-content publish, a lying content hash, a state in slices."""

from __future__ import annotations

import json
import pickle

import pytest

from rulelife import RuleClassifier
from rulelife._files import atomic_write
from rulelife.errors import BundleIntegrityError
from rulelife.rules.definition import Rule
from rulelife.rules.matcher import Matcher, compile_rule
from rulelife.serving import bundle as bundle_module
from rulelife.serving.bundle import BundleStore, _dump_state, _load_state, _seal, encode_bundle, read_bundle
from rulelife.serving.publish import publish_rules

WHERE = Rule(id="order_tracking.where", intent="order_tracking", patterns=["where is my order"], owner="ds")
HOURS = Rule(id="faq.hours", intent="faq", patterns=["opening hours"], owner="ds")
MANY = Rule(id="faq.many", intent="faq", owner="ds",
            patterns=["alpha one", "beta two", "gamma three", "delta four", "epsilon five", "zeta six", "eta seven"])


def _point(store: BundleStore, number: int, checksum: str) -> None:
    """Move CURRENT as a publish does, without the publisher's own verification."""
    pointer = {"number": number, "file": store.path_of(number).name, "checksum": checksum}
    atomic_write(store.current_file, json.dumps(pointer).encode() + b"\n")


def test_an_equal_content_publish_serves_its_number_with_the_matcher_already_loaded(tmp_path):
    store = BundleStore(tmp_path)
    publish_rules(store, [WHERE])
    clf = RuleClassifier.from_store(tmp_path)
    loaded = clf.bundle.matcher
    data, header = encode_bundle([WHERE], 2)  # a republish that changed nothing but the number
    atomic_write(store.path_of(2), data)
    _point(store, 2, header["checksum"])

    assert clf.refresh()
    assert clf.bundle_version == 2 and clf.bundle.matcher is loaded
    decision = clf.decide("where is my order?", query_id="q-1")
    assert (decision.match.rule_id, decision.bundle_version, decision.match.bundle_version) == (
        "order_tracking.where", 2, 2)


def test_a_header_claiming_the_served_content_is_refused_not_trusted(tmp_path):
    store = BundleStore(tmp_path)
    publish_rules(store, [WHERE])
    clf = RuleClassifier.from_store(tmp_path)
    # Bundle 2 holds other rules but names bundle 1's content hash, its checksum recomputed
    # as anyone able to write the folder could.
    data, header = encode_bundle([WHERE, HOURS], 2)
    payload = data.split(b"\n", 2)[2]
    header["content_hash"] = clf.bundle.content_hash
    front = header["rules_bytes"] + header.get("lexicon_bytes", 0)
    _seal(header, payload[:front], payload[front:])
    atomic_write(store.path_of(2), bundle_module.MAGIC + json.dumps(header, sort_keys=True).encode() + b"\n" + payload)
    _point(store, 2, header["checksum"])

    assert not clf.refresh()
    assert "claims a content hash its rules and lexicon do not have" in clf.health().last_error
    assert clf.bundle_version == 1
    assert clf.classify("opening hours") is None  # bundle 2's rule is not served, under any number
    with pytest.raises(BundleIntegrityError, match="claims a content hash"):
        read_bundle(store.path_of(2))


def test_a_state_written_in_slices_loads_whole(tmp_path, monkeypatch):
    monkeypatch.setattr(bundle_module, "_SLICE", 2)  # 7 keys: 4 slices of each key column
    rules = [compile_rule(WHERE), compile_rule(MANY)]
    state = Matcher(rules).state()
    states = (state[:-1] + ((),), None)
    stream = _dump_state(states)
    unpickler = pickle.Unpickler(__import__("io").BytesIO(stream))
    skeleton, plan = unpickler.load(), unpickler.load()
    assert skeleton[0][7] == [] and [7, 4] in [step[1:] for step in plan]  # the lengths column, in 4 slices
    assert _load_state(stream) == states

    bundle, _ = BundleStore(tmp_path).build([WHERE, MANY])
    reloaded = read_bundle(bundle.path)
    for phrase in ("where is my order", *MANY.patterns):
        assert reloaded.matcher.match(f"so {phrase} now").rule_id == Matcher(rules).match(phrase).rule_id


def test_a_slice_plan_naming_no_emptied_list_is_refused():
    pair = pickle.dumps((("tag", ["kept"]), None), protocol=5)
    stream = pair + pickle.dumps([[0, 1, 1]], protocol=5) + pickle.dumps(["x"], protocol=5)
    with pytest.raises(ValueError, match="names no emptied list"):
        _load_state(stream)


def test_a_bundle_of_the_format_before_slices_loads_from_its_state(tmp_path, monkeypatch):
    with monkeypatch.context() as patch:  # written as the rulelife before slices wrote it: one pickle
        patch.setattr(bundle_module, "_AUTOMATON_FORMAT", bundle_module._UNSLICED_FORMAT)
        bundle, _ = BundleStore(tmp_path).build([WHERE, HOURS])
    assert BundleStore.peek_header(bundle.path)["automaton_format"] == bundle_module._UNSLICED_FORMAT
    reloaded = read_bundle(bundle.path)
    assert reloaded.matcher._rules is None  # from its compiled state, not rebuilt from the rules
    assert reloaded.matcher.match("opening hours?").rule_id == "faq.hours"


def test_a_reload_works_out_the_locales_already_seen_before_it_serves(tmp_path):
    store = BundleStore(tmp_path)
    publish_rules(store, [WHERE])
    clf = RuleClassifier.from_store(tmp_path)
    for locale in ("en-US", "fr-FR", None):
        clf.classify("hello", locale=locale)
    publish_rules(store, [WHERE, HOURS])

    assert clf.refresh()
    assert list(clf.bundle.matcher._locale_cache) == ["en-US", "fr-FR", None]  # before any query of bundle 2
    assert clf.classify("opening hours", locale="fr-FR").bundle_version == 2
