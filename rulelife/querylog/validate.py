"""Row validation of a query-log chunk with great-expectations, plus per-file uniqueness.

great-expectations takes ~8-10 s to import and ~0.8 s per 200K rows to run,
so it is imported lazily, its context and suites are built once per process
and reused, and its analytics and progress bars are off. A row's reason is
the failed expectation type and column, e.g.
``expect_column_values_to_be_between(model_confidence)``; several reasons
are joined with ``"; "``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Collection
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from rulelife._compat import quiet_pyspark_import
from rulelife.querylog.schema import parse_reason, utf8_reason

__all__ = ["FileValidator", "SUITE_VERSION", "ge_batches_run"]

# Bump when the expectations change: it is part of the validation-cache key,
# so files validated under an older suite are validated again.
SUITE_VERSION = 3
UNIQUE = "expect_column_values_to_be_unique(query_id)"

_lock = threading.Lock()  # a GE context is not safe to share between threads
_state: dict[str, Any] = {}  # "context", "batch_definition", "suites"
_ge_batches = 0


def ge_batches_run() -> int:
    """How many chunks this process has validated with great-expectations (a counter for tests and reports)."""
    return _ge_batches


def _context() -> tuple[Any, Any]:
    if "context" not in _state:
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
        # great-expectations imports pyspark when it is installed (the spark
        # extra); see quiet_pyspark_import for why that needs a guard.
        with quiet_pyspark_import():
            import great_expectations as gx
            from great_expectations.data_context.types.base import ProgressBarsConfig

        context = gx.get_context(mode="ephemeral")
        context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        asset = context.data_sources.add_pandas("rulelife_querylog").add_dataframe_asset("chunk")
        _state.update(context=context, batch_definition=asset.add_batch_definition_whole_dataframe("whole"), suites={})
    return _state["context"], _state["batch_definition"]


def _suite(known_intents: frozenset[str] | None) -> Any:
    context, _ = _context()
    suites = _state["suites"]
    if known_intents not in suites:
        import great_expectations as gx

        ex = gx.expectations
        expectations = [
            ex.ExpectColumnValuesToNotBeNull(column="query_id"),
            ex.ExpectColumnValuesToBeUnique(column="query_id"),
            ex.ExpectColumnValuesToNotBeNull(column="ts"),
            ex.ExpectColumnValuesToNotBeNull(column="text"),
            # Checked on the stripped text (see _ge_frame): "   " is as empty as "".
            ex.ExpectColumnValueLengthsToBeBetween(column="text", min_value=1),
            # Map expectations skip nulls: an empty confidence/intent (a rule
            # answered outside the shadow sample) is valid.
            ex.ExpectColumnValuesToBeBetween(column="model_confidence", min_value=0, max_value=1),
        ]
        if known_intents is not None:
            expectations.append(ex.ExpectColumnValuesToBeInSet(column="model_intent", value_set=sorted(known_intents)))
        suite = gx.ExpectationSuite(name=f"querylog-{len(suites)}", expectations=expectations)
        suites[known_intents] = context.suites.add(suite)
    return suites[known_intents]


def _ge_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The columns GE checks, in the forms its pandas engine handles fast.

    ``text`` is stripped (Unicode whitespace, U+3000 included) so a length
    check finds blank texts; a regex such as ``\\S`` would push pandas onto
    its per-row Python path. ``model_confidence`` is numpy float64 (NA as
    NaN, which GE skips like any null) because GE compares only numpy
    dtypes vectorised and maps extension dtypes row by row.
    """
    text = pa.chunked_array([pa.array(frame["text"].array)]) if len(frame) else pa.chunked_array([], pa.string())
    stripped = pc.utf8_trim_whitespace(text).to_pandas(types_mapper={pa.string(): pd.StringDtype()}.get)
    return pd.DataFrame(
        {
            "query_id": frame["query_id"],
            "ts": frame["ts"],
            "text": stripped.astype("string"),
            "model_intent": frame["model_intent"],
            "model_confidence": frame["model_confidence"].to_numpy(dtype="float64", na_value=np.nan),
        }
    )


