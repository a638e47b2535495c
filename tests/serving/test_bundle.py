"""Bundles: immutable numbered artifacts, atomic CURRENT, checksums, diff, rollback."""

from __future__ import annotations

import json
import logging
import os

import pytest

from rulelife._files import is_temp
from rulelife.errors import BundleError, BundleIntegrityError
from rulelife.rules.definition import Rule
from rulelife.rules.normalize import NORMALIZATION_VERSION
from rulelife.serving.bundle import BundleStore, diff_bundles, read_bundle
from rulelife.serving.publish import publish_rules


def rule(rule_id: str, *patterns: str, **extra) -> Rule:
    return Rule(id=rule_id, intent=rule_id.split(".")[0], patterns=list(patterns), owner="ds", **extra)


WHERE = rule("order_tracking.where", "where is my order")
HOURS = rule("faq.hours", "opening hours")


def test_build_writes_numbered_bundle_with_metadata(tmp_path):
    store = BundleStore(tmp_path)
    bundle, new = store.build([WHERE, HOURS])
    assert new and bundle.number == 1
    assert bundle.path.name == "bundle-000001.rlb"
    assert [r.id for r in bundle.rules] == ["faq.hours", "order_tracking.where"]
    assert bundle.normalization_version == NORMALIZATION_VERSION
    assert bundle.summary()["patterns"] == 2
    assert bundle.matcher.match("where is my ORDER", "en-US").rule_id == "order_tracking.where"


def test_same_content_is_not_built_twice_and_numbers_increase(tmp_path):
    store = BundleStore(tmp_path)
    first, _ = store.build([WHERE])
    again, new = store.build([WHERE])
    assert (again.number, new) == (1, False)
    second, new = store.build([WHERE, HOURS])
    assert (second.number, new) == (2, True)
    assert first.content_hash != second.content_hash
    assert store.numbers() == [1, 2]


def test_publish_points_current_and_rollback_walks_back(tmp_path):
    store = BundleStore(tmp_path)
    for rules in ([WHERE], [WHERE, HOURS], [HOURS]):
        bundle, _ = store.build(rules)
        store.publish(bundle.number, actor="ana")
    assert store.current().number == 3
    assert store.rollback(actor="ana").number == 2
    assert store.rollback(actor="ana").number == 1
    with pytest.raises(BundleError, match="nothing to roll back"):
        store.rollback()
    assert store.rollback(3).number == 3
    assert [e["action"] for e in store.history()] == ["publish"] * 3 + ["rollback"] * 3


def test_bundles_and_current_are_readable_by_a_runtime_under_another_user(tmp_path):
    store = BundleStore(tmp_path)
    old = os.umask(0o077)  # even the strictest umask of the publishing user
    try:
        publish_rules(store, [WHERE])
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in (store.path_of(1), store.current_file)}
    assert modes == {"bundle-000001.rlb": 0o644, "CURRENT": 0o644}


def test_a_killed_publish_changes_nothing_and_the_next_publish_removes_its_temps(tmp_path, kill_mid_write, caplog):
    store = BundleStore(tmp_path)
    publish_rules(store, [WHERE])
    kill_mid_write(store.path_of(2), "RULELIFE-BUNDLE 1\n{\"number\": 2")
    kill_mid_write(store.current_file, '{"number": 2, "fi')
    temps = sorted(p.name for p in tmp_path.iterdir() if is_temp(p.name))
    assert [t.split(".")[1] for t in temps] == ["CURRENT", "bundle-000002"]
    assert store.numbers() == [1] and store.current().number == 1  # the runtime still loads bundle 1
    with caplog.at_level(logging.WARNING, logger="rulelife.serving.bundle"):
        result = publish_rules(store, [WHERE, HOURS])
        bundle, published = result.bundle, result.published
    assert (bundle.number, published) == (2, True)
    assert f"removed 2 temporary file(s) left in {tmp_path}" in caplog.text
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".lock", "CURRENT", "bundle-000001.rlb", "bundle-000002.rlb", "history.jsonl"]


def test_publish_rules_skips_when_current_already(tmp_path):
    store = BundleStore(tmp_path)
    changed = publish_rules(store, [WHERE]).published
    assert changed
    changed = publish_rules(store, [WHERE]).published
    assert not changed
    assert len(store.history()) == 1


