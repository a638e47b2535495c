"""Turning accepted phrases into rules: drop the redundant, merge near-duplicates,
choose exclude phrases, name the rule."""

from __future__ import annotations

import difflib
import hashlib
import re
from collections import Counter
from collections.abc import Callable, Collection, Sequence

from miners.ngrams import words

__all__ = ["choose_excludes", "contains", "excludable", "near_duplicates", "slug", "subsumed"]


def contains(haystack: str, needle: str, substring: bool) -> bool:
    """Whether a rule with pattern ``needle`` fires on the text ``haystack`` (matcher boundaries)."""
    if substring:
        return needle in haystack
    return re.search(rf"(?<!\w){re.escape(needle)}(?!\w)", haystack) is not None


def subsumed(phrases: Sequence[str], substring: bool) -> set[str]:
    """Phrases that contain a shorter phrase of the list: the shorter already fires wherever they do.

    >>> sorted(subsumed(["track my package", "track", "my package"], False))
    ['track my package']
    """
    ordered = sorted(set(phrases), key=lambda p: (len(p), p))
    kept: list[str] = []
    dropped: set[str] = set()
    for phrase in ordered:
        if any(contains(phrase, short, substring) for short in kept):
            dropped.add(phrase)
        else:
            kept.append(phrase)
    return dropped


def _stems(phrase: str, stop_words: Collection[str]) -> set[str]:
    # A 5-letter prefix joins inflections ("cancel", "cancelling", "canceled").
    return {w[:5] for w in words(phrase) if len(w) >= 4 and w not in stop_words}


def _similar(a: str, b: str, stop_words: Collection[str], substring: bool) -> bool:
    if substring:
        return difflib.SequenceMatcher(None, a, b).ratio() >= 0.5
    tokens_a, tokens_b = set(words(a)), set(words(b))
    jaccard = len(tokens_a & tokens_b) / max(1, len(tokens_a | tokens_b))
    return (jaccard >= 0.5 or difflib.SequenceMatcher(None, a, b).ratio() >= 0.8
            or bool(_stems(a, stop_words) & _stems(b, stop_words)))


def near_duplicates(phrases: Sequence[str], stop_words: Collection[str], substring: bool,
                    max_patterns: int, overlap: Callable[[str, str], float] | None = None) -> list[list[str]]:
    """Group phrases (most supported first) into near-duplicate clusters of at most ``max_patterns``.

    Two phrases are near-duplicates when half their words are shared, their
    spelling is 80% alike, they share a content word's stem, or (``overlap``,
    the Jaccard similarity of the queries they fire on) at least half their
    queries are the same: then they are one rule in two spellings. Clusters
    are connected components, cut at ``max_patterns``; the most supported
    phrase of a cluster comes first.

    >>> near_duplicates(["track my package", "track my parcel", "gift card"], set(), False, 8)
    [['track my package', 'track my parcel'], ['gift card']]
    """
    clusters: list[list[str]] = []
    for phrase in phrases:
        # Connected components: a phrase like two clusters joins them into one (size permitting).
        alike = [c for c in clusters if any(
            _similar(phrase, other, stop_words, substring) or (overlap is not None and overlap(phrase, other) >= 0.5)
            for other in c)]
        merged = [phrase]
        for cluster in alike:
            if len(merged) + len(cluster) <= max_patterns:
                clusters.remove(cluster)
                merged = cluster + merged
        clusters.append(merged)
    rank = {phrase: i for i, phrase in enumerate(phrases)}
    return sorted((sorted(c, key=rank.__getitem__) for c in clusters), key=lambda c: rank[c[0]])


def excludable(token: str, substring: bool) -> bool:
    """Whether a token that co-occurs with a phrase may become one of its exclude phrases.

    Order numbers and fragments fit the window, not the language: a token
    needs a letter, and a word token (not ``substring``) three characters.

    >>> excludable("refund", False), excludable("116354", False), excludable("to", False), excludable("返品", True)
    (True, False, False, True)
    """
    return any(c.isalpha() for c in token) and (substring or len(token) >= 3)


def choose_excludes(
    intent: str,
    by_intent: Counter,
    tokens: Counter,
    *,
    pattern: str,
    substring: bool,
    safety: Collection[str],
    min_precision: float,
    max_loss: float,
    max_excludes: int = 2,
) -> tuple[str, ...] | None:
    """Exclude tokens that lift a phrase's precision to ``min_precision`` and clear every safety hit.

    ``by_intent`` counts the phrase's labelled fires per model intent and
    ``tokens[(t, i)]`` those that also hold token ``t``. Greedy: take the token
    that removes the most disagreeing fires per agreeing fire lost, at most
    ``max_excludes`` tokens, losing at most ``max_loss`` of the agreeing fires.
    Removals of two tokens are assumed disjoint, which can only overstate
    them; the final pass recounts the rule exactly and drops it if it fails.
    Returns None when no such set exists.
    """
    agree = by_intent.get(intent, 0)
    wrong = {i: c for i, c in by_intent.items() if i != intent}
    unsafe = {i: c for i, c in wrong.items() if i in safety}
    lost = 0
    chosen: list[str] = []
    per_token: dict[str, Counter] = {}
    for (token, label), count in tokens.items():
        if token in pattern:
            # An exclude inside the pattern would veto the rule wherever it fires
            # (a word-bounded occurrence is also a substring, so this test covers both modes).
            continue
        if not excludable(token, substring):
            continue
        per_token.setdefault(token, Counter())[label] += count
    for _ in range(max_excludes):
        total = agree - lost + sum(wrong.values())
        if total and (agree - lost) / total >= min_precision and not any(unsafe.values()):
            break
        best, best_score = None, 0.0
        for token, counts in sorted(per_token.items()):  # sorted: ties go the same way however counts merged
            if token in chosen:
                continue
            removed = sum(min(counts.get(i, 0), c) for i, c in wrong.items())
            # Safety hits weigh as much as all other disagreement: they must go.
            removed += sum(min(counts.get(i, 0), c) for i, c in unsafe.items()) * max(1, agree)
            cost = counts.get(intent, 0)
            # One removed query is an anecdote: an exclude must explain at least two.
            if removed < 2 or lost + cost > max_loss * agree:
                continue
            score = removed / (1 + cost)
            if score > best_score:
                best, best_score = token, score
        if best is None:
            return None
        chosen.append(best)
        lost += per_token[best].get(intent, 0)
        for i in list(wrong):
            wrong[i] = max(0, wrong[i] - per_token[best].get(i, 0))
            if i in unsafe:
                unsafe[i] = wrong[i]
    total = agree - lost + sum(wrong.values())
    if not chosen or not total or (agree - lost) / total < min_precision or any(unsafe.values()):
        return None
    return tuple(chosen)


def slug(phrase: str, locale: str) -> str:
    """A file-name and id-safe name for a rule from its main phrase and locale.

    >>> slug("where's my order", "en-US"), slug("配送状況", "ja-JP")
    ('en_where_s_my_order', 'ja_84cda6e3')
    """
    language = re.sub(r"[^a-z0-9]", "", locale.split("-")[0].split("_")[0].lower()) or "xx"
    body = re.sub(r"[^a-z0-9]+", "_", phrase.lower()).strip("_")
    if not body or not phrase.isascii():
        body = hashlib.sha1(phrase.encode("utf-8")).hexdigest()[:8]
    return f"{language}_{body[:40].strip('_')}"
