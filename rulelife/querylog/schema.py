"""The query-log contract: column names, dtypes, and coercion of a raw chunk to them.

A raw chunk is a ``pyarrow.Table`` as it came off disk (CSV: every column a
string; Parquet: whatever the writer chose). :func:`coerce` turns it into a
DataFrame with exactly the contract dtypes and says, per column, which rows
held a value that did not parse. A value that does not parse becomes NA in the
frame and a quarantine reason ``expect_column_values_to_be_parseable(<col>)``
(our own check, named like the great-expectations ones so every reason reads
alike).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from rulelife.errors import LogError
from rulelife.serving.logrow import (
    LABEL_COLUMNS,
    LEXICON_VETO_KEY_PATTERN,
    LOG_COLUMNS,
    OPTIONAL_RUNTIME_COLUMNS,
    REQUIRED_COLUMNS,
    RUNTIME_COLUMNS,
    SHADOW_RULES_PATTERN,
)

__all__ = [
    "CONTRACT_DTYPES",
    "LABEL_COLUMNS",
    "LEXICON_VETO_KEY_PATTERN",
    "OPTIONAL_RUNTIME_COLUMNS",
    "REQUIRED_COLUMNS",
    "RUNTIME_COLUMNS",
    "SHADOW_RULES_PATTERN",
    "coerce",
    "missing_columns",
    "parse_reason",
]

# Kind of a contract column (serving.logrow) -> the pandas dtype iter_log gives it.
_DTYPE_OF_KIND = {"string": "string", "timestamp": "datetime64[us, UTC]", "float": "Float64", "int": "Int64",
                  "bool": "boolean"}
# Column -> pandas dtype of every chunk iter_log yields, in this order (the
# runtime's columns, then the optional labels); extra columns follow in file order, unchanged.
CONTRACT_DTYPES: dict[str, str] = {name: _DTYPE_OF_KIND[kind]
                                   for name, kind in (LOG_COLUMNS | LABEL_COLUMNS).items()}

_STRING_COLUMNS = tuple(c for c, d in CONTRACT_DTYPES.items() if d == "string" and c not in OPTIONAL_RUNTIME_COLUMNS)
_TRUE = {"true", "t", "1", "yes", "y"}
_FALSE = {"false", "f", "0", "no", "n"}


def parse_reason(column: str) -> str:
    """The quarantine reason of a value in ``column`` that does not parse."""
    return f"expect_column_values_to_be_parseable({column})"


def missing_columns(names: list[str]) -> list[str]:
    """Required contract columns absent from ``names``, in contract order."""
    present = set(names)
    return [c for c in REQUIRED_COLUMNS if c not in present]


def _to_pandas(arr: pa.ChunkedArray) -> pd.Series:
    mapper = {pa.string(): pd.StringDtype(), pa.large_string(): pd.StringDtype()}.get
    return arr.to_pandas(types_mapper=mapper)


def _strings(arr: pa.ChunkedArray) -> pd.Series:
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        arr = pc.cast(arr, pa.string())
    return _to_pandas(arr).astype("string")


def _ts(arr: pa.ChunkedArray) -> tuple[pd.Series, np.ndarray | None]:
    if pa.types.is_timestamp(arr.type) or pa.types.is_date(arr.type):
        # A naive timestamp means UTC (the contract); arrow's cast to a zoned
        # type reinterprets naive values as UTC. safe=False truncates ns to us.
        arr = pc.cast(arr, pa.timestamp("us", tz="UTC"), safe=False)
        return arr.to_pandas().astype("datetime64[us, UTC]"), None
    raw = _strings(arr)
    ts = pd.to_datetime(raw, utc=True, errors="coerce", format="ISO8601").astype("datetime64[us, UTC]")
    return ts, (raw.notna() & ts.isna()).to_numpy()


def _numbers(arr: pa.ChunkedArray) -> tuple[pd.Series, np.ndarray | None]:
    if pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type) or pa.types.is_decimal(arr.type):
        # NaN in a float column is a missing value, not a number out of range.
        return pd.Series(pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False)).astype("Float64"), None
    raw = _strings(arr).str.strip()
    num = pd.to_numeric(raw, errors="coerce").astype("Float64")
    return num, (raw.notna() & num.isna()).to_numpy()


def _ints(arr: pa.ChunkedArray) -> tuple[pd.Series, np.ndarray | None]:
    num, bad = _numbers(arr)
    whole = num.isna() | (num == num.round())
    bad_int = ~whole.to_numpy(dtype=bool, na_value=True)
    num = num.where(whole)
    bad = bad_int if bad is None else bad | bad_int
    return num.astype("Int64"), bad if bad.any() else None


def _bools(arr: pa.ChunkedArray) -> tuple[pd.Series, np.ndarray | None]:
    if pa.types.is_boolean(arr.type):
        return _to_pandas(arr).astype("boolean"), None
    if pa.types.is_integer(arr.type):
        arr = pc.cast(arr, pa.string())
    raw = _strings(arr).str.strip().str.lower()
    out = pd.Series(pd.NA, index=raw.index, dtype="boolean")
    out[raw.isin(_TRUE).to_numpy(dtype=bool, na_value=False)] = True
    out[raw.isin(_FALSE).to_numpy(dtype=bool, na_value=False)] = False
    return out, (raw.notna() & out.isna()).to_numpy()


def _shadow_rules(arr: pa.ChunkedArray) -> tuple[pd.Series, np.ndarray | None]:
    raw = _strings(arr).str.strip()
    raw = raw.mask(raw == "")  # an empty cell (CSV) is "none fired", like NA
    ok = raw.str.match(SHADOW_RULES_PATTERN)
    bad = (raw.notna() & ~ok.fillna(False)).to_numpy(dtype=bool)
    return raw.mask(bad), bad


_VETO_KEY = re.compile(LEXICON_VETO_KEY_PATTERN)


def _valid_veto(cell: str) -> bool:
    """A non-empty JSON object of ``rule_id@version`` keys and non-empty phrase strings."""
    try:
        value = json.loads(cell)
    except ValueError:
        return False
    return (isinstance(value, dict) and bool(value)
            and all(_VETO_KEY.match(k) and isinstance(v, str) and v.strip() for k, v in value.items()))


def _lexicon_veto(arr: pa.ChunkedArray) -> tuple[pd.Series, np.ndarray | None]:
    raw = _strings(arr).str.strip()
    raw = raw.mask(raw == "")  # an empty cell (CSV) is "no veto", like NA
    present = raw.notna().to_numpy(dtype=bool)
    bad = np.zeros(len(raw), dtype=bool)
    if present.any():  # vetoes are rare: parse only the cells that hold one
        where = np.flatnonzero(present)
        bad[where] = [not _valid_veto(cell) for cell in raw.iloc[where]]
    return raw.mask(bad), bad


_PARSERS = {"ts": _ts, "model_confidence": _numbers, "bundle_version": _ints, "shadow": _bools,
            "shadow_rules": _shadow_rules, "lexicon_veto": _lexicon_veto}


def coerce(table: pa.Table, path: Path) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Contract-typed frame of ``table`` and, per column, a mask of values that did not parse.

    Missing runtime columns are added as all-NA; extra columns are kept after
    the contract ones. The frame has a fresh RangeIndex (position in chunk).
    """
    n = table.num_rows
    columns: dict[str, pd.Series] = {}
    failures: dict[str, np.ndarray] = {}
    for name, dtype in CONTRACT_DTYPES.items():
        if name not in table.column_names:
            columns[name] = pd.Series(pd.array([pd.NA] * n, dtype=dtype))
            continue
        arr = table.column(name)
        try:
            if name in _STRING_COLUMNS:
                columns[name] = _strings(arr)
            else:
                columns[name], bad = _PARSERS[name](arr)
                if bad is not None and bad.any():
                    failures[name] = bad
        except (pa.ArrowException, TypeError, ValueError) as exc:
            raise LogError(
                f"{path}: column {name!r} has type {arr.type}, which cannot be read as {dtype} "
                f"({exc}); rewrite the column as {dtype} or as text"
            ) from None
    for name in table.column_names:
        if name not in CONTRACT_DTYPES:
            col = table.column(name)
            columns[name] = _strings(col) if pa.types.is_string(col.type) else col.to_pandas()
    frame = pd.DataFrame({k: v.reset_index(drop=True) for k, v in columns.items()})
    return frame, failures
