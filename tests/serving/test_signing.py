"""Signed bundles: the runtime serves only what the publisher's key signed; the
compiled-state loader accepts nothing but what rulelife writes."""

from __future__ import annotations

import json
import logging
import pickle

import pytest
from typer.testing import CliRunner

from rulelife import RuleClassifier
from rulelife.cli import app
from rulelife.errors import BundleError, BundleIntegrityError, ConfigError
from rulelife.rules.definition import Rule
from rulelife.serving.bundle import BundleStore, _seal, encode_bundle, read_bundle
from rulelife.serving.publish import publish_rules
from rulelife.serving.signing import generate_keys, load_private_key, load_public_key

WHERE = Rule(id="order_tracking.where", intent="order_tracking", patterns=["where is my order"], owner="ds")
GREETING = Rule(id="chitchat.greeting", intent="chitchat", patterns=["hello"], owner="ds")
REFUND = "transfer my refund to account"


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """Two key pairs: the publisher's and someone else's."""
    ours = generate_keys(tmp_path_factory.mktemp("ours"))
    theirs = generate_keys(tmp_path_factory.mktemp("theirs"))
    return {"private": load_private_key(ours[0]), "public": ours[1],
            "other_private": load_private_key(theirs[0]), "other_public": theirs[1]}


def _parts(data: bytes):
    """(magic line, header, readable part, compiled state pickle, automaton node data) of a bundle file's bytes."""
    magic_end = data.index(b"\n") + 1
    header_end = data.index(b"\n", magic_end)
    header = json.loads(data[magic_end:header_end])
    payload = data[header_end + 1 :]
    split = header["rules_bytes"] + header.get("lexicon_bytes", 0)
    state_end = split + header["state_bytes"]
    return data[:magic_end], header, payload[:split], payload[split:state_end], payload[state_end:]


def _rewrite(path, header, front, state, nodes, magic=b"RULELIFE-BUNDLE 1\n"):
    """Write a bundle as someone who can write the folder would: sizes and checksum recomputed."""
    header = {**header, "compiled_bytes": len(state) + len(nodes), "state_bytes": len(state),
              "rules_bytes": len(front) - header.get("lexicon_bytes", 0)}
    if not nodes:
        header["automaton_chunks"] = [[], []]
    _seal(header, front, state + nodes)
    path.write_bytes(magic + json.dumps(header, sort_keys=True).encode() + b"\n" + front + state + nodes)
    return header["checksum"]


def _repoint(store, checksum):
    pointer = json.loads(store.current_file.read_text())
    store.current_file.write_text(json.dumps({**pointer, "checksum": checksum}))


def _forge_extra_pattern(store, number):
    """Issue 15, item 1: re-encode bundle ``number`` with one extra chitchat pattern, checksum recomputed."""
    bundle = store.load(number)
    forged = [r._replace(patterns=(*r.patterns, REFUND)) if r.id == "chitchat.greeting" else r for r in bundle.rules]
    data, header = encode_bundle(forged, number)
    bundle.path.write_bytes(data)
    _repoint(store, header["checksum"])
    return header


def test_keygen_writes_a_private_key_only_its_owner_reads_and_never_overwrites(tmp_path):
    result = CliRunner().invoke(app, ["bundle", "keygen", "--out", str(tmp_path / "keys"), "--json"])
    assert result.exit_code == 0, result.output
    written = json.loads(result.output)
    assert (tmp_path / "keys" / "bundle-signing.key").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "keys" / "bundle-signing.pub").stat().st_mode & 0o777 == 0o644
    assert len(written["fingerprint"]) == 16
    again = CliRunner().invoke(app, ["bundle", "keygen", "--out", str(tmp_path / "keys")])
    assert again.exit_code != 0 and "never overwritten" in again.output


def test_a_signed_bundle_is_served_and_says_who_signed_it(tmp_path, keys):
    store = BundleStore(tmp_path, signing_key=keys["private"])
    bundle = publish_rules(store, [WHERE, GREETING]).bundle
    clf = RuleClassifier.from_store(tmp_path, public_key=keys["public"])
    assert clf.classify("where is my order", locale="en").rule_id == "order_tracking.where"
    assert clf.health().ok and bundle.summary()["signed_by"] == clf.bundle.signing_key is not None


