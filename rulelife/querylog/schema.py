"""The query-log contract: column names, dtypes, and coercion of a raw chunk to them.

A raw chunk is a ``pyarrow.Table`` as it came off disk (CSV: every column
bytes; Parquet: whatever the writer chose). :func:`coerce` turns it into a
DataFrame with exactly the contract dtypes and says, per reason, which rows
fail it. A value that does not parse becomes NA in the frame and a quarantine
reason; our own checks are named like the great-expectations ones, so every
reason reads alike:

- ``expect_column_values_to_be_utf8(<col>)``: bytes that are not UTF-8 text;
- ``expect_column_values_to_be_parseable(<col>)``: text that is no value of
  the column's type (``ts`` not a time, ``model_confidence`` not a number);
- ``expect_column_values_to_be_a_number_where_model_intent_is_set(model_confidence)``:
  a NaN confidence beside a model intent (a NaN where no intent is set, on a
  row a rule answered, is a missing confidence like an empty one);
- ``expect_column_values_to_have_no_control_characters(<col>)``: a control
  or format character (NUL, tab, a bidirectional override) in ``query_id``
  or ``locale``, which are identifiers.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from rulelife.errors import LogError, clip
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
    "MODEL_COLUMNS",
    "NAN_CONFIDENCE_REASON",
    "OPTIONAL_RUNTIME_COLUMNS",
    "REQUIRED_COLUMNS",
    "RUNTIME_COLUMNS",
    "SHADOW_RULES_PATTERN",
    "coerce",
    "control_reason",
    "missing_columns",
    "parse_reason",
    "utf8_reason",
]

# Kind of a contract column (serving.logrow) -> the pandas dtype iter_log gives it.
_DTYPE_OF_KIND = {"string": "string", "timestamp": "datetime64[us, UTC]", "float": "Float64", "int": "Int64",
                  "bool": "boolean"}
# Optional: which model version answered the row (whoever calls the model
# knows it; a retrained model is a new version). A log without it, or a row
# with it empty, reads as version "unknown".
MODEL_COLUMNS: dict[str, str] = {"model_version": "string"}
# Column -> pandas dtype of every chunk iter_log yields, in this order (the
# runtime's columns, the model's version, then the optional labels); extra columns follow in file order, unchanged.
CONTRACT_DTYPES: dict[str, str] = {name: _DTYPE_OF_KIND[kind]
                                   for name, kind in (LOG_COLUMNS | MODEL_COLUMNS | LABEL_COLUMNS).items()}

_STRING_COLUMNS = tuple(c for c, d in CONTRACT_DTYPES.items() if d == "string" and c not in OPTIONAL_RUNTIME_COLUMNS)
_TRUE = {"true", "t", "1", "yes", "y"}
_FALSE = {"false", "f", "0", "no", "n"}


def parse_reason(column: str) -> str:
    """The quarantine reason of a value in ``column`` that does not parse."""
    return f"expect_column_values_to_be_parseable({column})"


def utf8_reason(column: str) -> str:
    """The quarantine reason of a value in ``column`` whose bytes are not UTF-8."""
    return f"expect_column_values_to_be_utf8({column})"


def control_reason(column: str) -> str:
    """The quarantine reason of an identifier in ``column`` holding a control or format character."""
    return f"expect_column_values_to_have_no_control_characters({column})"


NAN_CONFIDENCE_REASON = "expect_column_values_to_be_a_number_where_model_intent_is_set(model_confidence)"
# Identifiers: a control or format character in one is corruption, never content.
_IDENTIFIER_COLUMNS = ("query_id", "locale")
_CONTROL_CHARACTER = r"[\p{Cc}\p{Cf}]"


def missing_columns(names: list[str]) -> list[str]:
    """Required contract columns absent from ``names``, in contract order."""
    present = set(names)
    return [c for c in REQUIRED_COLUMNS if c not in present]


def _to_pandas(arr: pa.ChunkedArray) -> pd.Series:
    mapper = {pa.string(): pd.StringDtype(), pa.large_string(): pd.StringDtype()}.get
    return arr.to_pandas(types_mapper=mapper)


def _control_characters(arr: pa.ChunkedArray) -> np.ndarray | None:
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        arr = pc.cast(arr, pa.string())
    return _mask(pc.match_substring_regex(arr, _CONTROL_CHARACTER))


def _mask(flags: pa.ChunkedArray) -> np.ndarray:
    """A boolean Arrow column as a numpy mask, null as False."""
    return pc.fill_null(flags, False).to_numpy(zero_copy_only=False).astype(bool, copy=False)


def _present(values: pd.Series) -> np.ndarray:
    """Cells holding a value (not NA, not blank)."""
    return (values.notna() & (values.str.strip() != "")).to_numpy(dtype=bool, na_value=False)


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
    num, bad, _ = _numbers_and_nans(arr)
    return num, bad


def _numbers_and_nans(arr: pa.ChunkedArray) -> tuple[pd.Series, np.ndarray | None, np.ndarray]:
    """Float64 values (NaN as NA), the cells that are no number, and the cells that were NaN."""
    if pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type) or pa.types.is_decimal(arr.type):
        as_float = pc.cast(arr, pa.float64())
        return pd.Series(as_float.to_numpy(zero_copy_only=False)).astype("Float64"), None, _mask(pc.is_nan(as_float))
    raw = _strings(arr).str.strip()
    num = pd.to_numeric(raw, errors="coerce").astype("Float64")
    nan = raw.str.lower().isin(("nan", "+nan", "-nan")).to_numpy(dtype=bool, na_value=False)
    return num, (raw.notna() & num.isna()).to_numpy() & ~nan, nan


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


def _is_utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _decoded(arr: pa.ChunkedArray) -> tuple[pa.ChunkedArray, np.ndarray | None]:
    """A bytes column as text, and the cells that are not UTF-8 (made null), or None when all are.

    Arrow checks the whole column in one pass; only a column that fails it is
    looked at cell by cell.
    """
    try:
        return pc.cast(arr, pa.string()), None
    except pa.ArrowInvalid:
        pass
    bad = np.fromiter((v is not None and not _is_utf8(v) for v in arr.to_pylist()), dtype=bool, count=len(arr))
    kept = pc.if_else(pa.array(bad), pa.scalar(None, arr.type), arr.combine_chunks())
    return pa.chunked_array([pc.cast(kept, pa.string())]), bad


def _decode(table: pa.Table, failures: dict[str, np.ndarray]) -> pa.Table:
    """``table`` with its bytes columns as text; cells that are not UTF-8 become null and a failure."""
    for index, name in enumerate(table.column_names):
        arr = table.column(index)
        if pa.types.is_binary(arr.type) or pa.types.is_large_binary(arr.type):
            text, bad = _decoded(arr)
            table = table.set_column(index, name, text)
            if bad is not None:
                failures[utf8_reason(name)] = bad
    return table


def _add(failures: dict[str, np.ndarray], reason: str, bad: np.ndarray | None) -> None:
    if bad is not None and bad.any():
        failures[reason] = bad if reason not in failures else failures[reason] | bad


def coerce(table: pa.Table, path: Path) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Contract-typed frame of ``table`` and, per quarantine reason, a mask of the rows that fail it.

    Missing runtime columns are added as all-NA; extra columns are kept after
    the contract ones. The frame has a fresh RangeIndex (position in chunk).
    """
    n = table.num_rows
    columns: dict[str, pd.Series] = {}
    failures: dict[str, np.ndarray] = {}
    table = _decode(table, failures)
    for name, dtype in CONTRACT_DTYPES.items():
        if name not in table.column_names:
            columns[name] = pd.Series(pd.array([pd.NA] * n, dtype=dtype))
            continue
        arr = table.column(name)
        try:
            if name in _STRING_COLUMNS:
                columns[name] = _strings(arr)
                if name in _IDENTIFIER_COLUMNS:
                    _add(failures, control_reason(name), _control_characters(arr))
            elif name == "model_confidence":
                columns[name], bad, nan = _numbers_and_nans(arr)
                _add(failures, parse_reason(name), bad)
                _add(failures, NAN_CONFIDENCE_REASON, nan & _present(columns["model_intent"]))
            else:
                columns[name], bad = _PARSERS[name](arr)
                _add(failures, parse_reason(name), bad)
        except (pa.ArrowException, TypeError, ValueError) as exc:
            raise LogError(
                f"{path}: column {name!r} has type {arr.type}, which cannot be read as {dtype} "
                f"({clip(str(exc))}); rewrite the column as {dtype} or as text"
            ) from None
    for name in table.column_names:
        if name not in CONTRACT_DTYPES:
            col = table.column(name)
            columns[name] = _strings(col) if pa.types.is_string(col.type) else col.to_pandas()
    frame = pd.DataFrame({k: v.reset_index(drop=True) for k, v in columns.items()})
    return frame, failures
