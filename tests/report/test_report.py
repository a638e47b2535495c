"""The rule health report: sections, numbers equal to the store's, self-contained, evaluation page."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from html.parser import HTMLParser

import pytest
import typer
from sqlmodel import select
from typer.testing import CliRunner

from rulelife.cli.report import report_command
from rulelife.config import Workspace
from rulelife.demo.quickstart import run_quickstart
from rulelife.errors import ConfigError
from rulelife.evidence import promotion
from rulelife.evidence.gate import GateDecision
from rulelife.report import SECTIONS, render_evaluation_html, write_report
from rulelife.store import AuditRow, DailyMetricRow, EvaluationRow, RuleStateRow, Store, TicketRow


class Elements(HTMLParser):
    """Every start tag with its attributes, and the text inside each element with an id."""

    def __init__(self, text: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def with_attr(self, name: str, value: str | None = None) -> list[dict]:
        return [a for _, a in self.tags if name in a and (value is None or a[name] == value)]


def embedded(text: str) -> dict:
    found = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', text, re.S)
    assert found, "the page embeds its data"
    return json.loads(found.group(1))


def assert_self_contained(text: str) -> None:
    assert "http://" not in text and "https://" not in text
    assert not re.search(r"<(link|img|iframe|object|embed)\b", text)
    assert not re.search(r"<script[^>]*\bsrc=", text)
    assert "url(" not in text and "@import" not in text


# ---------------------------------------------------------------- a quickstart workspace
@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    # Small enough for the module to run in under a minute; the browser test covers a long drifting history.
    result = run_quickstart(root / "ws", history_days=10, live_days=8, queries_per_day=2000)
    report = write_report(result.workspace, root / "report.html")
    return result.workspace, report, report.path.read_text(encoding="utf-8")


def test_every_section_and_chart_is_on_the_page(quick):
    workspace, report, text = quick
    page = Elements(text)
    assert report.sections == SECTIONS
    sections = [a["data-section"] for a in page.with_attr("data-section") if a.get("id") in SECTIONS]
    assert sections == list(SECTIONS)
    ids = [a["id"] for a in page.with_attr("id")]
    assert len(ids) == len(set(ids)), "ids are unique"

    rules = page.with_attr("data-section", "rule")
    assert len(rules) == report.counts["rules_with_metrics"] > 0
    kinds = defaultdict(set)
    for chart in page.with_attr("data-chart"):
        assert chart.get("id"), chart
        if "data-rule" in chart:
            kinds[chart["data-rule"]].add(chart["data-chart"])
    for rule in rules:
        assert kinds[rule["data-rule"]] == {"agreement", "cusum", "fire-rate", "shadow"}, rule
    assert {"chart-states", "chart-coverage", "chart-savings"} <= set(ids)
    assert "chart-residual" in ids, "the quickstart writes a log, so the residual view is computed"
    evaluations = page.with_attr("data-section", "evaluation")
    assert len(evaluations) == report.counts["evaluations"] == 28
    assert_self_contained(text)


def _store_days(workspace: Workspace) -> dict[tuple[str, str], dict[str, int]]:
    store = Store.from_workspace(workspace)
    sums: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    with store.session() as session:
        for row in session.exec(select(DailyMetricRow)).all():
            day = sums[row.rule_id, row.day.isoformat()]
            for name in ("agree_n", "shadow_n", "fires"):
                day[name] += getattr(row, name)
    store.dispose()
    return sums


def test_numbers_on_the_page_equal_the_store(quick):
    workspace, report, text = quick
    data = embedded(text)
    start, store = date.fromisoformat(data["start"]), _store_days(workspace)
    checked = 0
    for rule_id, series in data["rules"].items():
        for i, shadow in enumerate(series["shadow_n"]):
            key = (rule_id, (start + timedelta(days=i)).isoformat())
            if key in store:
                assert series["agree_n"][i] == store[key]["agree_n"], key
                assert shadow == store[key]["shadow_n"], key
                assert series["fires"][i] == store[key]["fires"], key
                checked += 1
    assert checked == sum(1 for (_, day) in store if day >= data["start"])

    # The visible summary: each rule's last day with a shadow sample, as "a% (agree/shadow on MM-DD)".
    # Within one table row: the shadow section links rules too, without a last agreement.
    shown = re.findall(r'<a href="#rule-[^"]+">([^<]+)</a></td><td[^>]*>(?:(?!</tr>).)*?data-metric="last-agreement">'
                       r"([\d.]+)% \((\d+)/(\d+) on (\d\d)-(\d\d)\)", text)
    assert len(shown) == report.counts["rules_with_metrics"]
    for rule_id, pct, agree, shadow, month, day in shown:
        counts = store[rule_id, f"{report.until.year}-{month}-{day}"]
        assert (int(agree), int(shadow)) == (counts["agree_n"], counts["shadow_n"]), rule_id
        assert pct == f"{100 * counts['agree_n'] / counts['shadow_n']:.1f}"


def test_evaluation_page_renders(quick):
    workspace, _, _ = quick
    rule_id = "order_tracking.my_order"  # the quickstart's gate refuses it, with reasons
    result = promotion.evaluate(workspace, rule_id, record=False)
    text = render_evaluation_html(result)
    page = Elements(text)
    assert page.with_attr("data-section", "evaluation")
    assert {a["id"] for a in page.with_attr("data-chart")} >= {f"eval-{rule_id.replace('.', '-')}-intervals"}
    shown = page.with_attr("data-metric", "production-agreement")[0]["data-value"]
    assert float(shown) == pytest.approx(result.evaluation.production.estimate)
    assert "gate refused" in text and all(c.name in text for c in result.decision.checks)
    assert_self_contained(text)


def test_evaluation_page_reads_the_floor_from_the_check_not_its_words(quick):
    workspace, _, _ = quick
    result = promotion.evaluate(workspace, "order_tracking.my_order", record=False)
    agreement = result.decision.check("agreement")
    assert agreement.threshold == 0.95 and ">= 95%" in agreement.detail
    # Reword the message (no number left in it) and set the structured floor to 0.9.
    reworded = replace(agreement, detail="agreement is not high enough", threshold=0.9)
    decision = GateDecision(tuple(reworded if c.name == "agreement" else c for c in result.decision.checks))
    text = render_evaluation_html(replace(result, decision=decision))
    assert "floor 90%" in text and "floor 95%" not in text
    assert "agreement is not high enough" in text


def test_report_command_writes_the_page(quick, tmp_path):
    workspace, _, _ = quick
    app = typer.Typer()
    app.command()(report_command)
    out = tmp_path / "r.html"
    result = CliRunner().invoke(app, ["--out", str(out), "--json"], env={"RULELIFE_WORKSPACE": str(workspace.root)})
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["path"] == str(out) and out.stat().st_size > 0
    bad = CliRunner().invoke(app, ["--since", "someday"], env={"RULELIFE_WORKSPACE": str(workspace.root)})
    assert bad.exit_code == 2 and "is not a date" in bad.output


# ---------------------------------------------------------------- a hand-made store
START = date(2026, 1, 1)
NOW = datetime(2026, 1, 30, 12, tzinfo=UTC)


def _metric(day: date, rule_id: str, intent: str, locale: str, traffic: int, fires: int, shadow: int, agree: int):
    return DailyMetricRow(day=day, rule_id=rule_id, rule_version="v1", intent=intent, locale=locale, traffic=traffic,
                          fires=fires, fire_rate=fires / traffic, shadow_n=shadow, agree_n=agree,
                          agreement=agree / shadow if shadow else None)


def _evaluation_metrics() -> dict:
    stratum = {"stratum": "production", "n": 100, "agree": 97, "agreement": 0.97, "low": 0.915, "high": 0.990,
               "fires": 60, "false_positives": 3, "safety_false_positives": {}, "safety_fp_upper_bound": 0.03}
    return {"rule_id": "faq.hours", "rule_version": "v1", "intent": "faq", "dataset_hash": "ab" * 32, "rows": 100,
            "production": {"estimate": 0.97, "low": 0.915, "high": 0.99, "n": 100, "effective_n": 100.0},
            "production_raw": [97, 100], "samples_to_settle": 357, "strata": [stratum],
            "disagreements": {"chitchat": 2, "promotion": 1}, "dominant_disagreement": "chitchat",
            "class_fp_rates": {"chitchat": 0.1}, "severity_weighted_fp": 3.0, "safety_false_positives": 0,
            "safety_examples": [], "slices": {}, "fire_count": 600, "fires_per_day": 20.0,
            "safety_fp_in_log": {}, "notes": []}


@pytest.fixture
def hand_made(tmp_path):
    """Two rules over 30 days: faq.hours in en-US and ja-JP, returns.item in en-US (disabled on day 25)."""
    workspace = Workspace.create(tmp_path / "ws")
    store = Store.from_workspace(workspace)
    with store.session() as session:
        session.add(RuleStateRow(rule_id="faq.hours", intent="faq", state="active", version="v1", latest_version="v1",
                                 updated_at=NOW, expires_at=NOW + timedelta(days=5)))
        session.add(RuleStateRow(rule_id="returns.item", intent="return_request", state="disabled", version="v1",
                                 latest_version="v1", updated_at=NOW))
        for i in range(30):
            day = START + timedelta(days=i)
            session.add(_metric(day, "faq.hours", "faq", "en-US", 1000, 100, 50, 45 if i == 19 else 48))
            session.add(_metric(day, "faq.hours", "faq", "ja-JP", 500, 50, 25, 24))
            if i < 25:
                session.add(_metric(day, "returns.item", "return_request", "en-US", 1000, 40, 20, 20))
        session.add(AuditRow(rule_id="returns.item", at=NOW, actor="nightly", action="auto_disable",
                             from_state="active", to_state="disabled", to_version="v1", reason="agreement_floor",
                             evidence=json.dumps({"day": "2026-01-25", "check": "agreement_floor",
                                                  "summary": "returns.item below the floor for 3 days"})))
        session.add(TicketRow(dedupe_key="faq.hours::agreement_floor", open_key="faq.hours::agreement_floor",
                              subject="faq.hours", check="agreement_floor", locale="en-US", severity="warning",
                              title="faq.hours dipped", created_at=NOW, updated_at=NOW, findings=1,
                              first_day=date(2026, 1, 20), last_day=date(2026, 1, 20),
                              evidence=json.dumps({"locale": "en-US", "agreement": [
                                  {"date": "2026-01-19", "value": 0.96, "n": 50},
                                  {"date": "2026-01-20", "value": 0.90, "n": 50}]})))
        session.add(EvaluationRow(rule_id="faq.hours", rule_version="v1", dataset_hash="ab" * 32, at=NOW,
                                  actor="test", passed=False, reasons=json.dumps(["agreement interval straddles"]),
                                  metrics=json.dumps(_evaluation_metrics())))
    yield workspace, store
    store.dispose()


def test_hand_made_store_shows_hand_computed_numbers(hand_made, tmp_path):
    workspace, store = hand_made
    report = write_report(workspace, tmp_path / "r.html", store=store, now=NOW)
    text = report.path.read_text(encoding="utf-8")
    assert (report.since, report.until) == (START, date(2026, 1, 30))
    assert report.counts["evaluations"] == 1
    assert (report.counts["open_tickets"], report.counts["auto_disables"], report.counts["near_expiry"]) == (1, 1, 1)

    data = embedded(text)
    hours = data["rules"]["faq.hours"]
    assert (hours["agree_n"][19], hours["shadow_n"][19]) == (45 + 24, 50 + 25)  # day 20, both locales
    assert hours["fires"][0] == 150 and hours["traffic"][0] == 1500
    # The fire rate is a constant 10% in each locale: its median needs the coverage monitor's
    # min_days (14) days before it. The band is the median ± 4 standard deviations of counting
    # noise (wider than ±20% at these counts): 4 sqrt(0.1 × 0.9 / 1000) = 3.795% in en-US,
    # 4 sqrt(0.1 × 0.9 / 500) = 5.367% in ja-JP.
    for locale, fires, half in (("en-US", 100, 0.037947), ("ja-JP", 50, 0.053666)):
        rates = hours["fire_rate"][locale]
        assert rates["fires"][0] == fires and data["traffic"][locale][0] == 10 * fires
        assert rates["low"][13] is None and rates["high"][13] is None
        assert (rates["low"][14], rates["high"][14]) == pytest.approx((0.1 - half, 0.1 + half), abs=1e-6)
    returns = data["rules"]["returns.item"]
    # After the disable the rule has no rows while its locale has traffic: it fired 0 times. The
    # coverage monitor judged it up to its last day of metrics (day 25), no further.
    assert (returns["shadow_n"][24], returns["fires"][25], returns["shadow_n"][25]) == (20, 0, 0)
    assert (returns["fire_rate"]["en-US"]["fires"][24], returns["fire_rate"]["en-US"]["fires"][25]) == (40, None)
    assert data["bundle"]["calls_saved"][0] == (100 + 50 + 40) - (50 + 25 + 20)

    page = Elements(text)
    cells = {(c["data-row"], c["data-column"]): float(c["data-value"]) for c in page.with_attr("data-row")}
    assert cells[("faq", "en-US")] == pytest.approx(100 / 1000)
    assert cells[("return_request", "en-US")] == pytest.approx(25 * 40 / (30 * 1000))
    assert cells[("return_request", "ja-JP")] == 0.0
    assert page.with_attr("data-part", "active")[0]["data-value"] == "1"

    expiry = text[text.index('id="expiry"'):text.index('id="rules"')]
    assert "faq.hours" in expiry and ">5.0<" in expiry  # days left
    disables = text[text.index('id="auto-disables"'):text.index('id="expiry"')]
    assert "returns.item below the floor for 3 days" in disables and "2026-01-25" in disables
    tickets = text[text.index('id="tickets"'):text.index('id="auto-disables"')]
    assert "faq.hours dipped" in tickets and 'data-chart="sparkline"' in tickets
    # Markers on the time line: the auto-disable and the ticket's first day.
    assert 'class="marker auto_disable" data-day="2026-01-25"' in text
    assert 'class="marker ticket" data-day="2026-01-20"' in text
    assert page.with_attr("data-empty", "residual"), "no query log: the residual section says so"
    assert "chitchat takes more than half" in text
    assert_self_contained(text)


def test_since_bounds_the_window(hand_made, tmp_path):
    workspace, store = hand_made
    report = write_report(workspace, tmp_path / "r.html", store=store, since=date(2026, 1, 21), now=NOW)
    data = embedded(report.path.read_text(encoding="utf-8"))
    assert data["start"] == "2026-01-21" and data["days"] == 10
    assert len(data["rules"]["faq.hours"]["agree_n"]) == 10


def test_since_after_the_last_day_is_refused(hand_made, tmp_path):
    workspace, store = hand_made
    with pytest.raises(ConfigError, match=r"since=2026-03-01 is after the newest metrics day 2026-01-30"):
        write_report(workspace, tmp_path / "r.html", store=store, since=date(2026, 3, 1))


def test_empty_workspace_still_writes_every_section(tmp_path):
    workspace = Workspace.create(tmp_path / "ws")
    report = write_report(workspace, tmp_path / "r.html", now=NOW)
    text = report.path.read_text(encoding="utf-8")
    page = Elements(text)
    assert [a["id"] for a in page.with_attr("data-section") if a.get("id") in SECTIONS] == list(SECTIONS)
    assert report.counts["rules_with_metrics"] == 0
    assert_self_contained(text)


def test_output_is_written_atomically(hand_made, tmp_path):
    workspace, store = hand_made
    out = tmp_path / "deep" / "r.html"
    write_report(workspace, out, store=store, now=NOW)
    assert [p.name for p in out.parent.iterdir()] == ["r.html"]