def test_diff_names_added_removed_and_changed(tmp_path):
    store = BundleStore(tmp_path)
    a, _ = store.build([WHERE, HOURS])
    edited = rule("order_tracking.where", "where is my order", "track my order")
    promo = rule("promotion.sale", "summer sale")
    b, _ = store.build([edited, promo])
    diff = diff_bundles(a, b)
    assert diff.added == ("promotion.sale",)
    assert diff.removed == ("faq.hours",)
    assert diff.changed == (("order_tracking.where", WHERE.version, edited.version),)


def _corrupt(path, how):
    data = path.read_bytes()
    if how == "truncate":
        path.write_bytes(data[:-10])
    elif how == "flip":
        i = data.index(b"where is my order")
        path.write_bytes(data[:i] + b"WHERE" + data[i + 5 :])
    elif how == "header":
        path.write_bytes(data.replace(b'"number": 1', b'"number": 7'))
    elif how == "garbage":
        path.write_bytes(b"hello")


@pytest.mark.parametrize("how", ["truncate", "flip", "header", "garbage"])
def test_tampered_or_truncated_bundle_is_refused(tmp_path, how):
    store = BundleStore(tmp_path)
    bundle, _ = store.build([WHERE])
    store.publish(bundle.number)
    _corrupt(bundle.path, how)
    with pytest.raises(BundleIntegrityError):
        read_bundle(bundle.path)
    with pytest.raises(BundleIntegrityError):
        store.current()


def test_current_must_name_the_file_it_checksummed(tmp_path):
    store = BundleStore(tmp_path)
    bundle, _ = store.build([WHERE])
    store.publish(bundle.number)
    pointer = json.loads(store.current_file.read_text())
    pointer["checksum"] = "0" * 64
    store.current_file.write_text(json.dumps(pointer))
    with pytest.raises(BundleIntegrityError, match="not the bundle CURRENT points to"):
        store.current()


def test_unreadable_automaton_is_rebuilt_from_the_rules(tmp_path, monkeypatch):
    store = BundleStore(tmp_path)
    bundle, _ = store.build([WHERE, HOURS])
    monkeypatch.setattr("rulelife.serving.bundle._AUTOMATON_FORMAT", "pyahocorasick-99-pickle5")
    reloaded = read_bundle(bundle.path)
    assert reloaded.matcher.match("opening hours?", "en-US").rule_id == "faq.hours"


def test_no_published_bundle_says_what_to_run(tmp_path):
    with pytest.raises(BundleError, match="bundle publish"):
        BundleStore(tmp_path).current()


def test_loading_unknown_number_lists_known(tmp_path):
    store = BundleStore(tmp_path)
    store.build([WHERE])
    with pytest.raises(BundleError, match=r"no bundle 5 .*bundles: 1"):
        store.load(5)


def test_a_large_bundle_is_hashed_while_it_is_read_and_a_flipped_node_byte_is_caught(tmp_path, monkeypatch):
    from rulelife.rules.lexicon import Lexicon, LexiconEntry
    from rulelife.rules.matcher import compile_rule

    monkeypatch.setattr("rulelife.serving.bundle._OVERLAP_FROM", 0)  # every bundle takes the threaded path
    lexicon = Lexicon(owner="trust", phrases=[LexiconEntry(phrase="stolen", intent="card_stolen")])
    shadow = compile_rule(rule("faq.late", "late order"), shadow=True)
    bundle, _ = BundleStore(tmp_path).build([WHERE, HOURS, shadow], lexicon)
    again = read_bundle(bundle.path)
    assert again.matcher.match("where is my order", "en").rule_id == "order_tracking.where"
    assert again.matcher.shadow_fired("a late order", "en") == ("faq.late",)
    assert again.matcher.match("where is my order, it was stolen", "en") is None
    data = bytearray(bundle.path.read_bytes())
    data[-3] ^= 1  # inside the shadow automaton's node data
    bundle.path.write_bytes(bytes(data))
    with pytest.raises(BundleIntegrityError, match="fails its checksum"):
        read_bundle(bundle.path)


def test_a_bundle_without_rules_loads_and_matches_nothing(tmp_path):
    bundle, _ = BundleStore(tmp_path).build([])
    assert read_bundle(bundle.path).matcher.match("where is my order", "en") is None
