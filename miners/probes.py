"""Exact per-rule counts from the real matcher, as partial counts that add up.

The n-gram counts choose what to look at; these counts decide. They run the
same :class:`~rulelife.matcher.Matcher` the runtime runs, so a rule's fires,
agreement and safety hits here are exactly what it would do online.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd

from miners.ngrams import char_ngrams, words
from rulelife.matcher import Matcher

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


def _top(counter: Counter, k: int) -> Counter:
    return counter if len(counter) <= k else Counter(dict(counter.most_common(k)))


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """MinHash estimate of the Jaccard similarity of two rules' query sets."""
    return float(np.mean(a == b))


def _row_hashes(chunk: pd.DataFrame, rows: np.ndarray) -> np.ndarray:
    """SIGNATURE_SIZE hashes a row, from its query_id (or its text and time)."""
    part = chunk.iloc[rows]
    key = part["query_id"] if "query_id" in part.columns else part["text"].astype(str) + part["ts"].astype(str)
    base = pd.util.hash_pandas_object(key.astype(str), index=False).to_numpy(np.uint64)
    with np.errstate(over="ignore"):
        return (base[:, None] * _A[None, :] + _B[None, :]) & _MASK


@dataclass(frozen=True)
class RuleCounts:
    """What a set of rules does on labelled traffic, per rule id.

    Invariants: ``intents[r][i]`` is the number of model-labelled queries rule
    ``r`` fires on (not vetoed) that the model labels ``i``; ``new[r]`` counts
    those on which no existing rule fires; ``tokens[r][(t, i)]`` counts those
    holding token ``t`` (for the rules asked for); ``signatures[r]`` is the
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
        intent = chunk["model_intent"].astype("string")
        has_text = np.fromiter((t is not None for t in normalized), dtype=bool, count=len(normalized))
        rows = np.flatnonzero(intent.notna().to_numpy(dtype=bool, na_value=False) & has_text)
        texts = [normalized[i] for i in rows]
        locales = [loc if isinstance(loc, str) else None
                   for loc in chunk["locale"].astype("string").to_numpy(object)[rows]]
        labels = intent.to_numpy(object)[rows]
        results = matcher.match_many(texts, locales, normalized=True)
        if existing is not None and existing.rules:
            old = np.fromiter((r is not None for r in existing.match_many(texts, locales, normalized=True)),
                              dtype=bool, count=len(texts))
        else:
            old = np.zeros(len(texts), dtype=bool)
        pair_row: list[int] = []
        pair_rule: list[str] = []
        for r, result in enumerate(results):
            if result is not None:
                pair_row.extend([r] * len(result.fired))
                pair_rule.extend(result.fired)
        days = frozenset(pd.to_datetime(chunk["ts"], utc=True).dt.date.dropna().unique()) if len(chunk) else frozenset()
        if not pair_row:
            return cls(days=days)
        pair_row_arr = np.asarray(pair_row)
        pairs = pd.DataFrame({"rule": pair_rule, "intent": labels[pair_row_arr],
                              "text": np.asarray(texts, dtype=object)[pair_row_arr], "old": old[pair_row_arr]})
        out_intents: dict[str, Counter] = {}
        for (rule_id, label), count in pairs.groupby(["rule", "intent"], sort=False).size().items():
            out_intents.setdefault(rule_id, Counter())[label] = int(count)
        new = Counter({k: int(v) for k, v in pairs[~pairs["old"]].groupby("rule", sort=False).size().items()})
        out_texts: dict[str, Counter] = {}
        if examples:
            top = (pairs.groupby(["rule", "text", "intent"], sort=False).size().rename("n").reset_index()
                   .sort_values("n", ascending=False, kind="stable").groupby("rule", sort=False).head(_KEEP_TEXTS))
            for rule_id, text, label, count in top.itertuples(index=False):
                out_texts.setdefault(rule_id, Counter())[(text, label)] = int(count)
        out_tokens: dict[str, Counter] = {}
        if token_rules:
            wanted = pairs[pairs["rule"].isin(set(token_rules))]
            for rule_id, text, label in zip(wanted["rule"], wanted["text"], wanted["intent"]):
                if rule_id in substring_rules:
                    tokens = char_ngrams(text, 2, 2)
                else:
                    tokens = {w for w in words(text) if len(w) > 1 and w not in stop_words}
                counter = out_tokens.setdefault(rule_id, Counter())
                for token in tokens:
                    counter[(token, label)] += 1
        out_signatures: dict[str, np.ndarray] = {}
        if signatures:
            hashes = _row_hashes(chunk, rows)
            codes, names = pd.factorize(pd.Series(pair_rule))
            signature = np.full((len(names), SIGNATURE_SIZE), _MASK, dtype=np.uint64)
            # Blocks of pairs keep the gathered hash matrix small (memory is per block, not per chunk).
            for begin in range(0, len(codes), 100_000):
                block_codes = codes[begin:begin + 100_000]
                order = np.argsort(block_codes, kind="stable")
                sorted_codes = block_codes[order]
                starts = np.flatnonzero(np.r_[True, np.diff(sorted_codes) != 0])
                mins = np.minimum.reduceat(hashes[pair_row_arr[begin:begin + 100_000][order]], starts, axis=0)
                present = sorted_codes[starts]
                signature[present] = np.minimum(signature[present], mins)
            out_signatures = {name: signature[k] for k, name in enumerate(names)}
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
