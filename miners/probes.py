"""Exact per-rule counts from the real matcher, as partial counts that add up.

The n-gram counts choose what to look at; these counts decide. They run the
same :class:`~rulelife.rules.matcher.Matcher` the runtime runs, so a rule's fires,
agreement and safety hits here are exactly what it would do online.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd

from miners.chunks import LabelledGroups, chunk_days, slices
from miners.grouping import excludable
from miners.ngrams import phrase_table
from rulelife.rules.matcher import Matcher

__all__ = ["SIGNATURE_SIZE", "RuleCounts", "jaccard"]

# Distinct texts kept per rule for examples. Only the most frequent are kept
# after each merge, so example lists are approximate "top" lists (a text's
# count can be cut from an earlier partial); every count behind a figure is exact.
_KEEP_TEXTS = 40
# MinHash signature length: the Jaccard estimate of two rules' query sets has
# a standard error of at most 1 / (2 sqrt(32)) = 0.09, ample for "do these
# two phrases fire on mostly the same queries" (merged at an estimate >= 0.5).
SIGNATURE_SIZE = 32
_MASK = np.uint64(0xFFFFFFFFFFFFFFFF)
_rng = np.random.default_rng(20260101)
_A = _rng.integers(1, 2**63, SIGNATURE_SIZE, dtype=np.uint64) | np.uint64(1)
_B = _rng.integers(0, 2**63, SIGNATURE_SIZE, dtype=np.uint64)
_BLOCK = 100_000  # rows of SIGNATURE_SIZE hashes gathered at once


def _top(counter: Counter, k: int) -> Counter:
    return counter if len(counter) <= k else Counter(dict(counter.most_common(k)))


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """MinHash estimate of the Jaccard similarity of two rules' query sets."""
    return float(np.mean(a == b))


def _row_hashes(chunk: pd.DataFrame, rows: np.ndarray) -> np.ndarray:
    """One 64-bit hash a row, from its query_id (or its text and time)."""
    if "query_id" in chunk.columns:
        key = chunk["query_id"].iloc[rows]
    else:
        key = chunk["text"].iloc[rows].astype(str) + chunk["ts"].iloc[rows].astype(str)
    return pd.util.hash_pandas_object(key.astype(str), index=False).to_numpy(np.uint64)


def _spread(base: np.ndarray) -> np.ndarray:
    """SIGNATURE_SIZE hashes a row, from its one hash."""
    with np.errstate(over="ignore"):
        return (base[:, None] * _A[None, :] + _B[None, :]) & _MASK


def _min_by(codes: np.ndarray, size: int, values: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """``out[c]``: the elementwise minimum of the hash rows ``values(i)`` over the ``i`` with ``codes[i] == c``."""
    out = np.full((size, SIGNATURE_SIZE), _MASK, dtype=np.uint64)
    order = np.argsort(codes, kind="stable")
    # Blocks keep the gathered hash rows small: memory is per block, not per chunk.
    for begin in range(0, len(order), _BLOCK):
        block = order[begin:begin + _BLOCK]
        sorted_codes = codes[block]
        starts = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]])
        present = sorted_codes[starts]
        out[present] = np.minimum(out[present], np.minimum.reduceat(values(block), starts, axis=0))
    return out


