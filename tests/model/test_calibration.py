"""Calibration per model version: ECE, reliability, precision at the miner's threshold, the threshold that keeps it."""

from __future__ import annotations

import json
from datetime import date

import pandas as pd
import pytest
from typer.testing import CliRunner

from rulelife.cli import app
from rulelife.errors import ConfigError, LogError, NoLabels
from rulelife.evidence.evaluation.stats import wilson_interval
from rulelife.mining import MIN_CONFIDENCE
from rulelife.model.calibration import BUCKETS, CalibrationPass, calibrate
from rulelife.model.run import measure_calibration
from tests.model.conftest import WHERE_ID

runner = CliRunner()

# (confidence, right?) -- ECE by hand over 10 bins, sum |right_b - confidence sum_b| / n:
#   [0.9, 1): 3 rows, 2 right, sum 2.85 -> 0.85;  [0.8, 0.9): 2 right, 1.7 -> 0.3;
#   [0.6, 0.7): 1 right, 1.3 -> 0.3;  [0.5, 0.6): 0, 0.55;  [0.3, 0.4): 1, 0.35 -> 0.65;  [0.1, 0.2): 0, 0.15
#   -> 2.8 / 10 = 0.28. Precision at >= 0.95: 2 of 3.
TEN = [(0.95, True), (0.95, True), (0.95, False), (0.85, True), (0.85, True), (0.65, True), (0.65, False),
       (0.55, False), (0.35, True), (0.15, False)]

# Two retrains against v1 (the reference): v1's precision at >= 0.95 is 9/10 = 0.9.
#   v2 is overconfident: at 0.99 9 of 9 right, at 0.97 5 of 10; at >= 0.97 14/19 < 0.9, so 0.99 keeps 0.9.
#   v3 is underconfident: at 0.90 10 of 10, at 0.80 1 of 2; at >= 0.80 11/12 >= 0.9, so 0.80 keeps it.
VERSIONS = ([("v1", 0.97, True)] * 9 + [("v1", 0.97, False)]
            + [("v2", 0.99, True)] * 9 + [("v2", 0.97, True)] * 5 + [("v2", 0.97, False)] * 5
            + [("v3", 0.90, True)] * 10 + [("v3", 0.80, True), ("v3", 0.80, False)])


def frame(rows, *, versions=None, day=date(2026, 2, 1), truth=True, rule_id=None, prefix="c") -> pd.DataFrame:
    """A model-only log: every row answered by the model, ``faq`` when right, ``chitchat`` when wrong."""
    n = len(rows)
    out = pd.DataFrame({
        "query_id": [f"{prefix}{i}" for i in range(n)],
        "ts": [pd.Timestamp(day, tz="UTC") + pd.Timedelta(minutes=i) for i in range(n)],
        "text": ["where is my order" if rule_id else "hi"] * n, "locale": ["en-US"] * n,
        "model_intent": pd.array(["faq" if right else "chitchat" for _, right in rows], dtype="string"),
        "model_confidence": pd.array([c for c, _ in rows], dtype="Float64"),
        "rule_id": pd.array([rule_id] * n, dtype="string"),
    })
    if truth:
        out["true_intent"] = pd.array(["faq"] * n, dtype="string")
    if versions is not None:
        out["model_version"] = pd.array(versions, dtype="string")
    return out


def version_frame(prefix="c") -> pd.DataFrame:
    # v1's rows first in time, so it is the default reference.
    return frame([(c, r) for _, c, r in VERSIONS], versions=[v for v, _, _ in VERSIONS], prefix=prefix)


def test_ece_reliability_and_precision_by_hand():
    report = calibrate(CalibrationPass({})(frame(TEN)))
    (v,) = report.versions
    assert (report.basis, v.version, v.n) == ("true", "unknown", 10)
    assert v.ece == pytest.approx(0.28)
    top = v.curve[9]
    assert (top["n"], top["confidence"], top["accuracy"]) == (3, pytest.approx(0.95), pytest.approx(2 / 3))
    assert [c["n"] for c in v.curve] == [0, 1, 0, 1, 0, 1, 2, 0, 2, 3]
    low, high = wilson_interval(2, 3)
    assert v.precision == {"n": 3, "correct": 2, "accuracy": 2 / 3, "low": round(low, 4), "high": round(high, 4)}
    assert report.target == pytest.approx(2 / 3)
    # 2/3 at >= 0.95; at >= 0.85 4/5; at >= 0.65 5/7 -- every lower edge keeps 2/3 down to 0.35 (6/9), not 0.15.
    assert v.threshold == pytest.approx(0.35) and v.kept == 9


def test_threshold_that_keeps_the_reference_precision():
    report = calibrate(CalibrationPass({})(version_frame()))
    assert report.reference == "v1" and report.target == pytest.approx(0.9)
    got = {v.version: (v.n, v.precision["n"], v.precision["correct"], v.threshold, v.kept) for v in report.versions}
    assert got == {"v1": (10, 10, 9, pytest.approx(0.97), 10), "v2": (19, 19, 14, pytest.approx(0.99), 9),
                   "v3": (12, 0, 0, pytest.approx(0.80), 12)}
    # Against v2's precision (14/19) instead, v1 keeps it at 0.97 and v3 at 0.80.
    other = calibrate(CalibrationPass({})(version_frame()), reference="v2")
    assert other.target == pytest.approx(14 / 19) and other.version("v1").threshold == pytest.approx(0.97)


