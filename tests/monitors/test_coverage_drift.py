from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from monitors.coverage_drift import CoverageDrift
from rulelife.errors import ConfigError
from rulelife.monitoring.contract import Action, Severity

TRAFFIC = 10_000


def dropped(seed=5, days=35, change=30, before=400.0, after=250.0):
    rng = np.random.default_rng(seed)
    return rng.poisson(np.r_[np.full(change, before), np.full(days - change, after)])


def flagged(hist, context, day, n_days, monitor=None, **settings):
    monitor = monitor or CoverageDrift()
    return {i: [f.subject for f in found] for i in range(n_days)
            if (found := monitor.check(hist, context(day(i), **settings)))}


def test_golden_drop_is_flagged_on_the_day_it_happens(series, context, day):
    fires = dropped()
    hist = series([40] * 35, [40] * 35, fires=fires)
    found = flagged(hist, context, day, 35)
    # Day 30 is the first day at 250 fires against a ~400 median (-37 %), and
    # days 14-29 (the first with 14 days of history) stay within ±20 % of it.
    assert min(found) == 30 and sorted(found) == [30, 31, 32, 33, 34]
    assert found[30] == ["faq.opening_hours", "bundle:faq|en-US"]
    rule_f, bundle_f = CoverageDrift().check(hist, context(day(30)))
    assert (rule_f.action, rule_f.severity, rule_f.locale) == (Action.TICKET, Severity.WARNING, "en-US")
    ev = rule_f.evidence
    assert ev["fire_rate"] == fires[30] / TRAFFIC
    assert ev["median"] == pytest.approx(np.median(fires[:30]) / TRAFFIC)
    assert ev["relative_change"] == pytest.approx(ev["fire_rate"] / ev["median"] - 1)
    assert ev["history_days"] == 30 and ev["tolerance"] == 0.2 and len(ev["fire_rate_series"]) == 30
    assert bundle_f.rule_id is None and bundle_f.evidence["fire_rate"] == ev["fire_rate"]


def test_golden_stable_series_is_never_flagged(series, context, day):
    rng = np.random.default_rng(6)
    fires = rng.poisson(400.0, 365)
    hist = series([40] * 365, [40] * 365, fires=fires)
    # Poisson(400) medians over >= 14 days stay within 4 % of 400, and a day
    # within 15 % of 400 is then within 20 % of the median (460 / 384 < 1.2,
    # 340 / 416 > 0.8): only days more than 15 % off 400 can alarm, so those
    # are the days to check.
    medians = pd.Series(fires).shift(1).rolling(90, min_periods=14).median().dropna()
    assert medians.between(384, 416).all()
    candidates = np.flatnonzero(np.abs(fires / 400 - 1) > 0.15)
    assert candidates.tolist() == [283]  # one 15 %-off day, not 20 % off its median
    monitor, ctx = CoverageDrift(), context(day(0))
    assert [i for i in candidates if monitor.check(hist, replace(ctx, day=day(int(i))))] == []
    assert monitor.check(hist, replace(ctx, day=day(364))) == []


def test_a_rise_is_flagged_too(series, context, day):
    hist = series([40] * 20, [40] * 20, fires=[400] * 19 + [500])
    (f, _) = CoverageDrift().check(hist, context(day(19)))
    assert f.evidence["relative_change"] == pytest.approx(0.25)


def test_too_little_history_is_not_judged(series, context, day):
    hist = series([40] * 14, [40] * 14, fires=[400] * 13 + [100])
    assert CoverageDrift().check(hist, context(day(13))) == []  # 13 days of history < 14
    assert CoverageDrift(min_days=13).check(hist, context(day(13)))


def test_a_zero_median_is_skipped(series, context, day):
    hist = series([0] * 20, [0] * 20, fires=[0] * 19 + [50])
    assert CoverageDrift().check(hist, context(day(19))) == []


def test_bundle_sums_the_rules_of_an_intent(series, context, rule, day, history):
    a = series([40] * 20, [40] * 20, fires=[300] * 20, rule_id="faq.a")
    b = series([40] * 20, [40] * 20, fires=[100] * 20, rule_id="faq.b", drop=[19])  # b stops firing on day 19
    other = series([40] * 20, [40] * 20, fires=[50] * 20, rule_id="promo.x", intent="promotion")
    hist = history(a, b, other)
    rules = [rule("faq.a"), rule("faq.b"), rule("promo.x", intent="promotion")]
    findings = CoverageDrift().check(hist, context(day(19), rules=rules))
    by_subject = {f.subject: f for f in findings}
    # faq.b has no row on day 19 while en-US had traffic: it fired 0 times.
    assert sorted(by_subject) == ["bundle:faq|en-US", "faq.b"]
    assert by_subject["faq.b"].evidence["relative_change"] == -1.0
    assert by_subject["bundle:faq|en-US"].evidence["relative_change"] == pytest.approx(300 / 400 - 1)
    assert by_subject["bundle:faq|en-US"].evidence["fire_rate"] == 300 / TRAFFIC


