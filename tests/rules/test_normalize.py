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


def test_ascii_fast_path_agrees_with_the_unicode_path():
    # "é" forces the Unicode path; the rest must come out as the ASCII path has it.
    assert normalize("Where\x00 IS\tmy order é") == normalize("Where\x00 IS\tmy order") + " e"


# Characters where the steps interact: joiners between a letter and its mark,
# marks that compose, case forms that expand, compatibility forms.
_TRICKY = st.sampled_from(
    list("aAeEiIİıßẞ \t\u3000\u200b\u200c\u200d\u2060\ufeff\u00ad\x00\x1f\x85")
    + list("\u0301\u0307\u0308\u0345\u3099\u309a\u309b\u309cかカｶﾞﾟΐΣςﬁǅǰ㍿①ñ\u0303")
)


@settings(max_examples=300, deadline=None)
@given(st.text(_TRICKY | st.characters(), max_size=12))
@example("か\u200b\u3099")
@example("e\u200d\u0301")
@example("\u0345\u0301")
def test_normalize_is_idempotent(text):
    once = normalize(text)
    assert normalize(once) == once


def test_doctests():
    # rulelife re-exports the function under the module's name, so fetch the module.
    failures, _ = doctest.testmod(importlib.import_module("rulelife.rules.normalize"))
    assert failures == 0
