"""The counting core adds up: any split of the log, in any order, gives the same metrics.

Local only and fast (no Spark): this is the property the Spark engine relies on.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rulelife.errors import ConfigError, LogError
from rulelife.monitoring import counting
from rulelife.monitoring.bundle_intents import BundleIntents
from rulelife.monitoring.metrics import MetricCounts, count_chunk, finalize
from rulelife.monitoring.nightly import live_rules
from rulelife.querylog import LogReport, read_log
from rulelife.serving.bundle import BundleStore

from .conftest import DAYS, START

SAFETY = ["return_request", "escalation"]
RANGE = (START, START + dt.timedelta(days=DAYS - 1))


@pytest.fixture(scope="module")
def whole(runtime_log):
    workspace, log = runtime_log
    frame = read_log(log, validate=False)
    bundles = BundleIntents(workspace.bundle_dir)
    bundles.add(frame["bundle_version"].dropna().unique())
    live, _ = live_rules(BundleStore(workspace.bundle_dir), sorted(bundles.numbers))
    return frame, bundles.intents, live


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_split_in_any_order_adds_up_to_the_whole(whole, data):
    frame, intents, live = whole
    cuts = sorted(data.draw(st.lists(st.integers(0, len(frame)), max_size=6), label="cuts"))
    bounds = [0, *cuts, len(frame)]
    pieces = [frame.iloc[a:b] for a, b in zip(bounds, bounds[1:])]
    order = data.draw(st.permutations(range(len(pieces))), label="order")
    total = MetricCounts()
    for i in order:
        total = total + count_chunk(pieces[i].reset_index(drop=True), intents, SAFETY)
    once = count_chunk(frame, intents, SAFETY)
    pd.testing.assert_frame_equal(finalize(total, live), finalize(once, live))
    assert total.examples == once.examples


def test_pool_over_files_equals_one_stream(runtime_log):
    workspace, log = runtime_log
    results = {}
    for engine in ("local", "local-pool"):
        report = LogReport()
        counts, numbers = counting.daily_counts(workspace, RANGE, log=log, engine=engine, report=report, workers=2)
        live, _ = live_rules(BundleStore(workspace.bundle_dir), numbers)
        results[engine] = (finalize(counts, live), counts.examples, numbers, report)
    local, pool = results["local"], results["local-pool"]
    pd.testing.assert_frame_equal(local[0], pool[0])
    assert local[1:3] == pool[1:3]
    assert (local[3].rows_valid, local[3].rows_quarantined, local[3].reasons) == (
        pool[3].rows_valid, pool[3].rows_quarantined, pool[3].reasons)
    assert pool[3].rows_quarantined == 4  # three bad values and a malformed lexicon_veto cell


def test_unknown_engine_is_refused_with_the_choices(runtime_log):
    workspace, log = runtime_log
    with pytest.raises(ConfigError, match="Unknown engine 'dask', expected one of local, local-pool, spark"):
        counting.daily_counts(workspace, START, log=log, engine="dask")


def test_a_backwards_range_is_refused(runtime_log):
    workspace, log = runtime_log
    with pytest.raises(LogError, match="swap them"):
        counting.daily_counts(workspace, (RANGE[1], RANGE[0]), log=log)


def test_importing_rulelife_never_imports_pyspark():
    code = ("import sys, rulelife, rulelife.engines, rulelife.engines.spark, rulelife.monitoring.nightly; "
            "assert 'pyspark' not in sys.modules, sorted(m for m in sys.modules if 'spark' in m)")
    subprocess.run([sys.executable, "-c", code], check=True)
