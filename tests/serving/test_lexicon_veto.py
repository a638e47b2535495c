"""The safety lexicon in the bundle, the matcher, the runtime, replay and the log.

Golden message: "someone stole my wallet with my card in it, and now my card
is blocked". A rule pin_blocked.blocked (patterns [blocked]) answers it unless
the lexicon holds a phrase of another intent that counts on word boundaries:
"stolen" does not ("stole" != "stolen"), "stole" does.
"""

from __future__ import annotations

import json

import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from rulelife import RuleClassifier
from rulelife.cli import app
from rulelife.config import Workspace
from rulelife.errors import BundleIntegrityError
from rulelife.mining.lexicon import lexicon_matcher
from rulelife.querylog import LogReport, iter_log
from rulelife.querylog.schema import coerce, parse_reason
from rulelife.rules.definition import Rule
from rulelife.rules.lexicon import Lexicon, LexiconEntry, lexicon_path
from rulelife.rules.matcher import BACKENDS, LexiconVeto, Matcher, compile_lexicon, compile_rule
from rulelife.serving.bundle import MAGIC, MAGIC_LEXICON, BundleStore, read_bundle
from rulelife.serving.publish import publish_active, publish_rules
from rulelife.serving.replay import replay
from rulelife.serving.runtime import format_lexicon_veto, parse_lexicon_veto
from rulelife.store import registry
from rulelife.store.registry import sync_workspace as sync

MESSAGE = "someone stole my wallet with my card in it, and now my card is blocked"


def rule(rule_id: str, *patterns: str, **extra) -> Rule:
    return Rule(id=rule_id, intent=rule_id.split(".")[0], patterns=list(patterns), owner="ds", **extra)


def lexicon(*entries: tuple[str, str] | dict) -> Lexicon:
    phrases = [LexiconEntry(phrase=e[0], intent=e[1]) if isinstance(e, tuple) else LexiconEntry(**e) for e in entries]
    return Lexicon(owner="trust", phrases=phrases)


BLOCKED = rule("pin_blocked.blocked", "blocked")
# A rule of the safety intent itself, outranked by BLOCKED on priority.
STOLEN_CARD = rule("card_stolen.my_card", "my card")
STOLEN = lexicon(("stolen", "card_stolen"))
STOLE = lexicon(("stole", "card_stolen"))


def test_stolen_does_not_veto_stole_on_word_boundaries():
    matcher = Matcher([compile_rule(BLOCKED)], lexicon=compile_lexicon(STOLEN))
    assert matcher.match(MESSAGE, "en").rule_id == "pin_blocked.blocked"
    assert matcher.match_and_veto_normalized(MESSAGE, "en")[1] is None
    hit = [h for h in matcher.explain("my card was stolen", "en").hits if h.kind == "lexicon"]
    assert [(h.phrase, h.counted) for h in hit] == [("stolen", True)]


def test_stole_vetoes_the_rule_and_the_message_goes_to_the_model():
    matcher = Matcher([compile_rule(BLOCKED)], lexicon=compile_lexicon(STOLE))
    version = compile_rule(BLOCKED).version
    assert matcher.match(MESSAGE, "en") is None
    assert matcher.match_and_veto_normalized(MESSAGE, "en") == (
        None, LexiconVeto("pin_blocked.blocked", version, "stole", "card_stolen"))
    assert matcher.match("my card is blocked", "en").rule_id == "pin_blocked.blocked"
    assert matcher.match_and_veto_normalized("my card is blocked", "en")[1] is None
    why = matcher.explain(MESSAGE, "en")
    assert why.winner is None and why.veto == why.lexicon_vetoed[0]
    assert why.reason == ("the message goes to the model: pin_blocked.blocked was vetoed by the safety lexicon "
                          "phrase 'stole' (card_stolen)")
    assert why.to_dict()["veto"] == {"rule_id": "pin_blocked.blocked", "rule_version": version,
                                     "phrase": "stole", "intent": "card_stolen"}


