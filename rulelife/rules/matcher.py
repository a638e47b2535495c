"""Compile rule versions into one Aho-Corasick automaton and match queries.

The same :class:`Matcher` serves the runtime, evaluation, monitoring and
mining, so what matches offline is exactly what matches online.

Winner resolution, when several rules fire on one query:

1. higher ``priority`` wins;
2. then the longer matched pattern (in normalised characters): a more
   specific phrase is better evidence;
3. then the smaller rule id, so the outcome never depends on file order.

Every rule that fired is still reported (``MatchResult.fired``), winner first.

Shadow rules (``CompiledRule.shadow``) never answer and never veto: they live
in a second, separate automaton, so winner resolution, ``fired`` and
``explain``'s verdict are exactly what they would be without them, and a
matcher without shadow rules walks one automaton as before.
:meth:`Matcher.shadow_fired_normalized` says which shadow rules would have
fired, by id.

The safety lexicon (:func:`compile_lexicon`) is folded into the same
automaton as the patterns: a lexicon phrase of safety intent S that counts
(its locales, its word boundaries) removes every fired rule whose intent is
not S before the winner is chosen, so the message goes to the model unless a
rule of S itself fired. Lexicon phrases are keyed like exclude phrases (a
rule index past the last rule), so a query without an exclude or lexicon hit
runs exactly the loop it ran before. The shadow matcher carries the same
lexicon: a shadow rule reports what it would do as an active rule.

The hot path reads flat per-rule lists (id, version, intent, priority,
locales) and the key table, never a rule object: :meth:`Matcher.state` is
exactly that, so a bundle ships it and a loaded matcher decodes its rules
only when asked (``explain``, :attr:`Matcher.rules`). The automaton is
pyahocorasick's; :meth:`Matcher.with_backend` walks an ahocorasick-rs
automaton of the same phrases instead, with the same answers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

import ahocorasick

from rulelife.errors import ConfigError
from rulelife.rules.normalize import normalize

if TYPE_CHECKING:  # the pydantic model is for annotations only: serving never loads it
    from rulelife.rules.definition import Rule

__all__ = [
    "BACKENDS",
    "CompiledRule",
    "Explanation",
    "ExplainedHit",
    "LexiconPhrase",
    "LexiconVeto",
    "MatchResult",
    "Matcher",
    "compile_lexicon",
    "compile_rule",
    "locale_applies",
    "normalize_locale",
    "require_backend",
]


class CompiledRule(NamedTuple):
    """What the matcher (and a bundle) keeps of a rule version: phrases normalised.

    A named tuple so a bundle of 20,000 rules unpickles at C speed. ``shadow``
    marks a rule in the shadow state: matched, reported, never answering.
    It is the last field, with a default, so bundles written before it load
    unchanged."""

    id: str
    version: str
    intent: str
    patterns: tuple[str, ...]
    exclude: tuple[str, ...]
    locales: tuple[str, ...]
    match: str
    priority: int
    shadow: bool = False

    def to_dict(self) -> dict:
        data = {
            "id": self.id,
            "version": self.version,
            "intent": self.intent,
            "patterns": list(self.patterns),
            "exclude": list(self.exclude),
            "locales": list(self.locales),
            "match": self.match,
            "priority": self.priority,
        }
        # Written only when set: a serving rule's dict (and so the content
        # hash of a bundle without shadow rules) is what it always was.
        if self.shadow:
            data["shadow"] = True
        return data

    @classmethod
    def from_dict(cls, data: dict) -> CompiledRule:
        return cls(
            id=data["id"],
            version=data["version"],
            intent=data["intent"],
            patterns=tuple(data["patterns"]),
            exclude=tuple(data["exclude"]),
            locales=tuple(data["locales"]),
            match=data["match"],
            priority=int(data["priority"]),
            shadow=bool(data.get("shadow", False)),
        )


def _unique(phrases: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(p for p in (normalize(x) for x in phrases) if p))


def normalize_locale(locale: str) -> str:
    """``en_us`` and ``EN-US`` are both ``en-us``: locales compare case-insensitively."""
    return locale.strip().replace("_", "-").lower()


def compile_rule(rule: Rule, *, shadow: bool = False) -> CompiledRule:
    """Normalise a rule's phrases and locales once, at compile time (``shadow``: see :class:`CompiledRule`)."""
    return CompiledRule(
        id=rule.id,
        version=rule.version,
        intent=rule.intent,
        patterns=_unique(rule.patterns),
        exclude=_unique(rule.exclude),
        locales=tuple(sorted({normalize_locale(loc) for loc in rule.locales})),
        match=rule.match,
        priority=rule.priority,
        shadow=shadow,
    )


class LexiconPhrase(NamedTuple):
    """What the matcher (and a bundle) keeps of a safety-lexicon entry: phrase and locales normalised."""

    phrase: str
    intent: str
    locales: tuple[str, ...]
    match: str

    def to_dict(self) -> dict:
        return {"phrase": self.phrase, "intent": self.intent, "locales": list(self.locales), "match": self.match}

    @classmethod
    def from_dict(cls, data: dict) -> LexiconPhrase:
        return cls(data["phrase"], data["intent"], tuple(data["locales"]), data["match"])


