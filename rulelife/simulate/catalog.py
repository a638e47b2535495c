"""The simulated store: intents, locales, traffic mixes, slot values, templates.

Everything here is constant data plus :class:`TemplateTable`, which flattens
the phrasings of :mod:`rulelife.simulate.phrasings` into numpy arrays so the
generator picks a template for a million rows with one ``searchsorted``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from rulelife.simulate import phrasings

__all__ = [
    "BASE_SET",
    "CLARITIES",
    "CODES",
    "INTENTS",
    "INTENT_SHARES",
    "LOCALES",
    "LOCALE_SHARES",
    "LOCAL_HOUR_WEIGHTS",
    "SAFETY_INTENTS",
    "TITLES",
    "UTC_OFFSET_HOURS",
    "WEEKDAY_FACTORS",
    "TemplateTable",
    "dates_for",
    "rank_weights",
    "template_table",
]

INTENTS = (
    "order_tracking",
    "product_question",
    "recommendation",
    "faq",
    "chitchat",
    "promotion",
    "return_request",
    "escalation",
)
# A store's chatbot mostly answers "where is my parcel"; the intents a rule
# must never steal (returns, angry customers) are the rarest, which is exactly
# why a rule's safety false positives hide in aggregate agreement.
INTENT_SHARES = (0.30, 0.18, 0.14, 0.12, 0.10, 0.07, 0.05, 0.04)
SAFETY_INTENTS = ("return_request", "escalation")

LOCALES = ("en-US", "ja-JP", "es-ES")
LOCALE_SHARES = (0.65, 0.20, 0.15)
# Customers type in their local time; the log is in UTC.
UTC_OFFSET_HOURS = (-5, 9, 1)

CLARITIES = ("clear", "plain", "vague")

# Mild weekly cycle (Monday first), mean exactly 1 so queries_per_day is the
# mean daily volume over a full week: parcels ordered at the weekend are
# chased on Monday.
_WEEKDAY = np.array([1.08, 1.04, 1.00, 0.99, 0.97, 0.94, 0.98])
WEEKDAY_FACTORS = tuple(_WEEKDAY / _WEEKDAY.mean())

# Relative chat volume by local hour: quiet at night, a lunch bump, an evening peak.
LOCAL_HOUR_WEIGHTS = (
    0.6, 0.35, 0.2, 0.15, 0.15, 0.2, 0.4, 0.8, 1.1, 1.3, 1.4, 1.5,
    1.7, 1.6, 1.4, 1.3, 1.3, 1.4, 1.6, 1.9, 2.1, 2.0, 1.6, 1.0,
)  # fmt: skip

# Titles never contain a rule pattern ("Order of the Phoenix" would).
TITLES = {
    "en-US": (
        "One Piece", "Berserk", "Naruto", "Attack on Titan", "Chainsaw Man",
        "Spy x Family", "Jujutsu Kaisen", "Demon Slayer", "Vagabond", "Monster",
        "Fullmetal Alchemist", "Death Note", "Frieren", "Blue Lock", "Dandadan",
        "Vinland Saga", "Haikyu!!", "Mob Psycho 100", "Dune", "The Hobbit",
        "Project Hail Mary", "Pride and Prejudice", "Dragon Ball", "Sailor Moon",
        "Akira", "Witch Hat Atelier", "Yotsuba&!", "Solo Leveling",
        "My Hero Academia", "The Promised Neverland",
    ),
    "ja-JP": (
        "ワンピース", "進撃の巨人", "鬼滅の刃", "呪術廻戦", "チェンソーマン",
        "スパイファミリー", "葬送のフリーレン", "ベルセルク", "ドラゴンボール",
        "名探偵コナン", "ブルーロック", "ハイキュー!!", "キングダム", "よつばと!",
        "薬屋のひとりごと", "ダンダダン",
    ),
    "es-ES": (
        "One Piece", "Ataque a los Titanes", "Dragon Ball", "Naruto", "Berserk",
        "Chainsaw Man", "Spy x Family", "Don Quijote", "Cien años de soledad",
        "Frieren", "Jujutsu Kaisen", "Guardianes de la Noche", "Monster",
        "Vagabond", "Blue Lock", "La sombra del viento",
    ),
}  # fmt: skip
CODES = ("MANGA10", "WELCOME5", "OTAKU15", "SUMMER20", "BF2026", "VOL1FREE")

_MONTHS = {
    "en-US": ("Jan", "Feb", "March", "April", "May", "June", "July", "Aug", "Sept", "Oct", "Nov", "Dec"),
    "es-ES": (
        "enero", "febrero", "marzo", "abril", "mayo", "junio", "julio",
        "agosto", "septiembre", "octubre", "noviembre", "diciembre",
    ),
}  # fmt: skip


def dates_for(locale: str) -> tuple[str, ...]:
    """Every day-of-year as a customer in ``locale`` would write it (28 days a month)."""
    days = range(1, 29)
    if locale == "ja-JP":
        return tuple(f"{m}月{d}日" for m in range(1, 13) for d in days)
    if locale == "es-ES":
        return tuple(f"{d} de {m}" for m in _MONTHS["es-ES"] for d in days)
    return tuple(f"{m} {d}" for m in _MONTHS["en-US"] for d in days)


def rank_weights(count: int) -> np.ndarray:
    """Relative frequency of the phrasings in one list, earlier ones commoner.

    A gentle power law: real logs have a head of canonical phrasings
    ("where is my order") and a long tail, but not so steep that the tail
    never shows up in a day of traffic.
    """
    weights = 1.0 / np.arange(1, count + 1) ** 0.6
    return weights / weights.sum()


BASE_SET = "base"


@dataclass(frozen=True)
class TemplateTable:
    """All phrasings, flattened. Index ``t`` is one template everywhere below.

    ``groups[(phrasing_set, locale, intent)]`` is the group number ``g``; the
    templates of group ``g`` are ``first[g] .. last[g]`` and ``cdf[t]`` is
    ``g`` plus the cumulative weight of templates up to ``t`` within the
    group, so ``cdf`` is sorted and ``searchsorted(cdf, g + u)`` picks a
    template of group ``g`` with its weight.
    """

    texts: tuple[str, ...]
    intents: np.ndarray  # int index into INTENTS
    clarities: np.ndarray  # int index into CLARITIES
    confusions: np.ndarray  # (n, 2) int: the likelier and the rarer wrong intent
    groups: dict[tuple[str, str, str], int]
    first: np.ndarray
    last: np.ndarray
    cdf: np.ndarray

    def pick(self, group: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Template index for each row of ``group``, drawn by weight using uniforms ``u``."""
        index = np.searchsorted(self.cdf, group + u, side="right")
        # g + u can round up to g + 1 for u just below 1; stay inside the group.
        return np.minimum(index, self.last[group])


