import pandas as pd
import pytest

from miners.candidates import CandidateMiner
from miners.counts import PhraseCounts
from miners.ngrams import char_ngrams, word_phrases
from rulelife.evidence.evaluation.stats import wilson_interval
from rulelife.plugins import MINERS, load_plugin
from rulelife.rules.definition import Rule

SAFETY = ["escalation"]


def frame(rows, day="2026-01-01"):
    """rows: (text, intent, confidence[, locale])."""
    return pd.DataFrame({
        "query_id": [f"q{i}" for i in range(len(rows))],
        "ts": pd.Timestamp(day, tz="UTC"),
        "text": pd.array([r[0] for r in rows], dtype="string"),
        "locale": pd.array([r[3] if len(r) > 3 else "en-US" for r in rows], dtype="string"),
        "model_intent": pd.array([r[1] for r in rows], dtype="string"),
        "model_confidence": pd.array([r[2] for r in rows], dtype="Float64"),
    })


def background():
    # Other intents, so no phrase is in more than half of the traffic.
    return ([("i want a refund now", "refund", 0.99)] * 40 + [("hello there", "chitchat", 0.99)] * 40
            + [("what does shipping cost", "faq", 0.99)] * 40)


def mine(rows, **params):
    params = {"min_support": 20, "safety_intents": SAFETY, "min_chunk_count": 1, **params}
    return CandidateMiner(**params).fit([frame(rows)])


def patterns(miner):
    return {p: c for c in miner.candidates_ for p in c.rule.patterns}


def test_plugin_is_registered():
    assert load_plugin(MINERS, "candidates") is CandidateMiner


def test_ngrams_are_matcher_spans():
    assert word_phrases("track my order", 4) == {"track", "my", "order", "track my", "my order", "track my order"}
    assert "order please" not in word_phrases("order, please", 4)  # a comma breaks a phrase
    assert char_ngrams("在庫", 2, 6) == {"在庫"}


def test_consistent_phrase_is_proposed_with_wilson_interval():
    rows = [("track my package", "order_tracking", 0.99)] * 50 + background()
    miner = mine(rows)
    found = patterns(miner)
    assert "package" in found and "track" in found
    candidate = found["package"]
    assert candidate.intent == "order_tracking"
    assert (candidate.fires, candidate.agree) == (50, 50)
    assert (candidate.low, candidate.high) == wilson_interval(50, 50)
    assert candidate.rule.owner == "miner" and candidate.rule.match == "word"
    assert candidate.examples == ["track my package"]


def test_precision_counts_all_labelled_rows_not_only_confident():
    # 36 confident order_tracking rows, plus 6 low-confidence rows of the same text the
    # model labels faq: precision 36 / 42, and no exclude can separate identical texts.
    rows = [("track my package", "order_tracking", 0.99)] * 36 + [("track my package", "faq", 0.5)] * 6
    miner = mine(rows + background())
    assert "package" not in patterns(miner)
    assert any(s.phrase == "package" and s.reason == "low_precision" for s in miner.skipped_)


def test_phrase_on_one_safety_row_is_skipped():
    rows = [("track my package", "order_tracking", 0.99)] * 50 + [("track my package", "escalation", 0.6)]
    miner = mine(rows + background())
    assert "package" not in patterns(miner)
    assert {s.phrase for s in miner.skipped_ if s.reason == "safety"} >= {"package", "track"}


def test_safety_intent_may_have_its_own_rule():
    rows = [("talk to a human", "escalation", 0.99)] * 40
    assert "human" in patterns(mine(rows + background()))


def test_stop_word_only_phrase_is_skipped():
    rows = [("where is it", "order_tracking", 0.99)] * 40
    miner = mine(rows + background())
    assert not any(c.intent == "order_tracking" for c in miner.candidates_)
    assert any(s.phrase == "where is it" and s.reason == "stop_words" for s in miner.skipped_)


