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

from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa

from miners.chunks import LabelledGroups, chunk_days, slices
from miners.ngrams import SUBSTRING_LANGUAGES, is_substring_locale, phrase_table

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
        days = chunk_days(chunk)
        groups = LabelledGroups.from_chunk(chunk, normalized)
        if not len(groups):
            return cls(days=days)
        conf = chunk["model_confidence"].astype("Float64").fillna(0.0).to_numpy(dtype=float) >= min_confidence
        n_conf = np.bincount(groups.group, weights=conf[groups.rows], minlength=len(groups)).astype(np.int64)
        # A missing locale counts as "" (and so with a locale written "").
        locale_code, locales = pd.factorize(np.array(["" if x is None else x for x in groups.locales], dtype=object))
        locales, intents = np.asarray(locales, dtype=object), np.asarray(groups.intents, dtype=object)
        # Each group's (locale, intent) as one integer, locale major.
        pair = locale_code[groups.locale] * len(intents) + groups.intent
        pair_id, pairs = pd.factorize(pair)
        rows = pd.DataFrame({"locale": locales[pairs // len(intents)], "intent": intents[pairs % len(intents)],
                             "n": np.bincount(pair_id, weights=groups.weight).astype(np.int64),
                             "n_conf": np.bincount(pair_id, weights=n_conf).astype(np.int64)})
        substring = np.array([is_substring_locale(x, substring_languages) for x in locales], dtype=np.int64)
        owner, phrase, dictionary = _group_phrases(
            groups.texts, groups.text * 2 + substring[locale_code[groups.locale]], max_words=max_words,
            min_chars=min_chars, max_chars=max_chars)
        if not len(phrase):
            return cls(rows=rows, days=days)
        keys, n_key, n_conf_key, pruned = _pruned_sums(phrase * (len(locales) * len(intents)) + pair[owner],
                                                       groups.weight[owner], n_conf[owner], len(intents),
                                                       min_chunk_count)
        table = pd.DataFrame({
            "phrase": dictionary.take(pa.array(keys // (len(locales) * len(intents)))).to_pandas(),
            "locale": locales[keys // len(intents) % len(locales)],
            "intent": intents[keys % len(intents)],
            "n": n_key,
            "n_conf": n_conf_key,
        })
        return cls(table=table, rows=rows, days=days, undercount=(min_chunk_count - 1) if pruned else 0)

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


def _pruned_sums(keys: np.ndarray, n: np.ndarray, n_conf: np.ndarray, intents: int, min_count: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """Sum ``n`` and ``n_conf`` per distinct key, then drop the keys of a (phrase, locale) seen fewer
    than ``min_count`` times; a key is ``(phrase * locales + locale) * intents + intent``.

    Returns the kept keys (ascending), their sums, and whether any key was dropped.
    """
    keys, inverse = np.unique(keys, return_inverse=True)
    n_key = np.bincount(inverse, weights=n).astype(np.int64)
    n_conf_key = np.bincount(inverse, weights=n_conf).astype(np.int64)
    # Keys ascending: the keys of one (phrase, locale) are adjacent.
    by_locale = keys // intents
    starts = np.flatnonzero(np.r_[True, by_locale[1:] != by_locale[:-1]])
    totals = np.repeat(np.add.reduceat(n_key, starts), np.diff(np.r_[starts, len(keys)]))
    kept = totals >= min_count
    return keys[kept], n_key[kept], n_conf_key[kept], bool((~kept).any())


def _group_phrases(texts: list[str], text_mode: np.ndarray, **sizes) -> tuple[np.ndarray, np.ndarray, pa.Array]:
    """The phrases of each group, flat: ``dictionary[codes[k]]`` is a phrase of group ``owner[k]``.

    ``text_mode[g]`` is ``2 * text code + substring``: each distinct (text, mode)
    is cut once, then its phrases are repeated for every group that holds it.
    """
    mode_id, modes = pd.factorize(text_mode)
    cut_owner, codes, dictionary = phrase_table([texts[m] for m in (modes >> 1).tolist()], modes & 1 == 1, **sizes)
    owner, index = slices(np.bincount(cut_owner, minlength=len(modes)), mode_id)
    return owner, codes[index], dictionary
