"""The daily counts of a day (or range) of the runtime log, on any engine.

>>> counts, bundles = daily_counts(workspace, day, log=path, engine="local")       # doctest: +SKIP
>>> counts, bundles = daily_counts(workspace, day, log="s3://bucket/log/", engine="spark",
...                                spark=session)                                  # doctest: +SKIP

Every engine applies :func:`rulelife.monitoring.metrics.count_chunk` to pieces of the
log and adds the pieces with :meth:`~rulelife.monitoring.metrics.MetricCounts.__add__`
(or, on Spark, ``groupBy().sum()`` of the same columns, see
:mod:`rulelife.monitoring.spark_counts`); ratios are computed later, once, by
:func:`~rulelife.monitoring.metrics.finalize`. So the engines agree row for row.

The local executors here (one streamed read, or a process pool over files)
read chunks with :func:`rulelife.querylog.iter_log`, validation, quarantine
and the validation cache included.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import NamedTuple

from rulelife.errors import ConfigError, LogError
from rulelife.monitoring.bundle_intents import BundleIntents, unknown_rules_error
from rulelife.monitoring.metrics import MetricCounts, count_chunk
from rulelife.querylog import LogReport, iter_log
from rulelife.querylog.report import merge_reports, no_rows_error
from rulelife.querylog.sources import LogFile, LogSource, describe, files_in_window

__all__ = ["ENGINES", "BundleIntents", "DailyCounts", "count_files", "count_local", "count_pool", "daily_counts"]

ENGINES = ("local", "local-pool", "spark")


class DailyCounts(NamedTuple):
    """The additive counts of a day (or range) and the bundle numbers its log names."""

    counts: MetricCounts
    bundles: list[int]


def _window(day_or_range) -> tuple[dt.date, dt.date]:
    if isinstance(day_or_range, dt.datetime):
        day_or_range = day_or_range.date()
    if isinstance(day_or_range, dt.date):
        return day_or_range, day_or_range
    try:
        since, until = day_or_range
    except (TypeError, ValueError):
        raise LogError(f"day_or_range must be a date or a (since, until) pair of dates, got {day_or_range!r}") from None
    if not all(isinstance(d, dt.date) for d in (since, until)):
        raise LogError(f"day_or_range must hold dates, got {day_or_range!r}")
    if since > until:
        raise LogError(f"the range starts {since}, after it ends {until}: swap them")
    return since, until


def daily_counts(
    workspace,
    day_or_range: dt.date | tuple[dt.date, dt.date],
    *,
    log: str | Path | Sequence[str | Path] | None = None,
    engine: str = "local",
    spark=None,
    report: LogReport | None = None,
    workers: int | None = None,
) -> DailyCounts:
    """Count the runtime log of a UTC day (or an inclusive ``(since, until)`` range).

    Parameters
    ----------
    workspace
        The workspace: bundle store, settings (intents, safety intents), quarantine folder.
    day_or_range
        A date, or a ``(since, until)`` pair of dates.
    log
        Log files, folders or URIs such as ``s3://bucket/log/`` (see
        :mod:`rulelife.querylog.filesystems`);
        default: the workspace's log folder.
    engine
        ``local``, ``local-pool`` or ``spark``.
    spark
        The SparkSession for ``engine="spark"``; default a
        :func:`local_session` on every core.
    report
        A :class:`~rulelife.querylog.LogReport` to fill (rows read, valid, bad by reason).
    workers
        Processes of ``local-pool`` (default: every core).

    Returns
    -------
    ``DailyCounts(counts, bundles)``: feed ``counts`` to ``finalize`` with the
    rules of ``bundles``. Raises :class:`~rulelife.errors.LogError` as the
    local reader does (no file, missing columns, no valid row, a rule id no
    bundle holds).
    """
    if engine not in ENGINES:
        raise ConfigError(f"Unknown engine {engine!r}, expected one of {', '.join(ENGINES)}.")
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise ConfigError(f"workers must be a positive integer, got {workers!r}")
    since, until = _window(day_or_range)
    source = log if log is not None else workspace.log_dir
    report = report if report is not None else LogReport()
    if engine == "local":
        return DailyCounts(*count_local(workspace, since, until, source, report))
    if engine == "local-pool":
        return DailyCounts(*count_pool(workspace, since, until, source, report, workers=workers))
    from rulelife.engines import local_session
    from rulelife.monitoring.spark_counts import count_spark

    session = spark if spark is not None else local_session()
    return DailyCounts(*count_spark(session, workspace, since, until, source, report))



def count_files(
    source: LogSource,
    *,
    since: dt.date | None,
    until: dt.date | None,
    bundle_dir: Path,
    quarantine_dir: Path | None,
    known_intents: Sequence[str] | None,
    safety_intents: Sequence[str],
    report: LogReport,
) -> tuple[MetricCounts, list[int]]:
    """Stream ``source`` through iter_log and add each chunk's counts (the nightly loop)."""
    bundles = BundleIntents(bundle_dir)
    counts = MetricCounts()
    chunks = iter_log(source, since=since, until=until, known_intents=known_intents or None,
                      quarantine_dir=quarantine_dir, report=report, require_runtime=True)
    for chunk in chunks:
        bundles.add(chunk["bundle_version"].dropna().unique())
        try:
            counts = counts + count_chunk(chunk, bundles.intents, safety_intents)
        except KeyError as exc:
            raise unknown_rules_error(exc.args[0]) from None
    return counts, sorted(bundles.numbers)


