"""The Spark engine and the local engine produce the same metrics table, row for row."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlmodel import select

from rulelife.config import Workspace
from rulelife.errors import LogError
from rulelife.monitoring import counting, nightly
from rulelife.monitoring.metrics import finalize
from rulelife.monitoring.nightly import live_rules
from rulelife.querylog import LogReport
from rulelife.serving.bundle import BundleStore
from rulelife.store import ModelChangeRow, ModelDayRow, Store

from .conftest import DAYS, START, make_runtime_log

pytestmark = pytest.mark.spark

RANGE = (START, START + dt.timedelta(days=DAYS - 1))


def metrics(workspace, window, log, engine, spark=None):
    report = LogReport()
    counts, numbers = counting.daily_counts(workspace, window, log=log, engine=engine, spark=spark, report=report)
    live, _ = live_rules(BundleStore(workspace.bundle_dir), numbers)
    return finalize(counts, live), counts.examples, numbers, report


@pytest.mark.parametrize("window", [RANGE, RANGE[1]], ids=["every_day", "last_day"])
def test_spark_metrics_equal_local_row_for_row(spark, runtime_log, window):
    workspace, log = runtime_log
    local = metrics(workspace, window, log, "local")
    remote = metrics(workspace, window, log, "spark", spark)
    pd.testing.assert_frame_equal(remote[0], local[0])
    assert remote[1] == local[1]  # the example queries of each rule
    assert remote[2] == local[2]  # the bundles the log names
    assert (remote[3].rows_read, remote[3].rows_valid, remote[3].rows_quarantined, remote[3].reasons) == (
        local[3].rows_read, local[3].rows_valid, local[3].rows_quarantined, local[3].reasons)


def test_the_generated_log_exercises_what_it_should(spark, runtime_log):
    workspace, log = runtime_log
    table, examples, numbers, report = metrics(workspace, RANGE, log, "spark", spark)
    assert numbers == [1, 2]
    assert table["date"].nunique() == DAYS and table["locale"].nunique() == 3
    assert table["shadow_n"].sum() > 0 and (table["agree_n"] < table["shadow_n"]).any()
    shadow = table[table["serving"] == "shadow"]
    assert shadow["rule_id"].nunique() == 2 and shadow["fires"].sum() >= shadow["shadow_n"].sum() > 0
    assert table["vetoed"].sum() > 0 and table.loc[table["vetoed"] > 0, "locale"].nunique() == 2
    assert examples and report.rows_quarantined == 4
    assert report.reasons["expect_column_values_to_be_parseable(lexicon_veto)"] == 1


def test_a_bundle_missing_from_the_store_is_an_error(spark, runtime_log, tmp_path):
    _, log = runtime_log
    empty = Workspace.create(tmp_path / "other")
    with pytest.raises(LogError, match="the log names bundle 1, which cannot be loaded"):
        counting.daily_counts(empty, RANGE, log=log, engine="spark", spark=spark)


def test_bad_rows_grouped_in_the_jvm_are_counted_one_by_one(spark, tmp_path):
    # Twenty rows failing the same check on the same day and locale, and no
    # rule hit: Spark groups them into one row of weight 20 before Python.
    workspace, log = make_runtime_log(tmp_path, days=1, queries_per_day=400, bad_rows=False, files_per_day=1)
    path = next(log.rglob("*.parquet"))
    frame = pq.read_table(path).to_pandas()
    misses = frame.index[frame["rule_id"].isna() & (frame["locale"] == "en-US")][:20]
    assert len(misses) == 20
    frame.loc[misses, "model_confidence"] = 1.5
    frame.to_parquet(path, index=False, coerce_timestamps="us")
    local = metrics(workspace, START, log, "local")
    remote = metrics(workspace, START, log, "spark", spark)
    pd.testing.assert_frame_equal(remote[0], local[0])
    assert remote[3].rows_quarantined == local[3].rows_quarantined == 20
    assert remote[3].reasons == local[3].reasons == {"expect_column_values_to_be_between(model_confidence)": 20}
    assert remote[3].rows_read == local[3].rows_read == len(frame)


def test_hostile_rows_are_quarantined_alike_and_empty_files_hold_no_rows(spark, tmp_path):
    # NaN confidence with and without a model intent, control characters in
    # the identifiers: both engines keep and drop the same rows for the same reasons.
    workspace, log = make_runtime_log(tmp_path, days=1, queries_per_day=400, bad_rows=False, files_per_day=1)
    path = next(log.rglob("*.parquet"))
    frame = pq.read_table(path).to_pandas()
    labelled = frame.index[frame["model_intent"].notna()]
    unlabelled = frame.index[frame["model_intent"].isna()]
    frame.loc[labelled[:3], "model_confidence"] = float("nan")  # quarantined
    frame.loc[unlabelled[:2], "model_confidence"] = float("nan")  # a missing confidence: kept
    frame.loc[labelled[3], "query_id"] = "q\x00nul"
    frame.loc[labelled[4], "locale"] = "en-US\u202e"
    frame.loc[labelled[5], "model_version"] = "model-2\x07"
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.set_column(table.column_names.index("model_confidence"), "model_confidence",
                             pa.array(frame["model_confidence"].to_numpy(), pa.float64(), from_pandas=False))
    pq.write_table(table, path, coerce_timestamps="us")
    (path.parent / "empty.parquet").write_bytes(b"")
    local = metrics(workspace, START, log, "local")
    remote = metrics(workspace, START, log, "spark", spark)
    pd.testing.assert_frame_equal(remote[0], local[0])
    assert remote[3].reasons == local[3].reasons == {
        "expect_column_values_to_be_a_number_where_model_intent_is_set(model_confidence)": 3,
        "expect_column_values_to_have_no_control_characters(query_id)": 1,
        "expect_column_values_to_have_no_control_characters(locale)": 1,
        "expect_column_values_to_have_no_control_characters(model_version)": 1,
    }
    assert remote[3].rows_read == local[3].rows_read == len(frame)
    assert remote[3].files_empty == local[3].files_empty == [str(path.parent / "empty.parquet")]


def test_model_versions_are_counted_alike(spark, runtime_log):
    workspace, log = runtime_log
    local = counting.daily_counts(workspace, RANGE, log=log, engine="local").counts.models
    remote = counting.daily_counts(workspace, RANGE, log=log, engine="spark", spark=spark).counts.models
    pd.testing.assert_frame_equal(remote.reset_index(drop=True), local.reset_index(drop=True))
    by_day = local.groupby(local["date"].dt.date)
    # Day 1 model-1 only; day 2 a model-2 canary beside model-1; day 3 model-2 only.
    assert [sorted(g["model_version"]) for _, g in by_day] == [["model-1"], ["model-1", "model-2"], ["model-2"]]
    day2 = local[local["date"].dt.date == START + dt.timedelta(days=1)].set_index("model_version")["n"]
    assert day2["model-1"] > 8 * day2["model-2"]


def test_the_nightly_sees_the_same_model_change_on_spark(spark, tmp_path):
    found = {}
    for engine in ("local", "spark"):
        workspace, log = make_runtime_log(tmp_path / engine, queries_per_day=400, bad_rows=False, files_per_day=1)
        store = Store.from_workspace(workspace)
        reports = [nightly.run_nightly(workspace, START + dt.timedelta(days=i), log=log, engine=engine,
                                       spark=spark if engine == "spark" else None, monitors=[], deliver=False)
                   for i in range(DAYS)]
        with store.session() as session:
            days = [(r.day, r.model_version, r.versions) for r in session.exec(select(ModelDayRow)
                                                                                .order_by(ModelDayRow.day))]
            changes = [(r.first_day, r.previous_version, r.version) for r in session.exec(select(ModelChangeRow))]
        found[engine] = (days, changes, [r.model for r in reports])
        store.dispose()
    assert found["spark"] == found["local"]
    assert found["local"][1] == [(START + dt.timedelta(days=2), "model-1", "model-2")]  # the canary day is no change
