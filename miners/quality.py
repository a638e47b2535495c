"""Phrase quality: what a reviewer would strike at a glance, decided from the window's counts.

Two kinds of phrase are pure in a window by accident and fail on new traffic:

- **generic words** (``to make``, ``a customer``, ``business``): their content
  words occur across many intents of all labelled traffic, so whichever
  intent they lean to in one window is luck;
- **fragments** of a substring locale's units (``でくださ`` inside
  ``でください``): a character n-gram that almost always sits inside one longer
  n-gram is not a unit of the language, only a piece of one.

Both are read off the phrase table of the first pass (phrase x locale x
intent counts over every labelled query), so they cost no extra read.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import pandas as pd

__all__ = ["fragment_of", "generic_words", "longest_extensions", "safety_neighbours", "safety_proximity", "word_spread"]


def word_spread(table: pd.DataFrame) -> dict[tuple[str, str], float]:
    """(word, locale) -> how many intents its labelled queries spread over (inverse Simpson index).

    One intent gives 1.0; queries spread evenly over k intents give k. The
    inverse Simpson index, not a count of intents: a word seen once in ten
    intents but 990 times in one is specific, and a count would call it
    spread.

    >>> t = pd.DataFrame({"phrase": ["make", "make", "make", "refund", "refund"], "locale": ["en"] * 5,
    ...                   "intent": ["a", "b", "c", "r", "a"], "n": [10, 10, 10, 99, 1], "n_conf": [0] * 5})
    >>> {k: round(v, 2) for k, v in sorted(word_spread(t).items())}
    {('make', 'en'): 3.0, ('refund', 'en'): 1.02}
    """
    words = table[~table["phrase"].str.contains(" ", regex=False)]
    if words.empty:
        return {}
    share = words["n"] / words.groupby(["phrase", "locale"], sort=False)["n"].transform("sum")
    simpson = (share**2).groupby([words["phrase"], words["locale"]], sort=False).sum()
    return {key: 1.0 / value for key, value in simpson.items() if value > 0}


def generic_words(tokens: list[str], locale: str, stop_words: Collection[str],
                  spread: Mapping[tuple[str, str], float], max_spread: float) -> str | None:
    """Why a word phrase is generic (every content word spread over ``max_spread``+ intents), or None.

    >>> spread = {("make", "en"): 4.2, ("refund", "en"): 1.1}
    >>> generic_words(["to", "make"], "en", {"to"}, spread, 3.0)
    'every content word is spread over many intents in all traffic (make: 4.2 intents; max 3)'
    >>> generic_words(["make", "refund"], "en", {"to"}, spread, 3.0) is None
    True
    """
    content = [t for t in tokens if t not in stop_words]
    found = [(t, spread.get((t, locale))) for t in content]
    # A word the table lost to pruning is rare, and a rare word is not generic.
    if not found or any(value is None or value < max_spread for _, value in found):
        return None
    listed = ", ".join(f"{t}: {value:.1f} intents" for t, value in found)
    return f"every content word is spread over many intents in all traffic ({listed}; max {max_spread:g})"


def longest_extensions(table: pd.DataFrame) -> dict[tuple[str, str], tuple[str, int]]:
    """(phrase, locale) -> its most frequent one-character extension (left or right) and its count.

    >>> t = pd.DataFrame({"phrase": ["くださ", "ください", "でくださ"], "locale": ["ja"] * 3,
    ...                   "intent": ["x"] * 3, "n": [50, 49, 20], "n_conf": [0] * 3})
    >>> longest_extensions(t)[("くださ", "ja")]
    ('ください', 49)
    """
    totals = table.groupby(["phrase", "locale"], sort=False)["n"].sum()
    best: dict[tuple[str, str], tuple[str, int]] = {}
    for (phrase, locale), n in totals.items():
        if len(phrase) < 2:
            continue
        for inner in (phrase[:-1], phrase[1:]):
            key = (inner, locale)
            if key not in best or n > best[key][1]:
                best[key] = (phrase, int(n))
    return best


def fragment_of(phrase: str, locale: str, total: int, extensions: Mapping[tuple[str, str], tuple[str, int]],
                share: float) -> str | None:
    """The longer unit ``phrase`` is a fragment of, or None when it stands on its own.

    >>> fragment_of("くださ", "ja", 50, {("くださ", "ja"): ("ください", 49)}, 0.9)
    'ください'
    >>> fragment_of("返品", "ja", 50, {("返品", "ja"): ("返品し", 20)}, 0.9) is None
    True
    """
    found = extensions.get((phrase, locale))
    if found is None or total <= 0:
        return None
    unit, count = found
    return unit if count >= share * total else None


def safety_neighbours(table: pd.DataFrame, safety: Collection[str]) -> dict[tuple[str, str], tuple[dict[str, int], int]]:
    """(word, locale) -> its labelled queries per safety intent, and all its labelled queries.

    >>> t = pd.DataFrame({"phrase": ["restitution", "restitution", "track"], "locale": ["en"] * 3,
    ...                   "intent": ["track_refund", "get_refund", "track_refund"], "n": [11, 9, 40], "n_conf": [0] * 3})
    >>> safety_neighbours(t, {"get_refund"})
    {('restitution', 'en'): ({'get_refund': 9}, 20)}
    """
    words = table[~table["phrase"].str.contains(" ", regex=False)]
    totals = words.groupby(["phrase", "locale"], sort=False)["n"].sum()
    unsafe = words[words["intent"].isin(set(safety))]
    out: dict[tuple[str, str], tuple[dict[str, int], int]] = {}
    for row in unsafe.itertuples(index=False):
        key = (row.phrase, row.locale)
        found = out.setdefault(key, ({}, int(totals[key])))[0]
        found[row.intent] = found.get(row.intent, 0) + int(row.n)
    return out


def safety_proximity(tokens: list[str], locale: str, intent: str, stop_words: Collection[str],
                     neighbours: Mapping[tuple[str, str], tuple[dict[str, int], int]], *, min_share: float,
                     min_rows: int, base: Mapping[tuple[str, str], float] | None = None,
                     min_lift: float = 1.0) -> str | None:
    """Why a phrase lives next to a safety intent (other than ``intent``), or None.

    A content word that carries a safety intent in the window makes the
    phrase a bet against that intent: the rule's own hits can look clean
    while the next message with the word is a refund request. Cost
    optimisation stops there; the model answers such messages. ``base``
    ((locale, intent) -> the intent's share of all labelled traffic) and
    ``min_lift``: the word must carry the intent that many times more often
    than traffic does, so a shop's every-tenth-query return request does not
    put every common word next to it.

    >>> near = {("restitution", "en"): ({"get_refund": 9}, 20)}
    >>> safety_proximity(["a", "restitution", "of"], "en", "track_refund", {"a", "of"}, near, min_share=0.05, min_rows=3)
    "'restitution' is in 9 of its 20 queries labelled get_refund (45%), a safety intent"
    """
    for token in tokens:
        if token in stop_words or (token, locale) not in neighbours:
            continue
        by_intent, total = neighbours[(token, locale)]
        for other, count in sorted(by_intent.items(), key=lambda kv: (-kv[1], kv[0])):
            share = (base or {}).get((locale, other), 0.0)
            if other != intent and count >= min_rows and count >= min_share * total and count >= min_lift * share * total:
                return (f"{token!r} is in {count} of its {total} queries labelled {other} "
                        f"({count / total:.0%}), a safety intent")
    return None
