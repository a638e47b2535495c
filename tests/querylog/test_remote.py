"""A query log in an object store: s3:// against a real S3 API (moto's server on 127.0.0.1), fsspec schemes."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import boto3
import pandas as pd
import pyarrow.parquet as pq
import pytest
from moto.server import ThreadedMotoServer
from pyarrow import fs as pafs
from typer.testing import CliRunner

from rulelife.cli import app
from rulelife.engines.fold import fold_log
from rulelife.errors import LogError
from rulelife.querylog import LogReport, read_log
from tests.monitoring.test_nightly import runtime_log

DAY1, DAY2 = dt.date(2026, 3, 3), dt.date(2026, 3, 4)


@pytest.fixture(scope="module")
def s3_endpoint():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def bucket(s3_endpoint, monkeypatch):
    """An empty bucket ``logs`` on the S3 server; the AWS variables point every client at it."""
    for key, value in {"AWS_ENDPOINT_URL": s3_endpoint, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                       "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}.items():
        monkeypatch.setenv(key, value)
    client = boto3.client("s3")
    client.create_bucket(Bucket="logs")
    yield pafs.S3FileSystem(endpoint_override=s3_endpoint, scheme="http", access_key="test", secret_key="test",
                            region="us-east-1")
    for item in client.list_objects_v2(Bucket="logs").get("Contents", []):
        client.delete_object(Bucket="logs", Key=item["Key"])
    client.delete_bucket(Bucket="logs")


def day_rows(day: dt.date, locales: list[str], bad: int | None = None) -> pd.DataFrame:
    frame = pd.DataFrame({
        "query_id": [f"{day}-{i}" for i in range(len(locales))],
        "ts": pd.Timestamp(day, tz="UTC") + pd.to_timedelta(range(len(locales)), unit="min"),
        "text": ["hello there"] * len(locales),
        "locale": locales,
        "model_intent": "greeting",
        "model_confidence": 0.9,
        "blob": ["x" * 400] * len(locales),
    })
    if bad is not None:
        frame.loc[bad, "model_confidence"] = 1.7
    return frame


def put_parquet(s3: pafs.S3FileSystem, key: str, frame: pd.DataFrame) -> None:
    import pyarrow as pa

    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), f"logs/{key}", filesystem=s3,
                   coerce_timestamps="us")


def partitioned_log(s3: pafs.S3FileSystem) -> str:
    """Day 1: 3 en-US + 1 ja-JP; day 2: 2 es-ES and one bad row; Spark's _SUCCESS marker beside them."""
    put_parquet(s3, f"runtime/date={DAY1}/part-0.parquet", day_rows(DAY1, ["en-US", "en-US", "ja-JP"]))
    put_parquet(s3, f"runtime/date={DAY1}/part-1.parquet", day_rows(DAY1, ["en-US"]).assign(query_id="x"))
    put_parquet(s3, f"runtime/date={DAY2}/part-0.parquet", day_rows(DAY2, ["es-ES"] * 3, bad=2))
    with s3.open_output_stream("logs/runtime/_SUCCESS") as out:
        out.write(b"")
    return "s3://logs/runtime/"


def locale_counts(chunk: pd.DataFrame) -> Counter:
    return Counter(chunk["locale"].astype(str))


def test_a_partitioned_log_is_read_from_the_bucket(bucket, tmp_path):
    uri = partitioned_log(bucket)
    report = LogReport()
    frame = read_log(uri, quarantine_dir=tmp_path / "q", report=report)
    assert sorted(frame["locale"]) == ["en-US", "en-US", "en-US", "es-ES", "es-ES", "ja-JP"]
    assert "blob" not in frame.columns
    assert (report.rows_read, report.rows_valid, report.rows_quarantined) == (7, 6, 1)
    assert report.files_read == [f"{uri}date={DAY1}/part-0.parquet", f"{uri}date={DAY1}/part-1.parquet",
                                 f"{uri}date={DAY2}/part-0.parquet"]
    (quarantine,) = report.quarantine_files
    bad = pq.read_table(quarantine).to_pandas()
    assert bad[["_source_file", "_row", "_reason"]].values.tolist() == [
        [f"{uri}date={DAY2}/part-0.parquet", 2, "expect_column_values_to_be_between(model_confidence)"]]
    again = LogReport()  # S3 keeps a modification time: the second read is served by the validation cache
    read_log(uri, quarantine_dir=tmp_path / "q", report=again)
    assert len(again.files_cached) == 3 and again.rows_quarantined == 1


