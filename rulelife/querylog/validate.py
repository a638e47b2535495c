"""Row validation of a query-log chunk with great-expectations, plus per-file uniqueness.

The only module of rulelife that imports great-expectations. A team adds its
own expectations to the suite through the entry-point group
``rulelife.log_expectations`` (:func:`team_suites`): each entry is a function
that returns great-expectations expectations. A row-level one (a column map,
column pair map or multicolumn map expectation) quarantines each failing
row with the reason ``<entry>:<expectation>(<column>)``; any other
(aggregate, table-level) failing on a chunk refuses the file.

great-expectations takes ~8-10 s to import and ~0.8 s per 200K rows to run,
so it is imported lazily, its context and suites are built once per process
and reused, and its analytics and progress bars are off. A row's reason is
the failed expectation type and column, e.g.
``expect_column_values_to_be_between(model_confidence)``; several reasons
are joined with ``"; "``.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from rulelife._compat import quiet_pyspark_import
from rulelife.errors import ConfigError, LogError, clip, preview
from rulelife.plugins import LOG_EXPECTATIONS, available
from rulelife.querylog.schema import parse_reason, utf8_reason

__all__ = ["SUITE_VERSION", "FileValidator", "TeamSuite", "ge_batches_run", "suite_key", "team_suites"]

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


def _import_gx():
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    # great-expectations imports pyspark when it is installed (the spark
    # extra); see quiet_pyspark_import for why that needs a guard.
    with quiet_pyspark_import():
        import great_expectations as gx

    return gx


def _context() -> tuple[Any, Any]:
    if "context" not in _state:
        gx = _import_gx()
        from great_expectations.data_context.types.base import ProgressBarsConfig

        context = gx.get_context(mode="ephemeral")
        context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        asset = context.data_sources.add_pandas("rulelife_querylog").add_dataframe_asset("chunk")
        _state.update(context=context, batch_definition=asset.add_batch_definition_whole_dataframe("whole"), suites={},
                      team={})
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

    def __init__(self, *, known_intents: frozenset[str] | None = None, team: tuple[TeamSuite, ...] = (),
                 source: str = "the log"):
        self.known_intents = known_intents
        self.team = team
        self.source = source  # the file, for a refusal's message
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
        for suite in self.team:
            failures.update(_team_failures(frame, suite, self.source))
        for reason in sorted(failures, key=_reason_order):
            pos = failures[reason]
            if len(pos):
                current = out[pos]
                out[pos] = np.where(current == "", reason, current + "; " + reason)
        return out


def _reason_order(reason: str) -> str:
    # A team's reasons ("acme:expect_...(locale)") sort after the built-in ones of the same column.
    return reason.split("(", 1)[1] + ("~" if ":" in reason.split("(", 1)[0] else "") + reason


def _column(reason: str) -> str:
    return reason.split("(", 1)[1].rstrip(")")


def _made_null(row_failures: dict[str, np.ndarray], column: str) -> np.ndarray | None:
    masks = [row_failures[r] for r in (parse_reason(column), utf8_reason(column)) if r in row_failures]
    return np.logical_or.reduce(masks) if masks else None


def known_intents_key(known_intents: Collection[str] | None) -> frozenset[str] | None:
    """Canonical, hashable form of ``known_intents``."""
    return None if known_intents is None else frozenset(known_intents)


@dataclass(frozen=True)
class TeamSuite:
    """The expectations one ``rulelife.log_expectations`` entry point returned, by kind."""

    name: str  # the entry point's name: the first part of each reason
    row: tuple[Any, ...]  # map expectations: each failing row is quarantined
    aggregate: tuple[Any, ...]  # the others: a failure on any chunk refuses the file
    columns: tuple[str, ...]  # every column they name (read from the log for them)

    @property
    def fingerprint(self) -> str:
        configs = [(e.expectation_type, e.configuration.kwargs) for e in (*self.row, *self.aggregate)]
        return hashlib.sha256(json.dumps([self.name, configs], sort_keys=True, default=str).encode()).hexdigest()[:16]


def _columns(kwargs: dict) -> list[str]:
    """The columns an expectation's kwargs name (column, column_A/column_B, column_list)."""
    names = [kwargs[k] for k in ("column", "column_A", "column_B") if kwargs.get(k)]
    return names + list(kwargs.get("column_list") or [])


def _label(name: str, kind: str, kwargs: dict) -> str:
    return f"{name}:{kind}({','.join(_columns(kwargs))})"


