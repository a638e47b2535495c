"""The dataset builder as a step of a log fold (see :mod:`rulelife.engines.fold`).

:class:`DatasetPass` turns one chunk of the log into one fresh
:class:`~rulelife.evidence.datasets.builder.DatasetBuilder` per rule, and
:func:`merge_builders` adds two such lists up, so several rules' datasets
are built in one read of the log on any engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd

from rulelife.config import Settings
from rulelife.evidence.datasets.builder import DatasetBuilder
from rulelife.evidence.datasets.neighbourhood import content_words, count_neighbours, word_matcher
from rulelife.rules.definition import Rule
from rulelife.rules.matcher import LexiconPhrase, Matcher, compile_rule
from rulelife.rules.normalize import normalize_many

__all__ = ["DatasetPass", "merge_builders"]


@dataclass
class DatasetPass:
    """One chunk -> a builder per rule (in ``rules`` order) that counted and sampled it.

    ``miners`` are the fitted hard-negative miners, one per rule (None: no
    hard-negative stratum). One matcher of every rule answers "which rules
    fire here" for all of them: ``MatchResult.fired`` lists every rule that
    fired and was not vetoed, which is what each rule alone would say.
    ``starts`` (one a rule, None: no limit) is the first UTC day each rule's
    builder sees, so rules whose evidence must begin on different days share
    one read of the log. ``lexicon`` (the workspace's safety lexicon,
    compiled) vetoes as the runtime does: a message it sends to the model is
    no fire of a rule offline either.
    """

    rules: Sequence[Rule]
    settings: Settings
    miners: Sequence[object | None]
    starts: Sequence[date | None] | None = None
    lexicon: Sequence[LexiconPhrase] = ()
    _matcher: Matcher | None = field(default=None, repr=False, compare=False)
    _words: Matcher | None = field(default=None, repr=False, compare=False)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_matcher": None, "_words": None}  # rebuilt where the step runs

    def __call__(self, chunk: pd.DataFrame) -> list[DatasetBuilder]:
        if self._matcher is None:
            self._matcher = Matcher([compile_rule(rule) for rule in self.rules], lexicon=self.lexicon)
            self._content = [content_words(rule) for rule in self.rules]
            self._words = word_matcher({w for words in self._content for w in words})
        normalized = normalize_many(chunk["text"].tolist())
        fired = [r.fired if r is not None else () for r in
                 self._matcher.match_many(normalized, chunk["locale"], normalized=True)]
        builders = []
        starts = self.starts or [None] * len(self.rules)
        for rule, miner, start, words in zip(self.rules, self.miners, starts, self._content, strict=True):
            builder = DatasetBuilder(rule, self.settings, miner)
            fires = np.fromiter((rule.id in f for f in fired), dtype=bool, count=len(fired))
            if start is None:
                builder.add(chunk, normalized, fires)
            else:
                keep = (chunk["ts"] >= pd.Timestamp(start, tz="UTC")).to_numpy(dtype=bool, na_value=False)
                if keep.any():
                    builder.add(chunk[keep].reset_index(drop=True), [t for t, k in zip(normalized, keep) if k],
                                fires[keep])
            builders.append(builder)
        self._add_neighbours(chunk, normalized, builders, starts)
        return builders

    def _add_neighbours(self, chunk, normalized, builders, starts) -> None:
        """Each builder's content-word counts, from one walk of every rule's words per distinct start day."""
        counted: dict = {}
        for builder, start, words in zip(builders, starts, self._content, strict=True):
            if not words:
                continue
            if start not in counted:
                rows, texts = chunk, normalized
                if start is not None:
                    keep = (chunk["ts"] >= pd.Timestamp(start, tz="UTC")).to_numpy(dtype=bool, na_value=False)
                    rows, texts = chunk[keep].reset_index(drop=True), [t for t, k in zip(normalized, keep) if k]
                counted[start] = count_neighbours(rows, texts, words, self.settings.safety_intents, self._words)
            builder.add_neighbours(counted[start], words)


def merge_builders(a: list[DatasetBuilder], b: list[DatasetBuilder]) -> list[DatasetBuilder]:
    """Merge two lists of builders rule by rule (see :meth:`DatasetBuilder.merge`)."""
    return [x.merge(y) for x, y in zip(a, b, strict=True)]
