"""A rule's neighbourhood: how often its content words appear in queries of safety intents.

A rule's own hits can be spotless while its words live next to a safety
intent: ``a restitution of`` answered track-refund questions correctly for
weeks, and ``restitution`` was common in refund requests all along, so the
next refund request holding the phrase went to the rule. The dataset build
counts, for each content word of each rule, the labelled queries holding it
per safety intent, and the gate reads the counts (:mod:`rulelife.evidence.gate`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence

import numpy as np
import pandas as pd

from rulelife.rules.definition import Rule
from rulelife.rules.matcher import CompiledRule, Matcher
from rulelife.rules.normalize import normalize
from rulelife.rules.stopwords import stop_words_for

__all__ = ["BASE", "content_words", "count_neighbours", "near_safety"]

BASE = "*"  # not a word (content words hold a letter): the key of all labelled traffic


def content_words(rule: Rule) -> tuple[str, ...]:
    """The words of a word-match rule's patterns that carry meaning (none for substring rules).

    >>> content_words(Rule(id="a.b", intent="track_refund", patterns=["a restitution of", "refund status"], owner="t"))
    ('refund', 'restitution', 'status')
    """
    if rule.match != "word":
        return ()
    stops = stop_words_for(list(rule.locales))
    found = {w for p in rule.patterns for w in normalize(p).split()
             if len(w) >= 3 and any(c.isalpha() for c in w) and w not in stops}
    return tuple(sorted(found))


def count_neighbours(chunk: pd.DataFrame, normalized: Sequence[str | None], words: Collection[str],
                     safety_intents: Collection[str], matcher: Matcher | None = None) -> Counter:
    """(word, intent) -> labelled queries holding the word; intent ``""`` counts all of them.

    Only the safety intents are counted by name: the gate asks "how often is
    this word a safety query", and the total gives the share. Word ``"*"``
    counts every labelled query, the base rate the share is compared with.
    """
    labelled = chunk["model_intent"].notna().to_numpy()
    if not words or not labelled.any():
        return Counter()
    matcher = matcher or word_matcher(words)
    rows = np.flatnonzero(labelled)
    intents = chunk["model_intent"].to_numpy(dtype=object)
    safety = set(safety_intents)
    out: Counter = Counter()
    labels = chunk["model_intent"].iloc[rows]
    out[(BASE, "")] += len(rows)
    for name, n in labels[labels.isin(list(safety))].value_counts().items():
        out[(BASE, str(name))] += int(n)
    results = matcher.match_many([normalized[i] for i in rows], chunk["locale"].iloc[rows], normalized=True)
    for i, result in zip(rows.tolist(), results):
        if result is None:
            continue
        intent = intents[i]
        for word in result.fired:
            out[(word, "")] += 1
            if intent in safety:
                out[(word, intent)] += 1
    return out


def word_matcher(words: Collection[str]) -> Matcher:
    """One word-bounded matcher rule per word, its id the word itself."""
    return Matcher([CompiledRule(id=w, version="", intent="", patterns=(w,), exclude=(), locales=("*",),
                                 match="word", priority=0) for w in sorted(words)])


def near_safety(neighbourhood: dict[str, dict[str, int]], intent: str, *, min_share: float,
                min_rows: int, min_lift: float = 1.0) -> dict[str, dict[str, int]]:
    """The words (and safety intents, with rows) that put a rule of ``intent`` next to a safety intent.

    ``neighbourhood[word]`` holds ``total`` and a count per safety intent;
    ``neighbourhood["*"]`` the same for all labelled traffic. A word is near
    a safety intent when at least ``min_rows`` of its queries, ``min_share``
    of them, and ``min_lift`` times the intent's share of all traffic, carry
    it. The lift is why ``order`` is not near return requests in a shop where
    every tenth query is one: the word carries them no more than any word does.

    >>> counts = {"*": {"total": 1000, "get_refund": 40}, "restitution": {"total": 20, "get_refund": 9},
    ...           "status": {"total": 90, "get_refund": 1}, "money": {"total": 100, "get_refund": 6}}
    >>> near_safety(counts, "track_refund", min_share=0.05, min_rows=3, min_lift=2.0)
    {'restitution': {'get_refund': 9}}
    """
    base = neighbourhood.get(BASE, {})
    near: dict[str, dict[str, int]] = {}
    for word, counts in sorted(neighbourhood.items()):
        total = counts.get("total", 0)
        if word == BASE or not total:
            continue
        for other, n in sorted(counts.items()):
            if other in ("total", intent) or n < min_rows or n < min_share * total:
                continue
            base_share = base.get(other, 0) / base["total"] if base.get("total") else 0.0
            if n / total >= min_lift * base_share:
                near.setdefault(word, {})[other] = n
    return near
