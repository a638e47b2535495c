"""The miner's passes as steps of a log fold (see :mod:`rulelife.engines.fold`).

Each step is a picklable function of one log chunk whose results merge, so
the same pass runs in this process, in a pool of processes or on Spark
workers. A step holds rules, not matchers: the matcher is rebuilt where the
step runs (milliseconds) and kept for the following chunks there.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import pandas as pd

from miners.counts import PhraseCounts
from miners.probes import RuleCounts
from rulelife.engines.fold import fold_frames
from rulelife.rules.matcher import CompiledRule, Matcher
from rulelife.rules.normalize import normalize_many

__all__ = ["Halves", "PhrasePass", "RulePass", "add_capped", "add_halves", "frames_fold", "normalized_texts"]


def normalized_texts(chunk: pd.DataFrame) -> list[str | None]:
    """The chunk's texts, normalised."""
    return normalize_many(chunk["text"].tolist())


def frames_fold(chunks, chunk_rows: int) -> Callable[..., Any]:
    """A fold (``fold(step, combine)``) over in-memory log frames, or a function returning a fresh iterator of them."""
    def fold(step, combine=operator.add):
        return fold_frames(step, combine, chunks() if callable(chunks) else chunks, chunk_rows)

    return fold


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


@dataclass(frozen=True)
class Halves:
    """A step counted apart on the days up to ``split`` and on the days after it.

    The result is a pair of the step's results (None where a half had no row
    in the chunk); :func:`add_halves` merges two pairs. It lets the miner ask
    whether a phrase holds in both halves of its window without a second read.
    """

    step: Callable[[pd.DataFrame], Any]
    split: date  # the last day of the first half

    def __call__(self, chunk: pd.DataFrame) -> tuple[Any, Any]:
        boundary = pd.Timestamp(self.split + timedelta(days=1), tz="UTC")
        first = (chunk["ts"] < boundary).to_numpy(dtype=bool, na_value=False)
        return tuple(self.step(chunk[mask].reset_index(drop=True)) if mask.any() else None
                     for mask in (first, ~first))


def add_halves(a: tuple[Any, Any], b: tuple[Any, Any]) -> tuple[Any, Any]:
    """Merge two :class:`Halves` results half by half."""
    return tuple(y if x is None else x if y is None else x + y for x, y in zip(a, b, strict=True))
