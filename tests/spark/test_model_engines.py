"""The model commands count the same on the Spark engine as on the local one.

Residual, compare-models (a candidate column and a candidate file),
calibration per model version and the training-mix export, on a runtime
log with true labels, two model versions and a candidate model's column.
"""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from rulelife.errors import LogError
from rulelife.model.run import compare_models, export_training_mix, measure_calibration, measure_residual
from rulelife.store import registry

from .conftest import SHIPPED_RULES, START, make_runtime_log

pytestmark = pytest.mark.spark


@pytest.fixture(scope="module")
def model_log(tmp_path_factory):
    """A runtime log whose rules are registered, with ``model_version`` (v1, then v2 on the last day) and a
    candidate model's answers (the current model's, changed on every seventh row)."""
    workspace, log = make_runtime_log(tmp_path_factory.mktemp("model"), days=2, queries_per_day=900, seed=11)
    shutil.copytree(SHIPPED_RULES, workspace.rules_dir, dirs_exist_ok=True)
    registry.sync_workspace(workspace, actor="test")
    for path in sorted(log.rglob("*.parquet")):
        frame = pq.read_table(path).to_pandas()
        last = frame["ts"].dt.date > START
        frame["model_version"] = np.where(last, "v2", "v1")
        frame.loc[frame.index[::9], "model_version"] = None  # rows without a version: "unknown"
        candidate = frame["model_intent"].copy()
        candidate.iloc[::7] = "faq"
        frame["candidate_intent"] = candidate
        frame.to_parquet(path, index=False, coerce_timestamps="us")
    return workspace, log


def test_residual_equal_on_spark(spark, model_log):
    workspace, log = model_log
    local = measure_residual(workspace, log=log, engine="local")
    remote = measure_residual(workspace, log=log, engine="spark", spark=spark)
    pd.testing.assert_frame_equal(remote.cells(), local.cells())
    a, b = remote.summary(), local.summary()
    assert a["all_accuracy"] == b["all_accuracy"] and a["residual_accuracy"] == b["residual_accuracy"]
    assert a["confidence_mean"] == pytest.approx(b["confidence_mean"])
    assert b["all_accuracy"]["n"] > 0 and b["residual"] > 0  # the log is labelled and the rules answer some


def test_compare_models_equal_on_spark(spark, model_log, tmp_path):
    workspace, log = model_log
    local = compare_models(workspace, candidate_column="candidate_intent", log=log, engine="local")
    remote = compare_models(workspace, candidate_column="candidate_intent", log=log, engine="spark", spark=spark)
    pd.testing.assert_frame_equal(remote.table(), local.table())
    assert remote.missing == local.missing
    top = local.table().query("intent == '(all intents)'")
    assert top["agreement"].between(0.5, 0.99).all()  # the candidate differs on some rows
    frame = pd.concat(pq.read_table(p).to_pandas() for p in sorted(log.rglob("*.parquet")))
    answers = tmp_path / "candidate.parquet"
    frame[["query_id", "candidate_intent"]].to_parquet(answers, index=False)
    by_file = compare_models(workspace, candidate_file=answers, log=log, engine="spark", spark=spark)
    pd.testing.assert_frame_equal(by_file.table(), local.table())
    with pytest.raises(LogError, match="no column 'nope'"):
        compare_models(workspace, candidate_column="nope", log=log, engine="spark", spark=spark)


def test_calibration_equal_on_spark(spark, model_log):
    workspace, log = model_log
    local = measure_calibration(workspace, log=log, engine="local").to_dict()
    remote = measure_calibration(workspace, log=log, engine="spark", spark=spark).to_dict()
    assert {v["version"] for v in local["versions"]} == {"v1", "v2", "unknown"}
    assert remote["reference"] == local["reference"] and remote["reference_precision"] == local["reference_precision"]
    for got, want in zip(remote["versions"], local["versions"], strict=True):
        assert got["ece"] == pytest.approx(want["ece"])
        assert [c["n"] for c in got["curve"]] == [c["n"] for c in want["curve"]]
        assert {k: got[k] for k in ("version", "n", "precision", "threshold", "kept", "first_seen")} == \
            {k: want[k] for k in ("version", "n", "precision", "threshold", "kept", "first_seen")}


def test_training_mix_equal_on_spark(spark, model_log, tmp_path):
    workspace, log = model_log
    local = export_training_mix(workspace, tmp_path / "local", log=log, engine="local")
    remote = export_training_mix(workspace, tmp_path / "spark", log=log, engine="spark", spark=spark)
    assert local["rows"] > 0
    assert {k: v for k, v in remote.items() if k != "files"} == {k: v for k, v in local.items() if k != "files"}

    def rows(folder):
        parts = sorted(folder.glob("part-*.parquet"))
        return pd.concat(pd.read_parquet(p) for p in parts).sort_values("query_id", ignore_index=True)

    pd.testing.assert_frame_equal(rows(tmp_path / "spark"), rows(tmp_path / "local"))
