"""Residual share, confidence and accuracy: counted by hand on the fixture's eight rows."""

from __future__ import annotations

import math

import pytest

from rulelife.engines.fold import fold_log
from rulelife.model.fallback import fallback_readiness
from rulelife.model.residual import ResidualPass, ResidualReport
from rulelife.model.run import measure_residual
from tests.model.conftest import AGENT_ID, DAY1, ROWS, WHERE_ID, log_frame, write_day

INTENTS = {WHERE_ID: "order_tracking", AGENT_ID: "escalation"}


def report_of(frame) -> ResidualReport:
    return ResidualReport(ResidualPass(INTENTS)(frame))


def test_residual_share_and_both_accuracies():
    summary = report_of(log_frame(ROWS, DAY1, 1)).summary()
    assert (summary["queries"], summary["residual"], summary["residual_share"]) == (8, 4, 0.5)
    assert summary["all_accuracy"]["accuracy"] == 3 / 5
    assert summary["residual_accuracy"]["accuracy"] == 2 / 3
    assert summary["all_accuracy"]["n"] == 5 and summary["residual_accuracy"]["n"] == 3
    # Confidences: all scored rows 0.9 0.6 0.8 0.4 0.2 0.7; residual 0.8 0.4 0.2 0.7.
    assert summary["confidence_mean"] == pytest.approx(3.6 / 6)
    assert summary["residual_confidence_mean"] == pytest.approx(2.1 / 4)
    assert summary["residual_low_confidence_share"] == 2 / 4


def test_intents_are_what_was_served():
    frame = report_of(log_frame(ROWS, DAY1, 1)).intents().set_index("intent")
    assert frame.loc["order_tracking", ["queries", "residual"]].tolist() == [3, 0]
    assert frame.loc["escalation", ["queries", "residual"]].tolist() == [1, 0]
    assert frame.loc["faq", ["queries", "residual", "residual_labelled", "residual_correct"]].tolist() == [2, 2, 2, 2]
    assert frame.loc["chitchat", ["queries", "residual", "residual_labelled", "residual_correct"]].tolist() == [2, 2, 1, 0]
    assert math.isnan(frame.loc["escalation", "all_accuracy"])  # no label: unknown, not 0


def test_chunks_add_up_to_the_whole():
    frame = log_frame(ROWS, DAY1, 1)
    parts = ResidualPass(INTENTS)(frame.iloc[:3]) + ResidualPass(INTENTS)(frame.iloc[3:])
    assert ResidualReport(parts).cells().equals(report_of(frame).cells())


def test_unstamped_rows_count_under_the_days_bundle():
    frame = log_frame(ROWS, DAY1, 7)
    frame.loc[frame["rule_id"].isna(), "bundle_version"] = None  # as a replayed log writes it
    bundles = report_of(frame).bundles()
    assert bundles["bundle"].tolist() == [7] and bundles["queries"].tolist() == [8]


def test_a_log_without_labels_has_no_accuracy():
    frame = log_frame(ROWS, DAY1, 1).drop(columns=["true_intent"])
    summary = report_of(frame).summary()
    assert summary["residual_accuracy"]["n"] == 0 and math.isnan(summary["residual_accuracy"]["accuracy"])


def test_fallback_readiness_from_the_shadow_sample():
    fallback = fallback_readiness(report_of(log_frame(ROWS, DAY1, 1)))
    assert fallback.calls_last_day == 4  # rows 1-4: a rule answered them
    assert fallback.shadow_accuracy["accuracy"] == 1 / 2  # rows 1 and 3
    assert fallback.shadow_agreement["accuracy"] == 1 / 2
    assert "take back 4 calls a day" in fallback.line()
    assert "load-bearing" in fallback.check(0.5)  # 1 of 2 right: the interval's low end is far below 0.5
    assert fallback.check(0.0) is None


@pytest.mark.parametrize("engine", ["local", "local-pool"])
def test_measured_over_a_workspace_log_on_every_local_engine(ws, engine):
    write_day(ws, ROWS, DAY1)
    report = measure_residual(ws, engine=engine)
    assert report.summary()["residual_accuracy"]["accuracy"] == 2 / 3
    assert report.days()["day"].tolist() == [DAY1.isoformat()]


def test_the_step_agrees_with_fold_log_on_a_file(tmp_path):
    path = tmp_path / "log.parquet"
    log_frame(ROWS, DAY1, 1).to_parquet(path, index=False)
    total = fold_log(ResidualPass(INTENTS), path)
    assert ResidualReport(total).totals()["residual_correct"] == 2
