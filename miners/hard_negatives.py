"""Hard negatives: queries that look like a rule's but the model labels otherwise.

They feed the 25 % hard-negative stratum of a rule's dataset. A rule that agrees
with the model on its own traffic can still be wrong on its neighbourhood: the
queries that share its words, contain half of one of its phrases, or are saved
only by an exclude phrase. Those are the queries a careless edit of the rule
would start to fire on, so the promotion gate must see them.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

import ahocorasick
import numpy as np
import pandas as pd

from rulelife.errors import NotFittedError
from rulelife.rules.definition import Rule
from rulelife.rules.matcher import Matcher, compile_rule, locale_applies
from rulelife.rules.normalize import normalize
from rulelife.rules.stopwords import stop_words_for

__all__ = ["REASONS", "HardNegativeMiner"]

# Hardest first: the order is the precedence when several reasons apply.
REASONS = ("fires", "excluded", "partial_pattern", "shared_vocabulary")
_REASON_DTYPE = pd.CategoricalDtype(REASONS, ordered=True)

# A token is what the matcher's word boundary delimits (letters, digits, "_").
_WORD = re.compile(r"\w+")


class HardNegativeMiner:
    """Find the rows of a query log that look like one rule's but the model labels otherwise.

    Parameters
    ----------
    min_shared_tokens
        How many distinct content tokens of the rule's patterns a query must
        contain to count as ``shared_vocabulary``.
    partial_fraction
        Share of one multi-token pattern's content tokens a query must contain
        to count as ``partial_pattern`` (in ``(0, 1]``).
    min_partial_tokens
        And at least this many of them (1 lets one word of a two-word pattern
        count as ``partial_pattern``).

    Attributes
    ----------
    rule_
        The fitted rule, compiled (phrases normalised).
    stop_words_
        Stop words of the rule's locales, left out of the vocabulary.
    pattern_tokens_
        For each pattern, its content tokens (words, or character bigrams for
        ``substring`` rules).
    vocabulary_
        Every content token of every pattern.
    matcher_
        A matcher of the rule alone; ``unvetoed_matcher_`` is the same rule
        without its exclude phrases.

    Examples
    --------
    >>> rule = Rule(id="order_tracking.track", intent="order_tracking", owner="docs",
    ...             patterns=["track my order"], exclude=["refund"])
    >>> log = pd.DataFrame({
    ...     "text": ["track my order please", "refund and track my order", "order, track it!",
    ...              "cancel my order", "where is my order", "hello"],
    ...     "locale": ["en-US"] * 6,
    ...     "model_intent": pd.array(["complaint", "refund", "shipping", "cancel", "order_tracking", "greeting"],
    ...                              dtype="string"),
    ... })
    >>> miner = HardNegativeMiner().fit(rule)
    >>> sorted(miner.vocabulary_)
    ['order', 'track']
    >>> miner.candidates(log)[["text", "hard_negative_reason"]]
                            text hard_negative_reason
    0      track my order please                fires
    1  refund and track my order             excluded
    2           order, track it!      partial_pattern
    3            cancel my order    shared_vocabulary
    """

    def __init__(self, *, min_shared_tokens: int = 1, partial_fraction: float = 0.5, min_partial_tokens: int = 2):
        self.min_shared_tokens = min_shared_tokens
        self.partial_fraction = partial_fraction
        self.min_partial_tokens = min_partial_tokens

    def _check_params(self) -> None:
        for name in ("min_shared_tokens", "min_partial_tokens"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"{name} must be a whole number of at least 1, got {value!r}; "
                    "with 0 every query in the rule's locales would be a hard negative"
                )
        if not isinstance(self.partial_fraction, int | float) or not 0 < self.partial_fraction <= 1:
            raise ValueError(
                f"partial_fraction must be in (0, 1], got {self.partial_fraction!r}; "
                "0.5 means half of a pattern's content tokens"
            )

    def fit(self, rule: Rule) -> HardNegativeMiner:
        """Learn ``rule``'s vocabulary and build its matchers; return ``self``."""
        self._check_params()
        self.rule_ = compile_rule(rule)
        self.stop_words_ = stop_words_for(rule.locales)
        self.pattern_tokens_ = tuple(frozenset(self._tokens(p)) for p in self.rule_.patterns)
        self.vocabulary_ = frozenset().union(*self.pattern_tokens_)
        # The locale filter runs once per distinct locale in candidates(), so
        # both matchers here answer for any locale; the rule's phrases and
        # word boundaries are untouched, so they fire exactly as the bundle's.
        everywhere = self.rule_._replace(locales=("*",))
        self.matcher_ = Matcher([everywhere])
        self.unvetoed_matcher_ = Matcher([everywhere._replace(exclude=())])
        # Prefilter: any reason needs a vocabulary token or a whole pattern in
        # the text (a pattern made only of stop words has no tokens), so a row
        # the automaton misses has no reason and costs one scan in C.
        self.prefilter_ = ahocorasick.Automaton()
        for key in sorted(self.vocabulary_ | set(self.rule_.patterns)):
            self.prefilter_.add_word(key, key)
        self.prefilter_.make_automaton()
        return self

    def _tokens(self, text: str) -> list[str]:
        """Content tokens of a normalised pattern: words, or character bigrams for substring rules."""
        if self.rule_.match == "substring":
            grams = [g for g in _bigrams(text) if g not in self.stop_words_]
            # Bigrams of hiragana only are mostly grammar (ます, すか, particles)
            # that occurs in almost every Japanese sentence, while content words
            # are written in kanji or katakana. A phrase entirely in hiragana
            # (こんにちは) keeps its own bigrams.
            content = [g for g in grams if not all(_is_hiragana(c) for c in g)]
            return content or grams
        # One-letter tokens are contraction fragments ("where's" -> "where", "s")
        # and carry no meaning on their own.
        return [w for w in _WORD.findall(text) if len(w) > 1 and w not in self.stop_words_]

    def _query_tokens(self, text: str) -> set[str]:
        """Every token of a normalised query; intersecting with the vocabulary does the filtering."""
        return set(_bigrams(text) if self.rule_.match == "substring" else _WORD.findall(text))

    def candidates(self, chunk: pd.DataFrame, normalized: Sequence[str | None] | None = None) -> pd.DataFrame:
        """The rows of ``chunk`` that look like the rule's but the model labels with another intent.

        Only rows in the rule's locales with a model label other than the
        rule's intent are considered. Returns those rows (index kept) with a
        ``hard_negative_reason`` column, one of :data:`REASONS`, hardest first
        when several apply. ``normalized`` is the chunk's text already
        normalised (a caller running many miners over one chunk does it once).
        """
        if not hasattr(self, "rule_"):
            # scikit-learn's error: a ValueError and an AttributeError, as callers expect.
            raise NotFittedError("this HardNegativeMiner is not fitted yet; call fit(rule) before candidates(chunk)")
        missing = {"text", "locale", "model_intent"} - set(chunk.columns)
        if missing:
            raise ValueError(f"the chunk lacks the query-log columns {sorted(missing)}; it has {list(chunk.columns)}")
        intent = chunk["model_intent"].astype("string")
        keep = (intent.notna() & (intent != self.rule_.intent) & chunk["text"].notna()).fillna(False).to_numpy(bool)
        keep &= self._locale_mask(chunk["locale"])
        rows = np.flatnonzero(keep)
        # Logs repeat queries: every reason is a function of the text alone
        # (locales are already filtered), so each distinct text is judged once.
        if normalized is None:
            texts = chunk["text"].to_numpy(object)[rows]
            judge = self._reason
        else:
            texts = np.asarray(normalized, dtype=object)[rows]
            judge = self._reason_normalized
        codes, distinct = pd.factorize(texts)
        verdicts = np.array([judge(text) for text in distinct], dtype=object)
        reasons = verdicts[codes] if len(rows) else np.array([], dtype=object)
        found = np.not_equal(reasons, None)  # elementwise on the object array
        out = chunk.iloc[rows[found]].copy()
        out["hard_negative_reason"] = pd.Categorical(reasons[found], dtype=_REASON_DTYPE)
        return out

    def _locale_mask(self, locales: pd.Series) -> np.ndarray:
        # Few distinct locales: decide each once, then map.
        codes, uniques = pd.factorize(locales, use_na_sentinel=True)
        applies = np.array([locale_applies(self.rule_.locales, loc) for loc in uniques] + [
            locale_applies(self.rule_.locales, None)  # the NA sentinel, -1
        ])
        return applies[codes]

    def _reason(self, raw: str) -> str | None:
        return self._reason_normalized(normalize(raw))

    def _reason_normalized(self, text: str) -> str | None:
        if not text or next(self.prefilter_.iter(text), None) is None:
            return None
        if self.matcher_.match_normalized(text, None) is not None:
            return "fires"
        if self.unvetoed_matcher_.match_normalized(text, None) is not None:
            return "excluded"
        tokens = self._query_tokens(text)
        for pattern in self.pattern_tokens_:
            present = len(pattern & tokens)
            # A single-token pattern cannot be "partly" present. And one word
            # alone is what shared_vocabulary already says: with the default
            # 0.5, "order" alone would make every query about an order a
            # partial "track my order", and the two reasons would blur. Asking
            # for two tokens keeps partial_pattern the stronger evidence.
            if (
                len(pattern) > 1
                and present >= self.partial_fraction * len(pattern)
                and present >= self.min_partial_tokens
            ):
                return "partial_pattern"
        if len(self.vocabulary_ & tokens) >= self.min_shared_tokens:
            return "shared_vocabulary"
        return None


def _bigrams(text: str) -> list[str]:
    """Character bigrams of ``text`` without spaces or punctuation, for scripts without spaces."""
    return [
        run[i : i + 2]
        for run in text.split()
        for i in range(len(run) - 1)
        if run[i].isalnum() and run[i + 1].isalnum()
    ]


def _is_hiragana(char: str) -> bool:
    return unicodedata.name(char, "").startswith("HIRAGANA")