def compile_lexicon(lexicon) -> tuple[LexiconPhrase, ...]:
    """The entries of a :class:`rulelife.rules.lexicon.Lexicon` (or None) as matcher phrases.

    Sorted and deduplicated, so equal lexicons compile to equal tuples (and
    equal bundle content) whatever their file order; an entry that
    normalises to nothing is dropped (lint refuses it).
    """
    if lexicon is None:
        return ()
    compiled = {
        LexiconPhrase(normalize(e.phrase), e.intent, tuple(sorted({normalize_locale(x) for x in e.locales})), e.match)
        for e in lexicon.phrases
    }
    return tuple(sorted(p for p in compiled if p.phrase))


class LexiconVeto(NamedTuple):
    """A rule that fired but may not answer: ``phrase`` of safety intent ``intent`` is in the message."""

    rule_id: str
    rule_version: str
    phrase: str
    intent: str


def locale_applies(rule_locales: Sequence[str], locale: str | None) -> bool:
    """Whether a rule listing ``rule_locales`` may fire on a query in ``locale``.

    ``*`` is every locale (and a query of unknown locale); a bare language such
    as ``en`` covers ``en-us`` and ``en-gb``; otherwise locales must be equal.
    Both sides compare case-insensitively, ``_`` or ``-`` alike.

    >>> locale_applies(["en"], "en_US"), locale_applies(["en-US"], "en"), locale_applies(["*"], None)
    (True, False, True)
    """
    if "*" in rule_locales:
        return True
    if not isinstance(locale, str):  # None, or a missing value from a DataFrame
        return False
    locale = normalize_locale(locale)
    for rule_locale in rule_locales:
        rule_locale = normalize_locale(rule_locale)
        if locale == rule_locale or locale.startswith(rule_locale + "-"):
            return True
    return False


# Automaton libraries a matcher's hot path can walk; the first is the default.
BACKENDS = ("pyahocorasick", "ahocorasick_rs")
_UNSET = object()
_new_tuple = tuple.__new__  # builds a named tuple without the Python-level __new__ of its class
_NOTHING = (0, 0)  # best.get's default: no length yet
_RESULT_CACHE = 100_000  # distinct outcomes kept; beyond it results are built per call


def _is_word_char(char: str) -> bool:
    return char.isalnum() or char == "_"


_STATE_TAG = "rulelife-matcher-state-2"  # Matcher.state's first element: which layout follows


def _columns(rules: Sequence[CompiledRule], lexicon: Sequence[LexiconPhrase]) -> tuple:
    """The per-rule lists :meth:`Matcher._set_columns` keeps, with equal locale tuples shared."""
    shared: dict[tuple[str, ...], tuple[str, ...]] = {}
    locales = [shared.setdefault(item.locales, item.locales) for item in (*rules, *lexicon)]
    return ([r.id for r in rules], [r.version for r in rules], [r.intent for r in rules],
            [r.priority for r in rules], locales, all("*" in loc for loc in locales))


def _state_problem(state, lexicon_count: int) -> str | None:
    """What is wrong with the shape of a :meth:`Matcher.state` tuple, or None."""
    if not isinstance(state, tuple) or len(state) != 11 or state[0] != _STATE_TAG:
        return "an unknown layout"
    ids, versions, intents, priorities, locales, all_locales, lengths, entries, phrases, automaton = state[1:]
    if not all(isinstance(x, list) for x in (ids, versions, intents, priorities, locales, lengths, entries, phrases)):
        return "a column is not a list"
    if not (len(ids) == len(versions) == len(intents) == len(priorities) == len(locales) - lexicon_count):
        return "its rule columns differ in length"
    if not isinstance(all_locales, bool) or not isinstance(automaton, ahocorasick.Automaton):
        return "a field of the wrong type"
    if not (len(lengths) == len(entries) == len(phrases) == len(automaton)):
        return "its key table and automaton differ in size"
    return None


class MatchResult(NamedTuple):
    """The winning rule for one query, and every rule that fired on it.

    A named tuple, not a dataclass: it is built on the hot path, and a tuple
    is the cheapest immutable record Python has.
    """

    rule_id: str
    rule_version: str
    intent: str
    pattern: str
    fired: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ExplainedHit:
    """One occurrence of a phrase in the normalised query and what it did."""

    rule_id: str
    phrase: str
    kind: str  # "pattern", "exclude" or "lexicon" (rule_id "": a safety phrase vetoes rules, not one rule)
    start: int
    end: int  # exclusive
    counted: bool
    reason: str


@dataclass(frozen=True)
class Explanation:
    """Everything the matcher saw for one query (see :meth:`Matcher.explain`)."""

    text: str
    normalized: str
    locale: str | None
    hits: tuple[ExplainedHit, ...]
    fired: tuple[str, ...]
    vetoed: tuple[str, ...]
    winner: MatchResult | None
    reason: str
    rules: dict[str, CompiledRule] = field(repr=False, default_factory=dict)
    shadow_fired: tuple[str, ...] = ()  # shadow rules that would have fired (they never answer)
    # Fired rules the safety lexicon stopped, in the order they would have
    # ranked; ``veto`` is the one that would have answered (as the runtime's Decision).
    lexicon_vetoed: tuple[LexiconVeto, ...] = ()
    veto: LexiconVeto | None = None

    def to_dict(self) -> dict:
        return {
            "text": self.text,
            "normalized": self.normalized,
            "locale": self.locale,
            "hits": [
                {
                    "rule_id": h.rule_id,
                    "phrase": h.phrase,
                    "kind": h.kind,
                    "start": h.start,
                    "end": h.end,
                    "counted": h.counted,
                    "reason": h.reason,
                }
                for h in self.hits
            ],
            "fired": list(self.fired),
            "vetoed": list(self.vetoed),
            "winner": None
            if self.winner is None
            else {
                "rule_id": self.winner.rule_id,
                "rule_version": self.winner.rule_version,
                "intent": self.winner.intent,
                "pattern": self.winner.pattern,
            },
            "reason": self.reason,
            "shadow_fired": list(self.shadow_fired),
            "lexicon_vetoed": [v._asdict() for v in self.lexicon_vetoed],
            "veto": None if self.veto is None else self.veto._asdict(),
        }


