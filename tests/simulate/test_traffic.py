"""The simulated query log: determinism, the log contract, volumes, mixes, the model."""

from __future__ import annotations

import datetime as dt
import re

import pandas as pd
import pytest

from rulelife.rules.normalize import normalize
from rulelife.simulate import LOG_COLUMNS, LOG_DTYPES, Scenario, calibration_error, simulate_traffic, write_log

START = dt.date(2026, 11, 1)  # a Sunday


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    """20,000-odd rows over four days, no drift."""
    return simulate_traffic(start=START, days=4, queries_per_day=5000, seed=0)


def test_same_seed_gives_the_same_frame():
    a = simulate_traffic(start=START, days=2, queries_per_day=1000, seed=11)
    b = simulate_traffic(start=START, days=2, queries_per_day=1000, seed=11)
    pd.testing.assert_frame_equal(a, b)


def test_another_seed_gives_another_frame():
    a = simulate_traffic(start=START, days=1, queries_per_day=1000, seed=11)
    b = simulate_traffic(start=START, days=1, queries_per_day=1000, seed=12)
    assert len(a) != len(b) or not a["text"].equals(b["text"])


def test_a_day_does_not_depend_on_where_the_range_starts():
    long = simulate_traffic(start=START, days=3, queries_per_day=800, seed=5)
    third = simulate_traffic(start=START + dt.timedelta(days=2), days=1, queries_per_day=800, seed=5)
    tail = long[long["ts"] >= pd.Timestamp("2026-11-03", tz="UTC")].reset_index(drop=True)
    pd.testing.assert_frame_equal(tail, third)


def test_columns_and_dtypes_follow_the_log_contract(frame):
    assert list(frame.columns) == list(LOG_COLUMNS)
    assert {name: str(dtype) for name, dtype in frame.dtypes.items()} == LOG_DTYPES
    assert frame["query_id"].is_unique
    assert frame["query_id"].str.fullmatch(r"q-2026110[1-4]-\d{6}").all()
    assert frame["query_id"].iloc[0] == "q-20261101-000000"
    for name in ("text", "locale", "model_intent", "model_confidence", "true_intent"):
        assert frame[name].notna().all(), name
    # Runtime columns: filled by a replay, never by the simulator.
    for name in ("rule_id", "rule_version", "bundle_version", "shadow"):
        assert frame[name].isna().all(), name
    assert frame["model_confidence"].between(0, 1).all()
    assert set(frame["locale"].unique()) == {"en-US", "ja-JP", "es-ES"}


def test_timestamps_are_utc_sorted_and_inside_their_day(frame):
    assert str(frame["ts"].dt.tz) == "UTC"
    assert frame["ts"].is_monotonic_increasing
    day_of_id = pd.to_datetime(frame["query_id"].str.slice(2, 10), format="%Y%m%d").dt.date
    assert (frame["ts"].dt.date == day_of_id).all()


def test_write_log_writes_one_parquet_file_per_day_that_round_trips(frame, tmp_path):
    paths = write_log(frame, tmp_path / "log")
    assert [p.name for p in paths] == [f"queries-2026-11-0{d}.parquet" for d in (1, 2, 3, 4)]
    back = pd.concat([pd.read_parquet(p) for p in paths], ignore_index=True)
    pd.testing.assert_frame_equal(back, frame)
    # Re-running overwrites the same files and leaves no temporary file behind.
    assert write_log(frame, tmp_path / "log") == paths
    assert sorted((tmp_path / "log").iterdir()) == paths


def test_write_log_refuses_a_frame_without_timestamps(tmp_path):
    with pytest.raises(ValueError, match="tz-aware 'ts' column"):
        write_log(pd.DataFrame({"text": ["hi"]}), tmp_path)


def test_daily_volume_has_a_mild_weekly_cycle():
    two_weeks = simulate_traffic(start=START, days=14, queries_per_day=2000, seed=2)
    per_day = two_weeks.groupby(two_weeks["ts"].dt.date).size()
    assert len(per_day) == 14
    assert abs(per_day.sum() / 28_000 - 1) < 0.03
    assert per_day.between(0.8 * 2000, 1.2 * 2000).all()
    weekday = pd.Series(pd.to_datetime(per_day.index).day_of_week, index=per_day.index)
    assert per_day[weekday == 0].mean() > per_day[weekday == 5].mean()  # Mondays busier than Saturdays


