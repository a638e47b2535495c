"""Streaming a query log: :func:`iter_log` (chunk by chunk) and :func:`read_log` (all at once)."""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from collections import Counter, defaultdict
from collections.abc import Collection, Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from rulelife import progress
from rulelife.errors import LogError
from rulelife.querylog.quarantine import QuarantineWriter, Verdict, load_verdict, save_verdict, verdict_key
from rulelife.querylog.report import LogReport
from rulelife.querylog.schema import CONTRACT_DTYPES, REQUIRED_COLUMNS, RUNTIME_COLUMNS, coerce, missing_columns
from rulelife.querylog.sources import UNSPLIT_REASON, LogSource, RawFile, describe, files_in_window
from rulelife.querylog.validate import FileValidator, known_intents_key, suite_key, team_suites

__all__ = ["coalesce", "iter_log", "read_log"]

log = logging.getLogger(__name__)


def iter_log(
    source: LogSource,
    *,
    since: dt.date | None = None,
    until: dt.date | None = None,
    known_intents: Collection[str] | None = None,
    quarantine_dir: Path | None = None,
    chunk_rows: int = 250_000,
    validate: bool = True,
    report: LogReport | None = None,
    require_runtime: bool = False,
    extra_columns: Collection[str] = (),
) -> Iterator[pd.DataFrame]:
    """Stream the valid rows of a query log, one contract-typed DataFrame a chunk.

    Parameters
    ----------
    source
        A ``.parquet``/``.csv`` file, a folder (scanned recursively), or a list of those;
        each a local path or a URI (``s3://bucket/log/``, ``gs://``, ``hdfs://``,
        ``file://``, or any fsspec scheme: see :mod:`rulelife.querylog.filesystems`).
    since, until
        Keep rows whose UTC day is within ``[since, until]`` (inclusive). Files
        named ``queries-YYYY-MM-DD.*`` (or under ``date=YYYY-MM-DD/``) outside
        the window are not opened; Parquet row groups whose ts statistics lie
        outside it are not read.
    known_intents
        When given, a non-empty ``model_intent`` outside this set is a bad row.
    quarantine_dir
        Where bad rows go (``<stem>-<read-id>.parquet``) and where the
        validation cache lives (``.validated/``). Without it bad rows are
        still removed, counted in ``report`` and logged, but not written, and
        nothing is cached.
    chunk_rows
        Rows a chunk; memory is about one chunk plus 8 bytes per query_id of
        the file being read (the duplicate check).
    validate
        False trusts the log: no expectation runs, nothing is quarantined, a
        value that does not parse becomes NA.
    report
        A :class:`LogReport` to fill as the log streams.
    require_runtime
        Refuse a file without the runtime columns (rule_id, rule_version,
        bundle_version, shadow): jobs that judge live rules need them.
    extra_columns
        Columns beyond the contract's (:data:`~rulelife.querylog.CONTRACT_DTYPES`)
        that the caller uses; they follow the contract columns in each chunk.
        Only these and the contract's are read from disk: any other column
        of the log costs neither memory nor time, and is absent from the
        quarantine files too. A file without one of them is refused.

    Every row is checked (with great-expectations) for a non-null query_id
    unique within its file (the first occurrence is kept), a parseable
    non-null ts, a non-empty text, a model_confidence in [0, 1] where
    present, a model_intent in ``known_intents`` where present and given, and
    parseable runtime columns, plus the expectations installed under the
    ``rulelife.log_expectations`` entry points (see
    :func:`~rulelife.querylog.validate.team_suites`). Duplicate query_ids in *different* files are
    not detected. A file validated end to end (no window cut into it) gets a
    cache marker keyed by its path, size and mtime_ns: a later read of the
    unchanged file drops the recorded bad rows without running
    great-expectations (``report.files_cached``).

    The files and their columns are checked when this is called; the rows
    when the iterator is consumed. Raises :class:`~rulelife.errors.LogError`
    when no file matches, a file lacks a required column, or the whole read
    yields no valid row (raised at the end, after the quarantine is written).
    """
    if not isinstance(chunk_rows, int) or chunk_rows < 1:
        raise LogError(f"chunk_rows must be a positive integer, got {chunk_rows!r}")
    since, until = _day(since, "since"), _day(until, "until")
    if since and until and since > until:
        raise LogError(f"since ({since}) is after until ({until}): swap them")
    if isinstance(known_intents, str):
        raise LogError(f"known_intents must be a collection of intent names, got the string {known_intents!r}")
    if isinstance(extra_columns, str):
        raise LogError(f"extra_columns must be a collection of column names, got the string {extra_columns!r}")
    extra = tuple(dict.fromkeys(c for c in extra_columns if c not in CONTRACT_DTYPES))
    team = team_suites() if validate else ()
    checked = tuple(dict.fromkeys(c for suite in team for c in suite.columns if c not in CONTRACT_DTYPES))
    quarantine_dir = Path(quarantine_dir) if quarantine_dir is not None else None
    report = report if report is not None else LogReport()
    files = []
    for path in files_in_window(source, since, until, exclude=quarantine_dir, skipped=report.files_skipped):
        raw = RawFile(path, chunk_rows=chunk_rows, since=since, until=until, extra_columns=extra + checked)
        if raw.empty:  # no header to check: a file with no rows
            files.append(raw)
            continue
        missing = missing_columns(raw.columns())
        if missing:
            raise LogError(
                f"{path}: missing required column(s) {', '.join(missing)}; a query log needs "
                f"{', '.join(REQUIRED_COLUMNS)} (model_intent/model_confidence may be empty on rows a rule answered)"
            )
        if require_runtime:
            absent = [c for c in RUNTIME_COLUMNS if c not in raw.columns()]
            if absent:
                raise LogError(
                    f"{path}: missing the runtime column(s) {', '.join(absent)}; this job needs the log the "
                    "chatbot runtime writes (rule hits and the shadow flag), not a model-only log"
                )
        absent = [c for c in extra if c not in raw.columns()]
        if absent:
            raise LogError(f"{path}: no column {', '.join(map(repr, absent))}, which this job reads "
                           f"(extra_columns); the file has {', '.join(raw.columns())}")
        for suite in team:
            absent = [c for c in suite.columns if c not in CONTRACT_DTYPES and c not in raw.columns()]
            if absent:
                raise LogError(f"{path}: no column {', '.join(map(repr, absent))}, which the log expectations of "
                               f"{suite.name!r} check; add the column to the log or fix the expectations")
        files.append(raw)
    if not files:
        raise LogError(
            f"no file of {describe(source)} holds a day between {since or 'the start'} and {until or 'the end'} "
            f"({len(report.files_skipped)} file(s) named for other days)"
        )
    reader = _Reader(
        since=since, until=until, known_intents=known_intents_key(known_intents) if validate else None,
        quarantine_dir=quarantine_dir, validate=validate, report=report, team=team,
        checked_only=tuple(c for c in checked if c not in extra),
    )
    return reader.stream(files, describe(source))