def test_a_rule_of_the_safety_intent_itself_is_never_vetoed_by_its_phrases():
    matcher = Matcher([compile_rule(BLOCKED), compile_rule(STOLEN_CARD)], lexicon=compile_lexicon(STOLE))
    # Without the lexicon "my card" (7 characters) ties "blocked" (7) and wins by id.
    plain = Matcher([compile_rule(BLOCKED), compile_rule(STOLEN_CARD)])
    assert plain.match(MESSAGE, "en").fired == ("card_stolen.my_card", "pin_blocked.blocked")
    result, veto = matcher.match_and_veto_normalized(MESSAGE, "en")
    assert (result.rule_id, result.fired, veto) == ("card_stolen.my_card", ("card_stolen.my_card",), None)
    # The same, with BLOCKED the would-be winner: it is stopped and named; the safety rule answers.
    first = Matcher([compile_rule(rule("pin_blocked.blocked", "blocked", priority=5)), compile_rule(STOLEN_CARD)],
                    lexicon=compile_lexicon(STOLE))
    result, veto = first.match_and_veto_normalized(MESSAGE, "en")
    assert result.rule_id == "card_stolen.my_card" and veto.rule_id == "pin_blocked.blocked"
    explained = first.explain(MESSAGE, "en")
    assert "card_stolen.my_card is the only rule that fired" in explained.reason
    assert "pin_blocked.blocked was vetoed by the safety lexicon phrase 'stole' (card_stolen)" in explained.reason


def test_lexicon_locales_and_match_mode_apply():
    entries = lexicon({"phrase": "stole", "intent": "card_stolen", "locales": ["en"]},
                      {"phrase": "盗まれ", "intent": "card_stolen", "locales": ["ja-JP"], "match": "substring"})
    matcher = Matcher([compile_rule(rule("pin_blocked.any", "blocked", "ブロック", locales=["*"], match="substring"))],
                      lexicon=compile_lexicon(entries))
    assert matcher.match(MESSAGE, "en-GB") is None  # "en" covers en-GB
    assert matcher.match(MESSAGE, "fr").rule_id == "pin_blocked.any"  # the entry is English only
    assert matcher.match("カードが盗まれてブロックされた", "ja-JP") is None
    assert matcher.match("カードがブロックされた", "ja-JP").rule_id == "pin_blocked.any"


def test_shadow_rules_are_vetoed_as_active_rules_would_be():
    matcher = Matcher([compile_rule(STOLEN_CARD), compile_rule(BLOCKED, shadow=True)], lexicon=compile_lexicon(STOLE))
    assert matcher.shadow_fired("my card is blocked", "en") == ("pin_blocked.blocked",)
    assert matcher.shadow_fired(MESSAGE, "en") == ()
    assert matcher.match(MESSAGE, "en").rule_id == "card_stolen.my_card"


def test_a_bundle_without_a_lexicon_is_the_format_it_was(tmp_path):
    store = BundleStore(tmp_path)
    plain, _ = store.build([BLOCKED])
    empty, built = store.build([BLOCKED], Lexicon(owner="trust"))
    assert not built and empty.number == plain.number  # no phrases: no lexicon
    assert plain.path.read_bytes().startswith(MAGIC)
    assert "lexicon_version" not in store.peek_header(plain.path) and plain.lexicon_version is None
    assert plain.summary()["lexicon_phrases"] == 0