def team_suites() -> tuple[TeamSuite, ...]:
    """The installed ``rulelife.log_expectations`` entry points, loaded and sorted by name.

    Each entry point names a function (or a list) giving great-expectations
    expectations, e.g. ``[gx.expectations.ExpectColumnValuesToMatchRegex(column="locale",
    regex=r"^[a-z]{2}-[A-Z]{2}$")]``. Nothing is imported when none is
    installed. Raises :class:`~rulelife.errors.ConfigError` naming the
    entry point when it cannot be loaded or gives anything else.
    """
    found = available(LOG_EXPECTATIONS)
    if not found:
        return ()
    gx = _import_gx()
    from great_expectations.expectations.expectation import (
        ColumnMapExpectation,
        ColumnPairMapExpectation,
        Expectation,
        MulticolumnMapExpectation,
    )

    suites = []
    for name, entry in sorted(found.items()):
        where = f"log expectation entry point {name!r} ({entry.value}, group {LOG_EXPECTATIONS})"
        try:
            with quiet_pyspark_import():
                made = entry.load()
                made = made() if callable(made) else made
        except Exception as exc:  # noqa: BLE001 - a team's code: any failure is a configuration error, named
            raise ConfigError(f"{where} failed to load: {type(exc).__name__}: {clip(str(exc))}; fix or uninstall "
                              "the package that declares it") from None
        items = [made] if isinstance(made, Expectation) else list(made) if isinstance(made, list | tuple) else None
        wrong = [preview(i) for i in items or [made] if not isinstance(i, Expectation)]
        if items is None or wrong:
            raise ConfigError(f"{where} must give great-expectations expectations (e.g. "
                              f"gx.expectations.ExpectColumnValuesToMatchRegex(...)), got {', '.join(wrong)}")
        per_row = [isinstance(i, ColumnMapExpectation | ColumnPairMapExpectation | MulticolumnMapExpectation)
                   for i in items]
        row = tuple(i for i, flag in zip(items, per_row) if flag)
        aggregate = tuple(i for i, flag in zip(items, per_row) if not flag)
        columns = tuple(dict.fromkeys(c for i in items for c in _columns(i.configuration.kwargs)))
        suites.append(TeamSuite(name=name, row=row, aggregate=aggregate, columns=columns))
    del gx
    return tuple(suites)


def suite_key(team: tuple[TeamSuite, ...]) -> str | int:
    """The validation-cache key part of the whole suite: a team's expectations change it too."""
    return SUITE_VERSION if not team else f"{SUITE_VERSION}+" + "+".join(s.fingerprint for s in team)


def _team_suite(suite: TeamSuite, kind: str) -> Any:
    import great_expectations as gx

    context, _ = _context()
    key = (suite.fingerprint, kind)
    if key not in _state["team"]:
        expectations = [e.copy(deep=True) for e in getattr(suite, kind)]  # a suite owns what it holds
        made = gx.ExpectationSuite(name=f"team-{suite.name}-{kind}-{len(_state['team'])}", expectations=expectations)
        _state["team"][key] = context.suites.add(made)
    return _state["team"][key]


def _team_failures(frame: pd.DataFrame, suite: TeamSuite, source: str) -> dict[str, np.ndarray]:
    """Reason -> positions of the rows failing ``suite``'s row expectations; raises LogError on an aggregate failure."""
    failures: dict[str, np.ndarray] = {}
    for kind in ("row", "aggregate"):
        if not getattr(suite, kind):
            continue
        with _lock:
            _, batch_definition = _context()
            batch = batch_definition.get_batch(batch_parameters={"dataframe": frame})
            result = batch.validate(_team_suite(suite, kind), result_format={"result_format": "COMPLETE"})
        for res in result.results:
            config = res.expectation_config
            reason = _label(suite.name, config.type, config.kwargs)
            if res.exception_info.get("raised_exception"):
                message = res.exception_info.get("exception_message") or res.exception_info
                raise LogError(f"{source}: the log expectation {reason} could not run ({clip(str(message))}); fix it "
                               f"in the package that declares the entry point {suite.name!r} ({LOG_EXPECTATIONS})")
            if kind == "row":
                # Every failing row, whatever `mostly` says: a row's fate must not depend on its chunk.
                index = res.result.get("unexpected_index_list") or []
                if len(index):
                    failures[reason] = np.asarray(index, dtype=np.int64)
            elif not res.success:
                observed = res.result.get("observed_value")
                observed = observed.item() if isinstance(observed, np.generic) else observed
                raise LogError(f"{source}: refused by the log expectation {reason} (observed {preview(observed)} in a "
                               f"chunk of {len(frame):,} rows); the read stops here. Fix the "
                               f"file, or the expectation in the package that declares {suite.name!r} ({LOG_EXPECTATIONS})")
    return failures
