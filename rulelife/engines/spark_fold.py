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

import json
import pickle
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from rulelife._compat import quiet_pyspark_import
from rulelife.errors import LogError
from rulelife.querylog import LogReport
from rulelife.querylog.schema import CONTRACT_DTYPES, coerce, parse_reason
from rulelife.querylog.sources import describe

__all__ = ["fold_partition", "fold_spark"]

_VETO_REASON = parse_reason("lexicon_veto")
_DDL = "rows bigint, quarantined bigint, reasons string, payload binary"
_SCHEMA = pa.schema([("rows", pa.int64()), ("quarantined", pa.int64()), ("reasons", pa.string()),
                     ("payload", pa.binary())])


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
        frame, failures = coerce(table.drop_columns(["bad"]), Path("<spark partition>"))
        rows += len(frame)
        veto_bad = failures.get(_VETO_REASON)
        if veto_bad is not None:  # a malformed lexicon_veto cell (parsed in Python), as the local reader quarantines it
            bad_reasons[_VETO_REASON] += int(veto_bad.sum())
            bad = np.where(veto_bad & (bad == 0), 1 << len(reasons), bad)
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


def fold_spark(spark, step, combine, source, *, report: LogReport, chunk_rows: int, since=None, until=None,
               known_intents=None, quarantine_dir=None, extra_columns=()):
    """fold_log on Spark (see the module docstring); ``spark`` None: a local session on every core."""
    with quiet_pyspark_import(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # pyspark's pandas-version check
        from pyspark.sql import functions as F

    from rulelife.engines.spark import ROW_CHECKS, bad_bits, job_conf, local_session, log_paths, read_window
    from rulelife.querylog.report import no_rows_error

    spark = spark if spark is not None else local_session()
    paths = log_paths(source, since, until, quarantine_dir, report)
    where = describe(source)
    with job_conf(spark):
        frame = read_window(spark, F, paths, since, until, where, report, require_runtime=False)
        extra = [c for c in dict.fromkeys(extra_columns) if c not in CONTRACT_DTYPES]
        absent = [c for c in extra if c not in frame.columns]
        if absent:
            raise LogError(f"{where}: no column {', '.join(map(repr, absent))}, which this job reads "
                           f"(extra_columns); the log has {', '.join(frame.columns)}")
        bad = bad_bits(F, frozenset(known_intents) if known_intents else None)
        reasons = [reason for reason, _ in ROW_CHECKS]

        def partial(batches):
            return fold_partition(batches, step, combine, chunk_rows, reasons)

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            # Every contract column the log holds (coerce adds the absent ones as NA) and the extra ones
            # the step asked for, so a step sees what it would see locally; Parquet reads no other column.
            columns = [F.col(c) for c in CONTRACT_DTYPES if c in frame.columns] + [F.col(c) for c in extra]
            parts = frame.select(*columns, bad.alias("bad")
                                 ).mapInArrow(partial, _DDL)
            rdd = parts.rdd.map(_unpack)
            empty = (0, 0, Counter(), None)
            rows, quarantined, bad_reasons, total = empty if rdd.isEmpty() else rdd.treeReduce(_merger(combine))
    report.rows_read += rows
    report.rows_quarantined += quarantined
    report.rows_valid += rows - quarantined
    report.reasons.update(bad_reasons)
    if report.rows_valid == 0:
        raise no_rows_error(where, report, since, until)
    return total
