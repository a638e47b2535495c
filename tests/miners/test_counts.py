import datetime as dt
import doctest
import itertools
from collections import Counter

import pandas as pd
import pytest

import miners.chunks
import miners.counts
from miners.chunks import LabelledGroups
from miners.counts import PhraseCounts
from miners.ngrams import is_substring_locale, phrases
from rulelife.rules.normalize import normalize

# (text, intent, confidence, locale); None intent: a rule answered; None locale: missing.
ROWS = ([("Track my order", "order_tracking", 0.99, "en-US")] * 3
        + [("track my order", "order_tracking", 0.5, "en-US")]
        + [("track my order", "faq", 0.99, "en-US")]
        + [("track my order", "order_tracking", 0.99, "es-ES")]
        + [("order status", "order_tracking", 0.99, None)] * 2
        + [("order status", None, None, "en-US")] * 4
        + [("配送状況", "order_tracking", 0.99, "ja-JP")] * 2
        + [("配送", "faq", 0.97, "ja-JP")]
        + [("   ", "faq", 0.99, "en-US")]  # normalises to "": labelled, without phrases
        + [(None, "faq", 0.99, "en-US")])  # no text


def chunk(rows=ROWS):
    return pd.DataFrame({
        "query_id": [f"q{i}" for i in range(len(rows))],
        "ts": [pd.Timestamp("2026-01-01 23:00", tz="UTC") + pd.Timedelta(hours=i) for i in range(len(rows))],
        "text": pd.array([r[0] for r in rows], dtype="string"),
        "locale": pd.array([r[3] for r in rows], dtype="string"),
        "model_intent": pd.array([r[1] for r in rows], dtype="string"),
        "model_confidence": pd.array([r[2] for r in rows], dtype="Float64"),
    })


def normalized(frame):
    return [normalize(t) if isinstance(t, str) else None for t in frame["text"]]


def reference(frame, norm, min_confidence, min_chunk_count, **sizes):
    """Row by row: every labelled row adds 1 to each of its phrases (n_conf if confident), then the prune."""
    n, n_conf = Counter(), Counter()
    for text, locale, intent, conf in zip(norm, frame["locale"], frame["model_intent"], frame["model_confidence"]):
        if text is None or pd.isna(intent):
            continue
        locale = "" if pd.isna(locale) else locale
        for phrase in phrases(text, is_substring_locale(locale), **sizes):
            n[(phrase, locale, intent)] += 1
            n_conf[(phrase, locale, intent)] += int(not pd.isna(conf) and conf >= min_confidence)
    totals = Counter()
    for (phrase, locale, _), count in n.items():
        totals[(phrase, locale)] += count
    return {key: (count, n_conf[key]) for key, count in n.items() if totals[key[:2]] >= min_chunk_count}


def as_dict(table):
    return {(r.phrase, r.locale, r.intent): (r.n, r.n_conf) for r in table.itertuples(index=False)}


def test_counts_by_hand():
    frame = chunk()
    counts = PhraseCounts.from_chunk(frame, normalized(frame), min_confidence=0.9, min_chunk_count=2)
    got = as_dict(counts.table)
    # "track my order": 4 en-US order_tracking rows (3 confident), 1 en-US faq; the es-ES row is alone.
    assert got[("track my order", "en-US", "order_tracking")] == (4, 3)
    assert got[("track", "en-US", "faq")] == (1, 1)  # kept: the (phrase, locale) total is 5
    assert ("track", "es-ES", "order_tracking") not in got  # pruned: 1 < 2
    assert got[("order status", "", "order_tracking")] == (2, 2)  # missing locale; unlabelled rows not counted
    assert got[("配送", "ja-JP", "order_tracking")] == (2, 2) and got[("配送", "ja-JP", "faq")] == (1, 1)
    assert got[("送状", "ja-JP", "order_tracking")] == (2, 2)
    assert counts.undercount == 1
    rows = {(r.locale, r.intent): (r.n, r.n_conf) for r in counts.rows.itertuples(index=False)}
    assert rows == {("en-US", "order_tracking"): (4, 3), ("en-US", "faq"): (2, 2), ("es-ES", "order_tracking"): (1, 1),
                    ("", "order_tracking"): (2, 2), ("ja-JP", "order_tracking"): (2, 2), ("ja-JP", "faq"): (1, 1)}
    assert list(counts.rows["locale"]) == ["en-US", "en-US", "es-ES", "", "ja-JP", "ja-JP"]  # first seen first
    assert counts.days == {dt.date(2026, 1, 1), dt.date(2026, 1, 2)}
    assert counts.key_count == len({(p, loc) for p, loc, _ in got})


