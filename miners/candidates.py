"""The candidate-rule miner: propose rules from the model's own predictions.

Three streaming passes over model-labelled traffic, each a sum of per-chunk
partial counts (so memory is bounded by what is kept, not by the log):

1. **phrase counts** (:class:`~miners.counts.PhraseCounts`): every phrase
   (word 1-4-grams, or character n-grams for ``ja``-like locales) x locale x
   model intent, over all labelled rows and over the confident ones. A
   *seed* is a phrase with ``min_support`` confident queries of one intent
   whose precision for that intent, among **all** labelled queries holding
   it, is high. Stop-word-only, too generic, already covered and
   conflicting phrases are dropped here, with the reason.
2. **probes**: each seed as a one-pattern rule through the real matcher:
   exact precision and safety hits, and the tokens that co-occur with the
   confusers, from which exclude phrases are chosen.
3. **rules**: accepted phrases, redundant ones dropped and near-duplicates
   merged, recounted exactly as the rules they will be; a rule that now
   misses the precision or fires on a safety query is dropped.

Precision, not the confident rows alone: the confident rows say which
phrases the model is sure about, but a rule answers every query holding the
phrase, so it is judged on all of them.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

import pandas as pd

from miners import grouping, quality
from miners.counts import PhraseCounts
from miners.ngrams import SUBSTRING_LANGUAGES, is_substring_locale, words
from miners.passes import Halves, PhrasePass, RulePass, add_capped, add_halves, frames_fold
from miners.probes import RuleCounts, jaccard
from rulelife.evidence.evaluation.stats import wilson_interval
from rulelife.mining import MIN_CONFIDENCE
from rulelife.mining.mine import Skip
from rulelife.rules.definition import MAX_INTENT_LENGTH, Rule, intent_slug
from rulelife.rules.matcher import CompiledRule, Matcher, compile_rule, normalize_locale
from rulelife.rules.stopwords import stop_words_for

__all__ = ["Candidate", "CandidateMiner", "Skip"]

_MERGES = ("near_duplicates", "intent")
ChunkSource = Callable[[], Iterable[pd.DataFrame]] | Sequence[pd.DataFrame]
Fold = Callable[..., Any]


@dataclass(frozen=True)
class Candidate:
    """One proposed rule and the evidence for it, counted exactly over the window."""

    rule: Rule
    locale: str
    fires: int  # model-labelled queries it fires on
    agree: int  # ... of which the model labels with the rule's intent
    low: float
    high: float
    days: int
    new_fires: int  # fires on which no active rule fires
    calls_saved_per_day: float
    cost_saved_per_day: float
    examples: list[str] = field(default_factory=list)
    confusers: list[dict] = field(default_factory=list)
    # Counted on the held-out days (see CandidateMiner.score), which never chose the rule; None before.
    heldout_fires: int | None = None
    heldout_agree: int | None = None
    heldout_unsafe: dict[str, int] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.rule.id

    @property
    def intent(self) -> str:
        return self.rule.intent

    @property
    def agreement(self) -> float:
        return self.agree / self.fires if self.fires else float("nan")

    @property
    def fires_per_day(self) -> float:
        return self.fires / self.days

    @property
    def heldout_precision(self) -> float | None:
        """Agreement with the model on the held-out days (None: not scored, or it never fired there)."""
        return self.heldout_agree / self.heldout_fires if self.heldout_fires else None

    def to_dict(self) -> dict:
        return {"id": self.id, "intent": self.intent, "locale": self.locale, "match": self.rule.match,
                "patterns": list(self.rule.patterns), "exclude": list(self.rule.exclude), "fires": self.fires,
                "agree": self.agree, "agreement": self.agreement, "low": self.low, "high": self.high,
                "days": self.days, "fires_per_day": self.fires_per_day, "new_fires": self.new_fires,
                "calls_saved_per_day": self.calls_saved_per_day, "cost_saved_per_day": self.cost_saved_per_day,
                "examples": self.examples, "confusers": self.confusers, "heldout_fires": self.heldout_fires,
                "heldout_agree": self.heldout_agree, "heldout_precision": self.heldout_precision,
                "heldout_unsafe": self.heldout_unsafe}


def _halves(days: list[date]) -> list[tuple[date, date]]:
    """The window's days in two halves, as (first, last) day pairs; [] with fewer than two days."""
    if len(days) < 2:
        return []
    k = (len(days) + 1) // 2
    return [(days[0], days[k - 1]), (days[k], days[-1])]