class Matcher:
    """One automaton over the patterns and excludes of a set of rule versions.

    Parameters
    ----------
    rules
        Compiled rule versions (see :func:`compile_rule`); ids must be unique.
        Shadow rules among them go to a separate matcher (:attr:`shadow_rules`).
    automaton
        A prebuilt automaton for exactly the serving (non-shadow) rules, as
        :meth:`automaton` returns it (bundles ship one so loading skips the
        build). Built when omitted.
    shadow
        A prebuilt matcher of the shadow rules (their ``shadow`` flag
        cleared), as :attr:`shadow_matcher` returns it; bundles ship it.
    lexicon
        The safety lexicon (:func:`compile_lexicon`), folded into the same
        automaton (and the shadow matcher's); a prebuilt automaton and key
        table must have been built with it.
    """

    STATE_FORMAT = _STATE_TAG  # names the layout of :meth:`state`
    backend = "pyahocorasick"  # the automaton library the hot path walks (see :meth:`with_backend`)

    def __init__(
        self,
        rules: Sequence[CompiledRule],
        automaton: ahocorasick.Automaton | None = None,
        key_table: tuple[list[int], list[tuple], list[str]] | None = None,
        *,
        shadow: Matcher | None = None,
        lexicon: Sequence[LexiconPhrase] = (),
    ):
        self.lexicon: tuple[LexiconPhrase, ...] = tuple(lexicon)
        shadowed = [rule._replace(shadow=False) for rule in rules if rule.shadow]
        if shadowed:
            if shadow is not None:
                raise ValueError("pass shadow rules either flagged in rules or as a prebuilt shadow matcher, not both")
            shadow = Matcher(shadowed, lexicon=self.lexicon)
        # Rules are kept sorted by id, so a rule's index is its tie-break rank.
        # Invariant: the serving rules only; shadow rules live in self._shadow,
        # so the hot path never sees them.
        serving = tuple(sorted((r for r in rules if not r.shadow), key=lambda r: r.id))
        self._rules: tuple[CompiledRule, ...] | None = serving
        self._load_rules: Callable[[], Sequence[CompiledRule]] | None = None
        self._by_id_: dict[str, CompiledRule] | None = None
        self._shadow = shadow if shadow is not None and shadow._ids else None
        ids = [rule.id for rule in (*serving, *self.shadow_rules)]
        if len(set(ids)) != len(ids):
            dupes = sorted({i for i in ids if ids.count(i) > 1})
            raise ValueError(f"rule ids must be unique in one matcher, repeated: {', '.join(dupes)}")
        self._set_columns(_columns(serving, self.lexicon))
        self._lengths, self._entries, self._phrases = (key_table if key_table is not None
                                                       else self._key_table(serving, self.lexicon))
        self._automaton = automaton if automaton is not None else self._build(self._phrases)
        self._init_caches()

    def _set_columns(self, columns: tuple) -> None:
        # What the hot path reads of rule i, one list per field (index i), so a
        # load unpickles a few flat lists instead of building a rule object each.
        # _locales also holds the lexicon's (index len(_ids) + j for phrase j).
        self._ids, self._versions, self._intents, self._priorities, self._locales, self._all_locales = columns

    def _init_caches(self) -> None:
        self._locale_cache: dict[str | None, frozenset[int] | None] = {}
        # Invariant: _by_specs[s] is the set of rule and lexicon indices whose locales meet the
        # locale specs s (None: every index); one entry per distinct s, so it is bounded by
        # the bundle, not by requests.
        self._by_specs: dict[frozenset[str], frozenset[int] | None] = {}
        self._specs: tuple[str, ...] | None = None
        # Outcomes where several rules fired, by (ranked rule indices, winning key) ...
        self._results: dict[tuple[tuple[int, ...], int], MatchResult] = {}
        # ... and where one rule fired, by key * _stride + rule index (at most one per
        # key table entry, so bounded by the bundle).
        self._singles: dict[int, MatchResult] = {}
        self._stride = len(self._ids) or 1

    @property
    def rules(self) -> tuple[CompiledRule, ...]:
        """The serving rules, sorted by id (a loaded bundle decodes them on first use)."""
        rules = self._rules
        if rules is None:
            loaded = tuple(self._load_rules())
            if [rule.id for rule in loaded] != self._ids:
                raise ValueError("the rules do not match the compiled matcher state")
            self._rules = rules = loaded
        return rules

    @property
    def _by_id(self) -> dict[str, CompiledRule]:
        by_id = self._by_id_
        if by_id is None:
            self._by_id_ = by_id = {rule.id: rule for rule in self.rules}
        return by_id

    def versions(self) -> dict[str, str]:
        """Serving rule id -> version (without decoding a loaded bundle's rules)."""
        return dict(zip(self._ids, self._versions))

    @property
    def shadow_rules(self) -> tuple[CompiledRule, ...]:
        """The shadow rules (flagged), sorted by id."""
        return tuple(rule._replace(shadow=True) for rule in self._shadow.rules) if self._shadow else ()

    def state(self) -> tuple:
        """Everything the hot path reads, as plain containers and the automaton.

        A bundle ships it beside the readable rules, so a load is one unpickle of
        flat lists (:meth:`from_state`), with nothing to recompute.
        """
        return (_STATE_TAG, self._ids, self._versions, self._intents, self._priorities, self._locales,
                self._all_locales, self._lengths, self._entries, self._phrases, self._automaton)

    @classmethod
    def from_state(cls, state: tuple, rules: Callable[[], Sequence[CompiledRule]], *,
                   lexicon: Sequence[LexiconPhrase] = (), shadow: Matcher | None = None) -> Matcher:
        """The matcher :meth:`state` describes; ``rules`` returns its serving rules,
        sorted by id, when they are first asked for (``explain``, :attr:`rules`).

        Raises ValueError when ``state`` is not the shape :meth:`state` makes.
        """
        problem = _state_problem(state, len(lexicon))
        if problem:
            raise ValueError(f"not a compiled matcher state: {problem}")
        self = cls.__new__(cls)
        self.lexicon = tuple(lexicon)
        self._rules, self._load_rules, self._by_id_ = None, rules, None
        self._shadow = shadow if shadow is not None and shadow._ids else None
        self._set_columns(state[1:7])
        self._lengths, self._entries, self._phrases, self._automaton = state[7:]
        self._init_caches()
        return self

    def with_backend(self, backend: str) -> Matcher:
        """This matcher, its hot path walking the automaton library ``backend``
        (one of :data:`BACKENDS`); the answers are the same.

        ``ahocorasick_rs`` (the optional package ahocorasick-rs) walks a query
        faster than pyahocorasick but cannot be pickled, so it is built from
        the phrases here: 0.03 s at 10K patterns, 0.4 s at 100K, holding the
        interpreter meanwhile. pyahocorasick, the default, loads from a bundle
        without a build.
        """
        ahocorasick_rs = require_backend(backend)
        if backend == self.backend:
            return self
        if backend == Matcher.backend:
            raise ValueError("with_backend goes from pyahocorasick to another backend; keep the original matcher")
        twin = _RsWalk.__new__(_RsWalk)
        twin.__dict__.update(self.__dict__)  # the same columns, key table and automaton; fresh caches
        twin._init_caches()
        twin._rs_find = ahocorasick_rs.AhoCorasick(self._phrases).find_matches_as_indexes if self._phrases else None
        if self._shadow is not None:
            twin._shadow = self._shadow.with_backend(backend)
        return twin

    @classmethod
    def from_rules(cls, rules: Iterable[Rule]) -> Matcher:
        """Compile rule definitions (as read from YAML) into a matcher."""
        return cls([compile_rule(rule) for rule in rules])

    @staticmethod
    def _key_table(rules: Sequence[CompiledRule],
                   lexicon: Sequence[LexiconPhrase] = ()) -> tuple[list[int], list[tuple], list[str]]:
        # For the k-th automaton key (the automaton stores k): lengths[k] is its
        # phrase length, entries[k] its ((rule index, is_exclude, check_left,
        # check_right), ...), phrases[k] the phrase. Lexicon phrase j is an
        # exclude entry of index len(rules) + j. Equal entry tuples are one
        # object, so a bundle stores each once (a rule's patterns share theirs).
        entries: dict[str, list[tuple[int, bool, bool, bool]]] = {}
        items = [(rule.match, rule.patterns, rule.exclude) for rule in rules]
        items += [(entry.match, (), (entry.phrase,)) for entry in lexicon]
        for index, (match, patterns, exclude) in enumerate(items):
            word = match == "word"
            for is_exclude, phrases in ((False, patterns), (True, exclude)):
                for phrase in phrases:
                    check_left = word and _is_word_char(phrase[0])
                    check_right = word and _is_word_char(phrase[-1])
                    entries.setdefault(phrase, []).append((index, is_exclude, check_left, check_right))
        phrases = sorted(entries)
        shared: dict[tuple, tuple] = {}
        table = [shared.setdefault(key, key) for key in (tuple(entries[p]) for p in phrases)]
        return [len(p) for p in phrases], table, phrases

    @staticmethod
    def _build(phrases: Sequence[str], first_key: int = 0) -> ahocorasick.Automaton:
        """An automaton whose value for ``phrases[i]`` is key ``first_key + i``."""
        automaton = ahocorasick.Automaton(ahocorasick.STORE_INTS)
        for index, phrase in enumerate(phrases, first_key):
            automaton.add_word(phrase, index)
        if phrases:
            automaton.make_automaton()
        return automaton

    @property
    def automaton(self) -> ahocorasick.Automaton:
        """The compiled automaton (keys are normalised phrases in sorted order)."""
        return self._automaton

    @property
    def pattern_count(self) -> int:
        return len(self._lengths)

    @property
    def key_table(self) -> tuple[list[int], list[tuple], list[str]]:
        """What the automaton's values index: per key the phrase length, its
        rule entries and the phrase (see :meth:`_key_table`)."""
        return self._lengths, self._entries, self._phrases

    @property
    def shadow_matcher(self) -> Matcher | None:
        """The matcher of the shadow rules (flags cleared), or None when there is none."""
        return self._shadow

    def rule(self, rule_id: str) -> CompiledRule:
        """The serving or shadow rule ``rule_id`` (a shadow rule comes back flagged)."""
        try:
            return self._by_id[rule_id]
        except KeyError:
            if self._shadow is None:
                raise
            return self._shadow.rule(rule_id)._replace(shadow=True)

    def shadow_fired_normalized(self, text: str, locale: str | None) -> tuple[str, ...]:
        """Ids of the shadow rules that would have fired on an already-normalised
        query, sorted by id; () at once when the matcher has no shadow rule.

        A shadow rule would have fired where its pattern counts and its own
        exclude phrases do not veto it, whatever the serving rules do.
        """
        shadow = self._shadow
        if shadow is None:
            return ()
        result = shadow.match_normalized(text, locale)
        if result is None:
            return ()
        fired = result.fired
        return fired if len(fired) == 1 else tuple(sorted(fired))

    def shadow_fired(self, text: str, locale: str | None = None) -> tuple[str, ...]:
        """:meth:`shadow_fired_normalized` of a raw query."""
        return self.shadow_fired_normalized(normalize(text), locale) if self._shadow is not None else ()

    def shadow_many(
        self,
        texts: Iterable[str],
        locales: Iterable[str | None] | str | None = None,
        *,
        normalized: bool = False,
    ) -> list[tuple[str, ...]]:
        """:meth:`shadow_fired` over many queries (arguments as :meth:`match_many`)."""
        shadow = self._shadow
        if shadow is None:
            return [()] * len(as_list(texts))
        out = []
        for result in shadow.match_many(texts, locales, normalized=normalized):
            if result is None:
                out.append(())
            else:
                fired = result.fired
                out.append(fired if len(fired) == 1 else tuple(sorted(fired)))
        return out

    def _allowed(self, locale: str | None) -> frozenset[int] | None:
        """Indices of the rules that apply to ``locale``; None means all of them."""
        try:
            return self._locale_cache[locale]
        except KeyError:
            pass
        if self._all_locales:
            allowed = None
        else:
            items = self._locales  # lexicon phrase j has index len(rules) + j
            if self._specs is None:
                self._specs = tuple(sorted({spec for locales in items for spec in locales}))
            # A request's locale string is canonicalised to the bundle's locale specs it meets:
            # a client sending random locales shares one set (the wildcard rules') instead of
            # costing a scan and a new set of indices each.
            meets = frozenset(spec for spec in self._specs if locale_applies((spec,), locale))
            try:
                allowed = self._by_specs[meets]
            except KeyError:
                allowed = self._by_specs[meets] = self._meeting(meets)
        if len(self._locale_cache) < 10_000:  # bounded: locales come from user input
            self._locale_cache[locale] = allowed
        return allowed

    def _meeting(self, meets: frozenset[str]) -> frozenset[int] | None:
        """Indices of the rules and lexicon phrases listing a locale spec in ``meets``; None for every index
        (so the hot path skips the membership test)."""
        items = self._locales
        allowed = frozenset(i for i, locales in enumerate(items) if any(spec in meets for spec in locales))
        return None if len(allowed) == len(items) else allowed

    def match_normalized(self, text: str, locale: str | None, _vetoes: bool = False) -> MatchResult | None:
        """Match an already-normalised query. The hot path: keep it lean.

        Most queries hit one key of one rule, so the first counted hit is
        kept in locals and a dict is made only when a second rule fires.
        ``_vetoes`` (for :meth:`match_and_veto_normalized`) returns the pair
        (result, lexicon veto) instead.
        """
        if not text or not self._lengths:
            return (None, None) if _vetoes else None
        allowed = self._locale_cache.get(locale, _UNSET)
        if allowed is _UNSET:
            allowed = self._allowed(locale)
        lengths = self._lengths
        entries_of = self._entries
        size = len(text)
        first = -1  # the only rule counted so far (index), its longest length and key
        first_len = first_key = 0
        best: dict[int, tuple[int, int]] | None = None  # rule index -> (length, key), once two rules fired
        vetoed: set[int] | None = None
        for end, key in self._automaton.iter(text):
            length = lengths[key]
            for index, is_exclude, check_left, check_right in entries_of[key]:
                if allowed is not None and index not in allowed:
                    continue
                if check_left and end >= length:  # a character precedes the phrase
                    char = text[end - length]
                    if char.isalnum() or char == "_":
                        continue
                if check_right and end + 1 < size:
                    char = text[end + 1]
                    if char.isalnum() or char == "_":
                        continue
                if is_exclude:
                    if vetoed is None:
                        vetoed = set()
                    vetoed.add(index)
                elif best is None:
                    if first < 0 or index == first:
                        if length > first_len:
                            first, first_len, first_key = index, length, key
                    else:
                        best = {first: (first_len, first_key), index: (length, key)}
                elif length > best.get(index, _NOTHING)[0]:
                    best[index] = (length, key)
        if first < 0 and best is None:  # no rule fired: excludes and safety phrases change nothing
            return (None, None) if _vetoes else None
        return self._outcome(first, first_len, first_key, best, vetoed, _vetoes)

    def _outcome(self, first: int, first_len: int, first_key: int, best: dict[int, tuple[int, int]] | None,
                 vetoed: set[int] | None, report: bool):
        """The result (or, with ``report``, the pair (result, lexicon veto)) of a walk
        that counted rule ``first`` alone, or the rules in ``best``, and the exclude
        and lexicon entries in ``vetoed``."""
        if vetoed is not None:
            if self.lexicon and max(vetoed) >= len(self._ids):
                return self._resolve_lexicon(first, first_len, first_key, best, vetoed, report)
            if best is None:
                if first in vetoed:
                    first = -1
            else:
                for index in vetoed:
                    best.pop(index, None)
                if len(best) < 2:  # back to at most one rule
                    first, (first_len, first_key) = next(iter(best.items()), (-1, (0, 0)))
                    best = None
        if best is None:
            if first < 0:
                return (None, None) if report else None
            # The fast path: one rule fired. Its outcome depends on (key, rule) alone.
            code = first_key * self._stride + first
            result = self._singles.get(code)
            if result is None:
                result = self._singles[code] = self._result((first,), first_key)
            return (result, None) if report else result
        ranked = self._rank(best)
        cache_key = (ranked, best[ranked[0]][1])
        result = self._results.get(cache_key)
        if result is None:
            result = self._result(*cache_key)
            if len(self._results) < _RESULT_CACHE:
                self._results[cache_key] = result
        return (result, None) if report else result

    def _rank(self, best: dict[int, tuple[int, int]]) -> tuple[int, ...]:
        """Fired rule indices, winner first: priority desc, pattern length desc, id asc (= index asc)."""
        priorities = self._priorities
        if len(best) == 2:  # the common case, without building a list to sort
            (a, (length_a, _)), (b, (length_b, _)) = best.items()
            if (-priorities[a], -length_a, a) < (-priorities[b], -length_b, b):
                return a, b
            return b, a
        return tuple([index for _, _, index in sorted([(-priorities[index], -length, index)
                                                       for index, (length, _) in best.items()])])

    def _resolve_lexicon(self, first, first_len, first_key, best, vetoed, report):
        """The rare path: a lexicon phrase counted. Stop every fired rule of another intent."""
        count = len(self._ids)
        if best is None:
            best = {} if first < 0 else {first: (first_len, first_key)}
        for index in vetoed:
            if index < count:  # the rule's own exclude phrase
                best.pop(index, None)
        hits = [self.lexicon[index - count] for index in sorted(vetoed) if index >= count]
        ranked_all = self._rank(best)
        kept = []
        veto = None
        for index in ranked_all:
            intent = self._intents[index]
            stopper = _stopper(hits, intent)
            if stopper is None:
                kept.append(index)
            elif index == ranked_all[0]:  # the rule that would have answered without the lexicon
                veto = LexiconVeto(self._ids[index], self._versions[index], stopper.phrase, stopper.intent)
        result = None
        if kept:
            ranked = tuple(kept)
            key = best[ranked[0]][1]
            result = self._results.get((ranked, key)) or self._result(ranked, key)
        return (result, veto) if report else result

    def match_and_veto_normalized(self, text: str, locale: str | None) -> tuple[MatchResult | None,
                                                                                  LexiconVeto | None]:
        """:meth:`match_normalized` and, where the lexicon stopped the rule that
        would otherwise have answered, that veto (one walk of the automaton).

        The result may still be a rule of the lexicon phrase's own intent.
        """
        return self.match_normalized(text, locale, True)

    def _result(self, ranked: tuple[int, ...], key: int) -> MatchResult:
        # Results are immutable and depend only on (ranked rules, winning key),
        # so equal outcomes share one object: no allocation on a repeat.
        ids = self._ids
        winner = ranked[0]
        fired = (ids[winner],) if len(ranked) == 1 else tuple([ids[i] for i in ranked])
        return _new_tuple(MatchResult, (ids[winner], self._versions[winner], self._intents[winner],
                                        self._phrases[key], fired))

    def match(self, text: str, locale: str | None = None) -> MatchResult | None:
        """Return the winning rule for ``text`` in ``locale``, or None."""
        return self.match_normalized(normalize(text), locale)

    def match_many(
        self,
        texts: Iterable[str],
        locales: Iterable[str | None] | str | None = None,
        *,
        normalized: bool = False,
    ) -> list[MatchResult | None]:
        """Match many queries; element for element equal to :meth:`match`.

        ``texts`` may be a list, a pandas Series or a pyarrow array; ``locales``
        a sequence of the same length or one locale for all. With
        ``normalized=True`` the texts are already :func:`normalize`d (jobs
        that run several matchers over one chunk normalise it once).
        """
        return self._many(texts, locales, normalized, self.match_normalized, None)

    def match_and_veto_many(
        self,
        texts: Iterable[str],
        locales: Iterable[str | None] | str | None = None,
        *,
        normalized: bool = False,
    ) -> list[tuple[MatchResult | None, LexiconVeto | None]]:
        """:meth:`match_and_veto_normalized` over many queries (arguments as :meth:`match_many`)."""
        return self._many(texts, locales, normalized, self.match_and_veto_normalized, (None, None))

    def _many(self, texts, locales, normalized: bool, match, missing) -> list:
        texts = as_list(texts)
        if locales is None or isinstance(locales, str):
            locales = [locales] * len(texts)
        else:
            # A missing locale (None, NaN, pd.NA) is an unknown locale.
            locales = [loc if isinstance(loc, str) else None for loc in as_list(locales)]
            if len(locales) != len(texts):
                raise ValueError(f"got {len(texts)} texts but {len(locales)} locales; pass one locale per text")
        # Production logs repeat queries ("hi", "where is my order"): answer
        # each distinct (text, locale) once. Results are immutable, so sharing
        # them is safe and identical to matching each row.
        seen: dict = {}
        out: list = []
        append = out.append
        for text, locale in zip(texts, locales):
            if text.__class__ is not str and not isinstance(text, str):  # exact check first: it is the common case
                if not _is_missing(text):
                    raise TypeError(f"texts must be strings or missing values, got {type(text).__name__} {text!r}")
                append(missing)
                continue
            key = (text, locale)
            try:
                append(seen[key])
            except KeyError:
                result = seen[key] = match(text if normalized else normalize(text), locale)
                append(result)
        return out

    def explain(self, text: str, locale: str | None = None) -> Explanation:
        """Every hit, every veto and why the winner won, for one query.

        ``winner`` and ``fired`` are exactly what :meth:`match` returns; each
        hit says whether it counted and, if not, why (locale, word boundary);
        ``lexicon_vetoed`` names the fired rules a safety phrase stopped.
        """
        normalized = normalize(text)
        raw: list[tuple[int, int, int, bool, str | None]] = []  # (index, key, start, is_exclude, rejection)
        fired: dict[str, int] = {}  # rule id -> longest counted pattern
        vetoes: dict[str, str] = {}  # rule id -> first exclude phrase that counted
        lexicon_hits: set[int] = set()  # lexicon phrases that counted (their index in self.lexicon)
        count = len(self.rules)
        for end, key, (index, is_exclude, check_left, check_right) in self._explained_hits(normalized):
            length = self._lengths[key]
            start = end - length + 1
            item = self.rules[index] if index < count else self.lexicon[index - count]
            rejection = self._rejection(item.locales, normalized, locale, start, end, check_left, check_right)
            raw.append((index, key, start, is_exclude, rejection))
            if rejection is None:
                if index >= count:
                    lexicon_hits.add(index - count)
                elif is_exclude:
                    vetoes.setdefault(item.id, self._phrases[key])
                else:
                    fired[item.id] = max(fired.get(item.id, 0), length)
        hits = tuple(self._hit(*entry, vetoes) for entry in raw)
        winner, veto = self.match_and_veto_normalized(normalized, locale)
        vetoed = {rule_id: phrase for rule_id, phrase in vetoes.items() if rule_id in fired}
        counted = [self.lexicon[j] for j in sorted(lexicon_hits)]
        lexicon_vetoed = []
        for rule_id in sorted(set(fired) - set(vetoed), key=lambda r: (-self._by_id[r].priority, -fired[r], r)):
            rule = self._by_id[rule_id]
            stopper = _stopper(counted, rule.intent)
            if stopper is not None:
                lexicon_vetoed.append(LexiconVeto(rule.id, rule.version, stopper.phrase, stopper.intent))
        return Explanation(
            text=text,
            normalized=normalized,
            locale=locale,
            hits=hits,
            fired=winner.fired if winner else (),
            vetoed=tuple(sorted(vetoed)),
            winner=winner,
            reason=self._why(winner, fired, vetoed, hits, tuple(lexicon_vetoed)),
            rules=dict(self._by_id),
            shadow_fired=self.shadow_fired_normalized(normalized, locale),
            lexicon_vetoed=tuple(lexicon_vetoed),
            veto=veto,
        )

    def _explained_hits(self, normalized: str) -> Iterator[tuple[int, int, tuple]]:
        """(end, key, entry) for every entry of every key found in ``normalized``: by end,
        longest first, then by rule index, patterns before excludes, the lexicon's last."""
        if not (self._lengths and normalized):
            return
        entries = self._entries
        for end, key in self._automaton.iter(normalized):
            for entry in entries[key]:
                yield end, key, entry

    def _hit(self, index, key, start, is_exclude, rejection, vetoes) -> ExplainedHit:
        phrase = self._phrases[key]
        if index >= len(self.rules):
            entry = self.lexicon[index - len(self.rules)]
            reason = rejection or f"safety phrase of {entry.intent}: vetoes every rule of another intent"
            return ExplainedHit(rule_id="", phrase=phrase, kind="lexicon", start=start, end=start + len(phrase),
                                counted=rejection is None, reason=reason)
        rule = self.rules[index]
        if rejection is not None:
            reason = rejection
        elif is_exclude:
            reason = "vetoes the rule"
        elif rule.id in vetoes:
            reason = f"matches, but the rule is vetoed by its exclude phrase {vetoes[rule.id]!r}"
        else:
            reason = "fires the rule"
        return ExplainedHit(
            rule_id=rule.id,
            phrase=phrase,
            kind="exclude" if is_exclude else "pattern",
            start=start,
            end=start + len(phrase),
            counted=rejection is None,
            reason=reason,
        )

    def _rejection(self, locales, text, locale, start, end, check_left, check_right) -> str | None:
        if not locale_applies(locales, locale):
            return f"locale {locale} is not in the rule's locales ({', '.join(locales)})"
        if check_left and start > 0 and _is_word_char(text[start - 1]):
            return f"not on a word boundary (preceded by {text[start - 1]!r})"
        if check_right and end + 1 < len(text) and _is_word_char(text[end + 1]):
            return f"not on a word boundary (followed by {text[end + 1]!r})"
        return None

    def _why(self, winner, fired: dict[str, int], vetoed: dict[str, str], hits, lexicon_vetoed) -> str:
        vetoes = "; ".join([f"{rule_id} was vetoed by {phrase!r}" for rule_id, phrase in sorted(vetoed.items())]
                           + [f"{v.rule_id} was vetoed by the safety lexicon phrase {v.phrase!r} ({v.intent})"
                              for v in lexicon_vetoed])
        if winner is None:
            if lexicon_vetoed:
                return f"the message goes to the model: {vetoes}"
            if vetoed:
                return f"every rule that fired was vetoed: {vetoes}"
            patterns = [hit for hit in hits if hit.kind == "pattern"]
            if patterns:
                first = patterns[0]
                return f"no pattern counted: {first.rule_id}'s {first.phrase!r} {first.reason}"
            return "no rule pattern occurs in the query"
        suffix = f" ({vetoes})" if vetoes else ""
        if len(winner.fired) == 1:
            return f"{winner.rule_id} is the only rule that fired{suffix}"
        first, second = (self._by_id[i] for i in winner.fired[:2])
        if first.priority != second.priority:
            reason = f"{first.id} has priority {first.priority}, above {second.id}'s {second.priority}"
        elif fired[first.id] != fired[second.id]:
            reason = (
                f"equal priority; {first.id} matched a longer pattern "
                f"({fired[first.id]} characters against {second.id}'s {fired[second.id]})"
            )
        else:
            reason = f"equal priority and pattern length; {first.id} comes before {second.id} by id"
        return reason + suffix


