import numpy as np
import pytest

from monitors.safety_fp import SafetyFalsePositive
from rulelife.errors import ConfigError
from rulelife.monitoring.contract import Action, Severity


def test_golden_first_safety_error_disables_that_day(series, context, day):
    rng = np.random.default_rng(8)
    fp = rng.binomial(30, np.r_[np.zeros(12), np.full(3, 0.03)])
    hist = series(30 - fp, [30] * 15, safety_fp=fp)
    found = [i for i in range(15) if SafetyFalsePositive().check(hist, context(day(i)))]
    # Days 0-11 have no safety error by construction; day 12 draws 0 and day
    # 13 draws 3 (seed 8), so day 13 is the first, and day 14 draws 0.
    assert fp[12:].tolist() == [0, 3, 0]
    assert found == [13]
    examples = {"faq.opening_hours": [{"text": "i want my money back", "model_intent": "return_request"}]}
    (f,) = SafetyFalsePositive().check(hist, context(day(13), examples=examples))
    assert (f.action, f.severity, f.check, f.locale) == (Action.DISABLE, Severity.CRITICAL, "safety_fp", "en-US")
    assert f.evidence["safety_fp"] == 3 and f.evidence["safety_by_class"] == {"return_request": 3}
    assert f.evidence["fp_by_class"] == {"faq": 27, "return_request": 3}
    assert f.evidence["examples"] == examples["faq.opening_hours"]
    assert "return_request" in f.summary


def test_golden_clean_series_never_disables(series, context, day):
    hist = series([30] * 365, [30] * 365)
    assert (hist["safety_fp"] == 0).all()
    # safety_fp is judged on context.day alone, so the last day stands for all.
    assert SafetyFalsePositive().check(hist, context(day(364))) == []


def test_one_error_on_a_thin_day_is_enough(series, context, day):
    hist = series([2], [3], safety_fp=[1])  # 3 shadow rows: far below the agreement monitors' min_shadow
    assert len(SafetyFalsePositive().check(hist, context(day(0)))) == 1


def test_a_past_error_does_not_disable_today(series, context, day):
    hist = series([29, 30], [30, 30], safety_fp=[1, 0])
    assert SafetyFalsePositive().check(hist, context(day(1))) == []


def test_disabled_rule_is_not_disabled_again(series, context, rule, day):
    hist = series([29], [30], safety_fp=[1])
    assert SafetyFalsePositive().check(hist, context(day(0), rules=[rule(state="disabled")])) == []


def test_locales_are_judged_separately(series, context, day, history):
    hist = history(series([30], [30], locale="en-US"), series([29], [30], safety_fp=[1], locale="ja-JP"))
    assert [f.locale for f in SafetyFalsePositive().check(hist, context(day(0)))] == ["ja-JP"]


def test_from_settings(series, context, day):
    assert SafetyFalsePositive.from_settings({"safety_intents": ["escalation"]}).safety_intents == ["escalation"]
    # Unset, the evidence names the deployment's safety intents (those the metric was counted with).
    hist = series([29], [30], safety_fp=[1])
    (f,) = SafetyFalsePositive.from_settings({}).check(hist, context(day(0), safety_intents=["return_request"]))
    assert f.evidence["safety_intents"] == ["return_request"]


@pytest.mark.parametrize("value", ["return_request", ["return_request", ""], [3]])
def test_invalid_safety_intents_are_refused(value):
    with pytest.raises(ConfigError, match=r"safety_intents must be a list of intent names, got"):
        SafetyFalsePositive(safety_intents=value)
