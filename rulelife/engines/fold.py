"""Fold a mergeable per-chunk function over a query log, on any engine.

The dataset builder and the miner count with pure functions of one chunk of
the log whose results merge (``combine(a, b)``, usually ``a + b``):
:class:`~rulelife.evidence.datasets.builder.DatasetBuilder` partials,
:class:`~miners.counts.PhraseCounts`, :class:`~miners.probes.RuleCounts`.
:func:`fold_log` applies such a *step* to every chunk of a log window and
merges the results, wherever the chunks are:

- ``local``: one process streams the log (:func:`~rulelife.querylog.iter_log`,
  validation and quarantine included), chunks of ``chunk_rows`` rows.
- ``local-pool``: the files split into one contiguous group a worker
  process, each group folded as ``local`` does, the groups' results merged
  in file order.
- ``spark``: every partition folds its Arrow batches (same chunk size) and
  ships one pickled partial; the partials are merged with ``treeReduce``
  (see :mod:`rulelife.engines.spark_fold`).

A step must be picklable (a module-level class or function) and must not
depend on where a chunk starts: that is what makes the engines agree. Steps
that prune per chunk (the miner's phrase counts) state their error bound in
terms of chunks, which is the same on every engine up to the chunk count.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import operator
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Self

import pandas as pd

from rulelife.errors import ConfigError, LogError
from rulelife.querylog import LogReport, coalesce, iter_log
from rulelife.querylog.sources import LogSource, describe, files_in_window

__all__ = ["CHUNK_ROWS", "FOLD_ENGINES", "LogFold", "fold_log"]

FOLD_ENGINES = ("local", "local-pool", "spark")
# Rows a step sees at once: large enough that per-chunk overheads (a pandas
# groupby, a matcher call) are paid rarely, small enough to bound memory.
CHUNK_ROWS = 200_000

Step = Callable[[pd.DataFrame], Any]
Combine = Callable[[Any, Any], Any]


def fold_log(
    step: Step,
    source: LogSource,
    *,
    combine: Combine = operator.add,
    since: dt.date | None = None,
    until: dt.date | None = None,
    engine: str = "local",
    known_intents: Sequence[str] | None = None,
    quarantine_dir: Path | None = None,
    report: LogReport | None = None,
    workers: int | None = None,
    spark=None,
    chunk_rows: int = CHUNK_ROWS,
    pool: ProcessPoolExecutor | None = None,
    columns: Sequence[str] = (),
) -> Any:
    """``combine`` of ``step(chunk)`` over the valid rows of ``source`` in ``[since, until]``.

    ``local-pool`` starts ``workers`` processes (default: every core) for
    the fold, or uses ``pool`` (a spawn-context ``ProcessPoolExecutor``)
    so several folds pay the start-up once (see :class:`LogFold`).

    ``columns`` names the log columns outside the contract that ``step``
    reads (a candidate model's answers, say): the local engines hand a step
    every column of the file, Spark reads the contract's and these.

    ``report`` is filled with what was read, skipped and quarantined.
    Raises :class:`~rulelife.errors.LogError` as the reader does (no file,
    missing columns, no valid row in the window), and
    :class:`~rulelife.errors.ConfigError` for an unknown engine.
    """
    if engine not in FOLD_ENGINES:
        raise ConfigError(f"Unknown engine {engine!r}, expected one of {', '.join(FOLD_ENGINES)}.")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ConfigError(f"workers must be a positive integer, got {workers!r}")
    report = report if report is not None else LogReport()
    options = {"since": since, "until": until, "known_intents": known_intents, "quarantine_dir": quarantine_dir}
    if engine == "local":
        return _fold_files(step, combine, source, report, chunk_rows, options)
    if engine == "local-pool":
        return _fold_pool(step, combine, source, report, chunk_rows, options, workers, pool)
    from rulelife.engines.spark_fold import fold_spark

    return fold_spark(spark, step, combine, source, report=report, chunk_rows=chunk_rows, columns=columns, **options)


class LogFold:
    """``fold_log`` with the log and engine bound: ``fold(step, combine)``.

    What a miner or builder takes to read the log without knowing the engine;
    the first fold's :class:`~rulelife.querylog.LogReport` is kept as
    ``report`` (later folds read the same rows again). On ``local-pool`` the
    worker processes start once and serve every fold until :meth:`close`
    (or the end of a ``with`` block): starting them costs seconds.
    """

    def __init__(self, source: LogSource, *, engine: str = "local", report: LogReport | None = None, **options):
        self.source = source
        self.engine = engine
        self.options = options
        self.report = report if report is not None else LogReport()
        self._folds = 0
        self._pool: ProcessPoolExecutor | None = None

    def __call__(self, step: Step, combine: Combine = operator.add) -> Any:
        report = self.report if self._folds == 0 else LogReport()
        self._folds += 1
        if self.engine == "local-pool" and self._pool is None:
            self._pool = _spawn_pool(self.options.get("workers"))
        return fold_log(step, self.source, combine=combine, engine=self.engine, report=report, pool=self._pool,
                        **self.options)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _spawn_pool(workers: int | None) -> ProcessPoolExecutor:
    # spawn, not fork: the parent may hold threads (a JVM gateway, a GE
    # context) that a forked child would inherit half-locked.
    return ProcessPoolExecutor(workers or os.cpu_count() or 1, mp_context=multiprocessing.get_context("spawn"))


def fold_frames(step: Step, combine: Combine, chunks, chunk_rows: int = CHUNK_ROWS) -> Any:
    """The local fold over an iterable of log frames (chunks joined to ``chunk_rows``)."""
    total = None
    for chunk in coalesce(chunks, chunk_rows):
        part = step(chunk)
        total = part if total is None else combine(total, part)
    return total


def _fold_files(step: Step, combine: Combine, source, report: LogReport, chunk_rows: int, options: dict) -> Any:
    return fold_frames(step, combine, iter_log(source, report=report, **options), chunk_rows)


def _fold_group(step: Step, combine: Combine, files: list[str], chunk_rows: int, options: dict
                ) -> tuple[Any, LogReport]:
    """Pool task: fold one contiguous group of files; 'no valid row' in a group is an empty result."""
    report = LogReport()
    try:
        return _fold_files(step, combine, [Path(f) for f in files], report, chunk_rows, options), report
    except LogError:
        if report.rows_valid == 0:
            return None, report
        raise


def _groups(files: list[Path], count: int) -> list[list[str]]:
    """``count`` contiguous groups of about equal bytes (contiguous: chunks then hold neighbouring days)."""
    sizes = [max(1, f.stat().st_size) for f in files]
    total, groups, current, filled = sum(sizes), [], [], 0
    for path, size in zip(files, sizes):
        current.append(str(path))
        filled += size
        if filled >= total * (len(groups) + 1) / count and len(groups) < count - 1:
            groups.append(current)
            current = []
    if current:
        groups.append(current)
    return groups


def _fold_pool(step: Step, combine: Combine, source, report: LogReport, chunk_rows: int, options: dict,
               workers: int | None, pool: ProcessPoolExecutor | None) -> Any:
    # Called for its checks only (files exist, columns, the window): iter_log
    # checks the files when called and reads rows only when iterated.
    iter_log(source, report=LogReport(), **options)
    since, until = options["since"], options["until"]
    files = files_in_window(source, since, until, exclude=options["quarantine_dir"], skipped=report.files_skipped)
    from rulelife.querylog.report import merge_reports, no_rows_error

    groups = _groups(files, max(1, min(workers or os.cpu_count() or 1, len(files))))
    own = pool is None
    pool = pool or _spawn_pool(len(groups))
    total = None
    try:
        tasks = [pool.submit(_fold_group, step, combine, group, chunk_rows, options) for group in groups]
        for task in tasks:  # in file order, so order-sensitive merges match the local engine
            part, part_report = task.result()
            merge_reports(report, part_report)
            if part is not None:
                total = part if total is None else combine(total, part)
    finally:
        if own:
            pool.shutdown()
    if report.rows_valid == 0:
        raise no_rows_error(describe(source), report, since, until)
    return total