@cache
def template_table() -> TemplateTable:
    """Build (once) the flat table of base and scenario phrasings."""
    sets = {BASE_SET: phrasings.BASE, **phrasings.SCENARIO_PHRASINGS}
    texts: list[str] = []
    intents: list[int] = []
    clarities: list[int] = []
    confusions: list[tuple[int, int]] = []
    cdf: list[float] = []
    groups: dict[tuple[str, str, str], int] = {}
    first: list[int] = []
    last: list[int] = []
    for set_name, by_locale in sets.items():
        for locale, by_intent in by_locale.items():
            for intent, entries in by_intent.items():
                group = len(groups)
                groups[(set_name, locale, intent)] = group
                first.append(len(texts))
                cumulative = np.cumsum(rank_weights(len(entries)))
                cumulative[-1] = 1.0  # exact group boundary, see TemplateTable
                for entry, cum in zip(entries, cumulative):
                    clarity, text = entry[0], entry[1]
                    wrong = entry[2] if len(entry) > 2 else phrasings.DEFAULT_CONFUSIONS[intent]
                    wrong = (wrong[0], wrong[-1])
                    texts.append(text)
                    intents.append(INTENTS.index(intent))
                    clarities.append(CLARITIES.index(clarity))
                    confusions.append((INTENTS.index(wrong[0]), INTENTS.index(wrong[1])))
                    cdf.append(group + float(cum))
                last.append(len(texts) - 1)
    return TemplateTable(
        texts=tuple(texts),
        intents=np.array(intents, dtype=np.int8),
        clarities=np.array(clarities, dtype=np.int8),
        confusions=np.array(confusions, dtype=np.int8),
        groups=groups,
        first=np.array(first, dtype=np.int64),
        last=np.array(last, dtype=np.int64),
        cdf=np.array(cdf),
    )