def _counted(keys: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct ``keys`` in order of first appearance, and the sum of the ``weights`` of each."""
    key_id, distinct = pd.factorize(keys)
    return distinct, np.bincount(key_id, weights=weights, minlength=len(distinct)).astype(np.int64)


def _rank_within(codes: np.ndarray) -> np.ndarray:
    """``rank[k]``: how many entries before ``k`` have the code ``codes[k]``."""
    order = np.argsort(codes, kind="stable")
    ordered = codes[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    rank = np.empty(len(codes), dtype=np.int64)
    rank[order] = np.arange(len(codes)) - np.repeat(starts, np.diff(np.r_[starts, len(codes)]))
    return rank


@dataclass(frozen=True)
class _Fires:
    """The rules that fire on a chunk's groups of labelled rows.

    Invariants: a rule fires or not per (text, locale), a *place*: group ``g``
    is at place ``place[g]``. Pair ``k`` says rule ``names[rule[k]]`` fires on
    group ``group[k]``; pairs are in group order, then the matcher's order (so
    in a row-by-row count's order of first appearance). ``old[k]``: an
    existing rule fires there too. ``at[j]``/``place_rule[j]`` are the pairs
    per place.
    """

    names: list[str]
    places: int
    place: np.ndarray
    group: np.ndarray
    rule: np.ndarray
    old: np.ndarray
    at: np.ndarray
    place_rule: np.ndarray

    @classmethod
    def of(cls, groups: LabelledGroups, matcher: Matcher, existing: Matcher | None) -> _Fires:
        n_locales = len(groups.locales)
        place, places = pd.factorize(groups.text * n_locales + groups.locale)
        texts = [groups.texts[k] for k in (places // n_locales).tolist()]
        locales = [groups.locales[k] for k in (places % n_locales).tolist()]
        # Each place is distinct already: match it straight (match_many would look each up in a cache first).
        fired = [() if r is None else r.fired for r in map(matcher.match_normalized, texts, locales)]
        names = [rule.id for rule in matcher.rules]
        index = dict(zip(names, range(len(names))))
        lengths = np.fromiter(map(len, fired), dtype=np.int64, count=len(fired))
        flat = np.fromiter(map(index.__getitem__, itertools.chain.from_iterable(fired)), dtype=np.int64,
                           count=int(lengths.sum()))
        group, pick = slices(lengths, place)
        old = np.zeros(len(texts), dtype=bool)
        if existing is not None and existing.rules:
            old = np.fromiter((r is not None for r in map(existing.match_normalized, texts, locales)),
                              dtype=bool, count=len(texts))
        return cls(names=names, places=len(texts), place=place, group=group, rule=flat[pick],
                   old=old[place[group]], at=np.repeat(np.arange(len(texts)), lengths), place_rule=flat)


def _examples(rule: np.ndarray, text: np.ndarray, intent: np.ndarray, counts: np.ndarray, names: list[str],
              groups: LabelledGroups) -> dict[str, Counter]:
    """The ``_KEEP_TEXTS`` most frequent (text, intent) of each rule (ties: first seen first)."""
    order = np.argsort(-counts, kind="stable")
    chosen = order[_rank_within(rule[order]) < _KEEP_TEXTS]
    out: dict[str, Counter] = {}
    for r, t, i, count in zip(rule[chosen].tolist(), text[chosen].tolist(), intent[chosen].tolist(),
                              counts[chosen].tolist()):
        out.setdefault(names[r], Counter())[(groups.texts[t], groups.intents[i])] = count
    return out


def _tokens(rule: np.ndarray, text: np.ndarray, intent: np.ndarray, counts: np.ndarray, names: list[str],
            groups: LabelledGroups, token_rules: Collection[str], substring_rules: Collection[str],
            stop_words: Collection[str]) -> dict[str, Counter]:
    """Per rule of ``token_rules``, (token, intent) -> fires on a text holding the token (an excludable one)."""
    wanted = np.array([name in token_rules for name in names], dtype=bool)[rule]
    rule, text, intent, counts = rule[wanted], text[wanted], intent[wanted], counts[wanted]
    substring = np.array([name in substring_rules for name in names], dtype=np.int64)[rule]
    mode_id, modes = pd.factorize(text * 2 + substring)
    # Each distinct (text, mode) is tokenised once: its words (one-word phrases) or character bigrams.
    cut_owner, cut, dictionary = phrase_table([groups.texts[m] for m in (modes >> 1).tolist()], modes & 1 == 1,
                                              max_words=1, min_chars=2, max_chars=2)
    vocabulary = dictionary.to_pylist()
    # Only tokens that may become an exclude are counted: the rest (order numbers above
    # all) would grow with the log and never be used.
    as_word = np.array([excludable(w, False) and w not in stop_words for w in vocabulary], dtype=bool)
    as_char = np.array([excludable(w, True) for w in vocabulary], dtype=bool)
    keep = np.where(modes[cut_owner] & 1 == 1, as_char[cut], as_word[cut])
    cut_owner, cut = cut_owner[keep], cut[keep]
    owner, pick = slices(np.bincount(cut_owner, minlength=len(modes)), mode_id)
    n_tokens, n_intents = max(1, len(vocabulary)), len(groups.intents)
    keys, sums = _counted((rule[owner] * n_tokens + cut[pick]) * n_intents + intent[owner], counts[owner])
    out: dict[str, Counter] = {names[r]: Counter() for r in pd.unique(rule).tolist()}
    for key, count in zip(keys.tolist(), sums.tolist()):
        out[names[key // (n_tokens * n_intents)]][(vocabulary[key // n_intents % n_tokens],
                                                    groups.intents[key % n_intents])] = count
    return out


def _signatures(chunk: pd.DataFrame, groups: LabelledGroups, fires: _Fires) -> dict[str, np.ndarray]:
    """Each firing rule's MinHash signature: the elementwise minimum of its rows' hashes.

    Taken per place first (over its rows), then per rule over its places:
    the same minimum as over the rule's rows, with one row of hashes a place.
    """
    base = _row_hashes(chunk, groups.rows)
    by_place = _min_by(fires.place[groups.group], fires.places, lambda i: _spread(base[i]))
    by_rule = _min_by(fires.place_rule, len(fires.names), lambda i: by_place[fires.at[i]])
    return {fires.names[r]: by_rule[r] for r in pd.unique(fires.rule).tolist()}


@dataclass(frozen=True)
class RuleCounts:
    """What a set of rules does on labelled traffic, per rule id.

    Invariants: ``intents[r][i]`` is the number of model-labelled queries rule
    ``r`` fires on (not vetoed) that the model labels ``i``; ``new[r]`` counts
    those on which no existing rule fires; ``tokens[r][(t, i)]`` counts those
    holding token ``t`` (for the rules asked for; only tokens that may become
    an exclude, see :func:`miners.grouping.excludable`, so the counters stay
    the size of the vocabulary, not of the log); ``signatures[r]`` is the
    elementwise minimum of the row hashes of those queries (MinHash).
    """

    intents: dict[str, Counter] = field(default_factory=dict)
    new: Counter = field(default_factory=Counter)
    texts: dict[str, Counter] = field(default_factory=dict)
    tokens: dict[str, Counter] = field(default_factory=dict)
    signatures: dict[str, np.ndarray] = field(default_factory=dict)
    days: frozenset[date] = frozenset()

    @classmethod
    def from_chunk(
        cls,
        chunk: pd.DataFrame,
        normalized: list[str | None],
        matcher: Matcher,
        *,
        existing: Matcher | None = None,
        token_rules: Collection[str] = (),
        substring_rules: Collection[str] = (),
        stop_words: Collection[str] = (),
        signatures: bool = False,
        examples: bool = True,
    ) -> RuleCounts:
        """Count what ``matcher``'s rules do on one chunk's labelled rows (``normalized``: its texts, normalised).

        ``existing``: the live rules (``new`` counts fires where none of them fires);
        ``token_rules``: the rules whose co-occurring tokens to count (character bigrams
        for ``substring_rules``, words not in ``stop_words`` for the others);
        ``signatures``: MinHash signatures; ``examples``: each rule's most frequent texts.
        """
        days = chunk_days(chunk)
        groups = LabelledGroups.from_chunk(chunk, normalized)
        fires = _Fires.of(groups, matcher, existing)
        if not len(fires.rule):
            return cls(days=days)
        names, intents = fires.names, groups.intents
        weight, label = groups.weight[fires.group], groups.intent[fires.group]
        out_intents: dict[str, Counter] = {}
        keys, counts = _counted(fires.rule * len(intents) + label, weight)
        for key, count in zip(keys.tolist(), counts.tolist()):
            out_intents.setdefault(names[key // len(intents)], Counter())[intents[key % len(intents)]] = count
        keys, counts = _counted(fires.rule[~fires.old], weight[~fires.old])
        new = Counter(dict(zip([names[k] for k in keys.tolist()], counts.tolist())))
        out_texts: dict[str, Counter] = {}
        out_tokens: dict[str, Counter] = {}
        if examples or token_rules:
            # Per (rule, text, intent), whatever the locale: what examples and tokens count.
            n_texts = len(groups.texts)
            keys, counts = _counted((fires.rule * n_texts + groups.text[fires.group]) * len(intents) + label, weight)
            rule, text, intent = keys // (n_texts * len(intents)), keys // len(intents) % n_texts, keys % len(intents)
            if examples:
                out_texts = _examples(rule, text, intent, counts, names, groups)
            if token_rules:
                out_tokens = _tokens(rule, text, intent, counts, names, groups, set(token_rules),
                                     set(substring_rules), set(stop_words))
        out_signatures = _signatures(chunk, groups, fires) if signatures else {}
        return cls(out_intents, new, out_texts, out_tokens, out_signatures, days)

    def __add__(self, other: RuleCounts) -> RuleCounts:
        def merge(a: dict[str, Counter], b: dict[str, Counter], k: int | None = None) -> dict[str, Counter]:
            out = {key: Counter(value) for key, value in a.items()}
            for key, value in b.items():
                out.setdefault(key, Counter()).update(value)
            return {key: _top(value, k) for key, value in out.items()} if k else out

        signatures = dict(self.signatures)
        for key, value in other.signatures.items():
            signatures[key] = np.minimum(signatures[key], value) if key in signatures else value
        return RuleCounts(merge(self.intents, other.intents), self.new + other.new,
                          merge(self.texts, other.texts, _KEEP_TEXTS), merge(self.tokens, other.tokens),
                          signatures, self.days | other.days)
