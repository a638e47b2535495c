"""fold_log: one mergeable step over a log, the same result on every local engine."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from miners.candidates import CandidateMiner
from miners.hard_negatives import HardNegativeMiner
from rulelife.config import Settings
from rulelife.engines.fold import LogFold, fold_frames, fold_log
from rulelife.errors import ConfigError, LogError
from rulelife.evidence.datasets.partials import DatasetPass, merge_builders
from rulelife.querylog import LogReport
from rulelife.rules.definition import load_rules
from rulelife.simulate import simulate_traffic, write_log

SHIPPED_RULES = Path(__file__).resolve().parents[2] / "rules"
START = dt.date(2026, 4, 6)


def locale_counts(chunk: pd.DataFrame) -> Counter:
    """A step: rows per locale (module level, so a pool worker can unpickle it)."""
    return Counter(chunk["locale"].astype(str))


def hand_log(folder: Path) -> Path:
    """Two days: day 1 has 3 en-US rows and 1 ja-JP row, day 2 has 2 es-ES rows and one bad row."""
    folder.mkdir(parents=True)
    for day, locales in (("2026-04-06", ["en-US", "en-US", "en-US", "ja-JP"]), ("2026-04-07", ["es-ES"] * 3)):
        frame = pd.DataFrame({
            "query_id": [f"{day}-{i}" for i in range(len(locales))],
            "ts": pd.Timestamp(day, tz="UTC") + pd.to_timedelta(range(len(locales)), unit="min"),
            "text": ["hello there"] * len(locales),
            "locale": locales,
            "model_intent": ["greeting"] * len(locales),
            "model_confidence": [0.9] * len(locales),
        })
        if day == "2026-04-07":
            frame.loc[2, "model_confidence"] = 1.7  # out of [0, 1]: quarantined, not counted
        frame.to_parquet(folder / f"queries-{day}.parquet", index=False, coerce_timestamps="us")
    return folder


@pytest.mark.parametrize("engine", ["local", "local-pool"])
def test_fold_counts_every_valid_row_once(tmp_path, engine):
    log = hand_log(tmp_path / "log")
    report = LogReport()
    total = fold_log(locale_counts, log, engine=engine, workers=2, report=report,
                     quarantine_dir=tmp_path / "quarantine")
    assert total == Counter({"en-US": 3, "ja-JP": 1, "es-ES": 2})
    assert (report.rows_read, report.rows_valid, report.rows_quarantined) == (7, 6, 1)


@pytest.mark.parametrize("engine", ["local", "local-pool"])
def test_fold_reads_only_the_window(tmp_path, engine):
    log = hand_log(tmp_path / "log")
    report = LogReport()
    total = fold_log(locale_counts, log, engine=engine, since=dt.date(2026, 4, 7), report=report)
    assert total == Counter({"es-ES": 2})
    assert len(report.files_skipped) == 1


@pytest.mark.parametrize("engine", ["local", "local-pool"])
def test_a_window_without_rows_is_an_error_that_says_so(tmp_path, engine):
    log = hand_log(tmp_path / "log")
    with pytest.raises(LogError, match="2026-05-01"):
        fold_log(locale_counts, log, engine=engine, since=dt.date(2026, 5, 1))


def test_fold_refuses_an_unknown_engine_and_bad_workers(tmp_path):
    log = hand_log(tmp_path / "log")
    with pytest.raises(ConfigError, match="Unknown engine 'dask', expected one of local, local-pool, spark"):
        fold_log(locale_counts, log, engine="dask")
    with pytest.raises(ConfigError, match="workers must be a positive integer, got 0"):
        fold_log(locale_counts, log, engine="local-pool", workers=0)


def test_fold_frames_joins_small_chunks_before_the_step():
    sizes = []
    frames = [pd.DataFrame({"locale": ["en-US"] * n}) for n in (3, 3, 3, 1)]
    total = fold_frames(lambda chunk: sizes.append(len(chunk)) or len(chunk), lambda a, b: a + b, frames,
                        chunk_rows=5)
    assert total == 10 and sizes == [6, 4]


@pytest.fixture(scope="module")
def simulated_log(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("fold") / "log"
    frame = simulate_traffic(start=START, days=4, queries_per_day=1500, seed=11)
    write_log(frame.drop(columns=["true_intent"]), folder)
    return folder


def _dataset_pass() -> DatasetPass:
    rules = [rf.rule for rf in load_rules(SHIPPED_RULES)
             if rf.rule.id in ("order_tracking.where_is_my_order", "faq.shipping_cost", "order_tracking.ja_delivery_status")]
    assert len(rules) == 3
    settings = Settings(dataset_floor=200, dataset_floor_high_traffic=400)
    return DatasetPass(rules, settings, [HardNegativeMiner().fit(r) for r in rules])


def _built(builders) -> list[tuple[str, dict]]:
    out = []
    for builder in builders:
        built = builder.finish(None, sources=["log"])
        out.append((built.content_hash, {k: v for k, v in built.meta.items() if k != "sources"}))
    return out


def test_datasets_are_the_same_whatever_the_chunks_and_engine(simulated_log):
    step = _dataset_pass()
    one = _built(fold_log(step, simulated_log, combine=merge_builders, chunk_rows=10**7))
    small = _built(fold_log(step, simulated_log, combine=merge_builders, chunk_rows=1000))
    pool = _built(fold_log(step, simulated_log, combine=merge_builders, engine="local-pool", workers=2,
                           chunk_rows=1000))
    assert one == small == pool
    assert all(meta["fires"] > 0 for _, meta in one)


def test_builders_merge_in_any_order(simulated_log):
    frames = [pd.read_parquet(p) for p in sorted(simulated_log.glob("*.parquet"))]
    step = _dataset_pass()
    parts = [step(frame) for frame in frames]
    forward = parts[0]
    for part in parts[1:]:
        forward = merge_builders(forward, part)
    parts = [step(frame) for frame in frames]
    backward = parts[-1]
    for part in reversed(parts[:-1]):
        backward = merge_builders(backward, part)
    assert _built(forward) == _built(backward)


def test_builders_of_different_rules_do_not_merge(simulated_log):
    step = _dataset_pass()
    frame = pd.read_parquet(next(simulated_log.glob("*.parquet")))
    a, b, _ = step(frame)
    with pytest.raises(ValueError, match="cannot merge the builder of"):
        a.merge(b)


def mined(fold) -> list[dict]:
    """The candidates' figures. Example texts are left out: they are a top list kept approximately
    (a text's count can be cut from an earlier partial), so they may differ with the chunking."""
    miner = CandidateMiner(min_support=15, safety_intents=["return_request", "escalation"])
    out = []
    for candidate in miner.fit(fold=fold).candidates_:
        figures = candidate.to_dict()
        del figures["examples"]
        figures["confusers"] = [(c["intent"], c["count"]) for c in figures["confusers"]]
        out.append(figures)
    return out


def test_the_miner_proposes_the_same_rules_on_a_pool(simulated_log):
    local = mined(LogFold(simulated_log))
    with LogFold(simulated_log, engine="local-pool", workers=2) as fold:
        pool = mined(fold)
        assert fold._pool is not None  # one pool served the three passes
    assert fold._pool is None
    assert local and local == pool


def test_the_miner_takes_chunks_or_a_fold_not_both(simulated_log):
    with pytest.raises(ValueError, match="exactly one of them"):
        CandidateMiner().fit([], fold=LogFold(simulated_log))
    with pytest.raises(ValueError, match="exactly one of them"):
        CandidateMiner().fit()


# ---------------------------------------------------------------- Spark


@pytest.fixture(scope="module")
def spark(spark_available):
    from rulelife.engines import local_session

    return local_session(2, app_name="rulelife-fold-tests")  # getOrCreate: shared with the other Spark tests


@pytest.mark.spark
def test_spark_fold_counts_and_reports_as_the_local_one(tmp_path, spark):
    log = hand_log(tmp_path / "log")
    local_report, spark_report = LogReport(), LogReport()
    def step(chunk):  # a local function travels by value to the Spark workers (a test module is not importable there)
        return Counter(chunk["locale"].astype(str))

    local = fold_log(step, log, report=local_report)
    remote = fold_log(step, log, engine="spark", spark=spark, report=spark_report)
    assert remote == local == Counter({"en-US": 3, "ja-JP": 1, "es-ES": 2})
    assert (spark_report.rows_read, spark_report.rows_valid, spark_report.rows_quarantined,
            spark_report.reasons) == (local_report.rows_read, local_report.rows_valid,
                                      local_report.rows_quarantined, local_report.reasons)
    window = fold_log(step, log, engine="spark", spark=spark, since=dt.date(2026, 4, 7))
    assert window == Counter({"es-ES": 2})


@pytest.mark.spark
def test_spark_builds_the_same_datasets(simulated_log, spark):
    step = _dataset_pass()
    local = _built(fold_log(step, simulated_log, combine=merge_builders))
    remote = _built(fold_log(step, simulated_log, combine=merge_builders, engine="spark", spark=spark,
                             chunk_rows=1000))
    assert remote == local


@pytest.mark.spark
def test_spark_mines_the_same_rules(simulated_log, spark):
    assert mined(LogFold(simulated_log, engine="spark", spark=spark)) == mined(LogFold(simulated_log))


@pytest.mark.spark
def test_spark_fold_says_which_column_is_missing(tmp_path, spark):
    folder = tmp_path / "log"
    folder.mkdir()
    pd.DataFrame({"query_id": ["a"], "text": ["hi"]}).to_parquet(folder / "queries-2026-04-06.parquet")
    with pytest.raises(LogError, match="missing required column.*ts"):
        fold_log(locale_counts, folder, engine="spark", spark=spark)


@pytest.mark.spark
def test_spark_says_how_to_fix_nanosecond_timestamps(tmp_path, spark):
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = hand_log(tmp_path / "log")
    path = folder / "queries-2026-04-06.parquet"
    table = pq.read_table(path)
    ts = table.column("ts").cast(pa.timestamp("ns", tz="UTC"))
    pq.write_table(table.set_column(table.schema.get_field_index("ts"), "ts", ts), path)  # as pandas 2 writes
    with pytest.raises(LogError, match="write the log with microsecond timestamps"):
        fold_log(locale_counts, folder, engine="spark", spark=spark)
    assert fold_log(locale_counts, folder) == Counter({"en-US": 3, "ja-JP": 1, "es-ES": 2})  # the local engines read it


def channel_counts(chunk: pd.DataFrame) -> Counter:
    """A step that reads a column beyond the contract (module level: a pool worker unpickles it)."""
    return Counter(chunk["channel"].astype(str))


def channel_log(folder: Path) -> Path:
    """hand_log with a channel column: day 1 web, web, app, app; day 2 app, app and the bad row; and a blob."""
    hand_log(folder)
    channels = {"queries-2026-04-06.parquet": ["web", "web", "app", "app"],
                "queries-2026-04-07.parquet": ["app", "app", "web"]}
    for name, values in channels.items():
        frame = pd.read_parquet(folder / name)
        frame.assign(channel=values, blob=["x" * 400] * len(values)).to_parquet(folder / name, index=False,
                                                                                coerce_timestamps="us")
    return folder


@pytest.mark.parametrize("engine", ["local", "local-pool"])
def test_a_step_gets_the_extra_columns_it_asks_for(tmp_path, engine):
    log = channel_log(tmp_path / "log")
    total = fold_log(channel_counts, log, engine=engine, workers=2, extra_columns=["channel"])
    assert total == Counter({"web": 2, "app": 4})  # the bad row (a web one) is not counted
    columns = fold_log(lambda chunk: set(chunk.columns), log, combine=set.union)
    assert "channel" not in columns and "blob" not in columns
    with pytest.raises(LogError, match="no column 'tenant', which this job reads"):
        fold_log(channel_counts, log, engine=engine, workers=2, extra_columns=["tenant"])


@pytest.mark.spark
def test_spark_fold_reads_the_extra_columns_asked_for(tmp_path, spark):
    log = channel_log(tmp_path / "log")
    def step(chunk):  # a local function travels by value to the Spark workers
        return Counter(chunk["channel"].astype(str))

    assert fold_log(step, log, engine="spark", spark=spark, extra_columns=["channel"]) == Counter({"web": 2, "app": 4})
    seen = fold_log(lambda chunk: set(chunk.columns), log, combine=set.union, engine="spark", spark=spark)
    assert "blob" not in seen and "channel" not in seen
    with pytest.raises(LogError, match="no column 'tenant', which this job reads"):
        fold_log(step, log, engine="spark", spark=spark, extra_columns=["tenant"])