def test_a_forged_bundle_with_a_recomputed_checksum_is_refused_when_a_key_is_configured(tmp_path, keys):
    store = BundleStore(tmp_path, signing_key=keys["private"])
    publish_rules(store, [WHERE, GREETING])
    clf = RuleClassifier.from_store(tmp_path, public_key=keys["public"])
    unkeyed = RuleClassifier.from_store(tmp_path)
    publish_rules(store, [WHERE, GREETING, Rule(id="faq.hours", intent="faq", patterns=["opening hours"],
                                                   owner="ds")])
    _forge_extra_pattern(store, 2)

    assert not clf.refresh()
    assert "is not signed" in clf.last_error and not clf.health().ok
    assert clf.bundle_version == 1 and clf.classify(REFUND, locale="en") is None  # the last good one serves
    # What the checksum alone does not stop: without a key the forgery is served.
    assert unkeyed.refresh() and unkeyed.classify(REFUND, locale="en").intent == "chitchat"


def test_a_forged_bundle_keeping_the_old_signature_fails_verification(tmp_path, keys):
    store = BundleStore(tmp_path, signing_key=keys["private"])
    signed = publish_rules(store, [WHERE, GREETING]).bundle
    old = _parts(signed.path.read_bytes())[1]
    forged = [r._replace(patterns=(*r.patterns, REFUND)) if r.id == "chitchat.greeting" else r for r in signed.rules]
    magic, header, front, state, nodes = _parts(encode_bundle(forged, 1)[0])
    header |= {"signature": old["signature"], "signing_key": old["signing_key"]}
    _repoint(store, _rewrite(signed.path, header, front, state, nodes, magic))
    with pytest.raises(BundleIntegrityError, match="does not verify"):
        BundleStore(tmp_path, public_key=load_public_key(keys["public"])).current()


def test_the_signature_covers_the_header(tmp_path, keys):
    store = BundleStore(tmp_path, signing_key=keys["private"])
    bundle = publish_rules(store, [WHERE]).bundle
    magic, header, front, state, nodes = _parts(bundle.path.read_bytes())
    header["serving"] = {"shadow_rate": 0.0, "max_text_length": 4096}  # stop the shadow sample
    _repoint(store, _rewrite(bundle.path, header, front, state, nodes, magic))
    read_bundle(bundle.path)  # the checksum alone is satisfied ...
    with pytest.raises(BundleIntegrityError, match="does not verify"):  # ... the signature is not
        read_bundle(bundle.path, public_key=load_public_key(keys["public"]))


def test_a_bundle_signed_with_another_key_is_refused_and_named(tmp_path, keys):
    publish_rules(BundleStore(tmp_path, signing_key=keys["other_private"]), [WHERE])
    with pytest.raises(BundleError, match="signed with key .* not with the configured key"):
        RuleClassifier.from_store(tmp_path, public_key=keys["public"])


def test_an_unsigned_bundle_is_refused_at_start_up_and_the_signed_one_before_it_serves(tmp_path, keys, monkeypatch):
    publish_rules(BundleStore(tmp_path, signing_key=keys["private"]), [WHERE])
    publish_rules(BundleStore(tmp_path), [WHERE, GREETING])  # a publisher without the key
    monkeypatch.setenv("RULELIFE_BUNDLE_PUBLIC_KEY", str(keys["public"]))
    clf = RuleClassifier.from_store(tmp_path)  # the key from the environment
    assert clf.bundle_version == 1
    health = clf.health()
    assert not health.serving_current and "is not signed" in health.last_error


def test_configuring_a_key_makes_the_next_publish_a_signed_bundle(tmp_path, keys):
    store = BundleStore(tmp_path)
    first = publish_rules(store, [WHERE]).bundle
    result = publish_rules(BundleStore(tmp_path, signing_key=keys["private"]), [WHERE])
    second, new = result.bundle, result.published
    assert new and (first.signing_key, second.number) == (None, 2) and second.signing_key is not None


def test_a_public_key_that_is_not_one_is_a_clear_error(tmp_path):
    (tmp_path / "key.pub").write_text("not a key")
    with pytest.raises(ConfigError, match="not a PEM public key"):
        RuleClassifier(tmp_path, public_key=tmp_path / "key.pub")
    with pytest.raises(ConfigError, match="bundle keygen"):
        load_private_key(tmp_path / "missing.key")


