"""Only the columns a job uses are read: a wide log costs what a narrow one does."""

from __future__ import annotations

import pandas as pd
import pyarrow.parquet as pq
import pytest

from rulelife.errors import LogError
from rulelife.querylog import CONTRACT_DTYPES, LogReport, read_log


def four_rows() -> pd.DataFrame:
    return pd.DataFrame({
        "query_id": ["q1", "q2", "q3", "q4"],
        "ts": pd.Timestamp("2024-05-01", tz="UTC") + pd.to_timedelta([1, 2, 3, 4], unit="h"),
        "text": ["where is my order", "refund please", "hi", "cancel it"],
        "locale": "en-US",
        "model_intent": "order_tracking",
        "model_confidence": [0.9, 0.8, 1.7, 0.6],  # q3 is out of [0, 1]
    })


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_400_byte_column_not_asked_for_is_never_read(tmp_path, fmt):
    narrow, wide = tmp_path / f"narrow.{fmt}", tmp_path / f"wide.{fmt}"
    frame = four_rows()
    for path, table in ((narrow, frame), (wide, frame.assign(debug_payload=["x" * 400] * 4))):
        table.to_csv(path, index=False) if fmt == "csv" else table.to_parquet(path, index=False)
    reports = LogReport(), LogReport()
    got = [read_log(path, quarantine_dir=tmp_path / "q", report=report) for path, report in zip((narrow, wide), reports)]
    assert list(got[1].columns) == list(CONTRACT_DTYPES)
    pd.testing.assert_frame_equal(got[0], got[1])
    # The same bytes in memory: the wide column never became a Python string.
    assert got[0].memory_usage(deep=True).sum() == got[1].memory_usage(deep=True).sum()
    for report in reports:  # quarantine unchanged: valid + quarantined = input
        assert (report.rows_read, report.rows_valid, report.rows_quarantined) == (4, 3, 1)
        assert dict(report.reasons) == {"expect_column_values_to_be_between(model_confidence)": 1}


def test_the_quarantine_holds_the_columns_read(tmp_path):
    four_rows().assign(debug_payload=["x" * 400] * 4, channel="web").to_parquet(tmp_path / "log.parquet")
    report = LogReport()
    read_log(tmp_path / "log.parquet", quarantine_dir=tmp_path / "q", report=report, extra_columns=["channel"])
    (quarantine,) = report.quarantine_files
    bad = pq.read_table(quarantine).to_pandas()
    assert "debug_payload" not in bad.columns
    assert bad[["query_id", "channel", "_row", "_reason"]].values.tolist() == [
        ["q3", "web", 2, "expect_column_values_to_be_between(model_confidence)"]]


def test_an_extra_column_is_checked_only_when_read(tmp_path):
    """A byte that is not UTF-8 in a column nobody reads is no bad row; in a column a job reads it is."""
    path = tmp_path / "log.csv"
    rows = [b"query_id,ts,text,locale,model_intent,model_confidence,note",
            b"q1,2024-05-01T01:00:00Z,hello,en-US,greeting,0.9,fine",
            b"q2,2024-05-01T02:00:00Z,hello,en-US,greeting,0.9,caf\xe9",
            b"q3,2024-05-01T03:00:00Z,hello,en-US,greeting,0.9,ok"]
    path.write_bytes(b"\n".join(rows) + b"\n")
    plain, asked = LogReport(), LogReport()
    assert len(read_log(path, quarantine_dir=tmp_path / "q", report=plain)) == 3
    frame = read_log(path, quarantine_dir=tmp_path / "q", report=asked, extra_columns=["note"])
    assert frame["note"].tolist() == ["fine", "ok"]
    assert (asked.rows_read, asked.rows_valid, asked.rows_quarantined) == (3, 2, 1)
    assert dict(asked.reasons) == {"expect_column_values_to_be_utf8(note)": 1}
    # The validation cache holds one verdict per projection: a third read of each agrees, from the cache.
    again = LogReport()
    assert len(read_log(path, quarantine_dir=tmp_path / "q", report=again)) == 3
    assert again.files_cached == [str(path)] and again.rows_quarantined == 0


def test_a_file_without_an_asked_column_is_refused_by_name(tmp_path):
    four_rows().to_parquet(tmp_path / "log.parquet")
    with pytest.raises(LogError, match=r"log.parquet: no column 'channel', which this job reads \(extra_columns\)"):
        read_log(tmp_path / "log.parquet", extra_columns=["channel"])
    with pytest.raises(LogError, match="extra_columns must be a collection of column names, got the string 'channel'"):
        read_log(tmp_path / "log.parquet", extra_columns="channel")
