"""The health page draws what the monitors decided, from their own statistics(), never a recomputation."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest

from monitors.coverage_drift import CoverageDrift
from monitors.cusum import AgreementCusum
from rulelife.monitoring.contract import MonitorContext, RuleInfo
from rulelife.monitoring.nightly import load_history
from rulelife.report import write_report
from rulelife.store import DailyMetricRow, RuleStateRow, Store

START = date(2026, 1, 1)
DAYS = 30
DROP = 25  # ja-JP's fire rate falls from 10% to 2.5% on this day
NOW = datetime(2026, 2, 1, tzinfo=UTC)
TRAFFIC = {"en-US": 10_000, "ja-JP": 2_000}


def embedded(text: str) -> dict:
    found = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', text, re.S)
    assert found, "the page embeds its data"
    return json.loads(found.group(1))


def fires_by_locale() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(42)
    return {"en-US": rng.poisson(1000.0, DAYS),
            "ja-JP": rng.poisson(np.r_[np.full(DROP, 200.0), np.full(DAYS - DROP, 50.0)])}


@pytest.fixture
def drifting(new_workspace):
    """One active rule in two locales; its small locale drops on day 25, the pooled rate barely moves."""
    workspace = new_workspace()
    store = Store.from_workspace(workspace)
    fires = fires_by_locale()
    with store.session() as session:
        session.add(RuleStateRow(rule_id="faq.hours", intent="faq", state="active", version="v1",
                                 latest_version="v1", updated_at=NOW))
        for i in range(DAYS):
            for locale, traffic in TRAFFIC.items():
                n = int(fires[locale][i])
                session.add(DailyMetricRow(day=START + timedelta(days=i), rule_id="faq.hours", rule_version="v1",
                                           intent="faq", locale=locale, traffic=traffic, fires=n,
                                           fire_rate=n / traffic, shadow_n=40, agree_n=39, agreement=39 / 40))
    yield workspace, store, fires
    store.dispose()


def _old_pooled_band(fires: dict[str, np.ndarray], day: int, tolerance: float = 0.2) -> tuple[float, float, float]:
    """The page's former band: locales pooled, ±tolerance around the median of the days before, no noise test."""
    pooled = (fires["en-US"] + fires["ja-JP"]) / sum(TRAFFIC.values())
    median = float(np.median(pooled[:day]))
    return pooled[day], median * (1 - tolerance), median * (1 + tolerance)


def test_golden_the_page_band_is_the_coverage_monitors_own(drifting, tmp_path):
    workspace, store, fires = drifting
    text = write_report(workspace, tmp_path / "r.html", store=store, now=NOW, residual=False).path.read_text()
    data = embedded(text)
    page = data["rules"]["faq.hours"]["fire_rate"]
    # The rate each locale's chart draws: its fires over the locale's traffic.
    rates = {locale: [f / t for f, t in zip(page[locale]["fires"], data["traffic"][locale])] for locale in TRAFFIC}

    until = START + timedelta(days=DAYS - 1)
    history, _ = load_history(store, until)  # the history the nightly job gives the monitors
    rules = {"faq.hours": RuleInfo("faq.hours", "faq", "active", "v1", None)}
    monitor = CoverageDrift()
    stats = monitor.statistics(history, MonitorContext(day=until, settings=workspace.settings, rules=rules))
    for locale in TRAFFIC:
        mine = stats[stats["locale"] == locale]
        assert len(mine) == DAYS
        assert rates[locale] == mine["value"].tolist()
        for column in ("low", "high"):
            expected = [None if v != v else round(float(v), 6) for v in mine[column]]
            assert page[locale][column] == expected, (locale, column)

    # The disagreement the old page hid: on day 25 the pooled rate sits inside the pooled ±20%
    # band, while the monitor tickets ja-JP, whose rate the page draws below the monitor's band.
    rate, old_low, old_high = _old_pooled_band(fires, DROP)
    assert old_low < rate < old_high
    day = START + timedelta(days=DROP)
    context = MonitorContext(day=day, settings=workspace.settings, rules=rules)
    assert [(f.subject, f.locale) for f in monitor.check(history, context) if f.rule_id] == [("faq.hours", "ja-JP")]
    assert rates["ja-JP"][DROP] == fires["ja-JP"][DROP] / 2000 < page["ja-JP"]["low"][DROP]

    # Every day and locale: outside the drawn band exactly when the monitor tickets it.
    for i in range(DAYS):
        context = MonitorContext(day=START + timedelta(days=i), settings=workspace.settings, rules=rules)
        ticketed = {f.locale for f in monitor.check(history, context) if f.rule_id}
        drawn = {loc for loc, r in page.items() if r["low"][i] is not None
                 and not r["low"][i] <= rates[loc][i] <= r["high"][i]}
        assert drawn == ticketed, START + timedelta(days=i)


def test_the_page_draws_the_monitors_as_the_workspace_configures_them(drifting, tmp_path):
    workspace, store, _ = drifting
    toml = workspace.config_file
    toml.write_text(toml.read_text() + "\n[monitors.coverage_drift]\ntolerance = 0.9\nmin_z = 1.0\n"
                    "[monitors.agreement_cusum]\narl0 = 500.0\n")
    from rulelife.config import Workspace

    workspace = Workspace.load(workspace.root)
    text = write_report(workspace, tmp_path / "r.html", store=store, now=NOW, residual=False).path.read_text()
    ja = embedded(text)["rules"]["faq.hours"]["fire_rate"]["ja-JP"]
    # ±90% now holds: the band is the median ± 0.9 × median (wider than one standard deviation),
    # so high / low = 1.9 / 0.1.
    assert ja["high"][DROP] / ja["low"][DROP] == pytest.approx(19, rel=1e-3)
    assert f"h {AgreementCusum(arl0=500.0).h:.2f}" in text


def test_a_monitor_the_nightly_does_not_run_is_not_drawn(drifting, tmp_path):
    workspace, store, _ = drifting
    toml = workspace.config_file
    toml.write_text(re.sub(r'"coverage_drift", ', "", toml.read_text()))
    from rulelife.config import Workspace

    workspace = Workspace.load(workspace.root)
    assert "coverage_drift" not in workspace.settings.enabled_monitors
    text = write_report(workspace, tmp_path / "r.html", store=store, now=NOW, residual=False).path.read_text()
    assert embedded(text)["rules"]["faq.hours"]["fire_rate"] == {}
    assert "does not run the coverage_drift monitor" in text
