"""The Spark executor of :func:`~rulelife.engines.fold.fold_log`.

::

    spark.read.parquet(files)                  # local paths, s3://, hdfs://, ...
      .where(ts in window or ts is null)       # pushed down to Parquet row groups
      .select(log contract columns, row checks)
      .mapInArrow(fold_partition)              # per partition: chunks of chunk_rows rows,
                                               #   step(chunk) merged; one pickled partial out
      .rdd.treeReduce(combine)                 # partials merged in a tree, not all on the driver

The step runs on the workers exactly as on the local engines (same chunk
size, same coerced dtypes); only its merged result crosses to the driver.
Row checks are :mod:`rulelife.engines.spark`'s column expressions (the local
reader's reasons); as there, per-file query_id uniqueness and quarantine
files are the upstream job's on Spark (docs/spark.md).
"""

from __future__ import annotations

import datetime as dt
import json
import pickle
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa

from rulelife._compat import quiet_pyspark_import
from rulelife.errors import LogError
from rulelife.querylog import LogReport
from rulelife.querylog.schema import REQUIRED_COLUMNS, coerce
from rulelife.querylog.sources import describe

__all__ = ["fold_partition", "fold_spark"]

_DDL = "rows bigint, quarantined bigint, reasons string, payload binary"
_SCHEMA = pa.schema([("rows", pa.int64()), ("quarantined", pa.int64()), ("reasons", pa.string()),
                     ("payload", pa.binary())])
_TYPES = {"ts": ("timestamp", "timestamp_ntz"), "model_confidence": ("double", "float", "decimal")}


def fold_partition(batches: Iterator[pa.RecordBatch], step, combine, chunk_rows: int, reasons: list[str]
                   ) -> Iterator[pa.RecordBatch]:
    """mapInArrow body: coerce, drop bad rows, fold chunks of ``chunk_rows``; one row out.

    Bit ``i`` of the ``bad`` column is the check ``reasons[i]`` failing.
    """
    total, rows, quarantined = None, 0, 0
    bad_reasons: Counter[str] = Counter()
    buffer: list[pd.DataFrame] = []
    buffered = 0

    def flush(total):
        chunk = buffer[0] if len(buffer) == 1 else pd.concat(buffer, ignore_index=True)
        buffer.clear()
        part = step(chunk)
        return part if total is None else combine(total, part)

    for batch in batches:
        table = pa.Table.from_batches([batch])
        bad = table.column("bad").to_numpy(zero_copy_only=False)
        frame, _ = coerce(table.drop_columns(["bad"]), Path("<spark partition>"))
        rows += len(frame)
        if bad.any():
            quarantined += int((bad != 0).sum())
            for bit, reason in enumerate(reasons):
                hits = int(((bad >> bit) & 1).sum())
                if hits:
                    bad_reasons[reason] += hits
            frame = frame[bad == 0].reset_index(drop=True)
        if len(frame):
            buffer.append(frame)
            buffered += len(frame)
        if buffered >= chunk_rows:
            total, buffered = flush(total), 0
    if buffer:
        total = flush(total)
    yield pa.RecordBatch.from_pydict(
        {"rows": [rows], "quarantined": [quarantined], "reasons": [json.dumps(bad_reasons)],
         "payload": [None if total is None else pickle.dumps(total, protocol=pickle.HIGHEST_PROTOCOL)]},
        schema=_SCHEMA)


def _unpack(row) -> tuple[int, int, Counter, object]:
    payload = row["payload"]
    return (int(row["rows"]), int(row["quarantined"]), Counter(json.loads(row["reasons"])),
            None if payload is None else pickle.loads(payload))


def _merger(combine):
    def merge(a, b):
        part = a[3] if b[3] is None else b[3] if a[3] is None else combine(a[3], b[3])
        return a[0] + b[0], a[1] + b[1], a[2] + b[2], part

    return merge


def _check_columns(dtypes, source: str) -> None:
    names = [name for name, _ in dtypes]
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        raise LogError(f"{source}: missing required column(s) {', '.join(missing)}; a query log needs "
                       f"{', '.join(REQUIRED_COLUMNS)}")
    for name, kind in dtypes:
        allowed = _TYPES.get(name)
        if allowed and kind.split("(")[0] not in allowed:
            raise LogError(f"{source}: column {name!r} is stored as {kind}, the Spark engine needs "
                           f"{' or '.join(allowed)}; rewrite the column or use --engine local, which parses text")


def _inside(F, since, until):
    """ts within the UTC days [since, until]."""
    inside = F.lit(True)
    if since:
        inside = inside & (F.col("ts") >= F.lit(dt.datetime.combine(since, dt.time(), dt.UTC)))
    if until:
        inside = inside & (F.col("ts") < F.lit(dt.datetime.combine(until + dt.timedelta(days=1), dt.time(), dt.UTC)))
    return inside


def fold_spark(spark, step, combine, source, *, report: LogReport, chunk_rows: int, since=None, until=None,
               known_intents=None, quarantine_dir=None):
    """fold_log on Spark (see the module docstring); ``spark`` None: a local session on every core."""
    with quiet_pyspark_import(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # pyspark's pandas-version check
        from pyspark.errors import AnalysisException
        from pyspark.sql import functions as F

    from rulelife.engines.local import no_rows_error
    from rulelife.engines.spark import _CHECKS, JOB_CONF, _paths, local_session

    spark = spark if spark is not None else local_session()
    paths = _paths(source, since, until, quarantine_dir, report)
    where = describe(source)
    saved = {key: spark.conf.get(key, None) for key in JOB_CONF}
    for key, value in JOB_CONF.items():
        spark.conf.set(key, value)
    try:
        try:
            frame = spark.read.parquet(*paths)
        except AnalysisException as exc:
            raise LogError(f"Spark cannot read the log at {where}: {str(exc).splitlines()[0]}") from None
        _check_columns(frame.dtypes, where)
        report.files_read.extend(frame.inputFiles())
        if since or until:
            frame = frame.where(F.col("ts").isNull() | _inside(F, since, until))
        known = frozenset(known_intents) if known_intents else None
        bad = F.lit(0)
        for bit, (_, check) in enumerate(_CHECKS):
            bad = bad + F.when(check(F, known), 1 << bit).otherwise(0)
        reasons = [reason for reason, _ in _CHECKS]

        def partial(batches):
            return fold_partition(batches, step, combine, chunk_rows, reasons)

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            parts = frame.select(*[F.col(c) for c in REQUIRED_COLUMNS], bad.cast("int").alias("bad")
                                 ).mapInArrow(partial, _DDL)
            merge = _merger(combine)
            rdd = parts.rdd.map(_unpack)
            rows, quarantined, bad_reasons, total = rdd.treeReduce(merge) if not rdd.isEmpty() else (0, 0, Counter(), None)
    finally:
        for key, value in saved.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)
    report.rows_read += rows
    report.rows_quarantined += quarantined
    report.rows_valid += rows - quarantined
    report.reasons.update(bad_reasons)
    if report.rows_valid == 0:
        raise no_rows_error(where, report, since, until)
    return total
