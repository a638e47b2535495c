"""The safety-lexicon miner: phrases that lean toward a safety intent in model-labelled traffic.

It proposes; a person decides. Each proposal is a content word or a short
n-gram (``max_words``) whose labelled queries go to one safety intent in at
least ``min_share`` of cases, with ``min_support`` of them, counted on the
choosing days. :meth:`SafetyLexiconMiner.score` recounts the proposals on
held-out days, so a reviewer sees whether the lean holds on traffic that did
not propose the phrase.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd

from miners import grouping
from miners.counts import PhraseCounts
from miners.ngrams import SUBSTRING_LANGUAGES, is_substring_locale, words
from miners.passes import PhrasePass, add_capped, frames_fold
from rulelife.rules.stopwords import stop_words_for

__all__ = ["LexiconProposal", "SafetyLexiconMiner"]

Fold = Callable[..., Any]


@dataclass(frozen=True)
class LexiconProposal:
    """One phrase that leans toward a safety intent, with its counts per intent."""

    phrase: str
    locale: str
    intent: str
    match: str
    n: int  # labelled queries holding the phrase that the model gives ``intent``
    total: int  # all labelled queries holding the phrase
    by_intent: dict[str, int]
    heldout_n: int | None = None
    heldout_total: int | None = None

    @property
    def share(self) -> float:
        return self.n / self.total if self.total else 0.0

    @property
    def heldout_share(self) -> float | None:
        return self.heldout_n / self.heldout_total if self.heldout_total else None

    def to_dict(self) -> dict:
        return {"phrase": self.phrase, "locale": self.locale, "intent": self.intent, "match": self.match,
                "n": self.n, "total": self.total, "share": self.share, "by_intent": self.by_intent,
                "heldout_n": self.heldout_n, "heldout_total": self.heldout_total,
                "heldout_share": self.heldout_share}


class SafetyLexiconMiner:
    """Propose safety-lexicon phrases from model-labelled traffic.

    Parameters
    ----------
    safety_intents
        The intents a lexicon protects.
    min_share
        Share of a phrase's labelled queries that must carry the safety intent.
    min_support
        Labelled queries of the safety intent a phrase needs.
    max_words, min_chars, max_chars
        Word n-grams up to ``max_words`` (short: a lexicon phrase is a signal,
        not a sentence); character n-grams for substring locales.
    known
        Phrases already in the lexicon (normalised): not proposed again.

    Examples
    --------
    >>> rows = ([("my card was stolen", "escalation")] * 12 + [("stolen parcel, please refund", "escalation")] * 3
    ...         + [("track my card", "order_tracking")] * 30)
    >>> log = pd.DataFrame({"ts": pd.Timestamp("2026-01-01", tz="UTC"), "locale": "en-US",
    ...                     "text": [t for t, _ in rows], "model_intent": [i for _, i in rows],
    ...                     "model_confidence": 0.9})
    >>> miner = SafetyLexiconMiner(safety_intents=["escalation"], min_support=10).fit([log])
    >>> [(p.phrase, p.intent, p.n, p.total) for p in miner.proposals_]
    [('stolen', 'escalation', 15, 15)]
    """

    def __init__(self, *, safety_intents: Sequence[str], min_share: float = 0.5, min_support: int = 10,
                 max_words: int = 2, min_chars: int = 2, max_chars: int = 4,
                 substring_languages: Sequence[str] = SUBSTRING_LANGUAGES, known: Collection[str] = (),
                 chunk_rows: int = 200_000, max_keys: int = 500_000):
        self.safety_intents = safety_intents
        self.min_share = min_share
        self.min_support = min_support
        self.max_words = max_words
        self.min_chars = min_chars
        self.max_chars = max_chars
        self.substring_languages = substring_languages
        self.known = known
        self.chunk_rows = chunk_rows
        self.max_keys = max_keys

    def _check_params(self) -> None:
        if isinstance(self.safety_intents, str) or not self.safety_intents:
            raise ValueError(f"safety_intents must be a non-empty list of intents, got {self.safety_intents!r}")
        if not 0 < self.min_share <= 1:
            raise ValueError(f"min_share must be in (0, 1], got {self.min_share!r}")
        if isinstance(self.min_support, bool) or not isinstance(self.min_support, int) or self.min_support < 1:
            raise ValueError(f"min_support must be a whole number of at least 1, got {self.min_support!r}")

    def _counts(self, fold: Fold) -> PhraseCounts:
        # Every labelled query counts (min_confidence 0): a safety signal is in the
        # message, whether or not the model was sure of its label.
        step = PhrasePass(0.0, 1, self.max_words, self.min_chars, self.max_chars,
                          tuple(self.substring_languages), self.max_keys)
        return fold(step, functools.partial(add_capped, max_keys=self.max_keys)) or PhraseCounts()

    def fit(self, chunks=None, *, fold: Fold | None = None) -> SafetyLexiconMiner:
        """Count phrases on the traffic (a list of log frames, or ``fold``) and propose the leaning ones."""
        self._check_params()
        fold = fold or frames_fold(chunks, self.chunk_rows)
        table = self._counts(fold).table
        self.proposals_ = self._propose(table)
        return self

    def score(self, chunks=None, *, fold: Fold | None = None) -> SafetyLexiconMiner:
        """Recount each proposal on held-out traffic (reported, never used to choose)."""
        fold = fold or frames_fold(chunks, self.chunk_rows)
        totals = _totals(self._counts(fold).table)
        self.proposals_ = [replace(p, heldout_n=totals.get((p.phrase, p.locale), {}).get(p.intent, 0),
                                   heldout_total=sum(totals.get((p.phrase, p.locale), {}).values()))
                           for p in self.proposals_]
        return self

    def _propose(self, table: pd.DataFrame) -> list[LexiconProposal]:
        safety = set(self.safety_intents)
        known = set(self.known)
        found: list[LexiconProposal] = []
        for (phrase, locale), by_intent in _totals(table).items():
            total = sum(by_intent.values())
            intent, n = max(((i, c) for i, c in by_intent.items() if i in safety), key=lambda x: (x[1], x[0]),
                            default=(None, 0))
            if intent is None or n < self.min_support or n < self.min_share * total or phrase in known:
                continue
            substring = is_substring_locale(locale, tuple(self.substring_languages))
            stops = stop_words_for([locale])
            tokens = [phrase] if substring else words(phrase)
            if len(phrase) < 2 or not any(c.isalpha() for c in phrase) or all(t in stops for t in tokens) or (
                    not substring and (tokens[0] in stops or tokens[-1] in stops)):
                continue
            found.append(LexiconProposal(phrase, locale, intent, "substring" if substring else "word", n, total,
                                         dict(sorted(by_intent.items()))))
        # A phrase holding a shorter proposal of the same intent adds nothing: the shorter already signals.
        keep = []
        for key in {(p.intent, p.locale, p.match) for p in found}:
            group = [p for p in found if (p.intent, p.locale, p.match) == key]
            dropped = grouping.subsumed([p.phrase for p in group], key[2] == "substring")
            keep += [p for p in group if p.phrase not in dropped]
        return sorted(keep, key=lambda p: (-p.n, p.intent, p.phrase))


def _totals(table: pd.DataFrame) -> dict[tuple[str, str], dict[str, int]]:
    out: dict[tuple[str, str], dict[str, int]] = {}
    for row in table.itertuples(index=False):
        out.setdefault((row.phrase, row.locale), {})[row.intent] = int(row.n)
    return out