def test_the_bundle_ships_the_lexicon_under_its_checksum(tmp_path, monkeypatch):
    store = BundleStore(tmp_path)
    bundle, built = store.build([BLOCKED, compile_rule(STOLEN_CARD, shadow=True)], STOLE)
    assert built and bundle.path.read_bytes().startswith(MAGIC_LEXICON)
    assert bundle.lexicon_version == STOLE.version == store.peek_header(bundle.path)["lexicon_version"]
    assert bundle.summary()["lexicon_phrases"] == 1

    def no_build(phrases):
        raise AssertionError("a bundle load must not rebuild an automaton")

    with monkeypatch.context() as patch:
        patch.setattr(Matcher, "_build", staticmethod(no_build))
        loaded = read_bundle(bundle.path)
    assert loaded.lexicon == compile_lexicon(STOLE) and loaded.matcher.match(MESSAGE, "en") is None
    assert loaded.matcher.shadow_fired(MESSAGE, "en") == ("card_stolen.my_card",)  # its own intent's phrase
    # Rebuilt from the JSON when the automaton cannot be read: the same answers.
    monkeypatch.setattr("rulelife.serving.bundle._AUTOMATON_FORMAT", "pyahocorasick-99-pickle5")
    rebuilt = read_bundle(bundle.path)
    assert rebuilt.matcher.match(MESSAGE, "en") is None and rebuilt.lexicon == loaded.lexicon
    # An edited lexicon phrase fails the checksum.
    data = bundle.path.read_bytes().replace(b'"phrase":"stole"', b'"phrase":"stolx"')
    bundle.path.write_bytes(data)
    with pytest.raises(BundleIntegrityError, match="fails its checksum"):
        read_bundle(bundle.path)


def test_a_lexicon_edit_is_new_content(tmp_path):
    store = BundleStore(tmp_path)
    first, _ = store.build([BLOCKED], STOLEN)
    same, built = store.build([BLOCKED], lexicon(("stolen", "card_stolen")))
    assert not built and same.number == first.number
    second, built = store.build([BLOCKED], STOLE)
    assert built and second.number == 2 and second.content_hash != first.content_hash


def _workspace(tmp_path, db_url) -> Workspace:
    url, schema = db_url
    ws = Workspace.create(tmp_path / "ws", db_url=url,
                          settings={"safety_intents": ["card_stolen"], **({"db_schema": schema} if schema else {})})
    (ws.rules_dir / "pin_blocked").mkdir()
    (ws.rules_dir / "pin_blocked" / "blocked.yaml").write_text(
        "id: pin_blocked.blocked\nintent: pin_blocked\npatterns: [blocked]\nowner: ds\n", encoding="utf-8")
    lexicon_path(ws.rules_dir).write_text("owner: trust\nphrases:\n  - {phrase: stolen, intent: card_stolen}\n",
                                          encoding="utf-8")
    return ws


def test_publish_compiles_the_workspace_lexicon_and_a_lexicon_edit_publishes_a_new_bundle(tmp_path, store, db_url):
    ws = _workspace(tmp_path, db_url)
    sync(ws, actor="ana", store=store)
    registry.transition(store, "pin_blocked.blocked", "active", actor="ana", reason="gate passed")
    first = publish_active(ws, actor="ana", store=store)
    assert first.published and first.bundle.lexicon_version is not None
    clf = RuleClassifier.from_store(ws.bundle_dir)
    assert clf.classify(MESSAGE, locale="en").rule_id == "pin_blocked.blocked"  # "stolen" is not "stole"
    again = publish_active(ws, actor="nightly", store=store)
    assert (again.built, again.published, again.bundle.number) == (False, False, first.bundle.number)
    lexicon_path(ws.rules_dir).write_text(
        "owner: trust\nphrases:\n  - {phrase: stolen, intent: card_stolen}\n  - {phrase: stole, intent: card_stolen}\n",
        encoding="utf-8")
    edited = publish_active(ws, actor="ana", store=store)
    assert (edited.built, edited.published, edited.bundle.number) == (True, True, first.bundle.number + 1)
    assert edited.bundle.lexicon_version != first.bundle.lexicon_version
    assert clf.refresh() and clf.classify(MESSAGE, locale="en") is None
    shown = CliRunner().invoke(app, ["--workspace", str(ws.root), "bundle", "show"])
    assert shown.exit_code == 0, shown.output
    assert f"lexicon_version: {edited.bundle.lexicon_version}" in shown.output
    assert "lexicon_phrases: 2" in shown.output
    told = CliRunner().invoke(app, ["--workspace", str(ws.root), "classify", MESSAGE, "--locale", "en", "--explain"])
    assert told.exit_code == 0, told.output
    assert ("the safety lexicon phrase 'stole' (card_stolen) vetoed pin_blocked.blocked (bundle 2): send to the "
            "model") in told.output
    assert "pin_blocked.blocked was vetoed by the safety lexicon phrase 'stole' (card_stolen)" in told.output


