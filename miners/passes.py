"""The miner's passes as steps of a log fold (see :mod:`rulelife.engines.fold`).

Each step is a picklable function of one log chunk whose results merge, so
the same pass runs in this process, in a pool of processes or on Spark
workers. A step holds rules, not matchers: the matcher is rebuilt where the
step runs (milliseconds) and kept for the following chunks there.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

import pandas as pd

from miners.counts import PhraseCounts
from miners.probes import RuleCounts
from rulelife.matcher import CompiledRule, Matcher
from rulelife.normalize import normalize_many

__all__ = ["PhrasePass", "RulePass", "add_capped", "normalized_texts"]


def normalized_texts(chunk: pd.DataFrame) -> list[str | None]:
    """The chunk's texts, normalised."""
    return normalize_many(chunk["text"].tolist())


def add_capped(a: PhraseCounts, b: PhraseCounts, max_keys: int) -> PhraseCounts:
    """Merge two phrase-count partials and keep the table within ``max_keys`` keys."""
    return (a + b).capped(max_keys)


@dataclass(frozen=True)
class PhrasePass:
    """Pass 1: phrase x locale x intent counts of a chunk, capped like the running total."""

    min_confidence: float
    min_chunk_count: int
    max_words: int
    min_chars: int
    max_chars: int
    substring_languages: tuple[str, ...]
    max_keys: int

    def __call__(self, chunk: pd.DataFrame) -> PhraseCounts:
        return PhraseCounts.from_chunk(
            chunk, normalized_texts(chunk), min_confidence=self.min_confidence,
            min_chunk_count=self.min_chunk_count, max_words=self.max_words, min_chars=self.min_chars,
            max_chars=self.max_chars, substring_languages=self.substring_languages).capped(self.max_keys)


@dataclass
class RulePass:
    """Passes 2 and 3: exact counts of ``rules`` on a chunk, with ``active`` as the existing rules."""

    rules: Sequence[CompiledRule]
    active: Sequence[CompiledRule]
    token_rules: Collection[str] = ()
    stop_words: Collection[str] = ()
    signatures: bool = False
    examples: bool = True
    _matchers: tuple[Matcher, Matcher] | None = field(default=None, repr=False, compare=False)

    def __getstate__(self) -> dict:
        # Ship the rules; the automata are rebuilt where the step runs.
        return {**self.__dict__, "_matchers": None}

    def _built(self) -> tuple[Matcher, Matcher]:
        if self._matchers is None:
            self._matchers = (Matcher(list(self.rules)), Matcher(list(self.active)))
        return self._matchers

    def __call__(self, chunk: pd.DataFrame) -> RuleCounts:
        matcher, active = self._built()
        return RuleCounts.from_chunk(
            chunk, normalized_texts(chunk), matcher, existing=active, token_rules=self.token_rules,
            substring_rules={r.id for r in self.rules if r.match == "substring"}, stop_words=self.stop_words,
            signatures=self.signatures, examples=self.examples)
