import doctest
import re

from hypothesis import given, settings
from hypothesis import strategies as st

import miners.ngrams
from miners.ngrams import char_ngrams, phrases, word_phrases

# Word characters, joiners, other separators, a combining mark (not a word character) and Japanese.
texts = st.text(alphabet=st.sampled_from(list("ab1_ '-?,.é\u0301配送")), max_size=24)


def brute_word_phrases(text, max_words):
    """Every substring that is 1..max_words word tokens joined by single joiners, bounded by non-word characters."""
    span = re.compile(rf"\w+(?:[ '\-]\w+){{0,{max_words - 1}}}")
    out = set()
    for a in range(len(text)):
        for b in range(a + 1, len(text) + 1):
            piece = text[a:b]
            left_ok = a == 0 or not re.match(r"\w", text[a - 1])
            right_ok = b == len(text) or not re.match(r"\w", text[b])
            if left_ok and right_ok and span.fullmatch(piece):
                out.add(piece)
    return out


def brute_char_ngrams(text, min_chars, max_chars):
    """Every substring of min_chars..max_chars characters made of word characters only."""
    return {text[a:a + n] for n in range(min_chars, max_chars + 1) for a in range(len(text) - n + 1)
            if re.fullmatch(r"\w+", text[a:a + n])}


@settings(max_examples=300, deadline=None)
@given(texts, st.integers(1, 5))
def test_word_phrases_are_the_word_bounded_spans(text, max_words):
    assert word_phrases(text, max_words) == brute_word_phrases(text, max_words)
    assert phrases(text, False, max_words=max_words) == word_phrases(text, max_words)


@settings(max_examples=300, deadline=None)
@given(texts, st.integers(1, 4), st.integers(0, 4))
def test_char_ngrams_are_the_word_character_substrings(text, min_chars, extra):
    max_chars = min_chars + extra
    assert char_ngrams(text, min_chars, max_chars) == brute_char_ngrams(text, min_chars, max_chars)
    assert phrases(text, True, min_chars=min_chars, max_chars=max_chars) == char_ngrams(text, min_chars, max_chars)


def test_word_phrases_by_hand():
    assert word_phrases("e-mail me, please", 2) == {"e", "mail", "e-mail", "me", "mail me", "please"}
    assert word_phrases("a  b", 2) == {"a", "b"}  # two spaces are not a joiner


def test_doctests():
    assert doctest.testmod(miners.ngrams).failed == 0
