"""A derived matcher answers exactly as the matcher built whole from the same rules."""

from __future__ import annotations

import random

import pytest

from rulelife.rules.derived import DerivedMatcher, derive
from rulelife.rules.matcher import CompiledRule, LexiconPhrase, Matcher

WORDS = ["order", "refund", "where", "is", "my", "card", "return", "agent", "hours", "open", "ship", "or"]
LOCALES = [("*",), ("en",), ("es",), ("en-us",), ("de", "en")]
QUERY_LOCALES = [None, "en", "en-US", "es", "de", "fr"]


def _phrase(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.choice((1, 1, 2))))


def _rule(rng: random.Random, rule_id: str, version: str) -> CompiledRule:
    patterns = tuple(dict.fromkeys(_phrase(rng) for _ in range(rng.randint(1, 4))))
    exclude = tuple(dict.fromkeys(_phrase(rng) for _ in range(rng.choice((0, 0, 1, 2)))))
    return CompiledRule(rule_id, version, rng.choice(("order_status", "refund", "return_request", "hours")),
                        patterns, exclude, rng.choice(LOCALES), rng.choice(("word", "substring")),
                        rng.choice((0, 0, 1, 5)))


def _lexicon(rng: random.Random) -> tuple[LexiconPhrase, ...]:
    if rng.random() < 0.3:
        return ()
    return tuple(sorted({LexiconPhrase(_phrase(rng), rng.choice(("return_request", "escalation")),
                                       rng.choice(LOCALES), rng.choice(("word", "substring")))
                         for _ in range(rng.randint(1, 3))}))


def _queries(rng: random.Random, n: int) -> list[str]:
    return [" ".join(rng.choice(WORDS + ["x", "orders"]) for _ in range(rng.randint(1, 7))) for _ in range(n)]


def _edit(rng: random.Random, rules: list[CompiledRule]) -> list[CompiledRule]:
    """Remove, change and add a few rules (ids may be reused, at a new version)."""
    out = [r for r in rules if rng.random() > 0.15]
    for i, rule in enumerate(out):
        if rng.random() < 0.1:
            out[i] = _rule(rng, rule.id, rule.version + "x")._replace(shadow=rule.shadow)
    taken = {r.id for r in out}
    for _ in range(rng.randint(0, 4)):
        rule_id = f"r.{rng.randint(0, 60):02d}"
        if rule_id not in taken:
            taken.add(rule_id)
            out.append(_rule(rng, rule_id, "n")._replace(shadow=rng.random() < 0.2))
    return out


def _plan(base: Matcher, rules: list[CompiledRule]) -> list:
    index = {(rule.id, rule): i for i, rule in enumerate(base.rules)}
    return [index.get((rule.id, rule), rule) for rule in sorted(rules, key=lambda r: r.id)]


def _derived(base: Matcher, rules: list[CompiledRule]) -> Matcher:
    serving = [r for r in rules if not r.shadow]
    shadow_rules = [r._replace(shadow=False) for r in rules if r.shadow]
    shadow_base = base.shadow_matcher or Matcher([], lexicon=base.lexicon)
    shadow = derive(shadow_base, _plan(shadow_base, shadow_rules)) if shadow_rules else None
    return derive(base, _plan(base, serving), shadow=shadow)


@pytest.mark.parametrize("seed", range(60))
def test_a_derived_matcher_answers_as_the_matcher_built_whole(seed):
    rng = random.Random(seed)
    lexicon = _lexicon(rng)
    rules = [_rule(rng, f"r.{i:02d}", "v")._replace(shadow=rng.random() < 0.2) for i in rng.sample(range(40), 15)]
    base = Matcher(rules, lexicon=lexicon)
    edited = _edit(rng, rules)
    whole = Matcher(edited, lexicon=lexicon)
    derived = _derived(base, edited)
    assert isinstance(derived, DerivedMatcher)
    assert derived.pattern_count == whole.pattern_count
    assert derived.rules == whole.rules
    assert derived.shadow_rules == whole.shadow_rules
    for query in _queries(rng, 150):
        for locale in QUERY_LOCALES:
            assert derived.match_and_veto_normalized(query, locale) == whole.match_and_veto_normalized(query, locale), \
                (query, locale)
            assert derived.shadow_fired_normalized(query, locale) == whole.shadow_fired_normalized(query, locale)
    for query in _queries(rng, 20):
        assert derived.explain(query, "en").to_dict() == whole.explain(query, "en").to_dict()


def _compiled(rule_id, patterns, intent="order_status", exclude=(), priority=0):
    return CompiledRule(rule_id, "v1", intent, tuple(patterns), tuple(exclude), ("*",), "word", priority)


def test_a_disabled_rule_stops_answering_and_its_phrases_stop_counting():
    base = Matcher([_compiled("a.order", ["where is my order"]), _compiled("b.refund", ["refund"], "refund")])
    derived = derive(base, [1])  # a.order disabled: only b.refund (base index 1) stays
    assert derived.match("where is my order") is None
    assert derived.match("refund please").rule_id == "b.refund"
    assert derived.pattern_count == 1 and base.pattern_count == 2
    assert derived.automaton is base.automaton  # nothing new to walk: the base's automaton serves


def test_a_promoted_rule_ranks_among_the_kept_ones_by_id():
    base = Matcher([_compiled("b.order", ["order"]), _compiled("d.order", ["order"])])
    promoted = _compiled("c.order", ["my order"], priority=1)
    tie = _compiled("a.order", ["order"])
    derived = derive(base, [tie, 0, promoted, 1])
    assert derived.match("where is my order").rule_id == "c.order"  # priority first
    assert derived.match("order").fired == ("a.order", "b.order", "d.order")  # then the smaller id
    assert derived.pattern_count == 2  # "order" once, whoever holds it, and "my order"


def test_a_plan_out_of_id_order_or_naming_a_missing_rule_is_refused():
    base = Matcher([_compiled("a.x", ["x"]), _compiled("b.y", ["y"])])
    with pytest.raises(ValueError, match="sorted"):
        derive(base, [1, 0])
    with pytest.raises(ValueError, match="lacks"):
        derive(base, [0, 5])
    with pytest.raises(ValueError, match="derived"):
        derive(derive(base, [0]), [0])
    with pytest.raises(TypeError, match="never shipped"):
        derive(base, [0]).state()
