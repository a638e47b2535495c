"""Drift scenarios: each changes what it claims, from its start day and not before."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rulelife.rules.definition import load_rules
from rulelife.rules.matcher import Matcher
from rulelife.simulate import Scenario, calibration_error, default_scenarios, simulate_traffic, write_ground_truth
from rulelife.simulate.scenarios import confidence_scale_on, intent_shares_on, locale_shares_on

RULES_DIR = Path(__file__).resolve().parents[2] / "rules"
START, DAYS = dt.date(2026, 11, 1), 20
# default_scenarios(START, 20): 40%, 55%, 70%, 85% of 20 days in.
UI, CAMPAIGN, GROWTH, RETRAIN = (dt.date(2026, 11, d) for d in (9, 12, 15, 18))


@pytest.fixture(scope="module")
def drifted() -> pd.DataFrame:
    frame = simulate_traffic(
        start=START, days=DAYS, queries_per_day=1500, seed=3, scenarios=default_scenarios(START, DAYS)
    )
    return frame.assign(day=frame["ts"].dt.date)


@pytest.fixture(scope="module")
def winners(drifted) -> pd.DataFrame:
    """The shipped rule that wins each row, and its intent (None where no rule fires)."""
    matcher = Matcher.from_rules(rf.rule for rf in load_rules(RULES_DIR))
    results = matcher.match_many(drifted["text"], drifted["locale"])
    return pd.DataFrame(
        {
            "rule_id": [r.rule_id if r else None for r in results],
            "rule_intent": [r.intent if r else None for r in results],
        },
        index=drifted.index,
    )


def _between(frame: pd.DataFrame, first: dt.date, last: dt.date) -> pd.DataFrame:
    """Rows of days first .. last - 1."""
    return frame[(frame["day"] >= first) & (frame["day"] < last)]


def test_default_scenarios_start_on_distinct_days_inside_the_range():
    scenarios = default_scenarios(START, DAYS)
    assert [(s.name, s.start_day) for s in scenarios] == [
        ("ui_rephrase", UI),
        ("order_return_campaign", CAMPAIGN),
        ("locale_growth", GROWTH),
        ("model_retrain", RETRAIN),
    ]
    short = default_scenarios(START, 7)
    assert len({s.start_day for s in short}) == 4
    assert all(START < s.start_day < START + dt.timedelta(days=7) for s in short)


def test_default_scenarios_need_a_week():
    with pytest.raises(ValueError, match="at least 7 days.*got 6"):
        default_scenarios(START, 6)


def test_nothing_changes_before_the_first_scenario(drifted):
    plain = simulate_traffic(start=START, days=DAYS, queries_per_day=1500, seed=3)
    before = drifted[drifted["day"] < UI].drop(columns="day")
    pd.testing.assert_frame_equal(before, plain.iloc[: len(before)])
    assert not drifted[drifted["day"] >= UI]["text"].reset_index(drop=True).equals(
        plain[plain["ts"].dt.date >= UI]["text"].reset_index(drop=True)
    )


def test_ui_rephrase_turns_order_tracking_into_package_status(drifted, winners):
    tracking = drifted["true_intent"] == "order_tracking"
    new_words = drifted["text"].str.lower().str.contains("package status|delivery status|estado del|ステータス")
    share = new_words[tracking].groupby(drifted.loc[tracking, "day"]).mean()
    assert (share[share.index < UI] == 0).all()
    assert (share[share.index >= UI] > 0.3).all()
    # ... so the order-tracking rules cover fewer order-tracking queries.
    covered = (winners["rule_intent"] == "order_tracking")[tracking]
    by_day = covered.groupby(drifted.loc[tracking, "day"]).mean()
    before, after = by_day[by_day.index < UI].mean(), by_day[(by_day.index >= UI)].mean()
    assert after < 0.7 * before


def test_order_return_campaign_makes_order_tracking_rules_disagree(drifted, winners):
    returns = drifted["true_intent"] == "return_request"
    share = returns.groupby(drifted["day"]).mean()
    assert share[share.index >= CAMPAIGN].mean() > 1.5 * share[share.index < CAMPAIGN].mean()
    fired = winners["rule_id"] == "order_tracking.order_status"
    agrees = (drifted["model_intent"] == "order_tracking")[fired]
    by_day = agrees.groupby(drifted.loc[fired, "day"]).mean()
    assert by_day[by_day.index < CAMPAIGN].min() >= 0.9
    assert by_day[by_day.index >= CAMPAIGN].max() < 0.85
    # Return requests now say "order status" -- and none did before.
    says = drifted["text"].str.lower().str.contains("order status")[returns]
    assert not says[drifted.loc[returns, "day"] < CAMPAIGN].any()
    assert says[drifted.loc[returns, "day"] >= CAMPAIGN].mean() > 0.15


def test_locale_growth_grows_the_spanish_share_from_its_day(drifted):
    es = (drifted["locale"] == "es-ES").groupby(drifted["day"]).mean()
    assert es[es.index < GROWTH].mean() == pytest.approx(0.15, abs=0.02)
    assert es[es.index == dt.date(2026, 11, 20)].iloc[0] > 0.18
    # By hand: day one of the scenario carries one step of 1 point, day six six points.
    scenarios = default_scenarios(START, DAYS)
    assert locale_shares_on(GROWTH - dt.timedelta(days=1), scenarios) == pytest.approx([0.65, 0.20, 0.15])
    assert locale_shares_on(GROWTH, scenarios)[2] == pytest.approx(0.16)
    grown = locale_shares_on(GROWTH + dt.timedelta(days=5), scenarios)
    assert grown[2] == pytest.approx(0.21)
    assert grown[0] / grown[1] == pytest.approx(0.65 / 0.20)  # the others shrink in proportion
    assert locale_shares_on(GROWTH + dt.timedelta(days=400), scenarios)[2] == pytest.approx(0.35)  # capped


def test_model_retrain_lowers_confidence_but_not_accuracy(drifted):
    # Outside the intent it relabels (promotion, see the next test).
    kept = drifted[drifted["model_intent"] != "faq"]
    before = _between(kept, GROWTH, RETRAIN)
    after = kept[kept["day"] >= RETRAIN]
    assert after["model_confidence"].mean() < before["model_confidence"].mean() - 0.04
    accuracy = [(part["model_intent"] == part["true_intent"]).mean() for part in (before, after)]
    assert accuracy[1] == pytest.approx(accuracy[0], abs=0.02)

    def error(part: pd.DataFrame) -> float:
        correct = (part["model_intent"] == part["true_intent"]).to_numpy(dtype=bool)
        return calibration_error(part["model_confidence"].to_numpy(dtype=float), correct)

    assert error(before) < 0.05 < error(after)  # the retrained model is under-confident
    assert confidence_scale_on(RETRAIN - dt.timedelta(days=1), default_scenarios(START, DAYS)) == 1.0


def test_model_retrain_names_the_new_model_and_relabels_a_fifth_of_promotion_as_faq(drifted):
    versions = drifted.groupby("day")["model_version"].unique()
    assert all(list(v) == ["model-1"] for d, v in versions.items() if d < RETRAIN)
    assert all(list(v) == ["model-2"] for d, v in versions.items() if d >= RETRAIN)
    same_day = simulate_traffic(start=RETRAIN, days=1, queries_per_day=5000, seed=3)
    relabelled = simulate_traffic(start=RETRAIN, days=1, queries_per_day=5000, seed=3,
                                  scenarios=[s for s in default_scenarios(START, DAYS) if s.name == "model_retrain"])
    # The relabel draws from its own stream: every other column is the day without the retrain.
    assert (same_day["text"] == relabelled["text"]).all()
    moved = same_day["model_intent"] != relabelled["model_intent"]
    assert set(same_day["model_intent"][moved]) == {"promotion"} and set(relabelled["model_intent"][moved]) == {"faq"}
    # A fifth of what model-1 called promotion (a binomial share of ~350 rows: within 0.05 of 0.2).
    assert moved.sum() / (same_day["model_intent"] == "promotion").sum() == pytest.approx(0.2, abs=0.05)


def test_intent_shares_by_hand():
    campaign = next(s for s in default_scenarios(START, DAYS) if s.name == "order_return_campaign")
    assert intent_shares_on(CAMPAIGN - dt.timedelta(days=1), [campaign])[6] == pytest.approx(0.05)
    # Return requests double: 0.10 / (1 - 0.05 + 0.10).
    assert intent_shares_on(CAMPAIGN, [campaign])[6] == pytest.approx(0.10 / 1.05)
    assert intent_shares_on(CAMPAIGN, [campaign]).sum() == pytest.approx(1.0)


def test_ground_truth_json(tmp_path):
    path = write_ground_truth(default_scenarios(START, DAYS), tmp_path / "truth" / "scenarios.json")
    records = json.loads(path.read_text(encoding="utf-8"))["scenarios"]
    assert [(r["name"], r["first_day"], r["kind"]) for r in records] == [
        ("ui_rephrase", "2026-11-09", "rephrase"),
        ("order_return_campaign", "2026-11-12", "rephrase"),
        ("locale_growth", "2026-11-15", "locale_growth"),
        ("model_retrain", "2026-11-18", "model_retrain"),
    ]
    campaign = records[1]
    assert campaign["intents"] == ["return_request"]
    assert campaign["locales"] == ["en-US", "es-ES"]
    assert "order_tracking.order_status" in campaign["rules"]
    assert campaign["parameters"] == {"phrasings": "order_return_campaign", "share": 0.5, "volume_factor": 2.0}
    assert records[3]["parameters"] == {"confidence_scale": 0.6, "model_version": "model-2",
                                        "relabel_from": "promotion", "relabel_to": "faq", "relabel_share": 0.2}
    assert all(r["description"] for r in records)
    shipped = {rf.rule.id for rf in load_rules(RULES_DIR)}
    named = {rule for r in records for rule in r["rules"]}
    assert named <= shipped, f"ground truth names rules that are not shipped: {sorted(named - shipped)}"


def test_scenarios_are_frozen():
    scenario = default_scenarios(START, DAYS)[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        scenario.share = 0.9  # type: ignore[misc]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"kind": "meteor"}, "Unknown scenario kind: 'meteor', expected one of rephrase, locale_growth, model_retrain."),
        ({"phrasings": "nope"}, "phrasings 'nope' is unknown"),
        ({"share": 1.5}, "share must be in (0, 1], got 1.5"),
        ({"intents": ("refunds",)}, "intents must be a non-empty subset"),
        ({"intents": ("faq",)}, "has no faq phrasings in en-US"),
        ({"start_day": "2026-11-09"}, "start_day must be a datetime.date"),
        (
            {"kind": "locale_growth", "locales": ("en-US", "es-ES"), "share_per_day": 0.01, "max_share": 0.5},
            "grows exactly one locale",
        ),
        ({"kind": "model_retrain", "confidence_scale": 0.0}, "confidence_scale must be greater than 0, got 0.0"),
        ({"kind": "model_retrain", "model_version": "model-1"}, "model_version must name the new model"),
        ({"kind": "model_retrain", "relabel_share": 0.2, "relabel_from": "promotion", "relabel_to": "promotion"},
         "relabel_from and relabel_to must be two different intents"),
        ({"kind": "model_retrain", "relabel_share": 1.5}, "relabel_share must be in [0, 1], got 1.5"),
    ],
)
def test_invalid_scenarios_are_refused(changes, message):
    base = dict(
        name="ui",
        kind="rephrase",
        start_day=UI,
        description="d",
        intents=("order_tracking",),
        locales=("en-US",),
        phrasings="package_status",
        share=0.5,
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        Scenario(**{**base, **changes})


def test_a_custom_scenario_runs():
    growth = Scenario(
        name="ja_growth",
        kind="locale_growth",
        start_day=START,
        description="Japanese launch",
        locales=("ja-JP",),
        share_per_day=0.2,
        max_share=0.8,
    )
    frame = simulate_traffic(start=START, days=3, queries_per_day=1000, seed=0, scenarios=[growth])
    ja = (frame["locale"] == "ja-JP").groupby(frame["ts"].dt.date).mean().to_numpy()
    assert np.allclose(ja, [0.4, 0.6, 0.8], atol=0.05)
