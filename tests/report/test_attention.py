"""The health page answers "what needs me" first: tickets by severity, evidence as tables."""

from __future__ import annotations

from datetime import date

import pytest

from rulelife.monitoring import tickets
from rulelife.monitoring.contract import Action, Finding, Severity
from rulelife.report.data import _tickets
from rulelife.report.html import _evidence


@pytest.mark.store
def test_open_tickets_most_severe_then_most_recent_first(store):
    findings = [("faq.a", Severity.INFO, date(2026, 3, 5)), ("faq.b", Severity.WARNING, date(2026, 3, 1)),
                ("faq.c", Severity.CRITICAL, date(2026, 3, 1)), ("faq.d", Severity.WARNING, date(2026, 3, 4))]
    with store.session() as session:
        for subject, severity, day in findings:
            tickets.record_finding(session, Finding(subject=subject, check="agreement_floor", severity=severity,
                                                    action=Action.TICKET, day=day, summary="look"), sinks=[])
    assert [t.subject for t in _tickets(store)] == ["faq.c", "faq.d", "faq.b", "faq.a"]


def test_evidence_mappings_and_records_are_tables_not_json():
    html = _evidence("t", {"window": {"start": "2026-03-01", "days": 14},
                           "locales": [{"locale": "en-US", "agreement": 0.91}], "floor": 0.95}, floor=0.95)
    assert "{" not in html  # no raw JSON
    assert "<td>start</td><td>2026-03-01</td>" in html.replace(' class=""', "")
    assert "<th>locale</th><th>agreement</th>" in html.replace(' class=""', "")
    assert "<td>en-US</td><td>0.91</td>" in html.replace(' class=""', "")
