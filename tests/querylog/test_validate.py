"""Validation, quarantine and the validation cache of the query-log reader.

The log below has 10 rows; rows 1, 2, 3, 5, 6 and 8 are bad, each for one
known reason, so the expectations are countable by hand.
"""

import itertools
import json
import os

import pandas as pd
import pytest

from rulelife.errors import LogError
from rulelife.querylog import CONTRACT_DTYPES, LogReport, read_log

INTENTS = {"order_tracking", "return_request"}
HEADER = "query_id,ts,text,locale,model_intent,model_confidence,rule_id,shadow"
ROWS = [
    "q01,2024-05-01T08:00:00Z,where is my order,en-US,order_tracking,0.9,,false",
    "q02,2024-05-01T08:05:00Z,refund please,en-US,return_request,1.5,,false",  # confidence > 1
    "q03,2024-05-01T08:10:00Z,   ,en-US,order_tracking,0.8,,false",  # blank text
    "q04,2024-05-01T08:15:00Z,hello,en-US,weather,0.7,,false",  # unknown intent
    "q05,2024-05-01 09:00:00,track parcel,en-US,,,order_tracking.where,false",  # rule answered: valid
    "q01,2024-05-01T10:00:00Z,again,en-US,order_tracking,0.6,,false",  # repeats row 0 (another chunk at 3 rows)
    "q07,not a time,what,en-US,order_tracking,0.6,,false",  # unparseable ts
    "q08,2024-05-02T10:00:00+02:00,mangas,ja-JP,order_tracking,0.5,,true",
    "q08,2024-05-02T11:00:00Z,mangas twice,ja-JP,order_tracking,0.5,,false",  # repeats row 7 (same chunk)
    "q10,2024-05-03T23:30:00Z,last one,fr-FR,return_request,0.99,,false",
]
BAD = {
    1: "expect_column_values_to_be_between(model_confidence)",
    2: "expect_column_value_lengths_to_be_between(text)",
    3: "expect_column_values_to_be_in_set(model_intent)",
    5: "expect_column_values_to_be_unique(query_id)",
    6: "expect_column_values_to_be_parseable(ts)",
    8: "expect_column_values_to_be_unique(query_id)",
}
VALID_IDS = ["q01", "q05", "q08", "q10"]


def write_log(path, fmt):
    csv_path = path.with_suffix(".csv")
    csv_path.write_text("\n".join([HEADER, *ROWS]) + "\n")
    if fmt == "csv":
        return csv_path
    frame = pd.read_csv(csv_path, dtype=str, keep_default_na=False, na_values=[""])
    frame["model_confidence"] = frame["model_confidence"].astype(float)
    frame["shadow"] = frame["shadow"] == "true"
    csv_path.unlink()
    frame.to_parquet(path.with_suffix(".parquet"), index=False)
    return path.with_suffix(".parquet")


@pytest.mark.parametrize(("fmt", "chunk_rows"), list(itertools.product(["csv", "parquet"], [3, 100])))
def test_exactly_the_bad_rows_are_quarantined(tmp_path, fmt, chunk_rows):
    source = write_log(tmp_path / "log", fmt)
    report = LogReport()
    frame = read_log(source, known_intents=INTENTS, quarantine_dir=tmp_path / "q", chunk_rows=chunk_rows, report=report)

    assert frame["query_id"].tolist() == VALID_IDS
    assert {c: str(t) for c, t in frame.dtypes.items()} == CONTRACT_DTYPES
    assert frame["ts"].tolist()[2] == pd.Timestamp("2024-05-02T08:00:00Z")  # +02:00 converted to UTC
    assert frame["ts"].tolist()[1] == pd.Timestamp("2024-05-01T09:00:00Z")  # naive means UTC
    assert frame["model_intent"].isna().tolist() == [False, True, False, False]

    (quarantine,) = report.quarantine_files
    assert quarantine.startswith(str(tmp_path / "q" / "log-"))
    bad = pd.read_parquet(quarantine)
    assert dict(zip(bad["_row"], bad["_reason"])) == BAD
    assert set(bad["_source_file"]) == {str(source)}
    assert all(str(t) in ("object", "str", "string") for c, t in bad.dtypes.items() if c != "_row")
    assert bad.loc[bad["_row"] == 6, "ts"].item() == "not a time"  # the original value, as text

    assert (report.rows_read, report.rows_valid, report.rows_quarantined) == (10, 4, 6)
    assert report.reasons["expect_column_values_to_be_unique(query_id)"] == 2
    json.dumps(report.to_dict())