@pytest.fixture(scope="module", params=BACKENDS)
def classifier(tmp_path_factory, request):
    root = tmp_path_factory.mktemp("bundles")
    publish_rules(BundleStore(root), RULES, lexicon=LEXICON)
    return RuleClassifier.from_store(root, shadow_rate=0.5, matcher_backend=request.param)


def test_decide_names_the_veto_and_classify_defers(classifier):
    decision = classifier.decide(MESSAGE, locale="en", query_id="q-1")
    assert decision.match is None and classifier.classify(MESSAGE, locale="en") is None
    assert decision.veto == LexiconVeto("pin_blocked.blocked", compile_rule(BLOCKED).version, "stole", "card_stolen")
    assert classifier.explain(MESSAGE, locale="en").veto == decision.veto
    plain = classifier.decide("my card is blocked", locale="en", query_id="q-2")
    assert plain.match.rule_id == "pin_blocked.blocked" and plain.veto is None


# The property tests of matcher and runtime, with a lexicon: rules of three
# intents (one a safety intent with its own rule), a shadow rule, and phrases
# of two safety intents, one English only.
RULES = [BLOCKED, rule("faq.lost", "lost", "lost card", priority=1), rule("card_stolen.report", "report stolen"),
         compile_rule(rule("pin_blocked.pin", "pin", "blocked"), shadow=True)]
LEXICON = lexicon(("stole", "card_stolen"), ("stolen", "card_stolen"),
                  {"phrase": "fraud", "intent": "escalation", "locales": ["en"]})
_WORDS = ["my", "card", "blocked", "lost", "lost card", "stole", "stolen", "report", "fraud", "pin", "stoles", "x"]
_TEXTS = st.lists(st.sampled_from(_WORDS), max_size=6).map(" ".join) | st.none()
_LOCALES = st.sampled_from([None, "en", "en-GB", "fr"])


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(_TEXTS, _LOCALES), max_size=15))
def test_the_veto_is_what_the_lexicon_alone_says_and_every_path_agrees(classifier, rows):
    alone = Matcher([r if not isinstance(r, Rule) else compile_rule(r) for r in RULES])  # no lexicon
    phrases = lexicon_matcher(LEXICON)  # the lexicon on its own automaton, as `safety mine` counts it
    intents = {r.id: r.intent for r in alone.rules}
    texts, locales = [t for t, _ in rows], [loc for _, loc in rows]
    ids = [f"q-{i}" for i in range(len(rows))]
    decisions = classifier.decide_many(texts, locales, ids)
    assert [d.match for d in decisions] == classifier.classify_many(texts, locales, ids)
    offline = Matcher([r if not isinstance(r, Rule) else compile_rule(r) for r in RULES],
                      lexicon=compile_lexicon(LEXICON))
    for (text, locale), query_id, decision in zip(rows, ids, decisions):
        if text is None:
            assert decision == (None, 1, False, (), None)
            continue
        assert decision == classifier.decide(text, locale=locale, query_id=query_id)
        explained = classifier.explain(text, locale=locale)
        assert explained.winner == offline.match(text, locale) and explained.veto == decision.veto
        # Expected from first principles: a rule survives where every counted
        # phrase has its intent; the would-be winner is the plain winner.
        hit = phrases.match(text, locale)
        said = {LEXICON.phrases[int(i.split(".")[1])].intent for i in hit.fired} if hit else set()
        plain = alone.match(text, locale)
        survivors = [r for r in (plain.fired if plain else ()) if said <= {intents[r]}]
        assert (decision.match and decision.match.rule_id) == (survivors[0] if survivors else None)
        assert (decision.match.fired if decision.match else ()) == tuple(survivors)
        vetoed = plain is not None and plain.rule_id not in survivors
        assert (decision.veto and decision.veto.rule_id) == (plain.rule_id if vetoed else None)
        if vetoed:
            assert decision.veto.intent in said and decision.veto.intent != intents[plain.rule_id]
        shadow_alone = Matcher([compile_rule(rule("pin_blocked.pin", "pin", "blocked"))]).match(text, locale)
        expected_shadow = ("pin_blocked.pin",) if shadow_alone and said <= {"pin_blocked"} else ()
        assert decision.shadow_rules == expected_shadow


