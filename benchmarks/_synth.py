"""Synthetic en-US rule sets and queries of a chosen size, seeded and reproducible.

Words are pseudo-English (syllable built), so the automaton sees realistic
word lengths, shared prefixes and words hidden inside longer words (which
word-mode boundary checks must reject), without shipping a dictionary.
"""

from __future__ import annotations

import itertools
import random

from rulelife.rules.definition import Rule

__all__ = ["FUNCTION_WORDS", "synth_phrases", "synth_queries", "synth_rules", "vocabulary"]

FUNCTION_WORDS = tuple(
    "a an the my your i you we it is are was be do does did can could would will to of in on for "
    "with at from by about and or but not no this that there what where when why how which who me "
    "our any some have has had get please just still".split()
)
_ONSETS = ("", "b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w",
           "br", "ch", "cl", "dr", "fl", "gr", "pl", "pr", "sh", "st", "th", "tr")
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ea", "ee", "oo", "ou", "y")
_CODAS = ("", "", "", "n", "r", "s", "t", "l", "m", "ck", "nd", "ng", "rt", "st", "x")
# Phrase lengths in words: two- and three-word phrases dominate real rules
# ("track my order"); single words are few because lint pushes back on them.
_PHRASE_LENGTHS = (1, 2, 3, 4)
_PHRASE_WEIGHTS = (0.10, 0.45, 0.30, 0.15)
PATTERNS_PER_RULE = 5


def vocabulary(size: int, seed: int = 0) -> list[str]:
    """``size`` distinct pseudo-words of 1-3 syllables, none a function word."""
    rng = random.Random(seed)
    words: dict[str, None] = {}
    banned = set(FUNCTION_WORDS)
    while len(words) < size:
        word = "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS)
                       for _ in range(rng.choice((1, 1, 2, 2, 2, 3))))
        # Five letters or more: shorter pseudo-words hide inside most longer
        # ones and made 70 % of automaton hits fail the word-boundary check,
        # against 16 % in the simulated store traffic; at five it is 13 %.
        if len(word) >= 5 and word not in banned:
            words[word] = None
    return list(words)


def synth_phrases(count: int, vocab: list[str], rng: random.Random) -> list[str]:
    """``count`` distinct phrases; content words drawn uniformly.

    Uniform, not Zipfian: a rule author picks domain words, which are no more
    common in traffic than any other content word.
    """
    seen: dict[str, None] = {}
    while len(seen) < count:
        n = rng.choices(_PHRASE_LENGTHS, _PHRASE_WEIGHTS)[0]
        words = [rng.choice(vocab) if i in (0, n - 1) or rng.random() < 0.7 else rng.choice(FUNCTION_WORDS)
                 for i in range(n)]
        seen.setdefault(" ".join(words), None)
    return list(seen)


def synth_rules(patterns: int, *, seed: int = 0, vocab_size: int = 5000) -> tuple[list[Rule], list[str]]:
    """Rules with ``patterns`` distinct phrases in all (5 a rule), and the vocabulary.

    Every fifth rule turns its fifth phrase into an exclude, so the automaton
    holds exactly ``patterns`` keys, excludes included.
    """
    rng = random.Random(seed)
    vocab = vocabulary(vocab_size, seed)
    phrases = synth_phrases(patterns, vocab, rng)
    rules = []
    for number, start in enumerate(range(0, patterns, PATTERNS_PER_RULE)):
        chunk = phrases[start : start + PATTERNS_PER_RULE]
        exclude = chunk[-1:] if number % 5 == 0 and len(chunk) > 1 else []
        rules.append(Rule(
            id=f"synth.r{number:06d}",
            intent=f"intent_{number % 40:02d}",
            patterns=chunk[: len(chunk) - len(exclude)],
            exclude=exclude,
            locales=["en-US"],
            match="word",
            priority=rng.choice((0, 5, 10)),
            owner="bench@example.com",
        ))
    return rules, vocab


def synth_queries(count: int, vocab: list[str], phrases: list[str], *, hit_share: float = 0.3,
                  seed: int = 1) -> list[str]:
    """``count`` sentences of 3-10 words; ``hit_share`` of them embed a rule phrase.

    Content words follow Zipf's law (rank^-1), as word use does in traffic;
    case and a trailing mark vary as customers type them.
    """
    rng = random.Random(seed)
    cum = list(itertools.accumulate(1.0 / rank for rank in range(1, len(vocab) + 1)))
    out = []
    for _ in range(count):
        n = rng.randint(3, 10)
        content = rng.choices(vocab, cum_weights=cum, k=n)
        words = [rng.choice(FUNCTION_WORDS) if rng.random() < 0.45 else w for w in content]
        if rng.random() < hit_share:
            words.insert(rng.randint(0, n), rng.choice(phrases))
        text = " ".join(words)
        if rng.random() < 0.5:
            text = text[0].upper() + text[1:]
        out.append(text + ("?" if rng.random() < 0.4 else ""))
    return out
