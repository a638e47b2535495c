"""A log chunk's labelled rows grouped by distinct query, and array helpers the miner's counts share.

Logs repeat queries, so the miner's per-chunk counts (:mod:`miners.counts`,
:mod:`miners.probes`) cut phrases and match once a distinct (text, locale,
intent) and count with the group's weight.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

__all__ = ["LabelledGroups", "chunk_days", "slices"]


@dataclass(frozen=True)
class LabelledGroups:
    """A chunk's model-labelled rows that have a text, grouped by (normalised text, locale, intent).

    Logs repeat queries, so per-query work (cutting phrases, matching) is done
    once a group and counted with the group's ``weight``.

    Invariants: groups are numbered in the order of their first row, so a
    count that walks the groups in order meets its keys in the order a
    row-by-row count would; group ``g`` is ``texts[text[g]]``,
    ``locales[locale[g]]`` (None: missing) and ``intents[intent[g]]``, with
    ``weight[g]`` rows; ``rows[j]`` is the chunk position of the ``j``-th
    labelled row and ``group[j]`` its group.
    """

    texts: list[str]
    locales: list[str | None]
    intents: list[str]
    text: np.ndarray
    locale: np.ndarray
    intent: np.ndarray
    weight: np.ndarray
    rows: np.ndarray
    group: np.ndarray

    @classmethod
    def from_chunk(cls, chunk: pd.DataFrame, normalized: list[str | None]) -> LabelledGroups:
        intent_code, intents = pd.factorize(chunk["model_intent"].astype("string"))
        locale_code, locales = pd.factorize(chunk["locale"].astype("string"))
        distinct = dict.fromkeys(normalized)
        distinct.pop(None, None)
        texts = list(distinct)
        index = dict(zip(texts, range(len(texts))))
        index[None] = -1
        text_code = np.fromiter(map(index.__getitem__, normalized), dtype=np.int64, count=len(normalized))
        rows = np.flatnonzero((intent_code >= 0) & (text_code >= 0))
        # One integer a (text, locale, intent); locale code 0 is a missing locale.
        n_locales, n_intents = len(locales) + 1, max(1, len(intents))
        key = (text_code[rows] * n_locales + (locale_code[rows] + 1)) * n_intents + intent_code[rows]
        group, keys = pd.factorize(key)  # numbered by first appearance
        return cls(texts=texts, locales=[None, *locales.tolist()], intents=intents.tolist(),
                   text=keys // (n_locales * n_intents), locale=keys // n_intents % n_locales,
                   intent=keys % n_intents, weight=np.bincount(group, minlength=len(keys)),
                   rows=rows, group=group.astype(np.int64))

    def __len__(self) -> int:
        return len(self.weight)


def slices(lengths: np.ndarray, take: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate slices of a flat array cut in consecutive slices of ``lengths``.

    Returns ``(owner, index)``: ``flat[index]`` is slice ``take[0]``, then slice
    ``take[1]``, ...; ``owner[k]`` is the position in ``take`` that ``index[k]`` came from.

    >>> slices(np.array([2, 0, 3]), np.array([2, 0, 2]))
    (array([0, 0, 0, 1, 1, 2, 2, 2]), array([2, 3, 4, 0, 1, 2, 3, 4]))
    """
    taken = lengths[take]
    owner = np.repeat(np.arange(len(take)), taken)
    first = np.cumsum(lengths) - lengths
    return owner, np.arange(len(owner)) + np.repeat(first[take] - (np.cumsum(taken) - taken), taken)


def chunk_days(chunk: pd.DataFrame) -> frozenset[date]:
    """The UTC days of the chunk's rows."""
    if "ts" not in chunk.columns or chunk.empty:
        return frozenset()
    days = pd.to_datetime(chunk["ts"], utc=True).dt.tz_convert(None).to_numpy("datetime64[D]")
    return frozenset(np.unique(days[~np.isnat(days)]).astype(object))
