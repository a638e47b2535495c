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
   Turkish ``İ`` → ``i``), because users type accents inconsistently; marks on
   other scripts are kept, since Japanese dakuten change the word (``が`` ≠ ``か``);
5. runs of whitespace collapse to one space, and the ends are stripped.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

__all__ = ["NORMALIZATION_VERSION", "normalize", "normalize_many"]

NORMALIZATION_VERSION = 1

_WHITESPACE_CONTROLS = "\t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85"


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
    return " ".join(text.split())


def normalize_many(texts: Iterable) -> list[str | None]:
    """``normalize`` of each text (None for a missing one); logs repeat queries, so each distinct text once.

    >>> normalize_many(["Hi", None, "HI"])
    ['hi', None, 'hi']
    """
    cache: dict[str, str] = {}
    return [(cache[t] if t in cache else cache.setdefault(t, normalize(t))) if isinstance(t, str) else None
            for t in texts]