def test_locale_shares(frame):
    shares = frame["locale"].value_counts(normalize=True)
    assert shares["en-US"] == pytest.approx(0.65, abs=0.02)
    assert shares["ja-JP"] == pytest.approx(0.20, abs=0.02)
    assert shares["es-ES"] == pytest.approx(0.15, abs=0.02)


def test_intent_mix_is_plausible_for_a_store(frame):
    shares = frame["true_intent"].value_counts(normalize=True)
    assert shares.index[0] == "order_tracking"
    assert shares.index[-1] == "escalation"
    assert shares["order_tracking"] == pytest.approx(0.30, abs=0.015)
    assert shares["return_request"] == pytest.approx(0.05, abs=0.01)


def test_model_accuracy_is_about_92_percent(frame):
    accuracy = (frame["model_intent"] == frame["true_intent"]).mean()
    assert 0.90 <= accuracy <= 0.94


def test_model_confidence_is_calibrated(frame):
    correct = (frame["model_intent"] == frame["true_intent"]).to_numpy(dtype=bool)
    error = calibration_error(frame["model_confidence"].to_numpy(dtype=float), correct)
    assert error < 0.1
    # Confidence must also separate right from wrong, not only be calibrated on average.
    confidence = frame["model_confidence"].to_numpy(dtype=float)
    assert confidence[correct].mean() - confidence[~correct].mean() > 0.15


def test_model_errors_are_plausible_confusions(frame):
    wrong = frame[frame["model_intent"] != frame["true_intent"]]
    top = wrong.groupby("true_intent")["model_intent"].agg(lambda s: s.value_counts().index[0])
    assert top["return_request"] == "order_tracking"
    assert top["escalation"] == "chitchat"


def test_calibration_error_by_hand():
    # Bin 0.9: 1 of 2 right (0.5 vs 0.9); bin 0.6: 2 of 2 right (1.0 vs 0.6): (2*0.4 + 2*0.4) / 4.
    assert calibration_error([0.9, 0.9, 0.6, 0.6], [True, False, True, True]) == pytest.approx(0.4)
    assert calibration_error([0.5, 0.5, 1.0], [True, False, True]) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="at least one row"):
        calibration_error([], [])


def test_queries_have_many_phrasings_and_human_noise(frame):
    en = frame[frame["locale"] == "en-US"]
    tracking = en[en["true_intent"] == "order_tracking"]["text"]
    assert tracking.nunique() > 1000  # slots: order numbers, titles, volumes, dates
    assert tracking.str.contains(r"#\d{6}").mean() > 0.3
    assert frame[frame["locale"] == "ja-JP"]["text"].str.contains("注文番号").any()
    texts = set(en["text"])
    assert any(t == t.lower() and re.search("[a-z]", t) for t in texts)  # lower case
    assert any(t == t.upper() and re.search("[A-Z]", t) for t in texts)  # capitals
    assert any(t.endswith("??") for t in texts)
    hello_typos = {"helo", "hllo", "hell", "ehllo", "hlelo", "hello", "helol", "hhello", "heello", "helllo", "helloo"}
    bare = {re.sub(r"[?!.]+$", "", normalize(t)) for t in texts}
    assert len(bare & hello_typos - {"hello"}) >= 1  # character swaps, drops, doubles


def test_some_queries_mix_vocabulary_across_intents(frame):
    en = frame[frame["locale"] == "en-US"]
    mentions_order = en["text"].str.lower().str.contains("my order")
    assert mentions_order[en["true_intent"] == "return_request"].any()
    assert mentions_order[en["true_intent"] == "escalation"].any()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"start": dt.datetime(2026, 11, 1)}, "start must be a datetime.date"),
        ({"start": "2026-11-01"}, "start must be a datetime.date"),
        ({"days": 0}, "days must be an integer of at least 1, got 0"),
        ({"queries_per_day": 2.5}, "queries_per_day must be an integer"),
        ({"seed": -1}, "seed must be an integer of at least 0"),
        ({"scenarios": ["ui_rephrase"]}, "scenarios must be Scenario objects"),
    ],
)
def test_invalid_arguments_are_refused_with_the_bad_value(kwargs, message):
    arguments = {"start": START, "days": 1, "queries_per_day": 10, **kwargs}
    with pytest.raises(ValueError, match=re.escape(message)):
        simulate_traffic(**arguments)


def test_duplicate_scenario_names_are_refused():
    retrain = Scenario(name="x", kind="model_retrain", start_day=START, description="d", confidence_scale=0.5)
    with pytest.raises(ValueError, match="unique"):
        simulate_traffic(start=START, days=1, queries_per_day=10, scenarios=[retrain, retrain])
