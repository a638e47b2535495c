from dataclasses import replace

import numpy as np
import pytest

from monitors.agreement_floor import AgreementFloor
from rulelife.errors import ConfigError
from rulelife.monitoring.contract import Action, Severity

N = 60


def fallen(seed=11, days=30):
    rng = np.random.default_rng(seed)
    return rng.binomial(N, np.r_[np.full(20, 0.98), np.full(days - 20, 0.85)])


def verdict_days(hist, context, day, n_days, **kw):
    return [i for i in range(n_days) if AgreementFloor(**kw).check(hist, context(day(i)))]


def test_golden_fall_disables_on_the_third_known_day_below(series, context, day):
    agree = fallen()
    hist = series(agree, [N] * 30)
    days = verdict_days(hist, context, day, 30)
    # Days 20, 21, 22 are the first three consecutive days under 0.95 (days 5
    # and 8 sit exactly on 0.95 = 57/60 and pass), so day 22 is the first verdict.
    assert (agree[19:23] / N < 0.95).tolist() == [False, True, True, True]
    assert days[0] == 22 and days == list(range(22, 30))
    (f,) = AgreementFloor().check(hist, context(day(22), examples={"faq.opening_hours": [{"text": "q"}]}))
    assert (f.action, f.severity, f.check, f.locale) == (Action.DISABLE, Severity.CRITICAL, "agreement_floor", "en-US")
    assert f.evidence["run_dates"] == ["2026-01-21", "2026-01-22", "2026-01-23"]
    assert f.evidence["floor"] == 0.95 and f.evidence["days"] == 3 and f.evidence["examples"] == [{"text": "q"}]
    assert f.evidence["agreement"][-1] == {"date": "2026-01-23", "value": agree[22] / N, "n": N}


def test_golden_stable_series_never_disables(series, context, day):
    rng = np.random.default_rng(12)
    agree = rng.binomial(N, 0.98, 365)
    hist = series(agree, [N] * 365)
    # A verdict on day d needs day d itself known and below the floor, so the
    # days worth checking are those; every other day is quiet by construction.
    candidates = np.flatnonzero(agree < 0.95 * N)
    assert 0 < len(candidates) < 30  # the series does dip, just never three days running
    monitor, ctx = AgreementFloor(), context(day(0))
    assert [i for i in candidates if monitor.check(hist, replace(ctx, day=day(int(i))))] == []


def test_a_day_exactly_on_the_floor_passes(series, context, day):
    hist = series([56, 57, 56, 56], [N] * 4)  # 57/60 = 0.95 exactly on day 1
    assert verdict_days(hist, context, day, 4) == []


def low_low_thin_low():
    # 54/60 = 0.90 on known days; day 2 has 10 samples (unknown) at 100 %.
    return [54, 54, 10, 54, 54], [N, N, 10, N, N]


def test_an_unknown_day_inside_a_run_is_skipped(series, context, day):
    agree, shadow = low_low_thin_low()
    hist = series(agree, shadow)
    # Known days 0, 1, 3 are three consecutive known days below: the verdict
    # comes on day 3, and the thin day 2 is neither a pass nor a fourth day.
    assert verdict_days(hist, context, day, 5) == [3, 4]
    (f,) = AgreementFloor().check(hist, context(day(3)))
    assert f.evidence["run_dates"] == ["2026-01-01", "2026-01-02", "2026-01-04"]
    assert f.evidence["skipped_unknown_dates"] == ["2026-01-03"]


def test_a_missing_row_counts_as_unknown(series, context, day):
    hist = series([54] * 5, [N] * 5, drop=[2])
    assert verdict_days(hist, context, day, 5) == [3, 4]


def test_the_verdict_waits_when_the_day_itself_is_unknown(series, context, day):
    hist = series([54, 54, 54, 10, 54], [N, N, N, 10, N])
    # Day 2 completes the run; day 3 is unknown, so nothing is said on day 3
    # (no fresh evidence) and day 4, known and below, repeats the verdict.
    assert verdict_days(hist, context, day, 5) == [2, 4]


def test_a_known_day_above_breaks_the_run(series, context, day):
    hist = series([54, 54, 59, 54, 54], [N] * 5)
    assert verdict_days(hist, context, day, 5) == []


def test_disabled_rule_is_not_disabled_again(series, context, rule, day):
    hist = series([54] * 5, [N] * 5)
    assert AgreementFloor().check(hist, context(day(4), rules=[rule(state="disabled")])) == []


def test_locales_are_judged_separately(series, context, day, history):
    hist = history(series([59] * 5, [N] * 5, locale="en-US"), series([54] * 5, [N] * 5, locale="ja-JP"))
    findings = AgreementFloor().check(hist, context(day(4)))
    assert [f.locale for f in findings] == ["ja-JP"]


def test_old_version_days_do_not_count_for_a_new_version(series, context, rule, day, history):
    hist = history(series([54] * 3, [N] * 3, version="v1"), series([54, 59], [N] * 2, start=3, version="v2"))
    assert AgreementFloor().check(hist, context(day(3), rules=[rule(version="v2")])) == []


def test_settings_and_parameters(series, context, day):
    hist = series([54] * 5, [N] * 5)
    assert verdict_days(hist, context, day, 5, days=5) == [4]
    assert verdict_days(hist, context, day, 5, floor=0.9) == []  # 0.90 is on a 0.90 floor
    # Unset, the floor is the promotion gate's: a rule is held to the floor it was promoted at.
    assert AgreementFloor().check(hist, context(day(2))) and not AgreementFloor().check(
        hist, context(day(2), agreement_floor=0.9))
    monitor = AgreementFloor.from_settings({"days": 2})
    assert monitor.days == 2 and monitor.check(hist, context(day(1)))


def test_statistics_are_the_verdicts_of_every_day(series, context, day):
    # Day 2 is unknown (5 shadow rows): the run 0.90, 0.90, (unknown), 0.90 alarms on day 3, not day 2.
    hist = series([54, 54, 4, 54, 59, 54], [N, N, 5, N, N, N])
    monitor = AgreementFloor()
    stats = monitor.statistics(hist, context(day(5)))
    assert stats["date"].dt.day.tolist() == [1, 2, 4, 5, 6]  # known days only
    assert stats["run"].tolist() == [1, 2, 3, 0, 1] and (stats["low"] == 0.95).all()
    alarms = {d.date() for d in stats.loc[stats["alarm"], "date"]}
    assert alarms == {day(i) for i in range(6) if monitor.check(hist, context(day(i)))} == {day(3)}


@pytest.mark.parametrize(("param", "value", "message"), [
    ("floor", 0, r"floor must be a number in \(0, 1\], got 0"),
    ("floor", 1.5, r"floor must be a number in \(0, 1\], got 1\.5"),
    ("days", 0, r"days must be an integer >= 1, got 0"),
    ("min_shadow", 2.5, r"min_shadow must be an integer >= 1, got 2\.5"),
])
def test_invalid_parameters_are_refused(param, value, message):
    with pytest.raises(ConfigError, match=message):
        AgreementFloor(**{param: value})