@pytest.mark.parametrize("min_chunk_count, max_words, chars", list(itertools.product([1, 2, 3], [1, 4], [(2, 6), (1, 2)])))
def test_counts_equal_row_by_row_reference(min_chunk_count, max_words, chars):
    frame = chunk()
    sizes = dict(max_words=max_words, min_chars=chars[0], max_chars=chars[1])
    counts = PhraseCounts.from_chunk(frame, normalized(frame), min_confidence=0.9, min_chunk_count=min_chunk_count,
                                     **sizes)
    assert as_dict(counts.table) == reference(frame, normalized(frame), 0.9, min_chunk_count, **sizes)
    assert not counts.table.duplicated(["phrase", "locale", "intent"]).any()


def test_counts_follow_the_chunk_positions_not_its_index():
    frame = chunk().iloc[::-2]  # reversed, every other row, index kept
    counts = PhraseCounts.from_chunk(frame, normalized(frame), min_confidence=0.9, min_chunk_count=1)
    assert as_dict(counts.table) == reference(frame, normalized(frame), 0.9, 1)


def test_chunk_without_labelled_rows():
    frame = chunk([("order status", None, None, "en-US")] * 3)
    counts = PhraseCounts.from_chunk(frame, normalized(frame), min_confidence=0.9)
    assert counts.table.empty and counts.rows.empty and counts.key_count == 0
    assert counts.days == {dt.date(2026, 1, 1), dt.date(2026, 1, 2)}


def test_chunk_of_texts_without_phrases():
    frame = chunk([("?!", "faq", 0.99, "en-US")] * 3)
    counts = PhraseCounts.from_chunk(frame, normalized(frame), min_confidence=0.9)
    assert counts.table.empty
    assert counts.rows.to_dict("records") == [{"locale": "en-US", "intent": "faq", "n": 3, "n_conf": 3}]


def test_sum_of_chunks_equals_whole():
    frame = chunk()
    whole = PhraseCounts.from_chunk(frame, normalized(frame), min_confidence=0.9, min_chunk_count=1)
    parts = [frame.iloc[i::2].reset_index(drop=True) for i in range(2)]
    total = sum((PhraseCounts.from_chunk(p, normalized(p), min_confidence=0.9, min_chunk_count=1) for p in parts),
                PhraseCounts())
    assert as_dict(total.table) == as_dict(whole.table)
    assert total.days == whole.days and total.undercount == 0


def test_groups_are_numbered_by_first_row():
    frame = chunk()
    groups = LabelledGroups.from_chunk(frame, normalized(frame))
    first = [(groups.texts[t], groups.locales[loc], groups.intents[i])
             for t, loc, i in zip(groups.text, groups.locale, groups.intent)]
    assert first[:4] == [("track my order", "en-US", "order_tracking"), ("track my order", "en-US", "faq"),
                         ("track my order", "es-ES", "order_tracking"), ("order status", None, "order_tracking")]
    assert list(groups.weight[:4]) == [4, 1, 1, 2]
    assert len(groups.rows) == groups.weight.sum() == 12  # unlabelled rows and the row without text are out
    assert list(groups.group[:5]) == [0, 0, 0, 0, 1]


def test_doctests():
    assert doctest.testmod(miners.counts).failed == 0
    assert doctest.testmod(miners.chunks).failed == 0