class _RunsCommand:
    """Pickles as a call of os.system: what a hostile compiled state would hold."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        import os

        return os.system, (self.command,)


def test_a_compiled_state_naming_a_foreign_global_is_refused_loudly_and_never_run(tmp_path, caplog):
    store = BundleStore(tmp_path)
    publish_rules(store, [WHERE])
    bundle = publish_rules(store, [WHERE, GREETING]).bundle
    marker = tmp_path / "ran"
    magic, header, front, _, _ = _parts(bundle.path.read_bytes())
    hostile = pickle.dumps((_RunsCommand(f"touch {marker}"), None), protocol=5)
    _repoint(store, _rewrite(bundle.path, header, front, hostile, b"", magic))

    # A runtime starting on it loads it whole: refused, and the last good bundle serves.
    with caplog.at_level(logging.ERROR, logger="rulelife.serving.bundle"):
        clf = RuleClassifier.from_store(tmp_path)
    assert not marker.exists()
    assert "names the global posix.system" in clf.health().last_error
    assert "tampered with" in caplog.text
    assert clf.bundle_version == 1


def test_a_refresh_that_derives_its_matcher_never_decodes_the_compiled_state(tmp_path):
    """A publish of a few rules' change is served from the readable rules the checksum covers
    (rulelife.serving.lineage): a hostile compiled state is never read, let alone run."""
    store = BundleStore(tmp_path)
    publish_rules(store, [WHERE])
    clf = RuleClassifier.from_store(tmp_path)
    bundle = publish_rules(store, [WHERE, GREETING]).bundle
    marker = tmp_path / "ran"
    magic, header, front, _, _ = _parts(bundle.path.read_bytes())
    hostile = pickle.dumps((_RunsCommand(f"touch {marker}"), None), protocol=5)
    _repoint(store, _rewrite(bundle.path, header, front, hostile, b"", magic))

    assert clf.refresh()
    assert not marker.exists()
    assert clf.bundle_version == 2
    assert clf.classify("hello there").rule_id == GREETING.id  # the readable rules, not the forged state
    with pytest.raises(BundleIntegrityError, match="names the global posix.system"):
        read_bundle(bundle.path)  # loaded whole, it is refused


def test_a_compiled_state_of_the_wrong_shape_is_refused_not_rebuilt(tmp_path):
    bundle, _ = BundleStore(tmp_path).build([WHERE])
    magic, header, front, state, nodes = _parts(bundle.path.read_bytes())
    serving, shadow = pickle.loads(state)
    forged = pickle.dumps((serving[:7] + ([*serving[7], 9], *serving[8:]), shadow), protocol=5)  # a length too many
    _rewrite(bundle.path, header, front, forged, nodes, magic)
    with pytest.raises(BundleIntegrityError, match="is not a state rulelife wrote"):
        read_bundle(bundle.path)


def test_the_workspace_key_signs_what_publish_builds(tmp_path, keys):
    from rulelife.config import Workspace
    from rulelife.serving.signing import generate_keys as keygen

    private, public = keygen(tmp_path / "keys")
    ws = Workspace.create(tmp_path / "ws", settings={"bundle_signing_key": str(private),
                                                     "bundle_public_key": str(public)})
    bundle = publish_rules(BundleStore.for_workspace(ws), [WHERE]).bundle
    assert bundle.signing_key is not None
    read_bundle(bundle.path, public_key=load_public_key(public))
    with pytest.raises(BundleIntegrityError, match="not with the configured key"):
        read_bundle(bundle.path, public_key=load_public_key(keys["public"]))


def test_the_signing_key_is_read_only_to_build_so_reading_bundles_never_needs_it(tmp_path):
    from rulelife.config import Workspace

    ws = Workspace.create(tmp_path / "ws", settings={"bundle_signing_key": "keys/missing.key"})
    publish_rules(BundleStore(ws.bundle_dir), [WHERE])
    store = BundleStore.for_workspace(ws)
    assert store.current().number == 1  # `bundle show`, `list`, `rollback` work without the private key
    with pytest.raises(ConfigError, match=r"no bundle signing key at .*missing.key.*bundle keygen"):
        store.build([WHERE, GREETING])
