"""Small curated stop-word sets, used by lint to refuse patterns made only of them.

A pattern such as ``"the"`` or ``"de la"`` fires on most queries of its language,
so it is almost never what the author meant. The sets are deliberately small:
lint only needs to catch phrases with no content word, not to tokenise well.
Words are in :func:`rulelife.rules.normalize.normalize` form (lower case, no accents),
because they are compared against normalised patterns.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

from rulelife.rules.stopwords_en import ENGLISH_STOP_WORDS

__all__ = ["stop_words_for"]

# The English list (scikit-learn's, from the Glasgow IR group) includes content words that a
# customer-service bot legitimately keys on ("bill", "call", "find", "empty");
# flagging a billing rule on "bill" would be a false alarm, so they are dropped.
_ENGLISH_CONTENT_WORDS = frozenset((
    "amount", "back", "bill", "bottom", "call", "cry", "describe", "detail", "empty", "fill", "find", "fire",
    "front", "full", "give", "interest", "keep", "mill", "move", "name", "part", "put", "serious", "show",
    "sincere", "system", "take", "thick", "thin", "top",
))


# Hand-written: articles, prepositions, pronouns, conjunctions and the commonest
# forms of ser / estar / haber, without accents (normalised form).
_SPANISH = frozenset((
    "a", "al", "algo", "algun", "alguna", "algunas", "alguno", "algunos", "ante", "antes", "aqui", "asi", "aun",
    "cada", "como", "con", "contra", "cual", "cuales", "cuando", "de", "del", "desde", "donde", "dos", "el",
    "ella", "ellas", "ello", "ellos", "en", "entre", "era", "eran", "es", "esa", "esas", "ese", "eso", "esos",
    "esta", "estaba", "estan", "estar", "estas", "este", "esto", "estos", "fue", "fueron", "ha", "habia", "han",
    "hasta", "hay", "la", "las", "le", "les", "lo", "los", "mas", "me", "mi", "mis", "mucho", "muy", "nada",
    "ni", "no", "nos", "nosotros", "o", "os", "otra", "otro", "para", "pero", "poco", "por", "porque", "que",
    "quien", "se", "sea", "ser", "si", "sin", "sobre", "son", "su", "sus", "tambien", "tan", "te", "tiene",
    "tu", "tus", "u", "un", "una", "unas", "uno", "unos", "usted", "ustedes", "vosotros", "y", "ya", "yo",
))

# Japanese has no spaces, so only standalone particles and copulas matter here:
# a pattern that is one of these fires inside almost every sentence.
_JAPANESE = frozenset((
    "の", "は", "が", "を", "に", "で", "と", "も", "か", "へ", "や", "から", "まで", "より", "ね", "よ", "な", "です", "ます",
))



@functools.cache
def _stop_words() -> dict[str, frozenset[str]]:
    return {"en": frozenset(ENGLISH_STOP_WORDS) - _ENGLISH_CONTENT_WORDS, "es": _SPANISH, "ja": _JAPANESE}


def stop_words_for(locales: Iterable[str]) -> frozenset[str]:
    """The stop words of the languages of ``locales``; ``*`` means every language.

    A locale's language is its part before ``-`` or ``_``; languages without a
    list contribute nothing.

    >>> sorted(stop_words_for(["ja-JP"]))[:3]
    ['か', 'から', 'が']
    >>> "de" in stop_words_for(["es_MX"]), "de" in stop_words_for(["ja"])
    (True, False)
    >>> stop_words_for(["*"]) == stop_words_for(["en"]) | stop_words_for(["es"]) | stop_words_for(["ja"])
    True
    """
    words: set[str] = set()
    for locale in locales:
        if locale.strip() == "*":
            return frozenset().union(*_stop_words().values())
        language = locale.strip().replace("_", "-").lower().split("-")[0]
        words |= _stop_words().get(language, frozenset())
    return frozenset(words)