def test_disabled_rule_gets_no_rule_ticket(series, context, rule, day):
    hist = series([40] * 35, [40] * 35, fires=dropped())
    findings = CoverageDrift().check(hist, context(day(30), rules=[rule(state="disabled")]))
    assert findings == []  # and no active rule of the intent: it is not in the bundle either


def test_locales_are_judged_separately(series, context, day, history):
    hist = history(series([40] * 35, [40] * 35, fires=[400] * 35, locale="en-US"),
                   series([40] * 35, [40] * 35, fires=dropped(), locale="de-DE"))
    findings = CoverageDrift().check(hist, context(day(30)))
    assert [(f.subject, f.locale) for f in findings] == [("faq.opening_hours", "de-DE"), ("bundle:faq|de-DE", "de-DE")]


def test_the_window_bounds_the_median(series, context, day):
    # 20 days at 100, then 20 at 400: a 7-day window has forgotten the 100s by day 39.
    hist = series([40] * 41, [40] * 41, fires=[100] * 20 + [400] * 20 + [420])
    monitor = CoverageDrift(window_days=7, min_days=5)
    assert monitor.check(hist, context(day(40))) == []
    assert CoverageDrift().check(hist, context(day(40)))  # the 90-day median is 250


def test_from_settings():
    m = CoverageDrift.from_settings({"window_days": 30, "min_days": 7, "tolerance": 0.5})
    assert (m.window_days, m.min_days, m.tolerance, m.min_z) == (30, 7, 0.5, 4.0)  # min_z: its own default
    with pytest.raises(ConfigError, match=r"\[monitors\.coverage_drift\]: unknown key 'tolerence'; coverage_drift "
                                          r"takes window_days, min_days, tolerance, min_z"):
        CoverageDrift.from_settings({"tolerence": 0.5})


def test_statistics_band_is_the_median_widened_to_min_z_noise(series, context, day):
    # 20 fires a day in 1,000 queries: the median rate is 2%, whose counting noise
    # sqrt(0.02 * 0.98 / 1000) = 0.443% is wider than a fifth of it, so the band is
    # 2% ± 4 × 0.443% = [0.229%, 3.771%], not the ±20% band [1.6%, 2.4%].
    hist = series([10] * 21, [10] * 21, fires=[20] * 20 + [30], traffic=1000)
    stats = CoverageDrift().statistics(hist, context(day(20)))
    today = stats.iloc[-1]
    half = 4 * (0.02 * 0.98 / 1000) ** 0.5
    assert (today["value"], today["median"], today["history_days"]) == (0.03, 0.02, 20)
    assert (today["low"], today["high"]) == pytest.approx((0.02 - half, 0.02 + half))
    assert not today["alarm"] and CoverageDrift().check(hist, context(day(20))) == []  # +50%, but 2.3 sigma
    assert stats["low"].iloc[:14].isna().all() and stats["low"].iloc[14:].notna().all()  # min_days = 14


def test_statistics_are_the_verdicts_of_every_day(series, context, day, history):
    # Two locales of one rule: en-US drops on day 30; de-DE is small and noisy, and never alarms.
    hist = history(series([40] * 40, [40] * 40, fires=dropped(days=40)),
                   series([5] * 40, [5] * 40, fires=np.random.default_rng(3).poisson(30, 40), locale="de-DE",
                          traffic=2_000))
    monitor = CoverageDrift()
    stats = monitor.statistics(hist, context(day(39)))
    alarms = {(r.date.date(), r.locale) for r in stats[stats["alarm"]].itertuples()}
    verdicts = {(day(i), f.locale) for i in range(40) for f in monitor.check(hist, context(day(i))) if f.rule_id}
    assert alarms == verdicts == {(day(i), "en-US") for i in range(30, 40)}
    # Off the band's edges, a day alarms exactly when its rate leaves the band.
    outside = (stats["value"] < stats["low"]) | (stats["value"] > stats["high"])
    assert (outside == stats["alarm"]).all()


@pytest.mark.parametrize(("params", "message"), [
    ({"window_days": 0}, r"window_days must be an integer >= 1, got 0"),
    ({"min_days": "14"}, r"min_days must be an integer >= 1, got '14'"),
    ({"tolerance": -0.2}, r"tolerance must be a finite number > 0, got -0\.2"),
    ({"window_days": 7, "min_days": 14}, r"min_days=14 cannot exceed window_days=7"),
])
def test_invalid_parameters_are_refused(params, message):
    with pytest.raises(ConfigError, match=message):
        CoverageDrift(**params)


def test_bundle_subject_and_summary_keep_an_intent_that_holds_a_bar(series, context, day, rule):
    intent = "Billing | Payments"
    rule_id = "billing_payments_5c1e2a3b.refund"  # any slug id: the monitor reads the intent from the rules
    hist = series([40] * 35, [40] * 35, fires=dropped(), rule_id=rule_id, intent=intent)
    found = CoverageDrift().check(hist, context(day(30), rules=[rule(rule_id=rule_id, intent=intent)]))
    bundle = next(f for f in found if f.rule_id is None)
    assert bundle.subject == "bundle:Billing | Payments|en-US"
    assert "answered by the Billing | Payments intent in en-US moved" in bundle.summary