class _RsWalk(Matcher):
    """A :class:`Matcher` whose hot path walks an ahocorasick-rs automaton of the
    same phrases (:meth:`Matcher.with_backend`); everything else is the Matcher's,
    pyahocorasick automaton included (``explain`` walks it, a bundle ships it)."""

    backend = "ahocorasick_rs"

    def match_normalized(self, text: str, locale: str | None, _vetoes: bool = False) -> MatchResult | None:
        """:meth:`Matcher.match_normalized`, walking the ahocorasick-rs automaton, which
        hands back every hit with its start and end in one list."""
        if not (text and self._lengths):
            return (None, None) if _vetoes else None
        allowed = self._allowed(locale)  # cached per locale
        entries_of = self._entries
        size = len(text)
        counted: dict[int, tuple[int, int]] = {}  # rule index -> (longest length, its key)
        vetoed: set[int] | None = None
        try:
            hits = self._rs_find(text, True)
        except UnicodeEncodeError:  # a lone surrogate, which UTF-8 cannot carry: the other automaton walks it
            return Matcher.match_normalized(self, text, locale, _vetoes)
        for key, start, stop in hits:  # stop: one past the phrase's last character
            for index, is_exclude, check_left, check_right in entries_of[key]:
                if (allowed is not None and index not in allowed) or \
                        (check_left and start and _is_word_char(text[start - 1])) or \
                        (check_right and stop < size and _is_word_char(text[stop])):
                    continue
                if is_exclude:
                    vetoed = vetoed or set()
                    vetoed.add(index)
                elif stop - start > counted.get(index, _NOTHING)[0]:
                    counted[index] = (stop - start, key)
        if not counted:
            return (None, None) if _vetoes else None
        if len(counted) == 1:
            ((first, (first_len, first_key)),) = counted.items()
            return self._outcome(first, first_len, first_key, None, vetoed, _vetoes)
        return self._outcome(-1, 0, 0, counted, vetoed, _vetoes)


