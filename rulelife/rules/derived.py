"""A matcher for a rule set that differs from a loaded one in a few rules, made without rebuilding.

A published bundle usually differs from the one served by a rule or two (a
promotion, a disable). Loading its whole automaton costs a 100K-pattern
runtime two long C calls that hold the interpreter lock (restoring the new
automaton, freeing the old one), and every request thread of the process
waits for each. :func:`derive` instead keeps the loaded matcher's automaton
(the *base*), drops the entries of the rules that left, renumbers the rest,
and walks a small second automaton holding only the phrases of the rules that
came in. Its answers, ``fired`` lists and ``explain`` are exactly those of a
matcher built from the new rule set (``tests/rules/test_derived.py`` compares
them on random rule sets and edits); what it costs is a C loop over the base's
key table (renumbering), a Python loop over its distinct entry tuples and the
new rules' phrases.

A derived matcher is for serving only: a bundle is always built whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain
from operator import itemgetter

import ahocorasick

from rulelife.rules.matcher import CompiledRule, Matcher

__all__ = ["DerivedMatcher", "derive"]

_UNKNOWN = object()


class _Stacked:
    """Two automata walked one after the other, with the second's keys past the first's.

    The hot path only calls ``iter``. Across rules the order of hits does not
    change an outcome, and each rule's phrases live in one of the two
    automata, so its own hits come in the order one automaton would give.
    """

    __slots__ = ("base", "delta")

    def __init__(self, base: ahocorasick.Automaton, delta: ahocorasick.Automaton):
        self.base = base
        self.delta = delta

    def iter(self, text: str):
        return chain(self.base.iter(text), self.delta.iter(text))

    def __len__(self) -> int:
        return len(self.base) + len(self.delta)


class DerivedMatcher(Matcher):
    """A :class:`Matcher` made by :func:`derive`: the same answers, never written to a bundle."""

    _pattern_count: int
    base: Matcher

    @property
    def pattern_count(self) -> int:
        """Distinct phrases of the rules served (the base's phrases of departed rules not counted)."""
        return self._pattern_count

    def state(self) -> tuple:
        raise TypeError("a derived matcher is served, never shipped: build a bundle from its rules instead")

    def with_backend(self, backend: str) -> Matcher:
        if backend != self.backend:
            raise ValueError("a derived matcher walks pyahocorasick only; load the bundle whole for another backend")
        return self

    def _meeting(self, meets: frozenset[str]) -> frozenset[int] | None:
        """The base's indices for ``meets`` (worked out once for the whole lineage), renumbered,
        and the new rules that meet it: a set operation, not a scan of every rule."""
        base = self.base
        known = base._by_specs.get(meets, _UNKNOWN)
        if known is _UNKNOWN:
            known = base._by_specs[meets] = base._meeting(meets)
        remap = self._remap
        allowed = set(remap) if known is None else set(map(remap.__getitem__, known))
        allowed.discard(-1)
        allowed.update(position for position, rule in self._added if any(spec in meets for spec in rule.locales))
        return None if len(allowed) == len(self._locales) else frozenset(allowed)

    def _explained_hits(self, normalized: str):
        """As one automaton reports them (see :meth:`Matcher._explained_hits`): a phrase in
        both automata is one key there, its entries in rule order."""
        hits = list(super()._explained_hits(normalized))
        if isinstance(self._automaton, _Stacked):
            lengths = self._lengths
            hits.sort(key=lambda hit: (hit[0], -lengths[hit[1]], hit[2][0], hit[2][1]))
        return iter(hits)


def derive(base: Matcher, plan: Sequence[int | CompiledRule], *, shadow: Matcher | None = None) -> DerivedMatcher:
    """The matcher of the rules ``plan`` lists, sorted by id: each either the index
    of a serving rule of ``base`` (unchanged, kept) or a :class:`CompiledRule`
    (new or changed, its ``shadow`` flag clear). The lexicon is the base's.
    ``shadow`` is the new matcher's shadow matcher.

    Raises ValueError when ``plan`` is not sorted by id without repeats, or
    names a rule ``base`` does not have.
    """
    if isinstance(base, DerivedMatcher):
        raise ValueError("derive from the matcher loaded whole, not from a derived one")
    base_count = len(base._ids)
    lexicon_count = len(base.lexicon)
    remap = [-1] * (base_count + lexicon_count)  # base index -> new index, -1 for a rule that left
    kept: list[int] = []
    added: list[tuple[int, CompiledRule]] = []
    for position, item in enumerate(plan):
        if type(item) is int:
            if not 0 <= item < base_count or remap[item] >= 0:
                raise ValueError(f"the plan names base rule {item}, which the base lacks or the plan repeats")
            remap[item] = position
            kept.append(item)
        elif item.shadow:
            raise ValueError(f"rule {item.id} is flagged shadow: derive the shadow matcher on its own")
        else:
            added.append((position, item))
    for j in range(lexicon_count):
        remap[base_count + j] = len(plan) + j
    # The kept rules' columns by C loops, then each new rule put in its place.
    columns = [_pick(column, kept) for column in (base._ids, base._versions, base._intents, base._priorities,
                                                  base._locales)]
    for position, rule in added:
        for column, value in zip(columns, (rule.id, rule.version, rule.intent, rule.priority, rule.locales)):
            column.insert(position, value)
    ids, versions, intents, priorities, locales = columns
    if ids != sorted(ids) or len(set(ids)) != len(ids):
        raise ValueError("the plan is not sorted by rule id without repeats")
    locales += base._locales[base_count:]  # the lexicon's, after the rules' (as Matcher keeps them)

    self = DerivedMatcher.__new__(DerivedMatcher)
    self.base = base
    self.lexicon = base.lexicon
    self._remap = remap
    self._added = added
    self._shadow = shadow if shadow is not None and shadow._ids else None
    self._by_id_ = None
    self._set_columns((ids, versions, intents, priorities, locales, all("*" in spec for spec in locales)))
    by_position = dict(added)
    self._rules = None
    self._load_rules = lambda: [by_position[p] if p in by_position else base.rules[plan[p]]
                                for p in range(len(plan))]

    # The base's keys, their entries renumbered; entries of departed rules dropped. Entry
    # tuples are shared between keys (a rule's phrases share one), so each distinct one is
    # renumbered once, an unchanged one kept as it is, and the per-key list is made by a C loop.
    codes, distinct = _factorized(base)
    renumbered = []
    append = renumbered.append
    for entry in distinct:
        if len(entry) == 1:
            ((index, exclude, left, right),) = entry
            new = remap[index]
            append(entry if new == index else ((new, exclude, left, right),) if new >= 0 else ())
        else:
            append(_renumbered(entry, remap))
    entries = list(map(renumbered.__getitem__, codes))
    live = len(entries) - entries.count(())

    delta_rules = [rule for _, rule in added]
    lengths, delta_entries, phrases = Matcher._key_table(delta_rules)
    if phrases:
        positions = [position for position, _ in added]  # a new rule's index among them -> in the plan
        automaton = Matcher._build(phrases, first_key=len(base._phrases))
        fresh: dict[tuple, tuple] = {}
        for key, entry in enumerate(delta_entries):
            if entry not in fresh:
                fresh[entry] = _renumbered(entry, positions)
            delta_entries[key] = fresh[entry]
        self._lengths = base._lengths + lengths
        self._entries = entries + delta_entries
        self._phrases = base._phrases + phrases
        if base._phrases:
            self._automaton = _Stacked(base._automaton, automaton)
            # A new phrase the base also holds for a rule that stays is one pattern, not two.
            base_automaton = base._automaton
            live += sum(1 for phrase in phrases
                        if not (0 <= (key := base_automaton.get(phrase, -1)) < len(entries) and entries[key]))
        else:  # an empty base has no automaton to walk (pyahocorasick never made it)
            self._automaton = automaton
            live += len(phrases)
    else:
        self._lengths, self._entries, self._phrases = base._lengths, entries, base._phrases
        self._automaton = base._automaton
    self._pattern_count = live
    self._init_caches()
    return self


def _renumbered(entry: tuple, table: Sequence[int]) -> tuple:
    """A key's entries with each rule index ``i`` made ``table[i]``; those mapped to -1 dropped."""
    return tuple([(table[index], exclude, left, right) for index, exclude, left, right in entry
                  if table[index] >= 0])


def _pick(column: list, indices: list[int]) -> list:
    """``[column[i] for i in indices]``, by a C loop."""
    if not indices:
        return []
    if len(indices) == 1:
        return [column[indices[0]]]
    return list(itemgetter(*indices)(column))


def _factorized(base: Matcher) -> tuple[list[int], list[tuple]]:
    """The base's key table entries as (per key, the number of its distinct entry tuple) and
    those distinct tuples, in order of first use; made on the first derivation, then kept."""
    cached = base.__dict__.get("_factorized")
    if cached is None:
        entries = base._entries
        by_id = dict(zip(map(id, entries), entries))  # the first key of each tuple keeps its place
        number = dict(zip(by_id, range(len(by_id))))
        cached = base._factorized = (list(map(number.__getitem__, map(id, entries))), list(by_id.values()))
    return cached
