"""What one read of a query log did: files, rows, reasons, quarantine files."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from rulelife.errors import LogError

__all__ = ["LogReport", "merge_reports", "no_rows_error"]


@dataclass
class LogReport:
    """Counts of one :func:`~rulelife.querylog.iter_log` call, filled as it streams.

    Invariant: ``rows_read == rows_valid + rows_quarantined``. ``rows_read``
    counts the rows inside the ``since``/``until`` window (and rows whose ts
    is unparseable and CSV records that do not split into the header's
    fields, which belong to no window and are quarantined);
    ``rows_outside_window`` counts rows read from disk and left out. Every
    row of every file read is in exactly one of ``rows_valid``,
    ``rows_quarantined`` and ``rows_outside_window``. A 0-byte file holds
    no rows: it is in ``files_read`` and ``files_empty``.
    ``reasons`` counts each failed expectation once a row, so a row with two
    reasons counts in both and ``sum(reasons.values()) >= rows_quarantined``.
    """

    files_read: list[str] = field(default_factory=list)
    files_skipped: list[str] = field(default_factory=list)  # outside the window by name or statistics
    files_cached: list[str] = field(default_factory=list)  # validated by an earlier read; GE not run
    files_empty: list[str] = field(default_factory=list)  # 0 bytes: no rows
    rows_read: int = 0
    rows_valid: int = 0
    rows_quarantined: int = 0
    rows_outside_window: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    quarantine_files: list[str] = field(default_factory=list)
    ge_batches: int = 0  # chunks validated with great-expectations during this read

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (reasons most common first)."""
        out = asdict(self)
        out["reasons"] = dict(self.reasons.most_common())
        return out


def merge_reports(into: LogReport, part: LogReport) -> None:
    """Add ``part``'s counts and file lists to ``into``."""
    for name in ("files_read", "files_skipped", "files_cached", "files_empty", "quarantine_files"):
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