def require_backend(backend: str):
    """The module of matcher backend ``backend`` (None for the built-in pyahocorasick);
    ValueError for an unknown name, ConfigError when its package is not installed."""
    if backend not in BACKENDS:
        raise ValueError(f"Unknown matcher backend {backend!r}, expected one of {', '.join(BACKENDS)}")
    if backend == BACKENDS[0]:
        return None
    try:
        import ahocorasick_rs
    except ImportError:
        raise ConfigError("the ahocorasick_rs matcher backend needs the ahocorasick-rs package: "
                          "pip install 'rulelife[rs]', or use the default pyahocorasick") from None
    return ahocorasick_rs


def _stopper(hits: Sequence[LexiconPhrase], intent: str) -> LexiconPhrase | None:
    """The lexicon phrase that stops a rule of ``intent``: the first counted
    one (in lexicon order, so the answer is deterministic) of another intent."""
    for hit in hits:
        if hit.intent != intent:
            return hit
    return None


def _is_missing(value: object) -> bool:
    """None, NaN, pd.NA and pd.NaT: the values a log column uses for "no text"."""
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN and NaT are the only values unequal to themselves
    except TypeError:  # pd.NA refuses bool()
        return True


def as_list(values) -> list:
    """``values`` (a list, pyarrow array, pandas Series, numpy array or any iterable) as a list."""
    if isinstance(values, list):
        return values
    to_pylist = getattr(values, "to_pylist", None)  # pyarrow arrays
    if to_pylist is not None:
        return to_pylist()
    tolist = getattr(values, "tolist", None)  # pandas Series / numpy
    if tolist is not None:
        return tolist()
    return list(values)
