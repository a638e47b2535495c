"""The shipped example rules (rules/): well formed, and sound on simulated traffic.

Every rule but the deliberately broad ``order_tracking.my_order`` must agree
with the model on at least 95% of the rows it wins and never win a row the
model labels as a safety intent; ``my_order`` must be caught doing exactly
that, so the promotion gate has something real to refuse.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from pathlib import Path

import pandas as pd
import pytest

from rulelife.rules.definition import load_rules
from rulelife.rules.matcher import Matcher, locale_applies
from rulelife.rules.normalize import normalize
from rulelife.simulate import simulate_traffic
from rulelife.simulate.catalog import INTENTS, LOCALES, SAFETY_INTENTS, TITLES

RULES_DIR = Path(__file__).resolve().parents[2] / "rules"
RISKY = "order_tracking.my_order"


@pytest.fixture(scope="module")
def rules():
    return [rf.rule for rf in load_rules(RULES_DIR)]


@pytest.fixture(scope="module")
def wins(rules) -> pd.DataFrame:
    """20,000-odd simulated rows without drift, with the shipped rule that wins each."""
    frame = simulate_traffic(start=dt.date(2026, 11, 1), days=4, queries_per_day=5000, seed=0)
    results = Matcher.from_rules(rules).match_many(frame["text"], frame["locale"])
    frame["winner"] = [r.rule_id if r else None for r in results]
    frame["winner_intent"] = [r.intent if r else None for r in results]
    return frame[frame["winner"].notna()]


def test_every_file_loads_and_sits_where_its_id_says():
    files = load_rules(RULES_DIR)
    assert 20 <= len(files) <= 28
    for rule_file in files:
        relative = rule_file.path.relative_to(RULES_DIR)
        assert relative.suffix == ".yaml"
        assert rule_file.rule.id == f"{relative.parent.name}.{relative.stem}", rule_file.path
        assert rule_file.rule.intent == relative.parent.name, rule_file.path
        assert len(relative.parts) == 2, rule_file.path


def test_rules_cover_every_intent_and_locale(rules):
    assert {r.intent for r in rules} == set(INTENTS)
    for locale in LOCALES:
        covered = {r.intent for r in rules if locale_applies(r.locales, locale)}
        assert covered == set(INTENTS) or locale != "en-US", locale
        assert len(covered) >= 6, locale


def test_fields_follow_the_house_conventions(rules):
    top_non_safety = max(r.priority for r in rules if r.intent not in SAFETY_INTENTS)
    for r in rules:
        assert set(r.locales) <= set(LOCALES), r.id
        assert r.match == ("substring" if r.locales == ("ja-JP",) else "word"), r.id
        assert r.owner.endswith("@mangastore.example"), r.id
        assert r.description.strip(), r.id
        if r.intent in SAFETY_INTENTS:
            assert r.priority > top_non_safety, r.id


def test_patterns_are_specific_and_unambiguous(rules):
    owners: dict[str, set[tuple[str, tuple[str, ...]]]] = defaultdict(set)
    for r in rules:
        patterns = [normalize(p) for p in r.patterns]
        assert len(patterns) == len(set(patterns)), f"{r.id}: duplicate pattern"
        assert all(len(p) > 1 for p in patterns), f"{r.id}: single-character pattern"
        assert not set(patterns) & {normalize(e) for e in r.exclude}, f"{r.id}: pattern vetoes itself"
        for p in patterns:
            owners[p].add((r.intent, r.locales))
    for pattern, users in owners.items():
        intents = {intent for intent, _ in users}
        assert len(intents) == 1, f"{pattern!r} is a pattern of several intents: {sorted(intents)}"


def test_rules_pass_lint():
    from rulelife.rules.lint import lint_rules

    report = lint_rules(RULES_DIR)
    assert report.ok, "\n".join(str(p) for p in report.problems)


def test_no_title_in_the_simulator_triggers_a_rule(rules):
    matcher = Matcher.from_rules(rules)
    for locale, titles in TITLES.items():
        for title in titles:
            assert matcher.match(title, locale) is None, (locale, title)


def test_every_rule_fires_on_simulated_traffic(rules, wins):
    fired = set(wins["winner"])
    assert [r.id for r in rules if r.id not in fired] == []


def test_every_rule_but_the_risky_one_agrees_with_the_model(wins):
    agreement = (wins["winner_intent"] == wins["model_intent"]).groupby(wins["winner"]).mean()
    weak = agreement[(agreement < 0.95) & (agreement.index != RISKY)]
    assert weak.empty, weak.to_dict()
    assert agreement[RISKY] < 0.95


def test_no_non_safety_rule_wins_a_safety_query_except_the_risky_one(wins):
    on_safety = wins[wins["model_intent"].isin(SAFETY_INTENTS) & ~wins["winner_intent"].isin(SAFETY_INTENTS)]
    assert set(on_safety["winner"]) == {RISKY}
    assert set(on_safety["model_intent"]) == set(SAFETY_INTENTS)  # returns and escalations alike


def test_the_shipped_safety_lexicon_lints_clean_and_signals_only_safety_intents():
    from rulelife.config import Settings
    from rulelife.rules.lexicon import lint_lexicon, load_lexicon

    safety = Settings().safety_intents
    assert lint_lexicon(RULES_DIR, safety) == []
    lexicon = load_lexicon(RULES_DIR)
    assert set(lexicon.intents()) == {"return_request", "escalation"} == set(safety)
