"""Malformed logs: a bad byte, row or file costs its own rows, never the day's.

Every test checks the reader's invariant: each row of the input is either
valid or quarantined (with its reason), and the quarantine holds every bad row.
"""

import datetime as dt
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rulelife.errors import LogError
from rulelife.querylog import LogReport, read_log

HEADER = b"query_id,ts,text,locale,model_intent,model_confidence\n"


def row(i: int, text: bytes = b"where is my order", confidence: bytes = b"0.9", query_id: bytes | None = None) -> bytes:
    query_id = query_id if query_id is not None else f"q{i}".encode()
    return b"%s,2024-05-01T08:00:00Z,%s,en-US,order_tracking,%s\n" % (query_id, text, confidence)


def read(path, tmp_path, **options):
    report = LogReport()
    frame = read_log(path, quarantine_dir=tmp_path / "q", report=report, **options)
    return frame, report, _quarantined(report)


def _quarantined(report: LogReport) -> pd.DataFrame:
    if not report.quarantine_files:
        return pd.DataFrame(columns=["_row", "_raw", "_reason"])
    return pd.concat([pd.read_parquet(p) for p in report.quarantine_files], ignore_index=True)


def assert_every_row_accounted(report: LogReport, frame: pd.DataFrame, quarantine: pd.DataFrame, rows_in: int):
    assert report.rows_read == rows_in
    assert report.rows_valid == len(frame) and report.rows_quarantined == len(quarantine)
    assert report.rows_valid + report.rows_quarantined == rows_in


def test_one_undecodable_byte_costs_one_row_not_the_file(tmp_path):
    rows = [row(i) for i in range(2000)]
    rows[1500] = row(1500, text=b"where is my \xff order")
    path = tmp_path / "log.csv"
    path.write_bytes(HEADER + b"".join(rows))

    frame, report, quarantine = read(path, tmp_path)

    assert_every_row_accounted(report, frame, quarantine, 2000)
    assert len(frame) == 1999 and "q1500" not in set(frame["query_id"])
    assert quarantine["_row"].tolist() == [1500]  # line 1502 of the file
    assert quarantine["_reason"].tolist() == ["expect_column_values_to_be_utf8(text)"]
    assert quarantine["text"].tolist() == ["where is my \\xff order"]  # the byte kept, readable
    assert quarantine["query_id"].tolist() == ["q1500"]


def test_an_undecodable_byte_in_any_column_names_that_column(tmp_path):
    path = tmp_path / "log.csv"
    path.write_bytes(HEADER + row(0) + row(1, query_id=b"q\xc3") + row(2).replace(b"en-US", b"en-\xfeUS") + row(3))
    frame, report, quarantine = read(path, tmp_path)
    assert frame["query_id"].tolist() == ["q0", "q3"]
    assert dict(zip(quarantine["_row"], quarantine["_reason"])) == {
        1: "expect_column_values_to_be_utf8(query_id)",  # not also "query_id is null"
        2: "expect_column_values_to_be_utf8(locale)",
    }
    assert_every_row_accounted(report, frame, quarantine, 4)


def test_an_undecodable_header_is_a_clear_error(tmp_path):
    path = tmp_path / "log.csv"
    path.write_bytes(b"query_id,t\xffs,text\n" + row(0))
    with pytest.raises(LogError, match=r"log.csv: line 1 \(the header\) holds bytes that are not UTF-8"):
        read_log(path)


def test_a_repeated_header_name_is_a_clear_error(tmp_path):
    path = tmp_path / "log.csv"
    path.write_bytes(HEADER.replace(b"locale", b"text") + row(0))
    with pytest.raises(LogError, match=r"log.csv: the header names column\(s\) 'text' more than once"):
        read_log(path)


