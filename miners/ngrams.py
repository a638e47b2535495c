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
"""

from __future__ import annotations

import re

__all__ = ["SUBSTRING_LANGUAGES", "char_ngrams", "is_substring_locale", "phrases", "word_phrases", "words"]

_WORD = re.compile(r"\w+")
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
