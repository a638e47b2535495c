"""Spark helpers every job on Spark shares: a local session, reading a log window, the row checks.

The only module of rulelife that touches pyspark, and only inside functions:
``import rulelife`` (and this module) never starts or imports Spark. The
daily metrics' Spark job is :mod:`rulelife.monitoring.spark_counts`; any
other count goes through :func:`rulelife.engines.fold.fold_log` (see
:mod:`rulelife.engines.spark_fold`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from rulelife._compat import quiet_pyspark_import
from rulelife.errors import LogError
from rulelife.querylog import LogReport
from rulelife.querylog.schema import REQUIRED_COLUMNS, RUNTIME_COLUMNS, SHADOW_RULES_PATTERN
from rulelife.querylog.sources import LogSource, describe, files_in_window

__all__ = ["JOB_CONF", "ROW_CHECKS", "bad_bits", "job_conf", "local_session", "log_paths", "read_window"]

# Set on the session for the duration of a count (and restored after).
JOB_CONF = {
    # Arrow batches of 128K rows: a partition's grouped rows (a few thousand)
    # go to count_chunk in one batch. (When every row crossed, the 10K
    # default cost ~14 % more CPU in per-batch pandas overheads.)
    "spark.sql.execution.arrow.maxRecordsPerBatch": "131072",
    # Day windows and naive Parquet timestamps are UTC by the log contract.
    "spark.sql.session.timeZone": "UTC",
}

def local_session(cores: int | None = None, *, app_name: str = "rulelife", conf: Mapping[str, str] | None = None):
    """A ``local[cores]`` SparkSession set up for rulelife (default: every core).

    Handles the local-mode pitfalls: the driver binds to 127.0.0.1 (a
    hostname that does not resolve otherwise stalls start-up), the UI is off,
    shuffle partitions are 2 × cores instead of 200 (each is a task), Arrow
    is on with large batches, and the workers run this interpreter (the venv
    that has rulelife), not whatever ``python3`` is on PATH.
    """
    # pyspark warns about pandas >= 3 on import (rulelife hands Spark Arrow
    # batches and collects plain rows, never a pandas conversion), and may
    # exit a `python -c` process on import: see quiet_pyspark_import.
    with quiet_pyspark_import():
        from pyspark.sql import SparkSession

    cores = cores or os.cpu_count() or 1
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    settings = {
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.shuffle.partitions": str(2 * cores),
        "spark.default.parallelism": str(2 * cores),
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.pyspark.python": sys.executable,
        **JOB_CONF,
        **(conf or {}),
    }
    builder = SparkSession.builder.master(f"local[{cores}]").appName(app_name)
    for key, value in settings.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session



def log_paths(source: LogSource, since: dt.date | None, until: dt.date | None, quarantine_dir: Path | None,
           report: LogReport) -> list[str]:
    """Files (or URIs) to read: local paths are resolved and day-pruned as the local reader does."""
    items = [source] if isinstance(source, (str, Path)) else list(source)
    remote = [str(i) for i in items if "://" in str(i)]
    local = [i for i in items if "://" not in str(i)]
    paths = list(remote)
    if local:
        for path in files_in_window(local, since, until, exclude=quarantine_dir, skipped=report.files_skipped):
            if path.stat().st_size == 0:  # no rows, as the local reader has it (Spark would refuse the file)
                report.files_read.append(str(path))
                report.files_empty.append(str(path))
            elif path.suffix.lower() != ".parquet":
                raise LogError(f"{path}: the Spark engine reads Parquet only; convert the CSV log to Parquet "
                               "or use --engine local")
            else:
                paths.append(str(path))
    if not paths and report.files_empty:
        raise LogError(f"no row in {describe(source)}: the files are empty")
    if not paths:
        raise LogError(
            f"no file of {describe(source)} holds a day between {since or 'the start'} and {until or 'the end'} "
            f"({len(report.files_skipped)} file(s) named for other days)"
        )
    return paths



# The reader's per-row checks, named as its great-expectations reasons, as
# Spark column expressions (bit i of the shipped ``bad`` column is check i).
# Blank text: Java's \s under (?U) is Unicode White_Space, which is what the
# reader's utf8_trim_whitespace strips.
ROW_CHECKS = (
    ("expect_column_values_to_not_be_null(query_id)", lambda F, known: F.col("query_id").isNull()),
    ("expect_column_values_to_not_be_null(ts)", lambda F, known: F.col("ts").isNull()),
    ("expect_column_values_to_not_be_null(text)", lambda F, known: F.col("text").isNull()),
    ("expect_column_value_lengths_to_be_between(text)", lambda F, known: F.col("text").rlike(r"(?U)^\s*$")),
    # Spark orders NaN above every number; the local reader reads a NaN as a missing confidence.
    ("expect_column_values_to_be_between(model_confidence)",
     lambda F, known: ~F.isnan(F.col("model_confidence"))
     & ((F.col("model_confidence") < 0) | (F.col("model_confidence") > 1))),
    ("expect_column_values_to_be_a_number_where_model_intent_is_set(model_confidence)",
     lambda F, known: F.isnan(F.col("model_confidence")) & (F.trim(F.col("model_intent")) != "")),
    ("expect_column_values_to_have_no_control_characters(query_id)",
     lambda F, known: F.col("query_id").rlike(r"[\p{Cc}\p{Cf}]")),
    ("expect_column_values_to_have_no_control_characters(locale)",
     lambda F, known: F.col("locale").rlike(r"[\p{Cc}\p{Cf}]")),
    ("expect_column_values_to_have_no_control_characters(model_version)",
     lambda F, known: F.col("model_version").rlike(r"[\p{Cc}\p{Cf}]")),
    ("expect_column_values_to_be_in_set(model_intent)",
     lambda F, known: F.col("model_intent").isNotNull() & ~F.col("model_intent").isin(*sorted(known))
     if known else F.lit(False)),
    # The optional shadow_rules cell, as the local reader parses it (schema._shadow_rules).
    ("expect_column_values_to_be_parseable(shadow_rules)",
     lambda F, known: (F.trim(F.col("shadow_rules")) != "") & ~F.trim(F.col("shadow_rules")).rlike(SHADOW_RULES_PATTERN)),
)



# Spark reads Parquet with its stored types; a column stored otherwise (ts
# as text, say) would compare wrongly, so it is refused instead of parsed.
_TYPES = {
    "ts": ("timestamp", "timestamp_ntz"),
    "model_confidence": ("double", "float", "decimal"),
    "bundle_version": ("bigint", "int", "smallint", "tinyint"),
    "shadow": ("boolean",),
}


def bad_bits(F, known: frozenset[str] | None):
    """One int a row: bit ``i`` set where check ``i`` of ``ROW_CHECKS`` fails."""
    bad = F.lit(0)
    for bit, (_, check) in enumerate(ROW_CHECKS):
        bad = bad + F.when(check(F, known), 1 << bit).otherwise(0)
    return bad.cast("int")


def _check_columns(dtypes: Sequence[tuple[str, str]], source: str, require_runtime: bool) -> None:
    names = [name for name, _ in dtypes]
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        raise LogError(f"{source}: missing required column(s) {', '.join(missing)}; a query log needs "
                       f"{', '.join(REQUIRED_COLUMNS)}")
    absent = [c for c in RUNTIME_COLUMNS if c not in names]
    if require_runtime and absent:
        raise LogError(f"{source}: missing the runtime column(s) {', '.join(absent)}; this job needs the log the "
                       "chatbot runtime writes (rule hits and the shadow flag), not a model-only log")
    for name, kind in dtypes:
        allowed = _TYPES.get(name)
        if allowed and kind.split("(")[0] not in allowed:
            raise LogError(f"{source}: column {name!r} is stored as {kind}, the Spark engine needs "
                           f"{' or '.join(allowed)}; rewrite the column or use --engine local, which parses text")


@contextlib.contextmanager
def job_conf(spark) -> Iterator[None]:
    """JOB_CONF set on the session for a job, the session's own values restored after."""
    saved = {key: spark.conf.get(key, None) for key in JOB_CONF}
    for key, value in JOB_CONF.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)