def count_local(workspace, since, until, source, report: LogReport) -> tuple[MetricCounts, list[int]]:
    """The ``local`` engine: one process, one chunk in memory at a time."""
    settings = workspace.settings
    return count_files(source, since=since, until=until, bundle_dir=workspace.bundle_dir,
                       quarantine_dir=workspace.quarantine_dir, known_intents=settings.intents or None,
                       safety_intents=list(settings.safety_intents), report=report)


def _count_one(path: LogFile, options: dict) -> tuple[MetricCounts, list[int], LogReport, str | None]:
    """Pool task: the counts of one file; a 'no valid row' error comes back as text
    (another file may hold the rows), any other error is raised."""
    report = LogReport()
    try:
        counts, numbers = count_files(path, report=report, **options)
    except LogError as exc:
        if report.rows_valid == 0 and str(exc).startswith(("no valid row", "no row")):
            return MetricCounts(), [], report, str(exc)
        raise
    return counts, numbers, report, None


def count_pool(workspace, since, until, source, report: LogReport, *, workers: int | None = None
               ) -> tuple[MetricCounts, list[int]]:
    """The ``local-pool`` engine: one task a file on a pool of ``workers`` processes (default: every core).

    A file is the unit because the reader's duplicate check spans a file; a
    day written as one file gets one worker (the runtime usually writes one
    file an hour or an instance, which is what this spreads).
    """
    settings = workspace.settings
    options = {"since": since, "until": until, "bundle_dir": workspace.bundle_dir,
               "quarantine_dir": workspace.quarantine_dir, "known_intents": settings.intents or None,
               "safety_intents": list(settings.safety_intents)}
    # Called for its checks only (files exist, columns, the window): the
    # same refusals as the local engine, before any process starts.
    iter_log(source, since=since, until=until, known_intents=settings.intents or None,
             quarantine_dir=workspace.quarantine_dir, report=LogReport(), require_runtime=True)
    files = files_in_window(source, since, until, exclude=workspace.quarantine_dir, skipped=report.files_skipped)
    workers = max(1, min(workers or os.cpu_count() or 1, len(files)))
    counts, numbers = MetricCounts(), set()
    # spawn, not fork: the parent may hold threads (a JVM gateway, a GE
    # context) that a forked child would inherit half-locked.
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        for part, seen, part_report, _ in pool.map(_count_one, files, [options] * len(files)):
            counts = counts + part
            numbers |= set(seen)
            merge_reports(report, part_report)
    if report.rows_valid == 0:
        raise no_rows_error(describe(source), report, since, until)
    return counts, sorted(numbers)
