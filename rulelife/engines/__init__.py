"""Executors of the batch jobs' counting: one counting core, several engines.

>>> from rulelife.engines import daily_counts
>>> counts, bundles = daily_counts(workspace, day, log=path, engine="local")       # doctest: +SKIP
>>> counts, bundles = daily_counts(workspace, day, log="s3://bucket/log/", engine="spark",
...                                spark=session)                                  # doctest: +SKIP

Every engine applies :func:`rulelife.metrics.count_chunk` to pieces of the
log and adds the pieces with :meth:`~rulelife.metrics.MetricCounts.__add__`
(or, on Spark, ``groupBy().sum()`` of the same columns); ratios are computed
later, once, by :func:`~rulelife.metrics.finalize`. So the engines agree row
for row, and the choice is only about where the work runs:

- ``local``: one process streams the log chunk by chunk (memory: one chunk);
  validation with great-expectations, quarantine files, validation cache.
- ``local-pool``: the same per file, one process a core.
- ``spark``: ``mapInArrow`` per partition, on any cluster (see
  :mod:`rulelife.engines.spark` and docs/spark.md).

Importing this package never imports pyspark.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from rulelife.errors import ConfigError, LogError
from rulelife.metrics import MetricCounts
from rulelife.querylog import LogReport

__all__ = ["ENGINES", "DailyCounts", "daily_counts", "local_session"]

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
        Log files, folders or (Spark only) URIs such as ``s3://bucket/log/``;
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
        from rulelife.engines.local import count_local

        return DailyCounts(*count_local(workspace, since, until, source, report))
    if engine == "local-pool":
        from rulelife.engines.local import count_pool

        return DailyCounts(*count_pool(workspace, since, until, source, report, workers=workers))
    from rulelife.engines.spark import count_spark

    session = spark if spark is not None else local_session()
    return DailyCounts(*count_spark(session, workspace, since, until, source, report))


def local_session(cores: int | None = None, **options):
    """A local SparkSession for tests and the CLI (see :func:`rulelife.engines.spark.local_session`)."""
    from rulelife.engines.spark import local_session as make

    return make(cores, **options)
