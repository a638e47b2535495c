"""The nightly's optional auto-promotion of shadow rules on their live evidence."""

from __future__ import annotations

import json
import math
from datetime import date, timedelta

import pandas as pd
import pytest
from sqlmodel import select
from typer.testing import CliRunner

from rulelife import RuleClassifier
from rulelife.cli import app
from rulelife.config import Workspace
from rulelife.errors import ConfigError, LifecycleError
from rulelife.evidence import live as live_evidence
from rulelife.evidence import promotion
from rulelife.evidence.evaluation.stats import samples_to_settle
from rulelife.evidence.live import LiveEvidence, standing_of
from rulelife.monitoring import nightly
from rulelife.serving import publish
from rulelife.serving.bundle import BundleStore
from rulelife.serving.replay import replay
from rulelife.store import AuditRow, PromotionRow, Store, registry, utcnow

RULES = {
    "promotion/sale.yaml": "id: promotion.sale\nintent: promotion\npatterns: [\"sale\"]\n",
    "faq/hours.yaml": "id: faq.hours\nintent: faq\npatterns: [\"opening hours\"]\n",
    "order_tracking/where.yaml": "id: order_tracking.where\nintent: order_tracking\npatterns: [\"where is my order\"]\n",
}
COMMON = "locales: [\"*\"]\nowner: ds\ndescription: A test rule.\n"
TEXTS = {"promotion.sale": ("big sale", "promotion"), "faq.hours": ("opening hours", "faq"),
         "order_tracking.where": ("where is my order", "order_tracking")}
# Live days come after the rules entered shadow (today).
DAY1 = utcnow().date() + timedelta(days=1)
DAY2 = DAY1 + timedelta(days=1)
# Per day: sale and hours fire 40 times, where 5 times, all agreeing. With
# every row agreeing the Wilson lower bound is n / (n + 1.96^2), which clears
# 0.95 from n = 73 (0.95 * 3.8416 / 0.05 = 72.99) on: more than the floor of
# 50. Sale and hours pass on the second night (80 rows: 0.954); where has 10
# rows then: 63 more at 5 a day is 13 days.
PER_DAY = {"promotion.sale": 40, "faq.hours": 40, "order_tracking.where": 5}


