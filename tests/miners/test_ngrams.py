import doctest
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import miners.ngrams
from miners.ngrams import char_ngrams, phrase_table, phrases, word_phrases

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


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(texts | st.just("a\x00b c"), st.booleans()), max_size=6), st.integers(1, 5),
       st.integers(1, 3), st.integers(0, 4))
def test_phrase_table_cuts_each_text_as_phrases_does(batch, max_words, min_chars, extra):
    sizes = dict(max_words=max_words, min_chars=min_chars, max_chars=min_chars + extra)
    owner, codes, dictionary = phrase_table([t for t, _ in batch], [s for _, s in batch], **sizes)
    cut = dictionary.take(codes).to_pylist()
    assert list(owner) == sorted(owner)
    assert len(set(zip(owner.tolist(), cut))) == len(cut)  # each phrase of a text once
    for j, (text, substring) in enumerate(batch):
        assert {p for o, p in zip(owner, cut) if o == j} == phrases(text, substring, **sizes)


def test_word_phrases_by_hand():
    assert word_phrases("e-mail me, please", 2) == {"e", "mail", "e-mail", "me", "mail me", "please"}
    assert word_phrases("a  b", 2) == {"a", "b"}  # two spaces are not a joiner


def test_phrase_table_refuses_empty_ngrams():
    with pytest.raises(ValueError, match="min_chars must be at least 1, got 0"):
        phrase_table(["配送"], [True], min_chars=0)


def test_doctests():
    assert doctest.testmod(miners.ngrams).failed == 0
