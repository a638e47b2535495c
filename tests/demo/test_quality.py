"""Scoring the monitors against the scenarios' ground truth (hand-made findings)."""

from __future__ import annotations

from datetime import date

import pandas as pd

from monitors._series import demo_history
from rulelife.config import Settings
from rulelife.demo.quality import QualityReport, _score, _score_model_change
from rulelife.monitoring.contract import Action, Finding, RuleInfo, Severity
from rulelife.simulate import Scenario

D = date(2026, 3, 1)
SCENARIOS = [
    Scenario(name="ui_rephrase", kind="rephrase", start_day=date(2026, 3, 10), description="",
             intents=("order_tracking",), rules=("order_tracking.where",), phrasings="package_status", share=0.5),
    Scenario(name="model_retrain", kind="model_retrain", start_day=date(2026, 3, 20), description="",
             confidence_scale=0.6),
]
INTENTS = {"order_tracking.where": "order_tracking", "faq.hours": "faq"}


def finding(subject: str, check: str, day: date) -> Finding:
    return Finding(subject=subject, check=check, severity=Severity.WARNING, action=Action.TICKET, day=day,
                   summary="x")


def test_detections_delays_and_false_alarms():
    findings = [
        finding("order_tracking.where", "coverage_drift", date(2026, 3, 5)),  # before the change: false alarm
        finding("order_tracking.where", "coverage_drift", date(2026, 3, 12)),  # detected, 2 days late
        finding("bundle:order_tracking|en-us", "coverage_drift", date(2026, 3, 11)),  # bundle scope: 1 day
        finding("faq.hours", "agreement_cusum", date(2026, 3, 15)),  # no scenario touches faq: false alarm
    ]
    report = QualityReport(live=(D, date(2026, 4, 1)), rules=2, rule_days=64)
    _score(report, findings, SCENARIOS, INTENTS, ["coverage_drift", "agreement_cusum"])
    rows = {(d["scenario"], d["monitor"]): d for d in report.detections}
    drift = rows[("ui_rephrase", "coverage_drift")]
    assert (drift["fired"], drift["first_day"], drift["delay_days"]) == (True, "2026-03-11", 1)
    assert drift["subjects"] == ["bundle:order_tracking|en-us", "order_tracking.where"]
    assert rows[("ui_rephrase", "agreement_cusum")]["fired"] is False
    assert rows[("model_retrain", "coverage_drift")]["fired"] is False  # nothing should react to a retrain
    alarms = {a["monitor"]: a for a in report.false_alarms}
    assert alarms["coverage_drift"]["alarm_days"] == 1
    assert alarms["agreement_cusum"]["subjects"] == ["faq.hours"]
    assert alarms["agreement_cusum"]["per_1000_rule_days"] == round(1000 / 64, 2)


def test_a_bundle_finding_on_an_intent_that_holds_a_bar_is_matched_to_its_scenario():
    # The simulator's catalog names the scenario; the registry's rule carries an intent with "|".
    intents = {"order_tracking.where": "Billing | Payments"}
    report = QualityReport(live=(D, date(2026, 4, 1)), rules=1, rule_days=32)
    findings = [finding("bundle:Billing | Payments|en-us", "coverage_drift", date(2026, 3, 11))]
    _score(report, findings, SCENARIOS[:1], intents, ["coverage_drift"])
    assert report.detections[0]["fired"] is True and report.false_alarms[0]["alarm_days"] == 0


def test_the_retrain_path_is_scored_told_and_untold():
    start = date(2026, 3, 11)  # day 10 of 20
    retrain = Scenario(name="model_retrain", kind="model_retrain", start_day=start, description="",
                       rules=("promotion.deals",), model_version="model-2", relabel_from="promotion",
                       relabel_to="faq", relabel_share=0.2)
    # promotion.deals: 50 / 50 under model-1, 35 / 50 under model-2; faq.hours: 50 / 50 throughout.
    deals = demo_history([50] * 10 + [35] * 10, [50] * 20, start="2026-03-01", rule_id="promotion.deals",
                         intent="promotion")
    hours = demo_history([50] * 20, [50] * 20, start="2026-03-01", rule_id="faq.hours")
    history = pd.concat([deals, hours], ignore_index=True)
    rules = {r: RuleInfo(r, i, "active", "v1", None) for r, i in (("promotion.deals", "promotion"),
                                                                    ("faq.hours", "faq"))}

    def floor(day, action):
        return Finding(subject="promotion.deals", check="agreement_floor", severity=Severity.WARNING,
                       action=action, day=day, summary="x")

    told = [floor(date(2026, 3, 13), Action.TICKET), floor(date(2026, 3, 18), Action.DISABLE)]  # window: 11-17
    untold = [finding("promotion.deals", "agreement_cusum", date(2026, 3, d)) for d in (12, 13)] \
        + [floor(date(2026, 3, 13), Action.DISABLE)]
    scored = _score_model_change(retrain, [(start, "model-1", "model-2")], history, rules,
                                 Settings(model_revalidate_days=7), told, untold)
    assert (scored["seen_on"], scored["seen_on_first_day"], scored["listed"], scored["missed"]) == (
        "2026-03-11", True, ["promotion.deals"], [])
    assert scored["told"] == {"cusum_alarm_days": 0, "cusum_first_alarm": None, "floor_disables_in_window": 0,
                              "floor_disables_after_window": 1, "floor_tickets_in_window": 1}
    assert scored["untold"] == {"cusum_alarm_days": 2, "cusum_first_alarm": "2026-03-12",
                                "floor_disables_in_window": 1, "floor_disables_after_window": 0,
                                "floor_tickets_in_window": 0}
