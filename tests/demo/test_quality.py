"""Scoring the monitors against the scenarios' ground truth (hand-made findings)."""

from __future__ import annotations

from datetime import date

from rulelife.demo.quality import QualityReport, _score
from rulelife.monitoring.contract import Action, Finding, Severity
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
