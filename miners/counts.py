"""Phrase x intent counts of model-labelled traffic, as partial counts that add up.

:meth:`PhraseCounts.from_chunk` counts one chunk; ``a + b`` merges two
partials, so the counting runs chunk by chunk here, or per partition on a
distributed engine, with the same result.

Pruning, and its error bound
----------------------------
Logs carry a long tail of phrases seen once (order numbers, typos). Keeping
them all would make memory grow with the log, so two prunes bound it, and
``undercount`` is a bound on how far any kept count can be below the truth:

1. **per chunk**: a (phrase, locale) seen fewer than ``min_chunk_count``
   times in a chunk is dropped from that chunk's partial. It loses at most
   ``min_chunk_count - 1`` per chunk, so the bound grows by that much per
   pruned chunk (chunks of 200k rows keep the bound small: 5 for 1M rows).
2. **a cap on the merged table** (:meth:`capped`, lossy counting in the
   manner of Manku & Motwani): when more than ``max_keys`` (phrase, locale)
   keys are held, the least frequent are dropped; a key that comes back
   starts again from zero, so the bound grows by the largest total dropped.

Every count is a lower bound within ``undercount`` of the true count. The
miner only uses these counts to choose phrases worth checking: agreement,
safety hits and every reported figure are recounted exactly, with the
matcher, on a later pass.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd

from miners.ngrams import SUBSTRING_LANGUAGES, is_substring_locale, phrases

__all__ = ["PhraseCounts"]

_TABLE_COLUMNS = ["phrase", "locale", "intent", "n", "n_conf"]


def _empty_table() -> pd.DataFrame:
    return pd.DataFrame({"phrase": pd.Series(dtype=object), "locale": pd.Series(dtype=object),
                         "intent": pd.Series(dtype=object), "n": pd.Series(dtype="int64"),
                         "n_conf": pd.Series(dtype="int64")})


@dataclass(frozen=True)
class PhraseCounts:
    """Partial counts of one or more chunks.

    Invariants: ``table`` has one row per (phrase, locale, intent) with ``n``
    labelled queries containing the phrase and ``n_conf`` of them at or above
    the confidence threshold; ``rows`` the same per (locale, intent) for all
    labelled queries (never pruned); every count in ``table`` is at most
    ``undercount`` below the true count.
    """

    table: pd.DataFrame = field(default_factory=_empty_table)
    rows: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["locale", "intent", "n", "n_conf"]))
    days: frozenset[date] = frozenset()
    undercount: int = 0

    @classmethod
    def from_chunk(
        cls,
        chunk: pd.DataFrame,
        normalized: list[str | None],
        *,
        min_confidence: float,
        min_chunk_count: int = 2,
        max_words: int = 4,
        min_chars: int = 2,
        max_chars: int = 6,
        substring_languages: tuple[str, ...] = SUBSTRING_LANGUAGES,
    ) -> PhraseCounts:
        """Count the model-labelled rows of one log chunk (``normalized``: its text, normalised)."""
        intent = chunk["model_intent"].astype("string")
        text = pd.Series(normalized, index=chunk.index, dtype=object)
        keep = (intent.notna() & text.notna()).to_numpy(dtype=bool, na_value=False)
        if not keep.any():
            return cls(days=_days(chunk))
        conf = chunk["model_confidence"].astype("Float64").fillna(0.0).to_numpy(dtype=float) >= min_confidence
        frame = pd.DataFrame({
            "text": text.to_numpy(object)[keep],
            "locale": chunk["locale"].astype("string").fillna("").to_numpy(object)[keep],
            "intent": intent.to_numpy(object)[keep],
            "conf": conf[keep].astype("int64"),
        })
        groups = frame.groupby(["text", "locale", "intent"], sort=False).agg(n=("conf", "size"), n_conf=("conf", "sum"))
        groups = groups.reset_index()
        rows = groups.groupby(["locale", "intent"], sort=False)[["n", "n_conf"]].sum().reset_index()

        # Each distinct (text, mode) is cut into phrases once: logs repeat queries.
        cache: dict[tuple[str, bool], list[str]] = {}
        lists = []
        for text_value, locale in zip(groups["text"].tolist(), groups["locale"].tolist()):
            key = (text_value, is_substring_locale(locale, substring_languages))
            found = cache.get(key)
            if found is None:
                found = cache[key] = list(phrases(text_value, key[1], max_words=max_words, min_chars=min_chars,
                                                  max_chars=max_chars))
            lists.append(found)
        lengths = np.fromiter((len(x) for x in lists), dtype=np.int64, count=len(lists))
        owner = np.repeat(np.arange(len(lists)), lengths)
        flat = np.fromiter(itertools.chain.from_iterable(lists), dtype=object, count=int(lengths.sum()))
        if not len(flat):
            return cls(rows=rows, days=_days(chunk))
        phrase_code, phrase_values = pd.factorize(flat)
        li_code, li_values = pd.factorize(pd.MultiIndex.from_frame(groups[["locale", "intent"]]))
        _, loc_values = pd.factorize(groups["locale"])
        key = phrase_code.astype(np.int64) * len(li_values) + li_code[owner]
        keys, inverse = np.unique(key, return_inverse=True)
        n = np.bincount(inverse, weights=groups["n"].to_numpy()[owner]).astype(np.int64)
        n_conf = np.bincount(inverse, weights=groups["n_conf"].to_numpy()[owner]).astype(np.int64)
        k_phrase, k_li = keys // len(li_values), keys % len(li_values)
        # Locale of each key, to prune by the (phrase, locale) total across intents.
        li_loc = np.asarray(pd.Index(loc_values).get_indexer(li_values.get_level_values(0)))
        pl = k_phrase * len(loc_values) + li_loc[k_li]
        _, pl_inverse = np.unique(pl, return_inverse=True)
        totals = np.bincount(pl_inverse, weights=n)[pl_inverse]
        kept = totals >= min_chunk_count
        pruned = bool((~kept).any()) and min_chunk_count > 1
        table = pd.DataFrame({
            "phrase": np.asarray(phrase_values, dtype=object)[k_phrase[kept]],
            "locale": np.asarray(li_values.get_level_values(0), dtype=object)[k_li[kept]],
            "intent": np.asarray(li_values.get_level_values(1), dtype=object)[k_li[kept]],
            "n": n[kept],
            "n_conf": n_conf[kept],
        })
        return cls(table=table, rows=rows, days=_days(chunk), undercount=(min_chunk_count - 1) if pruned else 0)

    def __add__(self, other: PhraseCounts) -> PhraseCounts:
        return PhraseCounts(
            table=_sum([self.table, other.table], ["phrase", "locale", "intent"], _TABLE_COLUMNS),
            rows=_sum([self.rows, other.rows], ["locale", "intent"], ["locale", "intent", "n", "n_conf"]),
            days=self.days | other.days,
            undercount=self.undercount + other.undercount,
        )

    def capped(self, max_keys: int) -> PhraseCounts:
        """Keep at most ``max_keys`` (phrase, locale) keys, the most frequent (see the module docstring)."""
        totals = self.table.groupby(["phrase", "locale"], sort=False)["n"].sum()
        if len(totals) <= max_keys:
            return self
        threshold = int(totals.sort_values(ascending=False, kind="stable").iloc[max_keys])
        # Ties at the threshold go too, so the bound is exactly "dropped totals <= threshold".
        keep = totals[totals > threshold].index
        index = pd.MultiIndex.from_frame(self.table[["phrase", "locale"]])
        table = self.table[index.isin(keep)].reset_index(drop=True)
        return PhraseCounts(table=table, rows=self.rows, days=self.days, undercount=self.undercount + threshold)

    @property
    def key_count(self) -> int:
        """Distinct (phrase, locale) keys held: what memory is proportional to."""
        return int(self.table[["phrase", "locale"]].drop_duplicates().shape[0]) if len(self.table) else 0


def _sum(frames: list[pd.DataFrame], by: list[str], columns: list[str]) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    if not frames:
        return _empty_table() if "phrase" in columns else pd.DataFrame(columns=columns)
    if len(frames) == 1:
        return frames[0]
    merged = pd.concat(frames, ignore_index=True).groupby(by, sort=False)[["n", "n_conf"]].sum().reset_index()
    return merged[columns]


def _days(chunk: pd.DataFrame) -> frozenset[date]:
    if "ts" not in chunk.columns or chunk.empty:
        return frozenset()
    return frozenset(d for d in pd.to_datetime(chunk["ts"], utc=True).dt.date.dropna().unique())