def _ge_failures(frame: pd.DataFrame, known_intents: frozenset[str] | None) -> dict[str, np.ndarray]:
    """Reason -> positions in ``frame`` of the rows that fail it."""
    global _ge_batches
    with _lock:
        suite = _suite(known_intents)
        _, batch_definition = _context()
        batch = batch_definition.get_batch(batch_parameters={"dataframe": _ge_frame(frame)})
        result = batch.validate(suite, result_format={"result_format": "COMPLETE"})
        _ge_batches += 1
    failures = {}
    for res in result.results:
        config = res.expectation_config
        if res.exception_info.get("raised_exception"):
            raise RuntimeError(f"great-expectations failed on {config.type}: {res.exception_info}")
        if not res.success:
            index = res.result.get("unexpected_index_list") or []
            failures[f"{config.type}({config.kwargs['column']})"] = np.asarray(index, dtype=np.int64)
    return failures


class FileValidator:
    """Validates the chunks of one file in order and remembers the query_ids seen.

    Uniqueness within a chunk comes from great-expectations; across chunks of
    the same file from a sorted array of 64-bit hashes of every query_id seen
    so far: 8 bytes a row (8 MB per million rows, twice that for a moment
    while a chunk is merged in). A 64-bit collision among 10^8 ids has a
    probability of about 3e-4, and would quarantine one good row as a
    duplicate. The first occurrence of an id is kept; later ones are
    quarantined. Duplicates across different files are not checked.
    """

    def __init__(self, *, known_intents: frozenset[str] | None = None):
        self.known_intents = known_intents
        self._seen = np.empty(0, dtype=np.uint64)  # sorted hashes of the ids of earlier chunks

    def duplicates(self, ids: pd.Series) -> np.ndarray:
        """Mask of the rows of a whole raw chunk whose query_id appeared earlier in the file.

        Called on every chunk in file order, rows outside the time window
        included, so a windowed read flags the same rows as a full one.
        """
        present = np.flatnonzero(ids.notna().to_numpy())
        hashes = pd.util.hash_array(ids.iloc[present].to_numpy(dtype=object), categorize=False)
        repeated = pd.Series(hashes).duplicated(keep="first").to_numpy().copy()
        if len(self._seen):
            found = np.searchsorted(self._seen, hashes).clip(max=len(self._seen) - 1)
            repeated |= self._seen[found] == hashes
        # Timsort merges the two sorted runs in linear time.
        self._seen = np.sort(np.concatenate([self._seen, np.unique(hashes)]), kind="stable")
        out = np.zeros(len(ids), dtype=bool)
        out[present[repeated]] = True
        return out

    def reasons(self, frame: pd.DataFrame, row_failures: dict[str, np.ndarray], duplicates: np.ndarray) -> np.ndarray:
        """Object array, one entry a row of ``frame``: '' for a valid row, else its reasons.

        ``row_failures`` is :func:`~rulelife.querylog.schema.coerce`'s reason ->
        mask, and ``duplicates`` :meth:`duplicates` of the chunk, both cut like ``frame``.
        """
        n = len(frame)
        out = np.full(n, "", dtype=object)
        failures = {reason: np.flatnonzero(m) for reason, m in row_failures.items()}
        # A null that a failed decode or parse made is reported as that failure, not as a null.
        made_null = {column: _made_null(row_failures, column) for column in ("query_id", "ts", "text")}
        for reason, pos in _ge_failures(frame, self.known_intents).items():
            if reason == UNIQUE:
                # GE flags every occurrence of an id repeated in the chunk;
                # the file keeps the first one, so only later ones are bad.
                pos = pos[frame["query_id"].iloc[pos].duplicated(keep="first").to_numpy()]
                pos = np.union1d(pos, np.flatnonzero(duplicates))
            elif reason.startswith("expect_column_values_to_not_be_null(") and made_null.get(_column(reason)) is not None:
                pos = pos[~made_null[_column(reason)][pos]]
            failures[reason] = pos
        if UNIQUE not in failures and duplicates.any():  # repeats of ids from earlier chunks only
            failures[UNIQUE] = np.flatnonzero(duplicates)
        for reason in sorted(failures, key=_reason_order):
            pos = failures[reason]
            if len(pos):
                current = out[pos]
                out[pos] = np.where(current == "", reason, current + "; " + reason)
        return out


def _reason_order(reason: str) -> str:
    return reason.split("(", 1)[1] + reason


def _column(reason: str) -> str:
    return reason.split("(", 1)[1].rstrip(")")


def _made_null(row_failures: dict[str, np.ndarray], column: str) -> np.ndarray | None:
    masks = [row_failures[r] for r in (parse_reason(column), utf8_reason(column)) if r in row_failures]
    return np.logical_or.reduce(masks) if masks else None


def known_intents_key(known_intents: Collection[str] | None) -> frozenset[str] | None:
    """Canonical, hashable form of ``known_intents``."""
    return None if known_intents is None else frozenset(known_intents)
