"""Builders for monitor tests: metric histories and monitor contexts."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import pytest

from monitors._series import demo_history
from rulelife.config import Settings
from rulelife.monitoring.contract import MonitorContext, RuleInfo

DAY0 = date(2026, 1, 1)


@pytest.fixture
def day():
    """Day ``i`` of every test series (day 0 is 2026-01-01)."""
    return lambda i: DAY0 + timedelta(days=i)


@pytest.fixture
def series():
    """One (rule, locale, version) series from daily counts; ``start`` is a day index.

    ``drop`` lists day indices with no row at all (the rule did not fire that day).
    """

    def build(agree, shadow, *, start: int = 0, drop=(), **kw) -> pd.DataFrame:
        frame = demo_history(agree, shadow, start=(DAY0 + timedelta(days=start)).isoformat(), **kw)
        keep = [i for i in range(len(frame)) if i + start not in set(drop)]
        return frame.iloc[keep]

    return build


@pytest.fixture
def history():
    """Concatenate series into one metrics table."""
    return lambda *frames: pd.concat(frames, ignore_index=True)


@pytest.fixture
def rule():
    def build(rule_id="faq.opening_hours", intent="faq", state="active", version="v1", expires_at=None) -> RuleInfo:
        return RuleInfo(rule_id=rule_id, intent=intent, state=state, version=version, expires_at=expires_at)

    return build


@pytest.fixture
def context(rule):
    """A MonitorContext for ``day``; ``rules`` default to one active faq rule at v1."""

    def build(day, rules=None, examples=None, **settings) -> MonitorContext:
        rules = [rule()] if rules is None else rules
        return MonitorContext(day=day, settings=Settings(**settings), rules={r.rule_id: r for r in rules},
                              examples=examples or {})

    return build
