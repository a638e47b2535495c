"""The runtime's query-log writer: one row per query, in the files the nightly reads.

>>> writer = QueryLogWriter("my-workspace/logs", classifier=clf)       # doctest: +SKIP
>>> decision = clf.decide(text, locale=locale, query_id=qid)            # doctest: +SKIP
>>> if decision.match is None or decision.match.shadow:                # doctest: +SKIP
...     intent, confidence = call_model(text)
>>> writer.write(decision, query_id=qid, text=text, locale=locale,     # doctest: +SKIP
...              model_intent=intent, model_confidence=confidence,
...              model_version="intent-clf-2026-05")

Layout: ``<directory>/date=YYYY-MM-DD/<host>-<pid>-<token>-<seq>.parquet``, the
day being the row's UTC day, every column of the contract
(:mod:`rulelife.serving.logrow`), ``bundle_version`` on every row, hit or
miss. Each process writes its own files (the token tells apart two processes
that got the same pid), each file whole: it is written under a hidden name
and renamed, and the log reader skips hidden files, so the nightly never
reads half of one.

:meth:`QueryLogWriter.write` only appends a tuple under a lock; a background
thread turns the buffer into a file when it holds ``max_rows`` rows or
``max_bytes`` of text, when its oldest row is ``max_seconds`` old, and on
:meth:`~QueryLogWriter.close` (also called at exit). Memory is bounded: at most
twice a file's worth is held (one being written, one filling); past that,
``write`` waits ``max_wait`` seconds for room, then drops the row and counts it
(:meth:`~QueryLogWriter.health`). A file that cannot be written is retried at the
next rotation. A process killed with SIGKILL loses what it had buffered.
pyarrow is imported when a writer is made, not by ``import rulelife``.
"""

from __future__ import annotations

import atexit
import datetime as dt
import functools
import itertools
import logging
import os
import re
import secrets
import socket
import threading
import time
import unicodedata
import weakref
from array import array
from collections.abc import Sequence
from pathlib import Path

from rulelife._files import atomic_path
from rulelife.serving.logrow import LOG_COLUMNS
from rulelife.serving.runtime import Decision, RuleClassifier, format_lexicon_veto, format_shadow_rules

__all__ = ["QueryLogWriter"]

log = logging.getLogger(__name__)

_BATCH_ROWS = 8192  # rows converted to Arrow at a time: other threads get the GIL between batches
_ROW_OVERHEAD = 200  # bytes a row costs beside its text, for the memory bound
_WRITERS: weakref.WeakSet[QueryLogWriter] = weakref.WeakSet()


def _reset_after_fork() -> None:
    for writer in list(_WRITERS):
        writer._after_fork()


os.register_at_fork(after_in_child=_reset_after_fork)


def _close_at_exit(ref: weakref.ref) -> None:
    writer = ref()
    if writer is not None:
        writer.close()


