import doctest
import importlib

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from rulelife.rules.normalize import normalize


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ＯＲＤＥＲ", "order"),  # full-width Latin
        ("Where Is My ORDER", "where is my order"),
        ("or\u200dder", "order"),  # zero-width joiner
        ("or\u200cder", "order"),  # zero-width non-joiner
        ("or\u200bder", "order"),  # zero-width space
        ("\ufeffrefund", "refund"),  # byte-order mark
        ("devolución", "devolucion"),
        ("Café", "cafe"),
        ("İstanbul", "istanbul"),  # Turkish dotted capital I
        ("Straße", "strasse"),
        ("ガンダム", "ガンダム"),  # Japanese is kept as is
        ("ｶﾞﾝﾀﾞﾑ", "ガンダム"),  # half-width katakana
        ("注文\u3000状況", "注文 状況"),  # full-width space is a space
        ("re\x00fu\x07nd", "refund"),  # control characters are removed
        ("refund\tmy\norder", "refund my order"),  # whitespace controls are spaces
        ("  where   is \r\n my  order  ", "where is my order"),
        ("", ""),
        ("か\u200d\u3099", "が"),  # the mark joins its letter once the joiner is gone
    ],
)
def test_normalize_examples(text, expected):
    assert normalize(text) == expected


# Hostile spellings of "where is my order" that a person reads as the same words.
@pytest.mark.parametrize(
    "text",
    [
        "where is my or\u200dder",  # zero-width joiner inside a word
        "where is my or\u2060der",  # word joiner
        "ｗｈｅｒｅ ｉｓ ｍｙ ｏｒｄｅｒ",  # full-width Latin
        "whe\u0301re is my o\u0308rder",  # combining marks
        "\u202ewhere is my order\u202c",  # right-to-left override
        "\u2066where\u2069 is \u200fmy order",  # isolates and a right-to-left mark
        "where is my \u043erder",  # Cyrillic о
        "WHERE IS MY \u041eRDER",  # Cyrillic О
        "where is my \u03bfrder",  # Greek ο
        "wh\u0435r\u0435 is my \u043er\u0501\u0435r",  # several Cyrillic look-alikes, one a Komi de
        "where is my \u043e\u200drder",  # a look-alike and a joiner
        "where is my \u043e\u0301rder",  # a look-alike carrying a mark
    ],
)
def test_hostile_spellings_normalise_to_the_plain_text(text):
    assert normalize(text) == "where is my order"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("İADE", "iade"),  # Turkish dotted capital I
        ("ıade", "iade"),  # Turkish dotless i
        ("IŞIK ışık", "isik isik"),
        ("заказ", "заказ"),  # a word wholly Cyrillic is Russian, not a disguise
        ("где мой заказ order", "где мой заказ order"),  # words in different scripts stay apart
        ("рау", "рау"),  # a whole word of look-alikes is left as it is (documented limit)
        ("Ελλάδα", "ελλάδα"),
        ("у iPhoneа", "у iphonea"),  # a Russian ending on a brand: patterns fold the same way
        ("Гorder", "rorder"),  # a capital folds by its lower case (г looks like r)
    ],
)
def test_turkish_i_and_the_limits_of_the_look_alike_fold(text, expected):
    assert normalize(text) == expected


def test_the_look_alike_table_maps_cyrillic_and_greek_letters_to_ascii_letters():
    import unicodedata

    from rulelife.rules import normalize as module

    sources, targets = module._LOOKALIKE_LETTERS, module._LATIN_PROTOTYPES
    assert len(sources) == len(set(sources)) == len(targets) == 48
    for source, target in zip(sources, targets):
        assert unicodedata.name(source).startswith(("CYRILLIC", "GREEK")), source
        assert source.isalpha() and source == source.casefold() == unicodedata.normalize("NFKC", source)
        assert target.isascii() and target.islower() and target.isalpha()


def test_the_look_alike_fold_reads_a_long_word_once():
    # A word of 200,000 Cyrillic letters beside one Latin letter: a pattern
    # that rescans the word from each letter would take minutes here.
    assert normalize("ж" * 200_000 + " x") == "ж" * 200_000 + " x"
    assert normalize("ж" * 100_000 + "оx") == "ж" * 100_000 + "ox"


def test_ascii_fast_path_agrees_with_the_unicode_path():
    # "é" forces the Unicode path; the rest must come out as the ASCII path has it.
    assert normalize("Where\x00 IS\tmy order é") == normalize("Where\x00 IS\tmy order") + " e"


# Characters where the steps interact: joiners between a letter and its mark,
# marks that compose, case forms that expand, compatibility forms.
_TRICKY = st.sampled_from(
    list("aAeEiIİıßẞ \t\u3000\u200b\u200c\u200d\u2060\ufeff\u00ad\x00\x1f\x85")
    + list("\u0301\u0307\u0308\u0345\u3099\u309a\u309b\u309cかカｶﾞﾟΐΣςﬁǅǰ㍿①ñ\u0303")
    # Look-alikes and their capitals, other Cyrillic/Greek letters, marks of those scripts.
    + list("оОаАрРеЕсСгГвВиИжЖοΟνΝυΥιΙσςΣϲϹ\u0483\u0486\u202e_1")
)


@settings(max_examples=300, deadline=None)
@given(st.text(_TRICKY | st.characters(), max_size=12))
@example("か\u200b\u3099")
@example("e\u200d\u0301")
@example("\u0345\u0301")
@example("Гo")
@example("о\u200dr")
@example("о\x00r")
@example("ο\u0301r")
def test_normalize_is_idempotent(text):
    once = normalize(text)
    assert normalize(once) == once


def test_doctests():
    # rulelife re-exports the function under the module's name, so fetch the module.
    failures, _ = doctest.testmod(importlib.import_module("rulelife.rules.normalize"))
    assert failures == 0