def test_records_that_do_not_split_into_the_header_fields_are_quarantined_with_their_text(tmp_path):
    path = tmp_path / "log.csv"
    # A stray field, a short record, and a last line cut off by a crashed writer.
    path.write_bytes(HEADER + row(0) + b"q1,2024-05-01T08:00:00Z,a,b,en-US,x,0.5\n" + row(2)
                     + b"q3,2024-05-01T08:00:00Z,hi\n" + row(4) + b"q5,2024-05-01T08:0")
    frame, report, quarantine = read(path, tmp_path, chunk_rows=2)
    assert frame["query_id"].tolist() == ["q0", "q2", "q4"]
    assert quarantine["_raw"].tolist() == ["q1,2024-05-01T08:00:00Z,a,b,en-US,x,0.5", "q3,2024-05-01T08:00:00Z,hi",
                                           "q5,2024-05-01T08:0"]
    assert quarantine["_row"].isna().all() and quarantine["query_id"].isna().all()
    assert set(quarantine["_reason"]) == {"expect_row_fields_to_match_the_header(row)"}
    assert_every_row_accounted(report, frame, quarantine, 6)

    # A second read uses the validation cache and still counts (but does not rewrite) them.
    again = LogReport()
    frame2 = read_log(path, quarantine_dir=tmp_path / "q", report=again)
    assert again.files_cached == [str(path)] and again.quarantine_files == []
    assert (again.rows_read, again.rows_valid, again.rows_quarantined) == (6, 3, 3)
    pd.testing.assert_frame_equal(frame2, frame)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_zero_byte_file_holds_no_rows_and_the_others_still_count(tmp_path, fmt):
    (tmp_path / "log").mkdir()
    (tmp_path / "log" / "a.csv").write_bytes(HEADER + row(0) + row(1))
    (tmp_path / "log" / f"b.{fmt}").write_bytes(b"")
    frame, report, quarantine = read(tmp_path / "log", tmp_path)
    assert frame["query_id"].tolist() == ["q0", "q1"]
    assert report.files_empty == [str(tmp_path / "log" / f"b.{fmt}")] and len(report.files_read) == 2
    assert_every_row_accounted(report, frame, quarantine, 2)


def test_a_day_of_empty_files_is_a_day_without_rows(tmp_path):
    for name in ("queries-2024-05-01.csv", "queries-2024-05-01.parquet"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "header-only.csv").write_bytes(HEADER.rstrip(b"\n"))  # not even a line break
    report = LogReport()
    day = dt.date(2024, 5, 1)
    with pytest.raises(LogError, match="no row in .*: the files are empty"):
        read_log(tmp_path, since=day, until=day, quarantine_dir=tmp_path / "q", report=report)
    assert len(report.files_read) == 3 and len(report.files_empty) == 2 and report.rows_read == 0


def _parquet(path, **columns):
    n = len(columns["query_id"])
    table = {"ts": pa.array([pd.Timestamp("2024-05-01T08:00Z")] * n, pa.timestamp("us", tz="UTC")),
             "text": ["where is my order"] * n, "locale": ["en-US"] * n, **columns}
    pq.write_table(pa.table(table), path)
    return path


def test_nan_confidence_beside_a_model_intent_is_quarantined(tmp_path):
    path = _parquet(tmp_path / "log.parquet", query_id=["a", "b", "c", "d"],
                    model_intent=["order_tracking", None, "order_tracking", "order_tracking"],
                    model_confidence=pa.array([0.9, np.nan, np.nan, np.inf], pa.float64()))
    frame, report, quarantine = read(path, tmp_path)
    # b: a rule answered (no intent), so NaN is a missing confidence; d: infinity is out of range.
    assert frame["query_id"].tolist() == ["a", "b"] and frame["model_confidence"].isna().tolist() == [False, True]
    assert dict(zip(quarantine["query_id"], quarantine["_reason"])) == {
        "c": "expect_column_values_to_be_a_number_where_model_intent_is_set(model_confidence)",
        "d": "expect_column_values_to_be_between(model_confidence)",
    }
    assert_every_row_accounted(report, frame, quarantine, 4)


def test_nan_written_as_text_reads_like_a_nan(tmp_path):
    path = tmp_path / "log.csv"
    path.write_bytes(HEADER + row(0, confidence=b"NaN")
                     + b"q1,2024-05-01T08:00:00Z,hi,en-US,,nan\n" + row(2, confidence=b"high"))
    frame, report, quarantine = read(path, tmp_path)
    assert frame["query_id"].tolist() == ["q1"]
    assert dict(zip(quarantine["_row"], quarantine["_reason"])) == {
        0: "expect_column_values_to_be_a_number_where_model_intent_is_set(model_confidence)",
        2: "expect_column_values_to_be_parseable(model_confidence)",
    }


@pytest.mark.parametrize("bad_id", ["q\x001", "q\t1", "q\u202e1", "q\u200b1"])
def test_a_control_or_format_character_in_query_id_is_quarantined(tmp_path, bad_id):
    path = _parquet(tmp_path / "log.parquet", query_id=["q0", bad_id, "q2"], model_intent=["x"] * 3,
                    model_confidence=[0.5] * 3)
    frame, report, quarantine = read(path, tmp_path)
    assert frame["query_id"].tolist() == ["q0", "q2"]
    assert quarantine["_reason"].tolist() == ["expect_column_values_to_have_no_control_characters(query_id)"]
    assert quarantine["query_id"].tolist() == [bad_id]