class CandidateMiner:
    """Propose keyword rules whose phrases predict the model's intent.

    Parameters
    ----------
    min_confidence
        A query counts as confident at or above this model confidence.
    min_support
        Confident queries of the intent a phrase needs (pass 1), and agreeing
        queries a rule needs (passes 2 and 3).
    min_precision
        Share of all labelled queries holding the phrase (then firing the
        rule) that the model gives the rule's intent. Above the gate's 0.95
        floor on purpose: the gate judges a sample, and an interval gate
        needs the point estimate clear of the floor.
    exclude_from
        Phrases between this precision and ``min_precision`` are tried with
        exclude phrases for their main confusers.
    max_exclude_loss
        Share of a phrase's agreeing queries an exclude may veto.
    safety_intents
        A rule may never fire on a query the model labels with one of these
        (other than the rule's own intent).
    max_words, min_chars, max_chars
        Word n-gram length, and character n-gram lengths for substring locales.
    max_share
        A phrase in more than this share of its locale's traffic is too generic.
    max_patterns
        Patterns a merged rule may hold.
    max_probes
        Phrases checked exactly per (intent, locale), the most supported first.
    min_chunk_count, max_keys, chunk_rows
        Pruning and chunking of the phrase counts (see :mod:`miners.counts`).
    substring_languages
        Languages whose rules match substrings.
    shadow_rate, model_call_cost
        For the savings: a shadow-sampled query still calls the model.
    intents, locales
        Intents and locales to report on even without traffic (None: those seen).
    merge
        ``"near_duplicates"``: one rule per cluster of near-duplicate phrases;
        ``"intent"``: one rule per intent and locale (up to ``max_patterns``
        patterns), for small traffic where a rule needs every query of its
        intent to give the gate enough evidence.
    max_spread
        A word is generic when the labelled queries holding it spread over at
        least this many intents (inverse Simpson index); a phrase whose
        content words are all generic is refused.
    safety_proximity, min_proximity_rows, min_proximity_lift
        A phrase with a content word that at least ``min_proximity_rows``
        queries of a safety intent (other than its own), this share of the
        word's queries, and ``min_proximity_lift`` times the intent's share
        of all traffic, hold in the window lives next to that intent: it is
        refused, and the model keeps answering such messages.
    fragment_share
        A substring-locale phrase that sits inside one longer phrase in at
        least this share of its queries is a fragment of that unit, refused.
    min_half_share
        A rule must hold in both halves of the window: each half must carry at
        least this share of its agreeing queries, and in neither half may its
        agreement be clearly below ``min_precision`` (95% Wilson upper bound).

    Attributes
    ----------
    counts_
        The merged phrase counts of pass 1.
    probe_counts_, rule_counts_
        Exact counts of passes 2 and 3.
    candidates_
        Proposed rules, best savings first.
    skipped_
        Phrases and rules not proposed, with reasons.
    statuses_
        One row per (locale, intent): traffic, candidates, and what happened.

    Examples
    --------
    >>> rows = [("track my package", "order_tracking", 0.99)] * 30 + [("i want a refund", "refund", 0.99)] * 30
    >>> log = pd.DataFrame({"ts": pd.Timestamp("2026-01-01", tz="UTC"), "locale": "en-US",
    ...                     "text": [r[0] for r in rows], "model_intent": [r[1] for r in rows],
    ...                     "model_confidence": [r[2] for r in rows]})
    >>> miner = CandidateMiner(min_support=20).fit([log])
    >>> [(c.id, c.rule.patterns, c.fires) for c in miner.candidates_]
    [('order_tracking.mined_en_package', ('package', 'track'), 30), ('refund.mined_en_refund', ('refund', 'want'), 30)]
    """

    def __init__(self, *, min_confidence: float = MIN_CONFIDENCE, min_support: int = 20, min_precision: float = 0.97,
                 exclude_from: float = 0.8, max_exclude_loss: float = 0.1, safety_intents: Sequence[str] = (),
                 max_words: int = 4, min_chars: int = 2, max_chars: int = 6, max_share: float = 0.5,
                 max_patterns: int = 8, max_probes: int = 60, min_chunk_count: int = 2, max_keys: int = 500_000,
                 chunk_rows: int = 200_000, substring_languages: Sequence[str] = SUBSTRING_LANGUAGES,
                 shadow_rate: float = 0.0, model_call_cost: float = 0.0, owner: str = "miner",
                 intents: Sequence[str] | None = None, locales: Sequence[str] | None = None,
                 merge: str = "near_duplicates", max_spread: float = 3.0, fragment_share: float = 0.9,
                 min_half_share: float = 0.2, safety_proximity: float = 0.05, min_proximity_rows: int = 3,
                 min_proximity_lift: float = 2.0):
        self.min_confidence = min_confidence
        self.min_support = min_support
        self.min_precision = min_precision
        self.exclude_from = exclude_from
        self.max_exclude_loss = max_exclude_loss
        self.safety_intents = safety_intents
        self.max_words = max_words
        self.min_chars = min_chars
        self.max_chars = max_chars
        self.max_share = max_share
        self.max_patterns = max_patterns
        self.max_probes = max_probes
        self.min_chunk_count = min_chunk_count
        self.max_keys = max_keys
        self.chunk_rows = chunk_rows
        self.substring_languages = substring_languages
        self.shadow_rate = shadow_rate
        self.model_call_cost = model_call_cost
        self.owner = owner
        self.intents = intents
        self.locales = locales
        self.merge = merge
        self.max_spread = max_spread
        self.fragment_share = fragment_share
        self.min_half_share = min_half_share
        self.safety_proximity = safety_proximity
        self.min_proximity_rows = min_proximity_rows
        self.min_proximity_lift = min_proximity_lift

    def _check_params(self) -> None:
        for name in ("min_confidence", "min_precision", "exclude_from", "max_exclude_loss", "max_share",
                     "shadow_rate", "fragment_share", "min_half_share", "safety_proximity"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
                raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
        for name in ("min_support", "max_words", "min_chars", "max_chars", "max_patterns", "max_probes",
                     "min_chunk_count", "max_keys", "chunk_rows", "min_proximity_rows"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number of at least 1, got {value!r}")
        if self.exclude_from > self.min_precision:
            raise ValueError(f"exclude_from ({self.exclude_from}) must not exceed min_precision "
                             f"({self.min_precision}); it is where the exclude search starts")
        if self.min_chars > self.max_chars:
            raise ValueError(f"min_chars ({self.min_chars}) must not exceed max_chars ({self.max_chars})")
        if isinstance(self.max_spread, bool) or not isinstance(self.max_spread, int | float) or self.max_spread < 1:
            raise ValueError(f"max_spread must be a number of intents of at least 1, got {self.max_spread!r}")
        if self.merge not in _MERGES:
            raise ValueError(f"Unknown merge type: {self.merge!r}, expected one of {_MERGES}.")
        if isinstance(self.safety_intents, str):
            # ValueError as every other parameter check of the miner raises (callers catch one kind)
            raise ValueError(f"safety_intents must be a list of intents, got the string {self.safety_intents!r}")  # noqa: TRY004

    def fit(self, chunks: ChunkSource | None = None, *, active_rules: Iterable[Rule] = (),
            rules: Iterable[Rule] = (), fold: Fold | None = None) -> CandidateMiner:
        """Mine the traffic, read three times: ``chunks`` (a list of log frames, or a function
        returning a fresh iterator of them) or ``fold`` (``fold(step, combine)`` -> the merged
        result of ``step`` over the log's chunks, e.g. a :class:`rulelife.engines.fold.LogFold`
        on any engine). ``active_rules`` are live (their phrases are covered); ``rules`` are all
        other known rules (a phrase they hold is not proposed again)."""
        self._check_params()
        if (chunks is None) == (fold is None):
            raise ValueError("pass the traffic as chunks or as fold, exactly one of them")
        fold = fold or frames_fold(chunks, self.chunk_rows)
        self._substring = tuple(self.substring_languages)
        self._active_rules = [compile_rule(r) for r in active_rules]
        self._active = Matcher(self._active_rules)
        self._known = Matcher([compile_rule(r) for r in rules])
        self.skipped_: list[Skip] = []
        step = PhrasePass(self.min_confidence, self.min_chunk_count, self.max_words, self.min_chars,
                          self.max_chars, self._substring, self.max_keys)
        counts = fold(step, functools.partial(add_capped, max_keys=self.max_keys)) or PhraseCounts()
        self.counts_ = counts
        self.days_ = max(1, len(counts.days))
        probes, token_rules = self._seeds(counts)
        self.probe_counts_ = self._count(fold, probes, token_rules, signatures=True)
        built = self._rules(probes, token_rules)
        self.halves_ = _halves(sorted(counts.days))
        rules = [cr for cr, _ in built]
        if self.halves_:
            self.half_counts_ = self._count(fold, rules, (), split=self.halves_[0][1])
            self.rule_counts_ = self.half_counts_[0] + self.half_counts_[1]
        else:
            self.half_counts_ = ()
            self.rule_counts_ = self._count(fold, rules, ())
        self.candidates_ = self._verify(built)
        self.statuses_ = self._statuses()
        return self

    # ------------------------------------------------------------ pass 1

    def _stop_words(self, locale: str) -> frozenset[str]:
        return stop_words_for([locale]) if locale else frozenset()

    def _seeds(self, counts: PhraseCounts) -> tuple[list[CompiledRule], set[str]]:
        """Probe rules for the phrases worth an exact count, and those that need exclude tokens."""
        table = counts.table
        if table.empty:
            return [], set()
        safety = set(self.safety_intents)
        grouped = table.groupby(["phrase", "locale"], sort=False)["n"]
        table = table.assign(total=grouped.transform("sum"),
                             unsafe=table["n"].where(table["intent"].isin(safety), 0).groupby(
                                 [table["phrase"], table["locale"]], sort=False).transform("sum"))
        table = table.assign(precision=table["n"] / table["total"],
                             unsafe=table["unsafe"] - table["n"].where(table["intent"].isin(safety), 0))
        seeds = table[(table["n_conf"] >= self.min_support) & (table["precision"] >= self.exclude_from)]
        locale_rows = counts.rows.groupby("locale")["n"].sum().to_dict()
        substring = table["locale"].map(lambda loc: is_substring_locale(loc, self._substring))
        self._spread = quality.word_spread(table[~substring])
        self._neighbours = quality.safety_neighbours(table[~substring], safety)
        rows = counts.rows
        self._base = {(r.locale, r.intent): r.n / max(1, locale_rows.get(r.locale, 0))
                      for r in rows.itertuples(index=False)}
        self._units = quality.longest_extensions(table[substring])
        probes: list[CompiledRule] = []
        token_rules: set[str] = set()
        picked: Counter = Counter()
        ordered = seeds.sort_values(["n_conf", "phrase"], ascending=[False, True], kind="stable")
        for row in ordered.itertuples(index=False):
            reason = self._filter(row, locale_rows.get(row.locale, 0))
            if reason is not None:
                if reason[0] != "edge_stop_word":
                    self.skipped_.append(Skip(row.phrase, row.intent, row.locale, *reason))
                continue
            if picked[(row.intent, row.locale)] >= self.max_probes:
                continue
            picked[(row.intent, row.locale)] += 1
            probe = CompiledRule(id=f"p{len(probes)}", version="", intent=row.intent, patterns=(row.phrase,),
                                 exclude=(), locales=(normalize_locale(row.locale),),
                                 match="substring" if is_substring_locale(row.locale, self._substring) else "word",
                                 priority=0)
            probes.append(probe)
            if row.precision < self.min_precision or row.unsafe > 0:
                token_rules.add(probe.id)
        return probes, token_rules

    def _filter(self, row, locale_rows: int) -> tuple[str, str] | None:
        phrase, locale = row.phrase, row.locale
        substring = is_substring_locale(locale, self._substring)
        stops = self._stop_words(locale)
        tokens = [phrase] if substring else words(phrase)
        if len(phrase) < 2 or not any(c.isalpha() for c in phrase):
            return "too_generic", "shorter than two characters or without a letter"
        if substring and len(phrase) <= 3 and all("\u3040" <= c <= "\u309f" for c in phrase):
            return "too_generic", "short hiragana only: grammar, not content"
        if all(t in stops for t in tokens):
            return "stop_words", f"only stop words for {locale}"
        if not substring and len(tokens) > 1 and (tokens[0] in stops or tokens[-1] in stops):
            # "to make", "a customer": the stop word adds no meaning, only a place to be pure by chance.
            return "edge_stop_word", "starts or ends in a stop word; the phrase without it is counted too"
        if locale_rows and row.total / locale_rows > self.max_share:
            return "too_generic", f"in {row.total / locale_rows:.0%} of {locale} traffic (max {self.max_share:.0%})"
        if substring:
            unit = quality.fragment_of(phrase, locale, row.total, self._units, self.fragment_share)
            if unit is not None:
                return "fragment", f"inside {unit!r} in {self.fragment_share:.0%}+ of its queries: not a unit"
        else:
            spread = quality.generic_words(tokens, locale, stops, self._spread, self.max_spread)
            if spread is not None:
                return "generic", spread
            near = quality.safety_proximity(tokens, locale, row.intent, stops, self._neighbours,
                                            min_share=self.safety_proximity, min_rows=self.min_proximity_rows,
                                            base=self._base, min_lift=self.min_proximity_lift)
            if near is not None:
                return "safety_proximity", near
        hit = self._active.match_normalized(phrase, locale)
        if hit is not None:
            return "covered_by_active", f"active rule {hit.rule_id} already fires on it"
        hit = self._known.match_normalized(phrase, locale)
        if hit is not None and hit.intent == row.intent:
            return "already_proposed", f"rule {hit.rule_id} already fires on it"
        for rule in self._known.rules:
            if phrase in rule.patterns and rule.intent != row.intent:
                return "conflict", f"it is a pattern of {rule.id} (intent {rule.intent})"
        return None

    def _count(self, fold: Fold, rules: list[CompiledRule], token_rules, signatures: bool = False,
               split: date | None = None):
        """Exact counts of ``rules``; with ``split``, a pair: up to that day, and after it."""
        if not rules:
            return RuleCounts() if split is None else (RuleCounts(), RuleCounts())
        stops = frozenset().union(*(self._stop_words(loc) for r in rules for loc in r.locales))
        step = RulePass(rules, self._active_rules, frozenset(token_rules), stops, signatures=signatures,
                        examples=not signatures)
        if split is None:
            return fold(step) or RuleCounts()
        pair = fold(Halves(step, split), add_halves) or (None, None)
        return tuple(RuleCounts() if half is None else half for half in pair)

    def score(self, chunks: ChunkSource | None = None, *, fold: Fold | None = None) -> CandidateMiner:
        """Count every candidate exactly on other traffic (the held-out days) and keep the figures.

        The figures are reported, never used to drop a candidate: a held-out
        window that chose rules would no longer be held out, and the gate
        judges on it.
        """
        if (chunks is None) == (fold is None):
            raise ValueError("pass the held-out traffic as chunks or as fold, exactly one of them")
        fold = fold or frames_fold(chunks, self.chunk_rows)
        rules = [compile_rule(c.rule) for c in self.candidates_]
        counts = self._count(fold, rules, ())
        safety = set(self.safety_intents)
        scored = []
        for candidate in self.candidates_:
            by_intent = counts.intents.get(candidate.id, Counter())
            unsafe = {i: n for i, n in by_intent.items() if i in safety and i != candidate.intent}
            scored.append(replace(candidate, heldout_fires=sum(by_intent.values()),
                                  heldout_agree=by_intent.get(candidate.intent, 0), heldout_unsafe=unsafe))
        self.candidates_ = scored
        self.heldout_counts_ = counts
        return self

    # ------------------------------------------------------------ pass 2

    def _rules(self, probes: list[CompiledRule], token_rules: set[str]) -> list[tuple[CompiledRule, str]]:
        """Accept probes (with excludes where needed), then merge them into rules (compiled, locale)."""
        safety = set(self.safety_intents)
        accepted: dict[tuple[str, str, tuple[str, ...]], list[tuple[str, int]]] = {}
        pc = self.probe_counts_
        probe_of: dict[tuple[str, str, str], str] = {}
        for probe in probes:
            phrase, locale = probe.patterns[0], probe.locales[0]
            by_intent = pc.intents.get(probe.id, Counter())
            agree, fires = by_intent.get(probe.intent, 0), sum(by_intent.values())
            unsafe = {i: c for i, c in by_intent.items() if i in safety and i != probe.intent}
            exclude: tuple[str, ...] | None = ()
            if unsafe or not fires or agree / fires < self.min_precision:
                exclude = None
                if probe.id in token_rules:
                    exclude = grouping.choose_excludes(
                        probe.intent, by_intent, pc.tokens.get(probe.id, Counter()), pattern=phrase,
                        substring=probe.match == "substring", safety=safety - {probe.intent},
                        min_precision=self.min_precision, max_loss=self.max_exclude_loss)
                if exclude is None:
                    self.skipped_.append(Skip(phrase, probe.intent, self._locale_name(locale), *self._why(
                        agree, fires, unsafe)))
                    continue
            if agree < self.min_support:
                continue
            accepted.setdefault((probe.intent, locale, exclude), []).append((phrase, agree))
            probe_of[(probe.intent, locale, phrase)] = probe.id
        built: list[tuple[CompiledRule, str]] = []
        ids: set[str] = set()
        for (intent, locale, exclude), found in sorted(accepted.items()):
            if len(intent) > MAX_INTENT_LENGTH:  # no rule can hold it: say so rather than fail the run
                detail = f"the intent has {len(intent)} characters; a rule's intent holds {MAX_INTENT_LENGTH}"
                name = self._locale_name(locale)
                self.skipped_ += [Skip(p, intent, name, "intent_too_long", detail) for p, _ in found]
                continue
            substring = is_substring_locale(locale, self._substring)
            dropped = grouping.subsumed([p for p, _ in found], substring)
            kept = [p for p, _ in sorted(found, key=lambda x: (-x[1], x[0])) if p not in dropped]
            stops = self._stop_words(locale)

            def overlap(a: str, b: str, intent=intent, locale=locale) -> float:
                sa = pc.signatures.get(probe_of[(intent, locale, a)])
                sb = pc.signatures.get(probe_of[(intent, locale, b)])
                return 0.0 if sa is None or sb is None else jaccard(sa, sb)

            clusters = ([kept[i:i + self.max_patterns] for i in range(0, len(kept), self.max_patterns)]
                        if self.merge == "intent" else
                        grouping.near_duplicates(kept, stops, substring, self.max_patterns, overlap))
            for cluster in clusters:
                rule_id = f"{intent_slug(intent)}.mined_{grouping.slug(cluster[0], locale)}"
                while rule_id in ids:
                    rule_id += "_2"
                ids.add(rule_id)
                built.append((CompiledRule(id=rule_id, version="", intent=intent, patterns=tuple(sorted(cluster)),
                                           exclude=exclude, locales=(locale,),
                                           match="substring" if substring else "word", priority=0),
                              self._locale_name(locale)))
        return built

    def _locale_name(self, locale: str) -> str:
        """The locale as the log spells it (``en-US``), for the rule file."""
        for name in self.counts_.rows["locale"].tolist():
            if normalize_locale(name) == locale:
                return name
        return locale

    def _why(self, agree: int, fires: int, unsafe: dict) -> tuple[str, str]:
        if unsafe:
            where = ", ".join(f"{c} {i}" for i, c in sorted(unsafe.items()))
            return "safety", f"fires on queries the model labels as safety intents ({where}); no exclude clears them"
        share = agree / fires if fires else 0.0
        return "low_precision", (f"precision {share:.1%} ({agree}/{fires}) below {self.min_precision:.0%}, "
                                 "and no exclude lifts it")

    # ------------------------------------------------------------ pass 3

    def _verify(self, built: list[tuple[CompiledRule, str]]) -> list[Candidate]:
        safety = set(self.safety_intents)
        rc = self.rule_counts_
        first, last = (min(self.counts_.days), max(self.counts_.days)) if self.counts_.days else (None, None)
        out = []
        for compiled, locale in built:
            by_intent = rc.intents.get(compiled.id, Counter())
            agree, fires = by_intent.get(compiled.intent, 0), sum(by_intent.values())
            unsafe = {i: c for i, c in by_intent.items() if i in safety and i != compiled.intent}
            label = ", ".join(compiled.patterns)
            if unsafe or not fires or agree / fires < self.min_precision:
                code, detail = self._why(agree, fires, unsafe)
                self.skipped_.append(Skip(label, compiled.intent, locale, code, f"as a merged rule: {detail}"))
                continue
            if agree < self.min_support:
                self.skipped_.append(Skip(label, compiled.intent, locale, "low_support",
                                          f"{agree} agreeing queries, fewer than {self.min_support}"))
                continue
            unstable = self._unstable(compiled)
            if unstable is not None:
                self.skipped_.append(Skip(label, compiled.intent, locale, "unstable", unstable))
                continue
            low, high = wilson_interval(agree, fires)
            # Most frequent first, ties by text: the same order however the partials merged.
            texts = sorted(rc.texts.get(compiled.id, Counter()).items(), key=lambda item: (-item[1], item[0]))
            new = rc.new.get(compiled.id, 0)
            calls = new / self.days_ * (1 - self.shadow_rate)
            rule = Rule(id=compiled.id, intent=compiled.intent, patterns=compiled.patterns, exclude=compiled.exclude,
                        locales=(locale,), match=compiled.match, priority=0, owner=self.owner,
                        description=(f"Mined from model-labelled {locale} traffic {first}..{last} (seed phrases "
                                     f"at model confidence >= {self.min_confidence}); agreed with the model on "
                                     f"{agree} of {fires} queries it fired on."))
            confusers = [{"intent": i, "count": c, "example": next((t for (t, lab), _ in texts if lab == i), None)}
                         for i, c in by_intent.most_common() if i != compiled.intent][:3]
            out.append(Candidate(rule=rule, locale=locale, fires=fires, agree=agree, low=low, high=high,
                                 days=self.days_, new_fires=new, calls_saved_per_day=calls,
                                 cost_saved_per_day=calls * self.model_call_cost,
                                 examples=[t for (t, lab), _ in texts if lab == compiled.intent][:5],
                                 confusers=confusers))
        out.sort(key=lambda c: (-c.calls_saved_per_day, -c.low, c.id))
        return out

    def _unstable(self, compiled: CompiledRule) -> str | None:
        """Why the rule does not hold in both halves of the window, or None if it does."""
        if not self.halves_:
            return None
        parts = []
        for counts in self.half_counts_:
            by_intent = counts.intents.get(compiled.id, Counter())
            parts.append((by_intent.get(compiled.intent, 0), sum(by_intent.values())))
        total = sum(agree for agree, _ in parts)
        for (agree, fires), (first, last) in zip(parts, self.halves_):
            if agree < self.min_half_share * total:
                return (f"{agree} of its {total} agreeing queries fall in {first}..{last}: it does not hold in "
                        f"both halves of the window (min {self.min_half_share:.0%} in each)")
            # The upper bound, not the point: a half holds a few dozen queries, and one
            # disagreement there is noise; a half clearly below the floor is not.
            if wilson_interval(agree, fires)[1] < self.min_precision:
                return (f"agreement {agree / fires:.1%} ({agree}/{fires}) in {first}..{last} is clearly below "
                        f"{self.min_precision:.0%}: it does not hold in both halves of the window")
        return None

    def _statuses(self) -> pd.DataFrame:
        rows = self.counts_.rows
        seen = {(r.locale, r.intent): (int(r.n), int(r.n_conf)) for r in rows.itertuples(index=False)}
        locales = sorted({loc for loc, _ in seen} | set(self.locales or ()))
        intents = sorted({i for _, i in seen} | set(self.intents or ()))
        mined = Counter((c.locale, c.intent) for c in self.candidates_)
        reasons: dict[tuple[str, str], Counter] = {}
        for skip in self.skipped_:
            reasons.setdefault((skip.locale, skip.intent), Counter())[skip.reason] += 1
        locale_has_rows = {loc for loc, _ in seen}
        out = []
        for locale in locales:
            for intent in intents:
                n, n_conf = seen.get((locale, intent), (0, 0))
                if locale not in locale_has_rows:
                    status, detail = "no_traffic", f"no model-labelled traffic in {locale} in the window"
                elif n == 0:
                    status, detail = "no_traffic", f"no query the model labels {intent} in {locale}"
                elif n_conf == 0:
                    status, detail = "no_confident", f"no prediction at confidence >= {self.min_confidence}"
                elif n_conf < self.min_support:
                    status, detail = "too_little_data", (f"{n_conf} confident queries, fewer than min_support "
                                                        f"{self.min_support}")
                elif mined[(locale, intent)]:
                    status, detail = "mined", f"{mined[(locale, intent)]} candidate rule(s)"
                else:
                    why = ", ".join(f"{k} {v}" for k, v in reasons.get((locale, intent), Counter()).most_common())
                    status, detail = "none_passed", "no phrase passed" + (f" (skipped: {why})" if why else "")
                out.append({"locale": locale, "intent": intent, "labelled": n, "confident": n_conf,
                            "candidates": mined[(locale, intent)], "status": status, "detail": detail})
        return pd.DataFrame(out, columns=["locale", "intent", "labelled", "confident", "candidates", "status",
                                          "detail"])

    def summary(self) -> pd.DataFrame:
        """One row per candidate, best savings first."""
        return pd.DataFrame([c.to_dict() for c in self.candidates_])