def test_counts_add_up_in_any_chunking():
    log = version_frame()
    step = CalibrationPass({})
    whole = step(log)
    parts = step(log.iloc[:7]) + step(log.iloc[7:25]) + step(log.iloc[25:])
    assert whole.hist.keys() == parts.hist.keys()
    for key in whole.hist:
        assert (whole.hist[key] == parts.hist[key]).all()
        assert whole.conf_sum[key] == pytest.approx(parts.conf_sum[key])
    assert whole.first_seen == parts.first_seen
    assert sum(h.sum() for h in whole.hist.values()) == len(VERSIONS)


def test_the_miner_threshold_is_named_once():
    from miners.candidates import CandidateMiner
    from rulelife.mining.mine import mine_workspace

    assert MIN_CONFIDENCE == 0.95
    assert CandidateMiner().min_confidence == MIN_CONFIDENCE
    import inspect

    assert inspect.signature(mine_workspace).parameters["min_confidence"].default == MIN_CONFIDENCE
    assert calibrate(CalibrationPass({})(frame(TEN))).threshold == MIN_CONFIDENCE
    assert BUCKETS * MIN_CONFIDENCE == 9500  # the threshold sits on a bucket edge


def test_shadow_sample_is_the_basis_without_true_labels():
    # Rule-answered rows the model answered too: the rule's intent (order_tracking) is the proxy label.
    log = frame([(0.97, True)] * 3, truth=False, rule_id=WHERE_ID)
    log["model_intent"] = pd.array(["order_tracking", "order_tracking", "faq"], dtype="string")
    report = calibrate(CalibrationPass({WHERE_ID: "order_tracking"})(log))
    assert report.basis == "shadow" and report.versions[0].precision["correct"] == 2
    assert "shadow sample" in report.lines()[0]


def test_labels_file_and_errors(ws, tmp_path):
    log = version_frame().drop(columns=["true_intent"])
    log.to_parquet(ws.log_dir / "queries.parquet", index=False)
    with pytest.raises(NoLabels, match="--labels-file"):
        measure_calibration(ws)
    labels = tmp_path / "labels.csv"
    pd.DataFrame({"query_id": log["query_id"], "true_intent": "faq"}).to_csv(labels, index=False)
    report = measure_calibration(ws, labels_file=labels)
    assert report.version("v2").threshold == pytest.approx(0.99)
    with pytest.raises(ConfigError, match="'v9' has no labelled row.*v1, v2, v3"):
        measure_calibration(ws, labels_file=labels, reference="v9")
    labels.write_text("query_id,label\nc1,faq\n")
    with pytest.raises(LogError, match="missing column.*true_intent.*--labels-intent-column"):
        measure_calibration(ws, labels_file=labels)


def invoke(ws, *args):
    return runner.invoke(app, ["--workspace", str(ws.root), *args])


def test_calibration_cli(ws):
    version_frame().to_parquet(ws.log_dir / "queries.parquet", index=False)
    result = invoke(ws, "calibration")
    assert result.exit_code == 0, result.output
    assert "reference version v1: precision 0.900 at confidence >= 0.95" in result.output
    assert "model v2: n=19, ECE" in result.output and "threshold 0.9900 keeps the reference's precision" in result.output
    assert "reliability curve" in result.output
    data = json.loads(invoke(ws, "calibration", "--json", "--reference", "v3").output)
    # v3 has no row at >= 0.95: no precision to keep, so no threshold for anyone.
    assert data["reference"] == "v3" and data["reference_precision"] is None
    assert [v["threshold"] for v in data["versions"]] == [None, None, None]
    assert [v["version"] for v in data["versions"]] == ["v1", "v2", "v3"]
    missing = invoke(ws, "calibration", "--reference", "v9")
    assert missing.exit_code == 1 and "has no labelled row" in missing.output


def test_calibration_cli_without_labels_exits_1(ws):
    version_frame().drop(columns=["true_intent"]).to_parquet(ws.log_dir / "queries.parquet", index=False)
    result = invoke(ws, "calibration")
    assert result.exit_code == 1
    assert "no labelled row in the log window to measure calibration against" in result.output


def test_model_version_from_a_csv_log_blank_is_unknown(ws):
    # The reader gives the optional column its dtype; a blank cell and a log without it read as "unknown".
    log = frame([(0.97, True), (0.97, False), (0.6, True)], versions=["v1", "", "v1"])
    log.to_csv(ws.log_dir / "queries.csv", index=False)
    report = measure_calibration(ws)
    assert {v.version: v.n for v in report.versions} == {"v1": 2, "unknown": 1}
    assert report.version("v1").precision["correct"] == 1 and report.version("unknown").precision["correct"] == 0
