"""Phrases a rule could use, cut from one normalised query.

A phrase is proposed only if the matcher would fire on it exactly where it was
counted, so a count here is a count of the rule's fires:

- **word locales**: every span of 1 to ``max_words`` consecutive word tokens
  (``\\w+``, the matcher's word characters) joined by a single space, an
  apostrophe or a hyphen. The span starts and ends on a word boundary, so a
  ``match: word`` rule with that phrase fires on that query; conversely every
  word-bounded occurrence of such a phrase is one of these spans.
- **substring locales** (scripts without spaces, e.g. ``ja-JP``): every
  character n-gram of ``min_chars`` to ``max_chars`` inside a run of word
  characters; a ``match: substring`` rule fires wherever it occurs.

Each query contributes a phrase once (document frequency), because a rule
fires once per query however often its phrase repeats.

:func:`phrases` cuts one query; :func:`phrase_table` cuts many at once, with
the same result, in a few regular-expression and Arrow calls instead of a
Python loop a phrase (the miner's first pass cuts every distinct query).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["SUBSTRING_LANGUAGES", "char_ngrams", "is_substring_locale", "phrase_table", "phrases", "word_phrases",
           "words"]

_WORD = re.compile(r"\w+")
_SPLIT = re.compile(r"(\w+)")
# Joins the texts of a batch: not a word character nor a joiner, so no phrase crosses it.
_BOUNDARY = "\x00"
# What may sit between two tokens of one phrase: "where's", "e-mail", "my order".
_JOINERS = frozenset({" ", "'", "-"})
# Languages written without spaces between words.
SUBSTRING_LANGUAGES = ("ja", "zh", "th")


def is_substring_locale(locale: str | None, languages: tuple[str, ...] = SUBSTRING_LANGUAGES) -> bool:
    """Whether rules for ``locale`` match substrings (no word boundaries).

    >>> is_substring_locale("ja-JP"), is_substring_locale("en_US")
    (True, False)
    """
    if not isinstance(locale, str):
        return False
    return locale.strip().replace("_", "-").lower().split("-")[0] in languages


def words(text: str) -> list[str]:
    """The word tokens of a normalised text."""
    return _WORD.findall(text)


def word_phrases(text: str, max_words: int = 4) -> set[str]:
    """Word spans of 1..``max_words`` tokens of a normalised text.

    >>> sorted(word_phrases("where's my order?", 2))
    ['my', 'my order', 'order', 's', 's my', 'where', "where's"]
    """
    spans = [(m.start(), m.end()) for m in _WORD.finditer(text)]
    out: set[str] = set()
    count = len(spans)
    for i in range(count):
        start = spans[i][0]
        last_end = spans[i][1]
        out.add(text[start:last_end])
        for j in range(i + 1, min(i + max_words, count)):
            begin, end = spans[j]
            if text[last_end:begin] not in _JOINERS:
                break
            out.add(text[start:end])
            last_end = end
    return out


def char_ngrams(text: str, min_chars: int = 2, max_chars: int = 6) -> set[str]:
    """Character n-grams of ``min_chars``..``max_chars`` inside runs of word characters.

    >>> sorted(char_ngrams("配送状況", 2, 3))
    ['状況', '送状', '送状況', '配送', '配送状']
    """
    out: set[str] = set()
    for run in _WORD.findall(text):
        size = len(run)
        for n in range(min_chars, min(max_chars, size) + 1):
            for i in range(size - n + 1):
                out.add(run[i : i + n])
    return out


def phrases(text: str, substring: bool, *, max_words: int = 4, min_chars: int = 2, max_chars: int = 6) -> set[str]:
    """The candidate phrases of one normalised query (see the module docstring)."""
    if substring:
        return char_ngrams(text, min_chars, max_chars)
    return word_phrases(text, max_words)


def phrase_table(texts: Sequence[str], substring: Sequence[bool], *, max_words: int = 4, min_chars: int = 2,
                 max_chars: int = 6) -> tuple[np.ndarray, np.ndarray, pa.Array]:
    """The phrases of many texts, as :func:`phrases` cuts each (``substring[j]``: text ``j``'s mode).

    Returns ``(owner, codes, dictionary)``: text ``j``'s phrases are
    ``dictionary[codes[k]]`` for the ``k`` with ``owner[k] == j``, each once,
    ``owner`` ascending; ``dictionary`` is an Arrow string array.

    >>> owner, codes, dictionary = phrase_table(["where's my order?", "配送状況"], [False, True], max_words=2,
    ...                                         max_chars=3)
    >>> [sorted(dictionary.take(codes[owner == j]).to_pylist()) for j in range(2)]
    [['my', 'my order', 'order', 's', 's my', 'where', "where's"], ['状況', '送状', '送状況', '配送', '配送状']]
    """
    if min_chars < 1:
        raise ValueError(f"min_chars must be at least 1, got {min_chars!r}")
    mode = np.asarray(substring, dtype=bool).reshape(-1)
    by_word, by_char = np.flatnonzero(~mode), np.flatnonzero(mode)
    strings, owners = _word_spans([texts[j] for j in by_word.tolist()], max_words)
    char_strings, char_owners = _char_spans([texts[j] for j in by_char.tolist()], min_chars, max_chars)
    owner = np.concatenate([by_word[o] for o in owners] + [by_char[o] for o in char_owners] + [np.empty(0, np.int64)])
    encoded = pa.chunked_array(strings + char_strings, type=pa.string()).combine_chunks().dictionary_encode()
    codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    # Each (text, phrase) once: sorted by text, then phrase code.
    key = np.sort(owner * max(1, len(encoded.dictionary)) + codes)
    key = key[np.r_[True, key[1:] != key[:-1]]] if len(key) else key
    return key // max(1, len(encoded.dictionary)), key % max(1, len(encoded.dictionary)), encoded.dictionary


def _tokens(texts: list[str]) -> tuple[list[str], list[str], np.ndarray]:
    """The word tokens of many texts, flat: ``(words, gaps, owner)``.

    ``gaps[i]`` is what follows ``words[i]`` up to the next token; across a
    text's end it is never a joiner. ``owner[i]`` is the text of ``words[i]``.
    """
    joined = _BOUNDARY.join(texts)
    if joined.count(_BOUNDARY) == max(0, len(texts) - 1):
        # One regular-expression call for the batch; a gap's boundaries say where texts end.
        parts = _SPLIT.split(joined)
        words, gaps = parts[1::2], parts[2::2]
        ends = np.fromiter(map(str.count, gaps, itertools.repeat(_BOUNDARY)), dtype=np.int64, count=len(gaps))
        owner = parts[0].count(_BOUNDARY) + np.cumsum(ends) - ends
        return words, gaps, owner
    words, gaps, counts = [], [], []  # a text holds the boundary character: one call a text
    for text in texts:
        parts = _SPLIT.split(text)
        words += parts[1::2]
        gaps += parts[2:-1:2] + [_BOUNDARY] * (len(parts) > 1)
        counts.append(len(parts) // 2)
    return words, gaps, np.repeat(np.arange(len(texts)), counts)


def _word_spans(texts: list[str], max_words: int) -> tuple[list[pa.Array], list[np.ndarray]]:
    """Every span of :func:`word_phrases`, per length, and the text of each (duplicates included)."""
    words, gaps, owner = _tokens(texts)
    word_array, gap_array = pa.array(words, type=pa.string()), pa.array(gaps, type=pa.string())
    joinable = np.fromiter(map(_JOINERS.__contains__, gaps), dtype=bool, count=len(gaps))
    strings, owners = [word_array], [owner]
    # ok[i]: words i .. i + n - 1 are joined by joiners (a span of n words starts at i).
    ok = np.ones(len(words), dtype=bool)
    for n in range(2, max_words + 1):
        ok = ok[:-1] & joinable[n - 2:len(words) - 1]
        start = np.flatnonzero(ok)
        if not len(start):
            break
        pieces = [array.take(start + k) for k in range(n - 1) for array in (word_array, gap_array)]
        strings.append(pc.binary_join_element_wise(*pieces, word_array.take(start + n - 1), ""))
        owners.append(owner[start])
    return strings, owners


def _char_spans(texts: list[str], min_chars: int, max_chars: int) -> tuple[list[pa.Array], list[np.ndarray]]:
    """Every n-gram of :func:`char_ngrams`, per length, and the text of each (duplicates included)."""
    runs, _, run_owner = _tokens(texts)
    lengths = np.fromiter(map(len, runs), dtype=np.int64, count=len(runs))
    chars = pa.array(list("".join(runs)), type=pa.string())
    run = np.repeat(np.arange(len(runs)), lengths)
    left = lengths[run] - (np.arange(len(run)) - np.repeat(np.cumsum(lengths) - lengths, lengths))
    strings, owners = [], []
    for n in range(min_chars, max_chars + 1):
        start = np.flatnonzero(left >= n)  # n characters left in the run from here
        if not len(start):
            break
        pieces = [chars.take(start + k) for k in range(n)]
        strings.append(pc.binary_join_element_wise(*pieces, "") if n > 1 else pieces[0])
        owners.append(run_owner[run[start]])
    return strings, owners
