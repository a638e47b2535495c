"""Reading a query log: sources, dtypes, chunking, time windows and refusals."""

import datetime as dt

import pandas as pd
import pytest

from rulelife.errors import LogError
from rulelife.querylog import CONTRACT_DTYPES, LogReport, iter_log, read_log


def clean_log(days=3, per_day=4, start="2024-05-01") -> pd.DataFrame:
    """``days * per_day`` valid rows, ``per_day`` a day, 6 hours apart, ids q0..qN."""
    n = days * per_day
    return pd.DataFrame(
        {
            "query_id": [f"q{i}" for i in range(n)],
            "ts": pd.Timestamp(start, tz="UTC") + pd.to_timedelta([6 * i for i in range(n)], unit="h"),
            "text": [f"text {i}" for i in range(n)],
            "locale": "en-US",
            "model_intent": "order_tracking",
            "model_confidence": 0.9,
            "true_intent": "order_tracking",
        }
    )


def test_runtime_columns_are_added_as_na_and_extras_kept_when_asked(tmp_path):
    clean_log().assign(channel="web", session="s1").to_parquet(tmp_path / "log.parquet", index=False)
    assert list(read_log(tmp_path / "log.parquet", validate=False).columns) == [*CONTRACT_DTYPES]
    frame = read_log(tmp_path / "log.parquet", quarantine_dir=tmp_path / "q", extra_columns=["channel"])
    assert list(frame.columns) == [*CONTRACT_DTYPES, "channel"]  # true_intent is the contract's optional label
    assert frame["channel"].tolist() == ["web"] * 12
    assert {c: str(frame[c].dtype) for c in CONTRACT_DTYPES} == CONTRACT_DTYPES
    for column in ("rule_id", "rule_version", "bundle_version", "shadow"):
        assert frame[column].isna().all()
    assert frame["true_intent"].tolist() == ["order_tracking"] * 12


def test_naive_parquet_timestamps_mean_utc(tmp_path):
    log = clean_log()
    log["ts"] = log["ts"].dt.tz_localize(None).astype("datetime64[ns]")
    log.to_parquet(tmp_path / "log.parquet", index=False)
    frame = read_log(tmp_path / "log.parquet", validate=False)
    assert frame["ts"].dtype == "datetime64[us, UTC]"
    assert frame["ts"].iloc[0] == pd.Timestamp("2024-05-01", tz="UTC")


def test_chunks_of_three_give_the_rows_of_one_chunk(tmp_path):
    clean_log(days=1, per_day=10).to_csv(tmp_path / "log.csv", index=False)
    chunks = list(iter_log(tmp_path / "log.csv", chunk_rows=3, quarantine_dir=tmp_path / "q"))
    assert [len(c) for c in chunks] == [3, 3, 3, 1]
    whole = read_log(tmp_path / "log.csv", chunk_rows=1000, validate=False)
    pd.testing.assert_frame_equal(pd.concat(chunks, ignore_index=True), whole)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_since_until_are_inclusive_utc_days(tmp_path, fmt):
    log = clean_log()
    path = tmp_path / f"log.{fmt}"
    log.to_csv(path, index=False) if fmt == "csv" else log.to_parquet(path, index=False, row_group_size=4)
    report = LogReport()
    frame = read_log(path, since=dt.date(2024, 5, 2), until=dt.date(2024, 5, 2), quarantine_dir=tmp_path / "q", report=report)
    assert frame["query_id"].tolist() == ["q4", "q5", "q6", "q7"]
    # Parquet skips the other days' row groups by their statistics; CSV reads and drops them.
    assert report.rows_outside_window == (0 if fmt == "parquet" else 8)
    assert read_log(path, since=dt.date(2024, 5, 3), validate=False)["query_id"].tolist() == ["q8", "q9", "q10", "q11"]


def test_day_named_files_outside_the_window_are_not_opened(tmp_path):
    log = clean_log()
    for day, part in log.groupby(log["ts"].dt.date):
        part.to_parquet(tmp_path / f"queries-{day}.parquet", index=False)
    (tmp_path / "queries-2024-04-30.parquet").write_text("not parquet: never opened")
    report = LogReport()
    frame = read_log(tmp_path, since=dt.date(2024, 5, 2), until=dt.date(2024, 5, 3), validate=False, report=report)
    assert frame["query_id"].tolist() == [f"q{i}" for i in range(4, 12)]
    assert [p.rsplit("/", 1)[1] for p in report.files_skipped] == ["queries-2024-04-30.parquet", "queries-2024-05-01.parquet"]
    with pytest.raises(LogError, match="no file of .* holds a day between 2024-06-01"):
        iter_log(tmp_path, since=dt.date(2024, 6, 1))


def test_a_folder_is_scanned_recursively_and_the_quarantine_is_not_read(tmp_path):
    clean_log(days=1).to_csv(tmp_path / "a.csv", index=False)
    (tmp_path / "sub").mkdir()
    clean_log(days=1, start="2024-06-01").to_parquet(tmp_path / "sub" / "b.parquet", index=False)
    (tmp_path / "q").mkdir()
    clean_log(days=1).to_parquet(tmp_path / "q" / "old-quarantine.parquet", index=False)
    report = LogReport()
    assert len(read_log(tmp_path, quarantine_dir=tmp_path / "q", report=report)) == 8
    assert len(report.files_read) == 2


def test_a_log_without_the_model_columns_is_refused(tmp_path):
    clean_log().drop(columns=["model_intent", "model_confidence"]).to_csv(tmp_path / "log.csv", index=False)
    with pytest.raises(LogError, match=r"log.csv: missing required column\(s\) model_intent, model_confidence"):
        iter_log(tmp_path / "log.csv")


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ([], "no query log given"),
        ("missing.parquet", "query log not found: .*missing.parquet does not exist"),
        ("empty", r"no \*.parquet or \*.csv file under .*empty"),
        ("notes.txt", "must be .parquet or .csv"),
    ],
)
def test_nothing_to_read_is_refused(tmp_path, source, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("hello")
    source = [] if source == [] else tmp_path / source
    with pytest.raises(LogError, match=message):
        iter_log(source)


@pytest.mark.parametrize(("option", "value"), [("chunk_rows", 0), ("since", "2024-05-01"), ("known_intents", "order_tracking")])
def test_bad_options_are_refused(tmp_path, option, value):
    clean_log().to_csv(tmp_path / "log.csv", index=False)
    with pytest.raises(LogError, match=option):
        iter_log(tmp_path / "log.csv", **{option: value})


def test_a_window_with_no_row_is_an_error(tmp_path):
    clean_log().to_csv(tmp_path / "log.csv", index=False)
    with pytest.raises(LogError, match="no row of .* falls between 2024-07-01 and the end"):
        read_log(tmp_path / "log.csv", since=dt.date(2024, 7, 1), validate=False)


def test_a_corrupt_file_names_the_file(tmp_path):
    (tmp_path / "log.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(LogError, match="log.parquet: cannot read"):
        iter_log(tmp_path / "log.parquet")