def read_window(spark, F, paths: list[str], since, until, source: str, report: LogReport, *,
                require_runtime: bool = True):
    """The log's rows of the window (and rows without a ts: they are bad rows to count)."""
    from pyspark.errors import AnalysisException

    try:
        frame = spark.read.parquet(*paths)
    except AnalysisException as exc:
        message = str(exc).splitlines()[0]
        if "TIMESTAMP(NANOS" in message:
            # pandas < 3 writes nanosecond timestamps by default; Spark reads micro- and milliseconds.
            message += (" (a column holds nanosecond timestamps, which Spark cannot read: write the log with "
                        "microsecond timestamps, e.g. pandas to_parquet(..., coerce_timestamps='us', "
                        "allow_truncated_timestamps=True), or use --engine local)")
        raise LogError(f"Spark cannot read the log at {source}: {message}") from None
    _check_columns(frame.dtypes, source, require_runtime)
    if "shadow_rules" not in frame.columns:  # optional: a log without it had no shadow rule fire
        frame = frame.withColumn("shadow_rules", F.lit(None).cast("string"))
    if "lexicon_veto" not in frame.columns:  # optional: a log without it had no lexicon veto
        frame = frame.withColumn("lexicon_veto", F.lit(None).cast("string"))
    if "model_version" not in frame.columns:  # optional: a log without it does not say which model labelled it
        frame = frame.withColumn("model_version", F.lit(None).cast("string"))
    report.files_read.extend(frame.inputFiles())
    if not (since or until):
        return frame
    inside = F.lit(True)
    if since:
        inside = inside & (F.col("ts") >= F.lit(dt.datetime.combine(since, dt.time(), dt.UTC)))
    if until:
        inside = inside & (F.col("ts") < F.lit(dt.datetime.combine(until + dt.timedelta(days=1), dt.time(), dt.UTC)))
    return frame.where(F.col("ts").isNull() | inside)
