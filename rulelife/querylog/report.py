"""What one read of a query log did: files, rows, reasons, quarantine files."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["LogReport"]


@dataclass
class LogReport:
    """Counts of one :func:`~rulelife.querylog.iter_log` call, filled as it streams.

    Invariant: ``rows_read == rows_valid + rows_quarantined``. ``rows_read``
    counts the rows inside the ``since``/``until`` window (and rows whose ts
    is unparseable, which belong to no window and are quarantined);
    ``rows_outside_window`` counts rows read from disk and left out.
    ``reasons`` counts each failed expectation once a row, so a row with two
    reasons counts in both and ``sum(reasons.values()) >= rows_quarantined``.
    """

    files_read: list[str] = field(default_factory=list)
    files_skipped: list[str] = field(default_factory=list)  # outside the window by name or statistics
    files_cached: list[str] = field(default_factory=list)  # validated by an earlier read; GE not run
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