def make_ws(tmp_path, db_url, monkeypatch, **settings) -> Workspace:
    url, schema = db_url
    if schema:
        monkeypatch.setenv("RULELIFE_DB_SCHEMA", schema)
    workspace = Workspace.create(tmp_path / "ws", db_url=url, settings={"dataset_floor": 50, **settings})
    for name, text in RULES.items():
        (workspace.rules_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (workspace.rules_dir / name).write_text(text + COMMON)
    registry.sync_workspace(workspace, actor="ana")
    for rule_id in TEXTS:
        promotion.promote(workspace, rule_id, actor="ana", to="shadow")
    return workspace


@pytest.fixture
def ws(tmp_path, db_url, monkeypatch):
    return make_ws(tmp_path, db_url, monkeypatch, shadow_auto_promote=True)


def serve_day(ws: Workspace, day: date, per_rule: dict[str, int], unsafe: str | None = None) -> None:
    """A day served through the published bundle; ``unsafe`` fires once on a query labelled return_request."""
    texts, labels = ["hello"] * 3, ["chitchat"] * 3
    for rule_id, n in per_rule.items():
        text, intent = TEXTS[rule_id]
        texts += [text] * n
        labels += [intent] * n
    if unsafe:
        texts.append(TEXTS[unsafe][0])
        labels.append("return_request")
    log = pd.DataFrame({"query_id": [f"q-{day}-{i}" for i in range(len(texts))],
                        "ts": pd.Timestamp(day, tz="UTC") + pd.Timedelta(hours=9), "text": texts,
                        "locale": "en-US", "model_intent": labels, "model_confidence": 0.9})
    replay(log, RuleClassifier.from_store(ws.bundle_dir)).to_parquet(ws.log_dir / f"queries-{day}.parquet")


def night(ws: Workspace, day: date, monitors=()) -> nightly.NightlyReport:
    return nightly.run_nightly(ws, day, monitors=list(monitors))


def promotions(ws: Workspace) -> tuple[list[PromotionRow], list[AuditRow]]:
    store = Store.from_workspace(ws)
    with store.session() as session:
        rows = session.exec(select(PromotionRow).order_by(PromotionRow.rule_id)).all()
        audit = session.exec(select(AuditRow).where(AuditRow.action == "promote").order_by(AuditRow.rule_id)).all()
    return rows, audit


def states(ws: Workspace) -> dict[str, str]:
    return {s.rule_id: s.state.value for s in registry.list_rules(Store.from_workspace(ws))}


def test_off_by_default_nothing_moves(tmp_path, db_url, monkeypatch):
    ws = make_ws(tmp_path, db_url, monkeypatch)
    assert ws.settings.shadow_auto_promote is False
    for day in (DAY1, DAY2):
        serve_day(ws, day, PER_DAY)
        report = night(ws, day)
    assert (report.promoted, report.shadow_waiting) == ([], {})
    assert set(states(ws).values()) == {"shadow"}
    assert promotions(ws) == ([], [])


def test_on_promotes_the_ready_rules_and_says_what_the_short_one_needs(ws):
    serve_day(ws, DAY1, PER_DAY)
    first = night(ws, DAY1)
    assert first.promoted == []
    assert first.shadow_waiting == {
        "faq.hours": "33 more labelled rows, about 1 day",  # 73 - 40, at 40 a day
        "order_tracking.where": "68 more labelled rows, about 14 days",  # 73 - 5, at 5 a day
        "promotion.sale": "33 more labelled rows, about 1 day",
    }
    bundles = BundleStore(ws.bundle_dir)
    before = bundles.numbers()

    serve_day(ws, DAY2, PER_DAY)
    report = night(ws, DAY2)
    assert report.promoted == ["faq.hours", "promotion.sale"]
    assert report.shadow_waiting == {"order_tracking.where": "63 more labelled rows, about 13 days"}
    assert states(ws) == {"faq.hours": "active", "order_tracking.where": "shadow", "promotion.sale": "active"}
    # Both promotions are served by one new bundle, published once.
    assert bundles.numbers() == [*before, before[-1] + 1] and report.bundle_published
    assert report.bundle == before[-1] + 1
    served = {r.id: r.shadow for r in bundles.current().rules}
    assert served == {"faq.hours": False, "order_tracking.where": True, "promotion.sale": False}

    rows, audit = promotions(ws)
    assert [(r.rule_id, r.actor, r.dataset_hash) for r in rows] == [
        ("faq.hours", "nightly", "live shadow"), ("promotion.sale", "nightly", "live shadow")]
    assert json.loads(rows[1].metrics)["window"] == {"first_day": str(DAY1), "last_day": str(DAY2)}
    assert [(a.rule_id, a.actor, a.from_state, a.to_state) for a in audit] == [
        ("faq.hours", "nightly", "shadow", "active"), ("promotion.sale", "nightly", "shadow", "active")]
    assert audit[1].reason == (
        f"nightly auto-promotion of {DAY2}: live agreement 100.0% (95% interval 95.4%-100.0%, 80 labelled rows), "
        f"no safety false positive; promotion gate passed on live shadow evidence ({DAY1}..{DAY2})")
    assert report.to_dict()["promoted"] == ["faq.hours", "promotion.sale"]


def test_a_rerun_of_the_same_night_promotes_nothing_twice(ws):
    for day in (DAY1, DAY2):
        serve_day(ws, day, PER_DAY)
        night(ws, day)
    numbers = BundleStore(ws.bundle_dir).numbers()
    again = night(ws, DAY2)
    assert again.promoted == [] and not again.bundle_published
    assert again.shadow_waiting == {"order_tracking.where": "63 more labelled rows, about 13 days"}
    rows, audit = promotions(ws)
    assert [r.rule_id for r in rows] == [a.rule_id for a in audit] == ["faq.hours", "promotion.sale"]
    assert BundleStore(ws.bundle_dir).numbers() == numbers


def test_a_crash_after_promoting_before_publishing_is_finished_by_the_rerun(ws, monkeypatch):
    serve_day(ws, DAY1, PER_DAY)
    night(ws, DAY1)
    serve_day(ws, DAY2, PER_DAY)
    published = BundleStore(ws.bundle_dir).current().number

    def crash(*args, **kwargs):
        raise RuntimeError("killed")

    # The process dies between the promotions (committed) and the republish.
    monkeypatch.setattr(nightly, "publish_active", crash)
    with pytest.raises(RuntimeError, match="killed"):
        night(ws, DAY2)
    monkeypatch.setattr(nightly, "publish_active", publish.publish_active)  # the next run is healthy
    assert states(ws)["promotion.sale"] == "active"
    assert BundleStore(ws.bundle_dir).current().number == published

    rerun = night(ws, DAY2)
    assert rerun.promoted == [] and rerun.bundle_published and rerun.bundle == published + 1
    rows, audit = promotions(ws)
    assert [r.rule_id for r in rows] == [a.rule_id for a in audit] == ["faq.hours", "promotion.sale"]
    served = {r.id: r.shadow for r in BundleStore(ws.bundle_dir).current().rules}
    assert served == {"faq.hours": False, "order_tracking.where": True, "promotion.sale": False}


def test_a_rule_with_a_safety_fp_tonight_is_disabled_and_not_promoted(ws):
    serve_day(ws, DAY1, PER_DAY)
    night(ws, DAY1)
    serve_day(ws, DAY2, PER_DAY, unsafe="promotion.sale")
    report = night(ws, DAY2, nightly.load_monitors(["safety_fp"], ws.settings))
    assert report.disabled == ["promotion.sale"]
    assert report.promoted == ["faq.hours"]
    assert "promotion.sale" not in report.shadow_waiting  # disabled first: no longer in shadow
    assert states(ws)["promotion.sale"] == "disabled"
    assert [a.rule_id for a in promotions(ws)[1]] == ["faq.hours"]


def edit_sale(ws: Workspace) -> None:
    (ws.rules_dir / "promotion" / "sale.yaml").write_text(RULES["promotion/sale.yaml"].replace(
        '["sale"]', '["sale", "discount"]') + COMMON)
    registry.sync_workspace(ws, actor="ana")


def test_an_edited_shadow_rule_is_a_candidate_and_is_not_judged(ws):
    for day in (DAY1, DAY2):
        serve_day(ws, day, PER_DAY)
    edit_sale(ws)  # sync makes it a candidate at the new version
    night(ws, DAY1)
    report = night(ws, DAY2)
    assert report.promoted == ["faq.hours"]
    assert "promotion.sale" not in report.shadow_waiting and states(ws)["promotion.sale"] == "candidate"


def test_an_edit_synced_while_the_rule_is_judged_is_not_promoted_on_the_old_evidence(tmp_path, db_url, monkeypatch):
    ws = make_ws(tmp_path, db_url, monkeypatch)  # auto-promotion off: the rule waits in shadow with its evidence
    for day in (DAY1, DAY2):
        serve_day(ws, day, PER_DAY)
        night(ws, day)
    store = Store.from_workspace(ws)
    old = registry.get_status(store, "promotion.sale").version
    read = live_evidence.live_evidence

    def read_then_sync(*args, **kwargs):
        found = read(*args, **kwargs)
        edit_sale(ws)  # someone syncs an edit right after the evidence was read
        return found

    monkeypatch.setattr(live_evidence, "live_evidence", read_then_sync)
    with pytest.raises(LifecycleError) as refused:
        live_evidence.promote_live(ws, "promotion.sale", actor="ana", store=store)
    new = registry.get_status(store, "promotion.sale").version
    assert str(refused.value) == (
        f"promotion.sale was edited while it was judged: the live evidence is for version {old}, the rule is now "
        f"at {new}; move it to shadow to gather live evidence for it, or build a dataset and "
        "`rulelife promote promotion.sale`")
    assert states(ws)["promotion.sale"] == "candidate"  # the transition rolled back


def test_cli_nightly_lists_promoted_and_waiting_rules(ws):
    serve_day(ws, DAY1, PER_DAY)
    night(ws, DAY1)
    serve_day(ws, DAY2, PER_DAY)
    args = ["--workspace", str(ws.root), "monitor", "nightly", "--date", str(DAY2)]
    result = CliRunner().invoke(app, [*args])
    assert result.exit_code == 0, result.output
    assert "promoted faq.hours to active on its live shadow evidence" in result.output
    assert "promoted promotion.sale to active on its live shadow evidence" in result.output
    assert "in shadow order_tracking.where: 63 more labelled rows, about 13 days" in result.output
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert (data["promoted"], data["shadow_waiting"]) == (
        [], {"order_tracking.where": "63 more labelled rows, about 13 days"})  # the re-run promotes nothing


# ---------------------------------------------------------------- the setting
def test_the_setting_is_written_and_read_from_rulelife_toml(tmp_path):
    ws = Workspace.create(tmp_path / "ws")
    text = ws.config_file.read_text()
    assert "shadow_auto_promote = false" in text
    ws.config_file.write_text(text.replace("shadow_auto_promote = false", "shadow_auto_promote = true"))
    assert Workspace.load(ws.root).settings.shadow_auto_promote is True
    ws.config_file.write_text(text.replace("shadow_auto_promote = false", 'shadow_auto_promote = "sometimes"'))
    with pytest.raises(ConfigError, match="setting 'shadow_auto_promote' .*RULELIFE_SHADOW_AUTO_PROMOTE"):
        Workspace.load(ws.root)


# ---------------------------------------------------------------- what a waiting rule needs
def evidence(labelled: int, agree: int, rate: float, safety_fp: int = 0) -> LiveEvidence:
    days = (date(2026, 2, 1), date(2026, 2, 3)) if labelled else (None, None)
    return LiveEvidence("promotion.sale", "v1", date(2026, 2, 1), *days, fires=labelled, labelled=labelled,
                        agree=agree, safety_fp=safety_fp,
                        fp_by_class={"return_request": safety_fp} if safety_fp else {},
                        recent_daily_labelled=rate)


@pytest.fixture
def settings(tmp_path):
    return Workspace.create(tmp_path / "ws", settings={"dataset_floor": 50}).settings


def test_no_rows_yet_needs_the_floor_and_the_days_are_unknown(settings):
    # Even a perfect rate needs 73 rows before the lower bound clears 95% (see the top of the file).
    standing = standing_of(evidence(0, 0, 0.0), settings)
    assert (standing.more_rows, standing.days) == (73, None)
    assert standing.summary == "73 more labelled rows, days unknown until it fires on labelled traffic"


def test_an_unsettled_agreement_needs_the_rows_that_would_settle_it(settings):
    # 58 of 60 = 96.7%: above the floor, but the interval's lower bound (~88.6%) is not.
    standing = standing_of(evidence(60, 58, 20.0), settings)
    settle = samples_to_settle(58, 60, 0.95)
    assert settle > 0 and standing.more_rows == settle and standing.days == math.ceil(settle / 20)
    assert standing.summary == f"{settle} more labelled rows, about {math.ceil(settle / 20)} days"
    assert [c.name for c in standing.decision.checks if not c.passed] == ["agreement"]


def test_agreement_below_the_floor_and_a_safety_fp_need_no_more_rows(settings):
    low = standing_of(evidence(60, 54, 20.0), settings)  # 90%
    assert (low.more_rows, low.days) == (None, None)
    assert low.summary == ("live agreement 90.0% on 60 labelled rows is below the floor; more rows will not lift "
                           "it: narrow the patterns")
    unsafe = standing_of(evidence(60, 60, 20.0, safety_fp=1), settings)
    assert unsafe.more_rows is None
    assert unsafe.summary == ("would have answered 1 live query labelled as safety intents; this version will not be "
                              "promoted")
    ready = standing_of(evidence(80, 80, 40.0), settings)
    assert (ready.more_rows, ready.days, ready.decision.passed) == (0, 0, True)
    assert ready.summary == "ready: clears the gate on 80 labelled live rows (2026-02-01..2026-02-03)"