class QueryLogWriter:
    """Write :class:`~rulelife.serving.runtime.Decision` s and the model's answers as the query log.

    Parameters
    ----------
    directory
        Folder of the log: the workspace's ``log_dir`` (``logs/``), which the
        nightly reads with no configuration.
    classifier
        The classifier whose decisions are written: it knows the versions of
        the shadow rules a decision names.
    max_rows, max_bytes, max_seconds
        A file is written when the buffer holds this many rows, or this much
        text (UTF-8 bytes, plus a fixed cost a row), or its oldest row is this
        many seconds old.
    max_wait
        Seconds :meth:`write` waits for room when twice a file's worth is
        already buffered (the disk is slower than the traffic) before it drops
        the row.
    """

    def __init__(self, directory: Path | str, *, classifier: RuleClassifier, max_rows: int = 100_000,
                 max_bytes: int = 64 << 20, max_seconds: float = 300.0, max_wait: float = 0.05):
        for name, value in (("max_rows", max_rows), ("max_bytes", max_bytes)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not max_seconds > 0:
            raise ValueError(f"max_seconds must be positive, got {max_seconds!r}")
        if not max_wait >= 0:
            raise ValueError(f"max_wait must be 0 or more seconds, got {max_wait!r}")
        # Here, at start-up: not on the first file, and not at exit, when a late import fails.
        import pyarrow.parquet  # noqa: F401

        self.directory = Path(directory)
        self.classifier = classifier
        self.max_rows, self.max_bytes, self.max_seconds, self.max_wait = max_rows, max_bytes, max_seconds, max_wait
        # Held at most: a file being written (or kept for a retry) and the next one filling.
        self._row_cap, self._byte_cap = 2 * max_rows, 2 * max_bytes
        self._host = re.sub(r"[^A-Za-z0-9._-]", "_", socket.gethostname()) or "host"
        self._closed = False
        self._start_process()
        _WRITERS.add(self)
        atexit.register(_close_at_exit, weakref.ref(self))

    def _start_process(self) -> None:
        """State of this process's writer: a new name prefix, an empty buffer, a flusher thread."""
        self._prefix = f"{self._host}-{os.getpid()}-{secrets.token_hex(3)}"
        self._seq = 0
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._write_lock = threading.Lock()  # one file at a time, so sequence numbers follow the files
        self._rows: list[tuple] = []  # filling: the contract's columns, then the row's size; sizes sum to _bytes
        self._bytes = 0
        self._oldest: float | None = None  # monotonic time of the first row in _rows
        self._held_rows = 0  # rows filling + being written or awaiting a retry
        self._held_bytes = 0
        self._retry: list[tuple] = []
        self.rows_written = self.files_written = self.rows_dropped = 0
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self._missing_versions_said = False
        self._checked_version: str | None = None
        self._flusher = threading.Thread(target=self._run, name="rulelife-querylog", daemon=True)
        self._flusher.start()

    def _after_fork(self) -> None:
        # The rows buffered at fork() are the parent's to write; the child starts afresh under its own name.
        if not self._closed:
            self._start_process()

    # -- the request path ------------------------------------------------------------------------------------------

    def write(self, decision: Decision, *, query_id: str, text: str, locale: str | None = None,
              model_intent: str | None = None, model_confidence: float | None = None,
              ts: dt.datetime | float | None = None, model_version: str | None = None) -> bool:
        """Buffer one query's row; False when it was dropped (the buffer stayed full ``max_wait`` seconds).

        ``model_intent`` and ``model_confidence`` are the model's answer, None
        where it was not called (a rule answered outside the shadow sample).
        ``ts`` is the query's time (a datetime, naive meaning UTC, or epoch
        seconds); default now. ``model_version`` names the model that
        answered (any text without control characters; None: not said), so
        the nightly can tell a retrained model from a drifting rule.
        """
        if not isinstance(query_id, str) or not query_id:
            raise TypeError(f"query_id must be a non-empty string, got {query_id!r}")
        if not isinstance(text, str):
            raise TypeError(f"text must be a string, got {type(text).__name__}")
        if self._closed:
            raise ValueError("this QueryLogWriter is closed")
        if model_version is not None and model_version != self._checked_version:
            _check_model_version(model_version)  # once per distinct value: a service passes one constant
            self._checked_version = model_version
        match = decision.match
        # What the row costs the buffer: its text at two bytes a character (no encoding here), and the rest.
        size = len(text) * 2 + _ROW_OVERHEAD
        row = (query_id, _micros(ts), text, locale, model_intent,
               None if model_confidence is None else float(model_confidence),
               match and match.rule_id, match and match.rule_version, decision.bundle_version,
               None if match is None else match.shadow,
               self._shadow_cell(decision) if decision.shadow_rules else None,
               None if decision.veto is None else format_lexicon_veto(decision.veto), model_version, size)
        with self._lock:  # the bare lock: a Condition's own `with` costs three times as much
            if (self._held_rows >= self._row_cap or self._held_bytes >= self._byte_cap) and not self._room():
                self.rows_dropped += 1
                return False
            if self._oldest is None:
                self._oldest = time.monotonic()
                self._cond.notify_all()  # the flusher's clock for this file starts now
            self._rows.append(row)
            self._bytes += size
            self._held_rows += 1
            self._held_bytes += size
            if len(self._rows) >= self.max_rows or self._bytes >= self.max_bytes:
                self._cond.notify_all()
        return True

    def _room(self) -> bool:
        """Wait up to ``max_wait`` for the buffer to drop under its bound (the lock held); whether it did."""
        deadline = time.monotonic() + self.max_wait
        while self._held_rows >= self._row_cap or self._held_bytes >= self._byte_cap:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._cond.wait(left)
        return True

    def _shadow_cell(self, decision: Decision) -> str | None:
        versions = self.classifier.shadow_versions(decision.bundle_version)
        if versions is None or any(rule_id not in versions for rule_id in decision.shadow_rules):
            if not self._missing_versions_said:
                self._missing_versions_said = True
                log.warning("bundle %s is no longer known to the classifier: its shadow rules are not logged "
                            "(write a decision soon after it is made)", decision.bundle_version)
            return None
        return format_shadow_rules((rule_id, versions[rule_id]) for rule_id in decision.shadow_rules)

    # -- files -----------------------------------------------------------------------------------------------------

    def _run(self) -> None:
        cond = self._cond
        while True:
            with cond:
                while not self._closed and not self._due():
                    cond.wait(None if self._oldest is None else
                              max(0.0, self._oldest + self.max_seconds - time.monotonic()))
                closing = self._closed
                aged = closing or (self._oldest is not None
                                   and time.monotonic() - self._oldest >= self.max_seconds)
            self._flush(whole=aged)
            if closing:
                return

    def _due(self) -> bool:
        if self._oldest is None:
            return False
        return (len(self._rows) >= self.max_rows or self._bytes >= self.max_bytes
                or time.monotonic() - self._oldest >= self.max_seconds)

    def flush(self) -> None:
        """Write what is buffered now (a file per UTC day it spans, none over ``max_rows`` or ``max_bytes``)."""
        self._flush(whole=True)

    def _flush(self, *, whole: bool) -> None:
        """Write the buffer as files; unless ``whole``, a last file short of the size bounds waits for more rows."""
        with self._write_lock:
            with self._cond:
                rows, oldest = self._retry + self._rows, self._oldest
                self._rows, self._retry, self._bytes, self._oldest = [], [], 0, None
            files = _files(rows, self.max_rows, self.max_bytes)
            back: list[tuple] = []
            if not whole and files and len(files[-1][1]) < self.max_rows \
                    and sum(row[-1] for row in files[-1][1]) < self.max_bytes:
                back = files.pop()[1]
            done = 0  # files written
            try:
                for day, part in files:
                    self._write_file(day, part)
                    done += 1
            except Exception as exc:  # a full disk must not take the service down: keep the rows, retry
                kept = [row for _, part in files[done:] for row in part]
                self._failed(exc, len(kept))
            else:
                kept = []
            with self._cond:
                self._retry = kept
                if back:  # older than anything written since: they go first, with their age
                    self._rows[:0] = back
                    self._bytes += sum(row[-1] for row in back)
                    self._oldest = oldest
                if kept and self._oldest is None:
                    self._oldest = time.monotonic()  # the retry comes max_seconds later, traffic or not
                self._held_rows = len(kept) + len(self._rows)
                self._held_bytes = sum(row[-1] for row in kept) + self._bytes
                self._cond.notify_all()

    def _write_file(self, day: dt.date, rows: list[tuple]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        folder = self.directory / f"date={day.isoformat()}"
        self._seq += 1
        name = f"{self._prefix}-{self._seq:06d}.parquet"
        schema = _schema()
        table = pa.Table.from_batches([_record_batch(rows[i : i + _BATCH_ROWS], schema)
                                       for i in range(0, len(rows), _BATCH_ROWS)], schema=schema)
        with atomic_path(folder / name) as tmp:  # a hidden name until the rename: the reader skips it
            pq.write_table(table, str(tmp), compression="zstd")  # a path: Arrow writes it without the GIL
        self.rows_written += len(rows)
        self.files_written += 1
        self.last_error = None

    def _failed(self, exc: Exception, rows: int) -> None:
        message = f"{type(exc).__name__}: {exc}"
        if message != self.last_error:
            self.last_error, self.last_error_at = message, time.time()
            log.error("could not write %d query-log rows to %s (kept for the next try): %s", rows,
                      self.directory, message)

    def health(self) -> dict:
        """Rows written, files written, rows dropped (the buffer was full), rows buffered, the standing error."""
        with self._cond:
            buffered = len(self._rows) + len(self._retry)
        return {"rows_written": self.rows_written, "files_written": self.files_written,
                "rows_dropped": self.rows_dropped, "rows_buffered": buffered, "last_error": self.last_error,
                "last_error_at": None if self.last_error_at is None else
                dt.datetime.fromtimestamp(self.last_error_at, dt.UTC).isoformat(timespec="seconds")}

    def close(self) -> None:
        """Write what is buffered and stop the background thread; idempotent."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
        if self._flusher.is_alive() and self._flusher is not threading.current_thread():
            self._flusher.join()
        self.flush()  # rows a failed write kept, or a flusher that never ran
        _WRITERS.discard(self)

    def __enter__(self) -> QueryLogWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _check_model_version(value) -> None:
    """Refuse what the reader would quarantine every row for: not text, empty, or a control character."""
    if not isinstance(value, str) or not value.strip():
        raise TypeError(f"model_version must be a non-empty string or None, got {value!r}")
    bad = [c for c in value if unicodedata.category(c) in ("Cc", "Cf")]
    if bad:
        raise ValueError(f"model_version {value!r} holds the control character {bad[0]!r}; the log reader would "
                         "quarantine every row naming it. Pass the version as plain text, e.g. 'intent-clf-2026-05'")


def _micros(ts: dt.datetime | float | None) -> int:
    if ts is None:
        return time.time_ns() // 1000
    if isinstance(ts, dt.datetime):
        if ts.tzinfo is None:
            ts = ts.replace(tzinfo=dt.UTC)  # the contract's ts is UTC
        return (ts - _EPOCH) // dt.timedelta(microseconds=1)
    return int(round(float(ts) * 1_000_000))


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_DAY_MICROS = 86_400_000_000


def _files(rows: list[tuple], max_rows: int, max_bytes: int) -> list[tuple[dt.date, list[tuple]]]:
    """Rows cut into files: by UTC day (days in order, rows in order), none over ``max_rows`` or ``max_bytes``."""
    days: dict[int, list[tuple]] = {}
    for row in rows:
        days.setdefault(row[1] // _DAY_MICROS, []).append(row)
    files = []
    for day in sorted(days):
        date = _EPOCH.date() + dt.timedelta(days=day)
        part: list[tuple] = []
        size = 0
        for row in days[day]:
            if part and (len(part) >= max_rows or size + row[-1] > max_bytes):
                files.append((date, part))
                part, size = [], 0
            part.append(row)
            size += row[-1]
        files.append((date, part))
    return files


@functools.cache
def _schema():
    import pyarrow as pa

    kinds = {"string": pa.string(), "timestamp": pa.timestamp("us", tz="UTC"), "float": pa.float64(),
             "int": pa.int64(), "bool": pa.bool_()}
    return pa.schema([(name, kinds[kind]) for name, kind in LOG_COLUMNS.items()])


def _record_batch(rows: Sequence[tuple], schema):
    """Rows as an Arrow record batch, built from buffers.

    Not ``pyarrow.array(list)``: it imports pandas when pandas is installed
    (to ask whether the list is a pandas object), which a service need not
    load, and it fails a whole file on one text holding a lone surrogate.
    """
    import pyarrow as pa

    n = len(rows)
    columns = []
    for values, (name, kind) in zip(zip(*rows), LOG_COLUMNS.items()):  # zip drops the row's trailing size
        nulls = None in values
        bitmap = pa.py_buffer(_bits([value is not None for value in values])) if nulls else None
        if kind == "string":
            offsets, data = _utf8(values)
            columns.append(pa.Array.from_buffers(pa.large_string(), n, [bitmap, pa.py_buffer(offsets),
                                                                        pa.py_buffer(data)])
                           .cast(pa.string()))
            continue
        if kind == "bool":
            data = pa.py_buffer(_bits([value is True for value in values]))
        else:
            code = "d" if kind == "float" else "q"
            data = pa.py_buffer(array(code, [0 if value is None else value for value in values] if nulls else values))
        columns.append(pa.Array.from_buffers(schema.field(name).type, n, [bitmap, data]))
    return pa.record_batch(columns, schema=schema)


def _utf8(values: Sequence[str | None]) -> tuple[array, bytes]:
    """Arrow offsets (64-bit) and data of strings; None is empty (its validity bit says null)."""
    texts = ["" if value is None else value for value in values]
    joined = "".join(texts)
    if joined.isascii():  # the common case: one encode for the column, a character is a byte
        return array("q", itertools.accumulate(map(len, texts), initial=0)), joined.encode("ascii")
    # A lone surrogate (text decoded with surrogateescape upstream) becomes "?": never a failed file.
    encoded = [text.encode("utf-8", "replace") for text in texts]
    return array("q", itertools.accumulate(map(len, encoded), initial=0)), b"".join(encoded)


def _bits(flags: list[bool]) -> bytes:
    """An Arrow bitmap: bit i (least significant first) is flags[i] (numpy comes with pyarrow)."""
    import numpy as np

    return np.packbits(np.fromiter(flags, dtype=bool, count=len(flags)), bitorder="little").tobytes()