def read_log(source: LogSource, **options) -> pd.DataFrame:
    """All valid rows of a query log in one DataFrame (small logs and tests); options as :func:`iter_log`."""
    return pd.concat(list(iter_log(source, **options)), ignore_index=True)


def _day(value: dt.date | None, name: str) -> dt.date | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    raise LogError(f"{name} must be a date, got {value!r}")


class _Reader:
    """The state of one iter_log call: options, run id, quarantine names, report."""

    def __init__(self, *, since, until, known_intents, quarantine_dir, validate, report, team, checked_only):
        self.since, self.until = since, until
        self.team = team
        self.checked_only = list(checked_only)  # read for a team's expectations, not given to the caller
        self.known_intents = known_intents
        self.quarantine_dir = quarantine_dir
        self.validate = validate
        self.report = report
        self._names: set[str] = set()
        self._reasons: Counter[str] = Counter()  # this call's, even when the report is shared
        self._quarantines: list[str] = []  # written now or by the run a cache marker came from
        self._lo = pd.Timestamp(since, tz="UTC") if since else None
        self._hi = pd.Timestamp(until + dt.timedelta(days=1), tz="UTC") if until else None

    def stream(self, files: list[RawFile], source: str) -> Iterator[pd.DataFrame]:
        start = (self.report.rows_valid, self.report.rows_quarantined, self.report.rows_outside_window)
        for number, raw in enumerate(files, 1):
            progress.tick(f"reading the log: file {number} of {len(files)}, {self.report.rows_read:,} rows so far")
            yield from self._file(raw)
        valid, bad, outside = (
            self.report.rows_valid - start[0],
            self.report.rows_quarantined - start[1],
            self.report.rows_outside_window - start[2],
        )
        if valid:
            return
        if bad:
            where = ", ".join(self._quarantines) or "the report (no quarantine_dir was given)"
            reason, count = self._reasons.most_common(1)[0]
            raise LogError(f"no valid row in {source}: {bad} rows quarantined, see {where}; most common reason: {reason} ({count} rows)")
        if outside:
            raise LogError(f"no row of {source} falls between {self.since or 'the start'} and {self.until or 'the end'} ({outside} rows outside)")
        raise LogError(f"no row in {source}: the files are empty")

    def _window(self, ts: pd.Series) -> np.ndarray | None:
        """Rows to keep, or None for all. A NaT is kept when validating: it is a bad row to quarantine."""
        if self._lo is None and self._hi is None:
            return None
        keep = np.ones(len(ts), dtype=bool)
        if self._lo is not None:
            keep &= (ts >= self._lo).to_numpy(dtype=bool, na_value=False)
        if self._hi is not None:
            keep &= (ts < self._hi).to_numpy(dtype=bool, na_value=False)
        if self.validate:
            keep |= ts.isna().to_numpy()
        return keep

    def _count(self, reasons: np.ndarray) -> None:
        self.report.rows_quarantined += len(reasons)
        for combined, count in zip(*np.unique(reasons.astype(str), return_counts=True)):
            for reason in combined.split("; "):
                self.report.reasons[reason] += int(count)
                self._reasons[reason] += int(count)

    def _file(self, raw: RawFile) -> Iterator[pd.DataFrame]:
        self.report.files_read.append(str(raw.path))
        if raw.empty:
            self.report.files_empty.append(str(raw.path))
            return
        key = None
        if self.validate and self.quarantine_dir is not None:
            key = verdict_key(raw.path, suite_version=suite_key(self.team), known_intents=self.known_intents,
                              columns=raw.read_columns())
            verdict = load_verdict(self.quarantine_dir, key) if key is not None else None
            if verdict is not None:
                self.report.files_cached.append(str(raw.path))
                if verdict.quarantine_file:
                    self._quarantines.append(verdict.quarantine_file)
                yield from self._cached(raw, verdict)
                return
        yield from self._validated(raw, key)

    def _validated(self, raw: RawFile, key: str | None) -> Iterator[pd.DataFrame]:
        validator = (FileValidator(known_intents=self.known_intents, team=self.team, source=str(raw.path))
                     if self.validate else None)
        writer = None
        if self.validate and self.quarantine_dir is not None:
            writer = QuarantineWriter(directory=self.quarantine_dir, source=raw.path, run_id=self._read_id(key),
                                      taken=self._names, columns=raw.read_columns())
        bad: dict[str, list[int]] = defaultdict(list)
        rows, unsplit, whole, finished = 0, 0, True, False
        try:
            for start, table in raw:
                unsplit += self._unsplit(raw, writer)
                frame, failures = coerce(table, raw.path)
                numbers = np.arange(start, start + len(frame))
                rows = start + len(frame)
                dups = validator.duplicates(frame["query_id"]) if validator is not None else None
                keep = self._window(frame["ts"])
                if keep is not None and not keep.all():
                    whole = False
                    self.report.rows_outside_window += int((~keep).sum())
                    frame, table, numbers = frame[keep].reset_index(drop=True), table.filter(keep), numbers[keep]
                    failures = {c: m[keep] for c, m in failures.items()}
                    dups = dups[keep] if dups is not None else None
                self.report.rows_read += len(frame)
                if validator is not None and len(frame):
                    reasons = validator.reasons(frame, failures, dups)
                    self.report.ge_batches += 1
                    is_bad = reasons != ""
                    if is_bad.any():
                        self._count(reasons[is_bad])
                        for row, reason in zip(numbers[is_bad].tolist(), reasons[is_bad]):
                            bad[reason].append(row)
                        if writer is not None:
                            writer.write(table.filter(is_bad), numbers[is_bad], reasons[is_bad])
                        frame = frame[~is_bad].reset_index(drop=True)
                self.report.rows_valid += len(frame)
                if len(frame):
                    yield frame.drop(columns=self.checked_only) if self.checked_only else frame
            unsplit += self._unsplit(raw, writer)
            finished = True
        finally:
            if writer is not None and writer.opened:
                writer.close()
                self.report.quarantine_files.append(str(writer.path))
                self._quarantines.append(str(writer.path))
        if (bad or unsplit) and writer is None:
            log.warning("%s: %d bad rows removed and not written (no quarantine_dir)", raw.path,
                        sum(map(len, bad.values())) + unsplit)
        if key is not None and finished and whole and raw.complete:
            quarantine = str(writer.path) if bad or unsplit else None
            save_verdict(self.quarantine_dir, key, raw.path, Verdict(rows=rows, bad=dict(bad), quarantine_file=quarantine))

    def _read_id(self, key: str | None) -> str:
        """The quarantine file's id: the same for the same read of the same file (its verdict key and
        the window), so a read killed after its quarantine file was written and before its marker was
        saved rewrites that file when run again instead of quarantining its rows a second time.

        A file that cannot be cached (a remote store that keeps no modification time) has no key and is
        read again in full each time: a fresh id per read."""
        if key is None:
            return f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"
        if self._lo is None and self._hi is None:
            return key[:16]
        return f"{key[:16]}-{self.since or 'start'}-{self.until or 'end'}"

    def _unsplit(self, raw: RawFile, writer: QuarantineWriter | None) -> int:
        """Quarantine (or count) the CSV records the parser set aside since the last call."""
        records, raw.unsplit[:] = list(raw.unsplit), []
        if records:
            self.report.rows_read += len(records)
            self._count(np.full(len(records), UNSPLIT_REASON, dtype=object))
            if writer is not None:
                writer.write_unsplit(records, UNSPLIT_REASON)
        return len(records)

    def _cached(self, raw: RawFile, verdict: Verdict) -> Iterator[pd.DataFrame]:
        """Read a file validated before: drop its recorded bad rows, run no expectation.

        Records that do not split are met again by the parser and counted, not written again.
        """
        bad_rows, codes, reasons = verdict.bad_rows()
        reasons_arr = np.asarray(reasons, dtype=object)
        for start, table in raw:
            self._unsplit(raw, None)
            frame, _ = coerce(table, raw.path)
            n = len(frame)
            lo, hi = np.searchsorted(bad_rows, [start, start + n])
            is_bad = np.zeros(n, dtype=bool)
            is_bad[bad_rows[lo:hi] - start] = True
            keep = self._window(frame["ts"])
            keep = np.ones(n, dtype=bool) if keep is None else keep
            self.report.rows_outside_window += int((~keep).sum())
            self.report.rows_read += int(keep.sum())
            in_window_bad = keep[bad_rows[lo:hi] - start]
            if in_window_bad.any():
                self._count(reasons_arr[codes[lo:hi][in_window_bad]])
            frame = frame[keep & ~is_bad].reset_index(drop=True)
            self.report.rows_valid += len(frame)
            if len(frame):
                yield frame.drop(columns=self.checked_only) if self.checked_only else frame
        self._unsplit(raw, None)


def coalesce(chunks, min_rows: int) -> Iterator[pd.DataFrame]:
    """Join small chunks (a log of many small daily files) into chunks of at
    least ``min_rows`` rows, so per-chunk overheads are paid rarely."""
    buffer: list[pd.DataFrame] = []
    rows = 0
    for chunk in chunks:
        buffer.append(chunk)
        rows += len(chunk)
        if rows >= min_rows:
            yield buffer[0] if len(buffer) == 1 else pd.concat(buffer, ignore_index=True)
            buffer, rows = [], 0
    if buffer:
        yield buffer[0] if len(buffer) == 1 else pd.concat(buffer, ignore_index=True)