def test_phrase_covered_by_active_rule_is_skipped():
    rows = [("track my package", "order_tracking", 0.99)] * 50 + background()
    active = Rule(id="order_tracking.pkg", intent="order_tracking", patterns=["package"], locales=["en-US"],
                  owner="t")
    miner = CandidateMiner(min_support=20, safety_intents=SAFETY, min_chunk_count=1).fit(
        [frame(rows)], active_rules=[active])
    assert "package" not in patterns(miner)
    assert any(s.phrase == "package" and s.reason == "covered_by_active" for s in miner.skipped_)


def test_near_duplicates_merge_into_one_rule():
    rows = ([("cancel order please", "cancel", 0.99)] * 30 + [("cancelling order now", "cancel", 0.99)] * 30
            + background())
    found = patterns(mine(rows))
    # One spelling each: "cancel" and "cancelling" share a stem, so they are one rule.
    assert found["cancel"] is found["cancelling"]
    assert found["cancel"].fires >= 60 and found["cancel"].agree == found["cancel"].fires


def test_exclude_proposed_for_main_confuser():
    rows = ([("track my package", "order_tracking", 0.99)] * 60
            + [("refund my package please", "refund", 0.9)] * 6 + background())
    found = patterns(mine(rows))
    assert "package" in found
    assert found["package"].rule.exclude == ("refund",)
    assert (found["package"].fires, found["package"].agree) == (60, 60)


def test_mining_in_three_chunks_equals_one():
    rows = ([("track my package", "order_tracking", 0.99)] * 45 + [("track my package", "faq", 0.4)]
            + [("cancel order please", "cancel", 0.97)] * 30 + background())
    whole = frame(rows)
    parts = [whole.iloc[i::3].reset_index(drop=True) for i in range(3)]
    params = dict(min_support=20, safety_intents=SAFETY, min_chunk_count=1, chunk_rows=1)
    one = CandidateMiner(**params).fit([whole])
    three = CandidateMiner(**params).fit(parts)
    assert [c.to_dict() for c in one.candidates_] == [c.to_dict() for c in three.candidates_]
    key = ["phrase", "locale", "intent"]
    a = one.counts_.table.sort_values(key).reset_index(drop=True)
    b = three.counts_.table.sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)


def test_chunk_prune_bound():
    rows = [("track my package", "order_tracking", 0.99)] * 3 + [("a unique 12345 text", "faq", 0.99)]
    chunk = frame(rows)
    counts = PhraseCounts.from_chunk(chunk, [t.lower() for t in chunk["text"]], min_confidence=0.9, min_chunk_count=2)
    assert "12345" not in set(counts.table["phrase"])
    assert counts.undercount == 1
    assert int(counts.table.set_index("phrase").loc["package", "n"]) == 3


def test_statuses_say_why_nothing_was_mined():
    rows = ([("track my package", "order_tracking", 0.5)] * 40  # no confident prediction
            + [("cancel order", "cancel", 0.99)] * 5  # too little data
            + background())
    miner = mine(rows, locales=["en-US", "ja-JP"])
    status = {(s.locale, s.intent): s.status for s in miner.statuses_.itertuples()}
    assert status[("en-US", "order_tracking")] == "no_confident"
    assert status[("en-US", "cancel")] == "too_little_data"
    assert status[("ja-JP", "refund")] == "no_traffic"
    assert not any(c.intent in ("order_tracking", "cancel") for c in miner.candidates_)


def test_japanese_uses_character_ngrams():
    rows = ([("配送状況を教えて", "order_tracking", 0.99, "ja-JP")] * 30
            + [("返品したいです", "return_request", 0.99, "ja-JP")] * 30)
    miner = mine(rows)
    tracking = [c for c in miner.candidates_ if c.intent == "order_tracking"]
    assert tracking and tracking[0].rule.match == "substring" and tracking[0].rule.locales == ("ja-JP",)


@pytest.mark.parametrize("param, value", [("min_confidence", 1.5), ("min_support", 0), ("exclude_from", 0.99),
                                          ("safety_intents", "escalation")])
def test_bad_parameters_are_refused(param, value):
    with pytest.raises(ValueError, match=param):
        CandidateMiner(**{param: value}).fit([frame(background())])