def test_a_nul_inside_text_is_content_not_a_bad_row(tmp_path):
    # Text is what a customer typed; normalisation removes control characters before matching.
    path = tmp_path / "log.csv"
    path.write_bytes(HEADER + row(0, text=b"where is\x00 my order"))
    frame, _, quarantine = read(path, tmp_path)
    assert frame["text"].tolist() == ["where is\x00 my order"] and quarantine.empty


def test_an_unreadable_column_type_names_the_file_and_column_in_one_line(tmp_path):
    path = _parquet(tmp_path / "log.parquet", query_id=["a"], model_intent=["x"], model_confidence=[0.5])
    table = pq.read_table(path)
    table = table.set_column(table.column_names.index("text"), "text", pa.array([[1, 2]], pa.list_(pa.int64())))
    pq.write_table(table, path)
    with pytest.raises(LogError, match=r"log.parquet: column 'text' has type list<") as caught:
        read_log(path)
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 600


@pytest.mark.parametrize("chunk_rows", [1, 2, 100])
def test_a_line_cut_inside_a_multibyte_character_costs_only_that_line(tmp_path, chunk_rows):
    # A crashed writer cut a line in the middle of "文" (three bytes in UTF-8): the
    # record is short and not UTF-8, which the CSV parser cannot hand over; the rest is read in Python.
    path = tmp_path / "log.csv"
    cut = "q3,2024-05-01T08:00:00Z,注文".encode()[:-2]
    path.write_bytes(HEADER + row(0) + b'q1,2024-05-01T08:00:00Z,"a\nb",en-US,x,0.5\n' + row(2) + cut + b"\n"
                     + row(4, text=b"\xe6\xb3") + row(5))
    frame, report, quarantine = read(path, tmp_path, chunk_rows=chunk_rows)
    assert frame["query_id"].tolist() == ["q0", "q1", "q2", "q5"]
    assert frame["text"].tolist()[1] == "a\nb"
    assert dict(zip(quarantine["_reason"], quarantine["_raw"].fillna(quarantine["query_id"]))) == {
        "expect_row_fields_to_match_the_header(row)": "q3,2024-05-01T08:00:00Z,注\\xe6",
        "expect_column_values_to_be_utf8(text)": "q4",
    }
    assert_every_row_accounted(report, frame, quarantine, 6)



def test_an_operator_sees_one_warning_for_such_a_line_and_no_traceback(tmp_path):
    # Arrow prints its failed decode of the record as an "Exception ignored" traceback before the reader
    # takes over; the reader's warning says what happened, the traceback only alarms.
    path = tmp_path / "log.csv"
    path.write_bytes(HEADER + row(0) + "q1,2024-05-01T08:00:00Z,注文".encode()[:-2] + b"\n" + row(2))
    script = ("import logging, sys; from rulelife.querylog import read_log; logging.basicConfig(); "
              "print(read_log(sys.argv[1], quarantine_dir=sys.argv[2])['query_id'].tolist())")
    done = subprocess.run([sys.executable, "-c", script, str(path), str(tmp_path / "q")], capture_output=True,
                          text=True, check=True)
    assert done.stdout.strip() == "['q0', 'q2']"
    assert "a record that does not split holds bytes that are not UTF-8" in done.stderr
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr


def test_model_version_is_free_text_but_a_control_character_quarantines_the_row(tmp_path):
    path = _parquet(tmp_path / "log.parquet", query_id=["q0", "q1", "q2", "q3"], model_intent=["x"] * 4,
                    model_confidence=[0.5] * 4,
                    model_version=["intent-clf 2026/05 (β)", "model-2\x00", None, "model\u202e-2"])
    frame, _, quarantine = read(path, tmp_path)
    assert frame["query_id"].tolist() == ["q0", "q2"]
    assert frame["model_version"].tolist()[0] == "intent-clf 2026/05 (β)" and frame["model_version"].isna().tolist()[1]
    assert quarantine["_reason"].tolist() == ["expect_column_values_to_have_no_control_characters(model_version)"] * 2


def test_a_log_without_model_version_reads_it_as_unknown(tmp_path):
    path = _parquet(tmp_path / "log.parquet", query_id=["q0"], model_intent=["x"], model_confidence=[0.5])
    frame, _, quarantine = read(path, tmp_path)
    assert str(frame["model_version"].dtype) == "string" and frame["model_version"].isna().all() and quarantine.empty
