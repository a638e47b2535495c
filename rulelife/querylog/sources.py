"""Finding the files of a query log and reading them as raw Arrow chunks with row numbers.

Only one chunk is in memory at a time: Parquet through
``ParquetFile.iter_batches``, CSV through ``pyarrow.csv.open_csv`` with every
column read as bytes. Decoding and types are the job of
:mod:`rulelife.querylog.schema`, where a bad value (bytes that are not
UTF-8 included) becomes a quarantine reason instead of a failed read. A CSV
record that does not split into the header's fields (a line cut short by a
crashed writer, a stray delimiter) is set aside in ``RawFile.unsplit`` for
the quarantine, and the rest of the file is read. A 0-byte file holds no rows.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import logging
import re
import sys
from collections.abc import Collection, Iterable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from rulelife.errors import LogError, clip, preview
from rulelife.querylog.csv_rest import read_rest
from rulelife.querylog.filesystems import RemoteFile, is_uri, list_remote, local_path
from rulelife.querylog.schema import CONTRACT_DTYPES

__all__ = ["UNSPLIT_REASON", "LogFile", "LogSource", "RawFile", "day_of", "files_in_window", "resolve"]

# A local path, or a file in an object store (see filesystems); a str may be a URI.
LogFile = Path | RemoteFile
LogSource = str | Path | RemoteFile | Sequence[str | Path | RemoteFile]
SUFFIXES = (".parquet", ".csv")
log = logging.getLogger(__name__)
_DAY_FILE = re.compile(r"^queries-(\d{4}-\d{2}-\d{2})$")
_DAY_DIR = re.compile(r"^(?:date|day|dt)=(\d{4}-\d{2}-\d{2})$")
_CSV_BLOCK = 4 << 20  # bytes pyarrow parses at a time; chunks are re-cut to chunk_rows
# The quarantine reason of a CSV record that does not split into the header's fields.
UNSPLIT_REASON = "expect_row_fields_to_match_the_header(row)"
_MAX_HEADER = 1 << 16  # bytes of a CSV header line; a longer first line is not a query-log header


def describe(source: LogSource) -> str:
    if isinstance(source, (str, Path, RemoteFile)):
        return str(source)
    return ", ".join(map(str, source)) or "[]"


def resolve(source: LogSource, *, exclude: Path | None = None) -> list[LogFile]:
    """The log files of ``source``: a file, a folder (scanned recursively), or a list of those.

    Each may be a local path, a ``file://`` URI or a remote URI such as
    ``s3://bucket/log/`` (see :mod:`rulelife.querylog.filesystems`). Folders skip hidden and ``_``-prefixed entries (``.validated``, Spark's
    ``_SUCCESS``) and anything under ``exclude`` (the quarantine folder, so a
    quarantine inside the log folder is never read back as log).
    """
    items = [source] if isinstance(source, (str, Path, RemoteFile)) else list(source)
    if not items:
        raise LogError("no query log given: pass a log file, a folder of *.parquet/*.csv files, or a list of them")
    excluded = exclude.resolve() if exclude is not None else None
    files: dict[LogFile, None] = {}
    for item in items:
        if isinstance(item, RemoteFile):
            files[item] = None
            continue
        if is_uri(item):
            path = local_path(item)
            if path is None:
                files.update(dict.fromkeys(list_remote(item, SUFFIXES)))
                continue
        else:
            path = Path(item)
        if path.is_dir():
            found = sorted(
                p
                for p in path.rglob("*")
                if p.suffix.lower() in SUFFIXES
                and p.is_file()
                and not any(part.startswith((".", "_")) for part in p.relative_to(path).parts)
                and (excluded is None or not p.resolve().is_relative_to(excluded))
            )
            if not found:
                raise LogError(f"no *.parquet or *.csv file under {path}: point to the folder that holds the query log")
            files.update(dict.fromkeys(found))
        elif path.is_file():
            if path.suffix.lower() not in SUFFIXES:
                raise LogError(f"{path}: a query log file must be .parquet or .csv, not {path.suffix or 'no suffix'}")
            files[path] = None
        else:
            raise LogError(f"query log not found: {path} does not exist; pass a log file or a folder of *.parquet/*.csv files")
    return list(files)


def files_in_window(source: LogSource, since: dt.date | None, until: dt.date | None, *, exclude: Path | None,
                    skipped: list[str]) -> list[LogFile]:
    """The files of ``source`` (see :func:`resolve`) that may hold a day of ``[since, until]``.

    A file whose name or folder names a day outside the window is left out
    and listed in ``skipped``; a file naming no day is kept (its rows say).
    """
    kept = []
    for path in resolve(source, exclude=exclude):
        day = day_of(path)
        if day is not None and ((since and day < since) or (until and day > until)):
            skipped.append(str(path))
        else:
            kept.append(path)
    return kept


def day_of(path: LogFile) -> dt.date | None:
    """The UTC day a file holds by its name (``queries-YYYY-MM-DD.*`` or a ``date=YYYY-MM-DD`` folder), else None."""
    for name in (path.stem, *(p.name for p in path.parents)):
        match = _DAY_FILE.match(name) if name == path.stem else _DAY_DIR.match(name)
        if match:
            try:
                return dt.date.fromisoformat(match.group(1))
            except ValueError:
                return None
    return None


def _rebatch(batches: Iterable[pa.RecordBatch], start: int, size: int) -> Iterator[tuple[int, pa.Table]]:
    """Cut a stream of record batches into tables of ``size`` rows, each with its first row number."""
    pending: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        while batch.num_rows:
            take = min(size - count, batch.num_rows)
            pending.append(batch.slice(0, take))
            batch = batch.slice(take)
            count += take
            if count == size:
                yield start, pa.Table.from_batches(pending)
                start, pending, count = start + count, [], 0
    if count:
        yield start, pa.Table.from_batches(pending)


class RawFile:
    """One log file read as ``(first_row_number, pyarrow.Table)`` chunks.

    ``complete`` turns False when Parquet statistics let whole row groups be
    skipped (they lie outside the ``since``/``until`` window). ``unsplit``
    collects, as they are met, the CSV records whose field count is not the
    header's (their raw text); whoever reads the chunks empties it. Row
    numbers count the records that split, so they are the same on every read.
    """

    def __init__(self, path: LogFile, *, chunk_rows: int, since: dt.date | None = None, until: dt.date | None = None,
                 extra_columns: Collection[str] = ()):
        self.path = path
        self.chunk_rows = chunk_rows
        self.since = since
        self.until = until
        self.extra_columns = frozenset(extra_columns)
        self.complete = True
        self.is_parquet = path.suffix.lower() == ".parquet"
        self.unsplit: list[str] = []
        self._unsplit_seen = 0  # records handed to _unsplit by Arrow, drained or not
        self._columns: list[str] | None = None

    @contextlib.contextmanager
    def _source(self) -> Iterator[str | pa.NativeFile]:
        """What pyarrow reads: a local path as text (Arrow's own I/O), a remote file opened."""
        if isinstance(self.path, RemoteFile):
            with self.path.open() as handle:
                yield handle
        else:
            yield str(self.path)

    @contextlib.contextmanager
    def _binary(self) -> Iterator[BinaryIO]:
        """The file as a Python binary stream (the CSV header and the rest reader read lines)."""
        if isinstance(self.path, RemoteFile):
            with io.BufferedReader(self.path.open()) as handle:  # Arrow's files have no readline
                yield handle
        else:
            with open(self.path, "rb") as handle:
                yield handle

    def read_columns(self) -> list[str]:
        """The columns read, in file order: the contract's and ``extra_columns``; others are never decoded.

        A log may carry any number of wide columns a job does not use (a
        session blob, a model's debug payload): leaving them on disk keeps a
        chunk's memory what the contract needs.
        """
        return [name for name in self.columns() if name in CONTRACT_DTYPES or name in self.extra_columns]

    @property
    def empty(self) -> bool:
        """A 0-byte file: no header, no rows (a writer that opened the file and wrote nothing)."""
        try:
            return self.path.stat().st_size == 0
        except OSError as exc:
            raise LogError(f"{self.path}: cannot read the file ({exc})") from None

    def columns(self) -> list[str]:
        """Every column name of the file, from the Parquet footer or the CSV header line."""
        if self._columns is None:
            self._columns = self._read_header()
        return self._columns

    def _read_header(self) -> list[str]:
        try:
            if self.is_parquet:
                with self._source() as source:
                    return list(pq.read_schema(source).names)
            with self._binary() as fh:
                line = fh.readline(_MAX_HEADER + 1)
        except (OSError, pa.ArrowException) as exc:
            raise LogError(f"{self.path}: cannot read the file's columns ({exc}); is it a valid {self.path.suffix[1:]} file?") from None
        if len(line) > _MAX_HEADER:
            raise LogError(f"{self.path}: line 1 is over {_MAX_HEADER:,} bytes, which is no query-log header; "
                           "the first line must name the columns (query_id,ts,text,...)")
        try:
            header = line.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise LogError(f"{self.path}: line 1 (the header) holds bytes that are not UTF-8 "
                           f"({preview(line[max(0, exc.start - 20):exc.end + 20])}); write the header in UTF-8") from None
        try:
            names = next(csv.reader([header]), [])
        except csv.Error as exc:
            raise LogError(f"{self.path}: cannot read the header line ({exc}); fix line 1") from None
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise LogError(f"{self.path}: the header names column(s) {', '.join(map(preview, repeated))} more than "
                           "once; each column must appear once in line 1")
        return names

    def __iter__(self) -> Iterator[tuple[int, pa.Table]]:
        chunks = self._parquet() if self.is_parquet else self._csv()
        while True:
            try:
                yield next(chunks)
            except StopIteration:
                return
            except (pa.ArrowException, OSError) as exc:
                raise LogError(f"{self.path}: cannot read the file ({clip(str(exc), 300)}); "
                               "fix or remove the file") from None

    def _parquet(self) -> Iterator[tuple[int, pa.Table]]:
        with self._source() as source:
            yield from self._parquet_of(pq.ParquetFile(source))

    def _parquet_of(self, pf: pq.ParquetFile) -> Iterator[tuple[int, pa.Table]]:
        columns = self.read_columns()
        meta = pf.metadata
        starts, keep, row = [], [], 0
        for i in range(meta.num_row_groups):
            starts.append(row)
            row += meta.row_group(i).num_rows
            keep.append(self._row_group_in_window(pf, i))
        self.complete = all(keep)
        run: list[int] = []
        for i in [*range(meta.num_row_groups), None]:  # None flushes the last run
            if i is not None and keep[i]:
                run.append(i)
                continue
            if run:  # contiguous row groups read as one stream, so chunks span them
                yield from _rebatch(pf.iter_batches(batch_size=self.chunk_rows, row_groups=run, columns=columns), starts[run[0]], self.chunk_rows)
            run = []

    def _row_group_in_window(self, pf: pq.ParquetFile, i: int) -> bool:
        if self.since is None and self.until is None:
            return True
        schema = pf.schema_arrow
        if "ts" not in schema.names or not pa.types.is_timestamp(schema.field("ts").type):
            return True
        stats = pf.metadata.row_group(i).column(schema.names.index("ts")).statistics
        # Rows with a null ts are in no window and must reach the quarantine.
        if stats is None or not stats.has_min_max or not stats.has_null_count or stats.null_count:
            return True
        lo, hi = stats.min, stats.max
        if not isinstance(lo, dt.datetime) or not isinstance(hi, dt.datetime):
            return True
        lo_day = (lo.astimezone(dt.UTC) if lo.tzinfo else lo).date()
        hi_day = (hi.astimezone(dt.UTC) if hi.tzinfo else hi).date()
        return not ((self.since and hi_day < self.since) or (self.until and lo_day > self.until))

    def _csv(self) -> Iterator[tuple[int, pa.Table]]:
        names, columns = self.columns(), self.read_columns()
        with self._binary() as fh:
            header = fh.readline(_MAX_HEADER + 1)
            if not header.endswith(b"\n") and not fh.read(1):
                return  # the header alone, without a line break: no rows (Arrow would refuse it)
        produced = 0
        _quiet_arrow_decode_tracebacks()
        try:
            with self._source() as source:
                reader = pacsv.open_csv(  # opening reads the first block already
                    source,
                    read_options=pacsv.ReadOptions(block_size=_CSV_BLOCK),
                    # Quoted fields may hold newlines (chat text does).
                    parse_options=pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=self._unsplit),
                    # Bytes, decoded value by value in schema.coerce: one byte that is not
                    # UTF-8 makes one bad row, not an unreadable file. Only an empty field
                    # is missing: "NA" or "null" may be what a customer typed. Columns
                    # not read are split off each record and never converted.
                    convert_options=pacsv.ConvertOptions(
                        column_types={n: pa.binary() for n in columns}, include_columns=columns,
                        null_values=[""], strings_can_be_null=True
                    ),
                )
                for start, table in _rebatch(reader, 0, self.chunk_rows):
                    produced = start + table.num_rows
                    yield start, table
        except pa.ArrowInvalid as exc:
            # _unsplit skips every record that does not split; Arrow reports one
            # only when it could not decode it for _unsplit: read the rest in Python.
            if "columns, got" not in str(exc):
                raise
            log.warning("%s: a record that does not split holds bytes that are not UTF-8; reading the rest of "
                        "the file without Arrow (slower)", self.path)
            with self._binary() as fh:
                yield from read_rest(fh, names, columns, chunk_rows=self.chunk_rows, rows_done=produced,
                                     unsplit_done=self._unsplit_seen, unsplit=self.unsplit)

    def _unsplit(self, row: pacsv.InvalidRow) -> str:
        self.unsplit.append(row.text)
        self._unsplit_seen += 1
        return "skip"


def _quiet_arrow_decode_tracebacks() -> None:
    """Keep Arrow's traceback for a record that does not split and is not UTF-8 off the operator's terminal.

    Arrow decodes such a record before it calls :meth:`RawFile._unsplit`; when
    the decode fails it prints the ``UnicodeDecodeError`` as an "Exception
    ignored" traceback, then raises ``ArrowInvalid``, which the reader handles
    (it reads the rest of the file in Python and logs a warning saying so).
    Only that exception is dropped; anything else goes to the hook in place.
    """
    previous = sys.unraisablehook
    if getattr(previous, "rulelife_quiet_arrow", False):
        return

    def hook(unraisable) -> None:
        if isinstance(unraisable.exc_value, UnicodeDecodeError) \
                and isinstance(getattr(unraisable.object, "__self__", None), RawFile):
            return
        previous(unraisable)

    hook.rulelife_quiet_arrow = True  # type: ignore[attr-defined]
    sys.unraisablehook = hook