def test_a_window_skips_other_days_folders_and_a_fold_runs_on_the_bucket(bucket):
    uri = partitioned_log(bucket)
    report = LogReport()
    assert fold_log(locale_counts, uri, since=DAY2, report=report) == Counter({"es-ES": 2})
    assert report.files_skipped == [f"{uri}date={DAY1}/part-0.parquet", f"{uri}date={DAY1}/part-1.parquet"]
    assert fold_log(locale_counts, uri, engine="local-pool", workers=2) == Counter({"en-US": 3, "ja-JP": 1, "es-ES": 2})


def test_a_csv_log_in_the_bucket(bucket):
    frame = day_rows(DAY1, ["en-US", "ja-JP"])
    with bucket.open_output_stream("logs/csv/queries-2026-03-03.csv") as out:
        out.write(frame.to_csv(index=False).encode())
    got = read_log("s3://logs/csv/queries-2026-03-03.csv", extra_columns=["blob"])
    assert got["locale"].tolist() == ["en-US", "ja-JP"] and got["blob"].str.len().tolist() == [400, 400]


def test_a_missing_bucket_or_folder_is_named(bucket):
    with pytest.raises(LogError, match=r"s3://no-such-bucket/runtime/.*check the URI and the credentials for s3://"):
        read_log("s3://no-such-bucket/runtime/")
    with pytest.raises(LogError, match=r"query log not found: s3://logs/nothing/ does not exist"):
        read_log("s3://logs/nothing/")


def runtime_day(workspace, day: dt.date) -> pd.DataFrame:
    """The nightly test's day (10 shadow rows where the model agrees, 10 answered, 5 faq shadow, 5 no rule)
    with an unused 400-byte column, as real logs carry."""
    frame = runtime_log(workspace, day, 10, 0, write=False)
    frame["session_blob"] = "y" * 400
    return frame


def test_the_nightly_counts_a_day_in_the_bucket(bucket, live_workspace):
    from rulelife.monitoring import nightly
    from rulelife.store import Store

    put_parquet(bucket, f"runtime/date={DAY2}/part-0.parquet", runtime_day(live_workspace, DAY2))
    result = CliRunner().invoke(app, ["-w", str(live_workspace.root), "monitor", "nightly", "--date", str(DAY2),
                                      "--log", "s3://logs/runtime/"])
    assert result.exit_code == 0, result.output
    history, _ = nightly.load_history(Store.from_workspace(live_workspace), DAY2)
    where = history.set_index("rule_id").loc["order_tracking.where"]
    assert (where.fires, where.shadow_n, where.agree_n, where.safety_fp) == (20, 10, 10, 0)
    missing = CliRunner().invoke(app, ["-w", str(live_workspace.root), "monitor", "nightly", "--date", str(DAY2),
                                       "--log", "s3://no-such-bucket/runtime/"])
    assert missing.exit_code == 1
    assert "s3://no-such-bucket/runtime/" in missing.output and "Traceback" not in missing.output


def test_an_fsspec_scheme_reads_through_fsspec(tmp_path):
    fsspec = pytest.importorskip("fsspec")
    memory = fsspec.filesystem("memory")
    with memory.open("/rulelife-test/log/queries-2026-03-03.parquet", "wb") as out:
        day_rows(DAY1, ["en-US", "en-US", "ja-JP"]).to_parquet(out, index=False)
    try:
        frame = read_log("memory://rulelife-test/log/")
        assert frame["locale"].tolist() == ["en-US", "en-US", "ja-JP"]
        with pytest.raises(LogError, match="query log not found: memory://rulelife-test/none/ does not exist"):
            read_log("memory://rulelife-test/none/")
    finally:
        memory.rm("/rulelife-test", recursive=True)


def test_a_file_uri_is_a_local_path(tmp_path):
    day_rows(DAY1, ["en-US"]).to_parquet(tmp_path / "queries-2026-03-03.parquet", index=False)
    assert read_log(f"file://{tmp_path}/")["locale"].tolist() == ["en-US"]
    with pytest.raises(LogError, match="file:// URI names a path on this machine"):
        read_log("file://otherhost/log/")
