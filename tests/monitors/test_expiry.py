from datetime import UTC, date, datetime, timedelta

import pytest

from monitors.expiry import Expiry
from rulelife.errors import ConfigError
from rulelife.monitoring.contract import Action, Severity

EXPIRES = datetime(2026, 3, 2, 23, 59, tzinfo=UTC)


def verdicts(context, rule, monitor=None, **rule_kw):
    monitor = monitor or Expiry()
    out = {}
    for i in range(14):
        day = date(2026, 3, 1) + timedelta(days=i)
        found = monitor.check(None, context(day, rules=[rule(expires_at=EXPIRES, **rule_kw)]))
        out[day.isoformat()] = found[0].action.value if found else None
    return out


def test_golden_ticket_after_expiry_then_disable_after_grace(context, rule):
    v = verdicts(context, rule)
    # Valid through 2026-03-02; tickets from 03-03 to 03-09 (= expiry + 7 days
    # of grace); disabled from 03-10, the first day past expiry + grace.
    assert [d for d, a in v.items() if a] == [f"2026-03-{d:02d}" for d in range(3, 15)]
    assert v["2026-03-02"] is None and v["2026-03-03"] == "ticket" and v["2026-03-09"] == "ticket"
    assert v["2026-03-10"] == "disable"


def test_findings_say_what_to_do(context, rule):
    (t,) = Expiry().check(None, context(date(2026, 3, 3), rules=[rule(expires_at=EXPIRES)]))
    assert (t.action, t.severity, t.locale) == (Action.TICKET, Severity.WARNING, None)
    assert "rulelife revalidate" in t.summary and t.evidence["disable_on"] == "2026-03-10"
    (d,) = Expiry().check(None, context(date(2026, 3, 10), rules=[rule(expires_at=EXPIRES)]))
    assert (d.action, d.severity) == (Action.DISABLE, Severity.CRITICAL) and d.evidence["days_overdue"] == 8


def test_zero_grace_disables_the_day_after_expiry(context, rule):
    v = verdicts(context, rule, Expiry(grace_days=0))
    assert v["2026-03-02"] is None and v["2026-03-03"] == "disable"


def test_inactive_and_never_expiring_rules_are_left_alone(context, rule):
    assert all(a is None for a in verdicts(context, rule, state="disabled").values())
    assert Expiry().check(None, context(date(2026, 3, 30), rules=[rule(expires_at=None)])) == []


def test_from_settings():
    assert Expiry.from_settings({"grace_days": 3}).grace_days == 3
    assert Expiry.from_settings({}).grace_days == 7  # the default in its signature


@pytest.mark.parametrize("value", [-1, 1.5, True])
def test_invalid_grace_is_refused(value):
    with pytest.raises(ConfigError, match=r"grace_days must be an integer >= 0, got"):
        Expiry(grace_days=value)