def _log(texts, locales):
    n = len(texts)
    return pd.DataFrame({
        "query_id": [f"q-{i}" for i in range(n)],
        "ts": pd.to_datetime(["2026-11-02 10:00"] * n, utc=True),
        "text": texts, "locale": locales,
        "model_intent": ["card_stolen"] * n, "model_confidence": [0.9] * n,
    })


def test_replay_fills_lexicon_veto(classifier):
    out = replay(_log([MESSAGE, "my card is blocked", "hello", "fraud lost card"], ["en", "en", "en", "en"]),
                 classifier)
    version = compile_rule(BLOCKED).version
    faq = compile_rule(RULES[1]).version
    assert out["lexicon_veto"].dtype == "string"
    assert out["lexicon_veto"].tolist() == [
        json.dumps({f"pin_blocked.blocked@{version}": "stole"}), pd.NA, pd.NA,
        json.dumps({f"faq.lost@{faq}": "fraud"})]
    assert out["rule_id"].tolist() == [pd.NA, "pin_blocked.blocked", pd.NA, pd.NA]
    # A vetoed miss names the bundle holding the vetoed rule's version.
    assert out["bundle_version"].tolist()[0] == 1 and out["model_intent"].iloc[0] == "card_stolen"


@pytest.mark.parametrize("phrase", ["stole", "a;b=c", 'say "help"', "盗まれた", "{}"])
def test_the_lexicon_veto_cell_round_trips_any_phrase(phrase):
    cell = format_lexicon_veto(LexiconVeto("pin_blocked.blocked", "0a1b", phrase, "card_stolen"))
    assert parse_lexicon_veto(cell) == [("pin_blocked.blocked", "0a1b", phrase)]
    frame, failures = coerce(pa.table({"lexicon_veto": [cell]}), "log.csv")
    assert frame["lexicon_veto"].tolist() == [cell] and parse_reason("lexicon_veto") not in failures
    assert format_lexicon_veto(None) is None


def test_a_malformed_lexicon_veto_cell_is_quarantined_with_its_reason(tmp_path):
    good = json.dumps({"pin_blocked.blocked@0a1b": "stole"})
    cells = [good, "", None, "pin_blocked.blocked=stole", "{}", '{"pin_blocked.blocked": "stole"}',
             '{"pin_blocked.blocked@0a1b": 3}', '["x"]']
    frame, failures = coerce(pa.table({"lexicon_veto": cells}), tmp_path / "log.csv")
    assert frame["lexicon_veto"].tolist()[:3] == [good, pd.NA, pd.NA]
    assert failures[parse_reason("lexicon_veto")].tolist() == [False, False, False, True, True, True, True, True]
    frame, failures = coerce(pa.table({"query_id": ["a"]}), tmp_path / "log.csv")
    assert frame["lexicon_veto"].isna().all() and not failures  # optional: absent reads as "no veto"
    log = _log(["a", "b"], ["en", "en"]).assign(lexicon_veto=[good, "not json"])
    log.to_csv(tmp_path / "2026-11-02.csv", index=False)
    report = LogReport()
    rows = pd.concat(iter_log(tmp_path / "2026-11-02.csv", quarantine_dir=tmp_path / "q", report=report))
    assert rows["query_id"].tolist() == ["q-0"] and rows["lexicon_veto"].tolist() == [good]
    assert report.reasons == {parse_reason("lexicon_veto"): 1}
    assert parse_reason("lexicon_veto") == "expect_column_values_to_be_parseable(lexicon_veto)"
