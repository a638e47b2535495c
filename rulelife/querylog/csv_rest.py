"""The rest of a CSV log read in Python, where Arrow's reader gives up.

Arrow hands a record that does not split into the header's fields to
:class:`~rulelife.querylog.sources.RawFile` as text; when that record also
holds bytes that are not UTF-8 (a line cut by a crashed writer in the middle
of a multi-byte character), Arrow cannot decode it and fails the whole
file. Then the file is read again here, by the standard ``csv`` module over
the bytes seen as Latin-1 (one character a byte, so every byte comes back
unchanged), and the records Arrow already delivered are skipped: the rows
keep their numbers and nothing is counted twice. Slow, and only ever for
such a file.
"""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Iterator
from typing import BinaryIO

import pyarrow as pa

__all__ = ["read_rest"]


def _column(values: list[str]) -> pa.Array:
    # An empty field is missing, as in the Arrow reader's options.
    return pa.array([v.encode("latin-1") if v else None for v in values], pa.binary())


def _table(names: list[str], keep: list[int], rows: list[list[str]]) -> pa.Table:
    return pa.table({names[i]: _column([row[i] for row in rows]) for i in keep})


def read_rest(binary: BinaryIO, names: list[str], columns: list[str], *, chunk_rows: int, rows_done: int,
              unsplit_done: int, unsplit: list[str]) -> Iterator[tuple[int, pa.Table]]:
    """``(first_row_number, table)`` chunks of the bytes ``columns`` after the first ``rows_done`` rows.

    ``binary`` is the file opened at its start, ``names`` its header.

    Records that do not split are appended to ``unsplit`` (their fields
    joined by commas, bytes that are not UTF-8 as ``\\xNN``), except the
    first ``unsplit_done``, which were reported already.
    """
    # A chat message may exceed the module's 128 KiB default; the limit is process-wide, and only raised.
    csv.field_size_limit(max(csv.field_size_limit(), sys.maxsize >> 1))
    rows: list[list[str]] = []
    start, split, skipped = rows_done, 0, 0
    keep = [names.index(c) for c in columns]
    with io.TextIOWrapper(binary, newline="", encoding="latin-1") as handle:
        records = csv.reader(handle, strict=False)
        next(records, None)  # the header, checked by RawFile.columns
        for fields in records:
            if not fields:
                continue  # a blank line, which Arrow skips too
            if len(fields) != len(names):
                if skipped < unsplit_done:
                    skipped += 1
                else:
                    unsplit.append(",".join(fields).encode("latin-1").decode("utf-8", "backslashreplace"))
                continue
            split += 1
            if split <= rows_done:
                continue
            rows.append(fields)
            if len(rows) == chunk_rows:
                yield start, _table(names, keep, rows)
                start, rows = start + len(rows), []
    if rows:
        yield start, _table(names, keep, rows)