def test_without_known_intents_any_intent_is_valid(tmp_path):
    source = write_log(tmp_path / "log", "csv")
    frame = read_log(source, quarantine_dir=tmp_path / "q")
    assert frame["query_id"].tolist() == ["q01", "q04", "q05", "q08", "q10"]


def test_non_numeric_confidence_and_bad_runtime_values_are_reasons(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text(
        "query_id,ts,text,locale,model_intent,model_confidence,bundle_version,shadow\n"
        "a,2024-05-01T00:00:00Z,hi,en-US,x,0.5,3,true\n"
        "b,2024-05-01T00:00:00Z,hi,en-US,x,high,3,true\n"
        "c,2024-05-01T00:00:00Z,hi,en-US,x,0.5,3.5,maybe\n"
    )
    report = LogReport()
    frame = read_log(path, quarantine_dir=tmp_path / "q", report=report)
    assert frame["query_id"].tolist() == ["a"]
    assert frame["bundle_version"].tolist() == [3]
    bad = pd.read_parquet(report.quarantine_files[0])
    assert bad["_reason"].tolist() == [
        "expect_column_values_to_be_parseable(model_confidence)",
        "expect_column_values_to_be_parseable(bundle_version); expect_column_values_to_be_parseable(shadow)",
    ]


def test_all_rows_bad_raises_after_writing_the_quarantine(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text(HEADER + "\n" + "\n".join(ROWS[1:4]) + "\n")
    report = LogReport()
    with pytest.raises(LogError, match=r"no valid row in .*log.csv: 3 rows quarantined, see .*log-.*\.parquet"):
        read_log(path, known_intents=INTENTS, quarantine_dir=tmp_path / "q", report=report)
    assert len(pd.read_parquet(report.quarantine_files[0])) == 3


def test_second_read_of_an_unchanged_file_skips_great_expectations(tmp_path):
    source = write_log(tmp_path / "log", "parquet")
    options = dict(known_intents=INTENTS, quarantine_dir=tmp_path / "q", chunk_rows=4)
    first, second = LogReport(), LogReport()
    frame1 = read_log(source, report=first, **options)
    frame2 = read_log(source, report=second, **options)

    assert first.ge_batches == 3 and first.files_cached == []
    assert second.ge_batches == 0 and second.files_cached == [str(source)]
    pd.testing.assert_frame_equal(frame1, frame2)
    assert (second.rows_read, second.rows_quarantined, second.reasons) == (10, 6, first.reasons)
    assert second.quarantine_files == []  # nothing new to write

    # Another intent list is another validation.
    third = LogReport()
    read_log(source, known_intents=INTENTS | {"weather"}, quarantine_dir=tmp_path / "q", report=third)
    assert third.ge_batches == 1 and third.rows_quarantined == 5

    # Touching the file (new mtime) invalidates the marker.
    stat = source.stat()
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    fourth = LogReport()
    pd.testing.assert_frame_equal(read_log(source, report=fourth, **options), frame1)
    assert fourth.ge_batches == 3 and fourth.files_cached == []


def test_a_modified_file_is_validated_again(tmp_path):
    source = write_log(tmp_path / "log", "csv")
    options = dict(known_intents=INTENTS, quarantine_dir=tmp_path / "q")
    read_log(source, **options)
    source.write_text("\n".join([HEADER, *ROWS[:2]]) + "\n")
    report = LogReport()
    assert read_log(source, report=report, **options)["query_id"].tolist() == ["q01"]
    assert report.ge_batches == 1 and report.rows_quarantined == 1


def test_a_windowed_read_is_not_cached(tmp_path):
    source = write_log(tmp_path / "log", "csv")
    day = pd.Timestamp("2024-05-03").date()
    options = dict(since=day, until=day, known_intents=INTENTS, quarantine_dir=tmp_path / "q")
    read_log(source, **options)
    report = LogReport()
    read_log(source, report=report, **options)
    assert report.files_cached == [] and report.ge_batches == 1


def test_duplicates_across_files_are_not_checked(tmp_path):
    write_log(tmp_path / "a", "csv")
    write_log(tmp_path / "b", "csv")
    frame = read_log(tmp_path, known_intents=INTENTS, quarantine_dir=tmp_path / "q")
    assert frame["query_id"].tolist() == VALID_IDS * 2


def test_validate_false_trusts_the_log(tmp_path):
    source = write_log(tmp_path / "log", "csv")
    report = LogReport()
    frame = read_log(source, validate=False, report=report)
    assert len(frame) == 10 and report.ge_batches == 0 and report.rows_quarantined == 0
    assert frame["ts"].isna().sum() == 1
