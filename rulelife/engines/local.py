"""The local executors of the daily counts: one streamed read, or a process pool over files.

Both call :func:`rulelife.metrics.count_chunk` on chunks from
:func:`rulelife.querylog.iter_log` (validation, quarantine and the
validation cache included) and add the partial counts; nothing here knows
about ratios.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from rulelife.bundle import BundleStore
from rulelife.errors import BundleError, LogError
from rulelife.metrics import MetricCounts, count_chunk
from rulelife.querylog import LogReport, iter_log
from rulelife.querylog.sources import LogSource, describe, files_in_window

__all__ = ["BundleIntents", "count_files", "count_local", "count_pool", "merge_reports"]


class BundleIntents:
    """rule id -> intent over the bundles the log names, each loaded once.

    Bundles are added in ascending number, so when two bundles disagree on a
    rule's intent (an edited rule: a new version) the newer one wins on
    every engine alike.
    """

    def __init__(self, bundle_dir: Path):
        self.store = BundleStore(bundle_dir)
        self.numbers: set[int] = set()
        self.intents: dict[str, str] = {}

    def add(self, numbers: Iterable[int]) -> None:
        for number in sorted({int(n) for n in numbers} - self.numbers):
            try:
                self.intents.update({r.id: r.intent for r in self.store.load(number).rules})
            except BundleError as exc:
                raise LogError(f"the log names bundle {number}, which cannot be loaded ({exc})") from None
            self.numbers.add(number)


def unknown_rules_error(message: str) -> LogError:
    return LogError(f"{message}; is --log the runtime's log for this bundle store?")


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


def _count_one(path: str, options: dict) -> tuple[MetricCounts, list[int], LogReport, str | None]:
    """Pool task: the counts of one file; a 'no valid row' error comes back as text
    (another file may hold the rows), any other error is raised."""
    report = LogReport()
    try:
        counts, numbers = count_files(Path(path), report=report, **options)
    except LogError as exc:
        if report.rows_valid == 0 and str(exc).startswith(("no valid row", "no row")):
            return MetricCounts(), [], report, str(exc)
        raise
    return counts, numbers, report, None


def merge_reports(into: LogReport, part: LogReport) -> None:
    """Add ``part``'s counts and file lists to ``into``."""
    for name in ("files_read", "files_skipped", "files_cached", "quarantine_files"):
        getattr(into, name).extend(getattr(part, name))
    for name in ("rows_read", "rows_valid", "rows_quarantined", "rows_outside_window", "ge_batches"):
        setattr(into, name, getattr(into, name) + getattr(part, name))
    into.reasons.update(part.reasons)


def no_rows_error(source: str, report: LogReport, since, until) -> LogError:
    """The error iter_log raises when a whole read yields no valid row, from a merged report."""
    if report.rows_quarantined:
        reason, count = report.reasons.most_common(1)[0]
        where = ", ".join(report.quarantine_files) or "the quarantine folder"
        return LogError(f"no valid row in {source}: {report.rows_quarantined} rows quarantined, see {where}; "
                        f"most common reason: {reason} ({count} rows)")
    if report.rows_outside_window:
        return LogError(f"no row of {source} falls between {since or 'the start'} and {until or 'the end'} "
                        f"({report.rows_outside_window} rows outside)")
    return LogError(f"no row in {source}: the files are empty")


def count_pool(workspace, since, until, source, report: LogReport, *, workers: int | None = None
               ) -> tuple[MetricCounts, list[int]]:
    """The ``local-pool`` engine: one task a file on a pool of ``workers`` processes (default: every core).

    A file is the unit because the reader's duplicate check spans a file; a
    day written as one file gets one worker (the runtime usually writes one
    file an hour or an instance, which is what this spreads).
    """
    settings = workspace.settings
    options = dict(since=since, until=until, bundle_dir=workspace.bundle_dir,
                   quarantine_dir=workspace.quarantine_dir, known_intents=settings.intents or None,
                   safety_intents=list(settings.safety_intents))
    # Called for its checks only (files exist, columns, the window): the
    # same refusals as the local engine, before any process starts.
    iter_log(source, since=since, until=until, known_intents=settings.intents or None,
             quarantine_dir=workspace.quarantine_dir, report=LogReport(), require_runtime=True)
    files = [str(path) for path in files_in_window(source, since, until, exclude=workspace.quarantine_dir,
                                                   skipped=report.files_skipped)]
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
