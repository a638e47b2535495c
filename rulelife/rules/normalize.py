"""The one text normalisation used by every path (runtime, evaluation, mining).

Offline and online must match exactly, so rules' patterns and users' queries go
through this same function, and bundles record :data:`NORMALIZATION_VERSION`:
a runtime refuses a bundle compiled under another version.

Steps, in order:

1. Unicode NFKC, so full-width Latin (``ＯＲＤＥＲ``) and half-width katakana
   become their ordinary forms;
2. ``str.casefold`` (stronger than ``lower``: ``ß`` becomes ``ss``);
3. zero-width, format (Unicode category Cf) and control (Cc) characters are
   removed, so ``or\u200dder`` is ``order``; whitespace controls become spaces;
4. diacritics on Latin letters are dropped (``devolución`` → ``devolucion``,
   Turkish ``İ`` → ``i``, and the dotless ``ı`` → ``i``), because users type
   accents inconsistently; marks on other scripts are kept, since Japanese
   dakuten change the word (``が`` ≠ ``か``);
5. inside a word that mixes Latin letters with Cyrillic or Greek ones, the
   Cyrillic and Greek look-alikes of Latin letters become those letters
   (``оrder`` with a Cyrillic ``о`` → ``order``): the Unicode confusables
   skeleton (UTS #39) restricted to mixed-script words. A word wholly in one
   script is never touched, so ``заказ`` stays Russian; a whole word spelled
   in look-alikes (``рау``) stays what it is;
6. runs of whitespace collapse to one space, and the ends are stripped.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

__all__ = ["NORMALIZATION_VERSION", "normalize", "normalize_many"]

NORMALIZATION_VERSION = 2

_WHITESPACE_CONTROLS = "\t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85"
# Latin letters that carry their mark in their shape, so NFD cannot drop it.
_LATIN_LETTER_FOLDS = {"ı": "i"}

# Cyrillic and Greek letters and the ASCII letter each looks like, from
# Unicode's confusables.txt 14.0.0 (UTS #39): entries whose source is a
# Cyrillic or Greek letter that NFKC leaves alone and whose prototype is one
# ASCII letter, lower-cased. Matching ignores case, so the table is closed
# under case folding: a capital's look-alike (В → B) also holds for its
# lower case (в → b) unless that letter has a look-alike of its own (ι → i
# although Ι looks like l). tests/rules/test_normalize.py checks the table.
_LOOKALIKE_LETTERS = "αβγεζηικμνορστυχϝϳϻавгекмнорстухьѕіјѡѵүһҽӏԁԍԛԝᴦꙇ"
_LATIN_PROTOTYPES = "abyezhikmvopotuxfjmabrekmhopctyxbsijwvyheidgqwri"
_LOOKALIKES = str.maketrans(_LOOKALIKE_LETTERS, _LATIN_PROTOTYPES)
# The Greek and Cyrillic blocks, and the two look-alikes outside them: a
# range test is the cheapest scan for "could hold a look-alike".
_GREEK_OR_CYRILLIC = re.compile("[\u0370-\u052f\u1d26\ua647]")
# Latin letters as they are after steps 1-4 (lower case, most marks gone).
_LATIN_LETTERS = "a-z\u00df-\u00f6\u00f8-\u024f\u1e00-\u1eff"
_LATIN = re.compile(f"[{_LATIN_LETTERS}]")
# Combining marks count as part of a word: after step 3 a mark on a Cyrillic
# letter (о́ has no precomposed form) is all that could split one.
_MARKS = "\u0300-\u036f\u0483-\u0489\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f"


def _mixed_word() -> re.Pattern:
    """A word holding both a look-alike and a Latin letter, matched in linear time.

    It starts only at a word's first character, and every repetition is
    possessive: a word is scanned once, whatever its length (a plain
    ``\\w*[look-alike]\\w*`` rescans a long word from each of its characters).
    """
    word, lookalike, latin = f"[\\w{_MARKS}]", f"[{_LOOKALIKE_LETTERS}]", f"[{_LATIN_LETTERS}]"

    def word_char_but(excluded: str) -> str:
        return f"(?:[^\\W{excluded}]|[{_MARKS}])"

    return re.compile(f"(?<!{word}){word_char_but(_LOOKALIKE_LETTERS + _LATIN_LETTERS)}*+"
                      f"(?:{lookalike}{word_char_but(_LATIN_LETTERS)}*+{latin}"
                      f"|{latin}{word_char_but(_LOOKALIKE_LETTERS)}*+{lookalike}){word}*+")


_MIXED_WORD = _mixed_word()


class _TranslationTable(dict):
    """``str.translate`` table for steps 3 and 4, filled lazily per code point.

    Precomposed Latin letters map straight to their base letter, so the common
    accented text needs no decomposition pass.

    Scanning all of Unicode up front costs a third of a second at import; the
    characters a deployment actually sees are few, so each is classified once.
    """

    def __missing__(self, code: int) -> str | int | None:
        char = chr(code)
        if char in _WHITESPACE_CONTROLS:
            value: str | int | None = " "
        elif unicodedata.category(char) in ("Cc", "Cf"):
            value = None
        elif char in _LATIN_LETTER_FOLDS:
            value = _LATIN_LETTER_FOLDS[char]
        else:
            folded = _strip_latin_marks(char) if code > 127 else char
            value = code if folded == char else folded
        self[code] = value
        return value


_TABLE = _TranslationTable()
# Combining marks left after NFKC (casefold turns "İ" into "i" + U+0307).
_LATIN_COMBINING = re.compile("[\u0300-\u036f]")
_ASCII_REMOVE = {code: _TABLE[code] for code in range(128)}


def _strip_latin_marks(text: str) -> str:
    decomposed = unicodedata.normalize("NFD", text)
    kept: list[str] = []
    previous_base = ""
    for char in decomposed:
        if unicodedata.combining(char):
            # Invariant: previous_base is the last non-combining character, so
            # a run of marks is judged by the letter that carries it.
            if previous_base.isascii() and previous_base.isalpha():
                continue
        else:
            previous_base = char
        kept.append(char)
    return unicodedata.normalize("NFC", "".join(kept))


def normalize(text: str) -> str:
    """Return the canonical form of ``text`` that patterns are matched against.

    Examples
    --------
    >>> normalize("  Where is   my ＯＲＤＥＲ? ")
    'where is my order?'
    >>> normalize("devolución")
    'devolucion'
    >>> normalize("注文　は？")
    '注文 は?'
    >>> normalize("ｶﾞﾝﾀﾞﾑ") == normalize("ガンダム") == "ガンダム"
    True
    """
    if text.isascii():
        # Fast path for the bulk of traffic: NFKC and casefold are the identity
        # on ASCII apart from case, and only the C0 controls need removing.
        if not text.isprintable():
            text = text.translate(_ASCII_REMOVE)
        return " ".join(text.lower().split())
    text = unicodedata.normalize("NFKC", text).casefold().translate(_TABLE)
    if _LATIN_COMBINING.search(text):
        text = _strip_latin_marks(text)
    if not unicodedata.is_normalized("NFKC", text):
        # Removing a joiner can bring a mark next to the letter it belongs to
        # ("か\u200d\u3099" leaves "か\u3099", which NFKC composes to "が").
        # One more pass makes normalize idempotent; nothing is left to remove,
        # so the second pass is final. The quick check costs next to nothing.
        text = unicodedata.normalize("NFKC", text).casefold().translate(_TABLE)
        if _LATIN_COMBINING.search(text):
            text = _strip_latin_marks(text)
    # Cheapest first: isascii is a flag on the string, the range scans run in C.
    if not text.isascii() and _GREEK_OR_CYRILLIC.search(text) and _LATIN.search(text):
        text = _MIXED_WORD.sub(_fold_lookalikes, text)
        if _LATIN_COMBINING.search(text):  # a mark on a look-alike is now on a Latin letter
            text = _strip_latin_marks(text)
    return " ".join(text.split())


def _fold_lookalikes(word: re.Match) -> str:
    return word.group().translate(_LOOKALIKES)


def normalize_many(texts: Iterable) -> list[str | None]:
    """``normalize`` of each text (None for a missing one); logs repeat queries, so each distinct text once.

    >>> normalize_many(["Hi", None, "HI"])
    ['hi', None, 'hi']
    """
    cache: dict[str, str] = {}
    return [(cache[t] if t in cache else cache.setdefault(t, normalize(t))) if isinstance(t, str) else None
            for t in texts]
