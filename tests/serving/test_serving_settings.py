"""Serving settings travel in the bundle: the runtime serves the workspace's shadow rate and text bound."""

from __future__ import annotations

import json
import logging

import pytest

from rulelife import RuleClassifier
from rulelife.config import Workspace
from rulelife.errors import BundleIntegrityError
from rulelife.rules.definition import Rule
from rulelife.serving import publish
from rulelife.serving.bundle import MAGIC, BundleStore, ServingSettings, _checksum, read_bundle
from rulelife.serving.publish import publish_rules
from rulelife.store import registry

SHIPPING = """\
id: faq.shipping
intent: faq
patterns: ["shipping cost"]
locales: ["*"]
owner: ds
description: Shipping cost.
"""


@pytest.fixture
def workspace(tmp_path, db_url, monkeypatch):
    url, schema = db_url
    if schema:
        monkeypatch.setenv("RULELIFE_DB_SCHEMA", schema)
    ws = Workspace.create(tmp_path / "ws", db_url=url, settings={"shadow_rate": 1.0, "max_text_length": 40})
    (ws.rules_dir / "faq").mkdir(parents=True)
    (ws.rules_dir / "faq" / "shipping.yaml").write_text(SHIPPING)
    registry.sync_workspace(ws, actor="ana")
    publish.set_state(ws, "faq.shipping", "active", actor="ana", reason="setup")
    return ws


def test_the_runtime_serves_the_workspace_settings_without_a_copy(workspace):
    clf = RuleClassifier.from_store(workspace.bundle_dir)
    assert clf.bundle.serving == ServingSettings(1.0, 40)
    assert (clf.shadow_rate, clf.max_text_length) == (1.0, 40)
    # Rate 1.0: every rule answer is in the shadow sample.
    assert all(clf.classify("shipping cost?", query_id=f"q-{i}").shadow for i in range(50))
    at_bound = "shipping cost" + " please" * 3 + "!" * 6  # 40 characters
    assert len(at_bound) == 40 and clf.classify(at_bound).rule_id == "faq.shipping"
    assert clf.classify(at_bound + "!") is None  # 41: the model answers
    decision = clf.decide(at_bound + "!")
    assert decision.match is None and decision.bundle_version == clf.bundle_version


def test_a_changed_setting_publishes_a_new_bundle_the_runtime_picks_up(workspace):
    clf = RuleClassifier.from_store(workspace.bundle_dir)
    first = clf.bundle_version
    assert not publish.publish_active(workspace, actor="ana").published  # unchanged: nothing moves
    changed = Workspace.load(workspace.root, shadow_rate=0.0)
    result = publish.publish_active(changed, actor="ana")
    assert result.built and result.published and result.bundle.number == first + 1
    assert clf.refresh() and clf.shadow_rate == 0.0
    assert not any(clf.classify("shipping cost", query_id=f"q-{i}").shadow for i in range(50))


def test_a_constructor_argument_overrides_and_says_so_once(workspace, caplog):
    caplog.set_level(logging.WARNING, logger="rulelife.serving.runtime")
    clf = RuleClassifier.from_store(workspace.bundle_dir, shadow_rate=0.0, max_text_length=1000)
    assert (clf.shadow_rate, clf.max_text_length) == (0.0, 1000)
    assert clf.classify("shipping cost" + " " * 100).rule_id == "faq.shipping"
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert "shadow_rate=0.0 given to RuleClassifier overrides the workspace's 1.0" in messages[0]
    assert "max_text_length=1000" in messages[1]
    # A new bundle with the same settings: the override stands, nothing new to say.
    (workspace.rules_dir / "faq" / "shipping.yaml").write_text(SHIPPING.replace('"shipping cost"', '"shipping cost", "open"'))
    registry.sync_workspace(workspace, actor="ana")
    publish.set_state(workspace, "faq.shipping", "active", actor="ana", reason="new pattern")
    assert clf.refresh() and clf.shadow_rate == 0.0
    assert len(caplog.records) == 2


def test_a_bundle_without_settings_serves_the_defaults(tmp_path):
    store = BundleStore(tmp_path)
    publish_rules(store, [Rule(id="faq.shipping", intent="faq", patterns=["shipping cost"], owner="ds")])
    clf = RuleClassifier.from_store(tmp_path)
    assert clf.bundle.serving is None
    assert (clf.shadow_rate, clf.max_text_length) == (0.05, 4096)


def test_the_batch_calls_apply_the_bound_as_classify_does(workspace):
    clf = RuleClassifier.from_store(workspace.bundle_dir)
    texts = ["shipping cost", "shipping cost" + "!" * 40, None, "hello"]
    batch = clf.classify_many(texts, None, [f"q-{i}" for i in range(4)])
    assert [m is not None for m in batch] == [True, False, False, False]
    decisions = clf.decide_many(texts, None, [f"q-{i}" for i in range(4)])
    assert [d.match is not None for d in decisions] == [True, False, False, False]


@pytest.mark.parametrize("serving", [{"shadow_rate": 5}, {"shadow_rate": "0.2"}, {"max_text_length": 0}, []])
def test_a_bundle_with_bad_settings_is_refused(tmp_path, serving):
    store = BundleStore(tmp_path)
    bundle, _ = store.build([Rule(id="faq.shipping", intent="faq", patterns=["shipping cost"], owner="ds")])
    data = bundle.path.read_bytes()
    end = data.index(b"\n", len(MAGIC))
    header, payload = json.loads(data[len(MAGIC):end]), data[end + 1:]
    header["serving"] = serving
    header["checksum"] = _checksum(header, payload)
    bundle.path.write_bytes(MAGIC + json.dumps(header).encode() + b"\n" + payload)
    with pytest.raises(BundleIntegrityError, match="damaged header .*serving"):
        read_bundle(bundle.path)


def test_a_bundle_without_settings_serves_the_workspace_defaults():
    from rulelife.config import Settings

    assert ServingSettings() == ServingSettings.from_settings(Settings())
