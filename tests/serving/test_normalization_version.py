"""A bundle compiled under another normalisation is refused by name, and publishing rebuilds it."""

from __future__ import annotations

import pytest

from rulelife.errors import BundleError
from rulelife.rules.definition import Rule
from rulelife.rules.normalize import NORMALIZATION_VERSION
from rulelife.serving import bundle as bundle_module
from rulelife.serving.bundle import BundleStore, read_bundle
from rulelife.serving.publish import publish_rules

WHERE = Rule(id="order_tracking.where", intent="order_tracking", patterns=["where is my order"], owner="ds")


def test_an_old_normalisation_bundle_is_refused_and_a_publish_rebuilds_it(tmp_path, monkeypatch):
    store = BundleStore(tmp_path)
    with monkeypatch.context() as patch:  # a bundle written by the previous release
        patch.setattr(bundle_module, "NORMALIZATION_VERSION", NORMALIZATION_VERSION - 1)
        old = publish_rules(store, [WHERE]).bundle
    with pytest.raises(BundleError, match=(f"bundle-000001.rlb was compiled with normalisation "
                                           f"v{NORMALIZATION_VERSION - 1}, this rulelife uses "
                                           f"v{NORMALIZATION_VERSION}; rebuild it with `rulelife bundle publish`")):
        read_bundle(old.path)

    # The same rules under this normalisation are new content: publishing builds bundle 2.
    result = publish_rules(store, [WHERE])
    rebuilt, published = result.bundle, result.published
    assert published and rebuilt.number == 2 and store.current().number == 2
    assert rebuilt.matcher.match("where is my \u043erder", "en-US").rule_id == "order_tracking.where"
