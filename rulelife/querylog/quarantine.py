"""Where bad rows go, and the validation cache that lets a re-read skip great-expectations.

Quarantine: one Parquet file per source file and read,
``<quarantine_dir>/<source-stem>-<read-id>.parquet``, holding the bad rows'
columns that were read (the contract's and any a job asked for) as strings plus ``_source_file``, ``_row`` (0-based
position among the source file's data rows; in a CSV without line breaks
inside quoted values that is line ``_row + 2``), ``_raw`` and ``_reason``.
A cell whose bytes are not UTF-8 is kept with each such byte written as
``\\xNN``. A CSV record that does not split into the header's fields has no
row number and no columns: its text is in ``_raw`` (null on every other
row). The read id is the file's validation-cache key (below), and the
window when the read had one: reading the same file the same way again
(a re-run after a crash) replaces its quarantine file, never adds a second
copy of its rows. It is written atomically
(:func:`rulelife._files.atomic_path`): to a temporary name, renamed when the
file is done, so a reader never sees half a Parquet file.

Validation cache: once a file has been validated end to end, a marker
``<quarantine_dir>/.validated/<key>.json`` records its row count and its bad
rows (row number by reason). The key hashes the file's fingerprint (absolute
path, size, mtime_ns), the suite version, ``known_intents`` and the columns read, so editing
or touching the file, changing the expectations or the intent list all mean
a fresh validation. Markers are small (a few bytes per bad row) and can be
deleted at any time; stale ones are never read.
"""

from __future__ import annotations

import hashlib
import json
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from rulelife._files import atomic_path, atomic_write

__all__ = ["QuarantineWriter", "Verdict", "load_verdict", "save_verdict", "verdict_key"]

MARKER_DIR = ".validated"


class QuarantineWriter:
    """Appends the bad rows of one source file to its quarantine Parquet file (opened on first use)."""

    def __init__(self, *, directory: Path, source: Path, run_id: str, taken: set[str],
                 columns: list[str] | None = None):
        name = f"{source.stem}-{run_id}.parquet"
        if name in taken:  # two sources with the same stem in one run
            digest = hashlib.sha256(str(source).encode()).hexdigest()[:8]
            name = f"{source.stem}-{run_id}-{digest}.parquet"
        taken.add(name)
        self.path = directory / name
        self.source = source
        self.columns = columns  # the source's columns; else those of the first table written
        self._writer: pq.ParquetWriter | None = None
        self._pending = ExitStack()  # holds the open atomic_path from the first write to close()

    def write(self, table: pa.Table, rows: np.ndarray, reasons: np.ndarray) -> None:
        """Append ``table``'s rows (its original columns) with their row numbers and reasons."""
        if table.num_rows == 0:
            return
        columns = {name: _as_text(table.column(name)) for name in table.column_names}
        self._append(columns, table.num_rows, pa.array(rows, pa.int64()), pa.nulls(table.num_rows, pa.string()),
                     reasons)

    def write_unsplit(self, records: list[str], reason: str) -> None:
        """Append CSV records that did not split into the header's fields, as their raw text."""
        if not records:
            return
        n = len(records)
        columns = {name: pa.nulls(n, pa.string()) for name in self.columns or []}
        self._append(columns, n, pa.nulls(n, pa.int64()), pa.array(records, pa.string()), [reason] * n)

    def _append(self, columns: dict, n: int, rows: pa.Array, raw: pa.Array, reasons) -> None:
        if self.columns is None:
            self.columns = list(columns)
        columns["_source_file"] = pa.array([str(self.source)] * n, pa.string())
        columns["_row"] = rows
        columns["_raw"] = raw
        columns["_reason"] = pa.array(list(reasons), pa.string())
        out = pa.table(columns)
        if self._writer is None:
            tmp = self._pending.enter_context(atomic_path(self.path))
            self._writer = pq.ParquetWriter(tmp, out.schema)
        self._writer.write_table(out)

    @property
    def opened(self) -> bool:
        return self._writer is not None

    def close(self) -> None:
        """Finish the file and put it in place (the rows written so far are kept)."""
        if self._writer is not None:
            writer, self._writer = self._writer, None
            with self._pending:  # a failure to finish the file removes its temporary file
                writer.close()


def _as_text(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """A column as text for a person to read: bytes that are not UTF-8 as ``\\xNN``."""
    try:
        return pc.cast(column, pa.string())
    except pa.ArrowInvalid:
        if not (pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type)):
            raise
        return pa.chunked_array([pa.array([None if v is None else v.decode("utf-8", "backslashreplace")
                                           for v in column.to_pylist()], pa.string())])


@dataclass
class Verdict:
    """The outcome of validating one whole file: its row count and bad rows by reason."""

    rows: int
    bad: dict[str, list[int]]  # combined reason ("a; b") -> sorted row numbers
    quarantine_file: str | None = None

    def bad_rows(self) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Sorted bad row numbers, the reason code of each, and the reasons the codes index."""
        reasons = sorted(self.bad)
        rows = [np.asarray(self.bad[r], dtype=np.int64) for r in reasons]
        codes = [np.full(len(r), i, dtype=np.int64) for i, r in enumerate(rows)]
        all_rows = np.concatenate(rows) if rows else np.empty(0, dtype=np.int64)
        all_codes = np.concatenate(codes) if codes else np.empty(0, dtype=np.int64)
        order = np.argsort(all_rows, kind="stable")
        return all_rows[order], all_codes[order], reasons


def verdict_key(path, *, suite_version: int | str, known_intents: frozenset[str] | None,
                columns: list[str] | None = None) -> str | None:
    """The cache key of ``path`` as it is on disk now (size and mtime_ns included), or None: not cacheable.

    ``path`` is a local :class:`~pathlib.Path` or a remote file (see
    :mod:`rulelife.querylog.filesystems`); one whose store keeps no
    modification time is never cached. ``columns`` are the columns read:
    a byte that is not UTF-8 in a column not read makes no bad row, so a
    verdict holds for one projection only.
    """
    stat = path.stat()
    if stat.st_mtime_ns is None:
        return None
    ident = {
        "path": str(path.resolve()),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "suite_version": suite_version,
        "known_intents": None if known_intents is None else sorted(known_intents),
        "columns": columns,
    }
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:32]


def load_verdict(directory: Path, key: str) -> Verdict | None:
    """The cached verdict under ``key``, or None (missing or unreadable: validate again)."""
    try:
        data = json.loads((directory / MARKER_DIR / f"{key}.json").read_text())
        return Verdict(rows=int(data["rows"]), bad=data["bad"], quarantine_file=data.get("quarantine_file"))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def save_verdict(directory: Path, key: str, source: Path, verdict: Verdict) -> None:
    """Store ``verdict`` atomically."""
    data = {
        "source": str(source.resolve()),
        "rows": verdict.rows,
        "rows_quarantined": sum(len(v) for v in verdict.bad.values()),
        "quarantine_file": verdict.quarantine_file,
        "bad": verdict.bad,
    }
    atomic_write(directory / MARKER_DIR / f"{key}.json", json.dumps(data))
