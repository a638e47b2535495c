"""Fuzzing query logs: every row ends valid or quarantined with a reason, every file read or refused by name.

For a file whose records are known (each field quoted, whatever its bytes),
the reader's count must be exact: rows valid + rows quarantined = records in
the file, the quarantine holds exactly the quarantined rows, each with a
reason, and every valid row meets the contract. A file that cannot be read
(a header that is not one, bytes that are no Parquet) is a LogError naming
the file, on one line. Never a traceback, never a hang.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import example, given
from hypothesis import strategies as st

from rulelife.errors import LogError
from rulelife.querylog import REQUIRED_COLUMNS, LogReport, read_log

from .conftest import assert_one_clear_line, fuzz, tally

COLUMNS = (*REQUIRED_COLUMNS, "rule_id", "rule_version", "bundle_version", "shadow")
CONTROL = [chr(c) for c in range(32)] + ["\x7f", "\x85", "\u200b", "\u200d", "\u202e", "\u2066", "\ufeff"]

# ------------------------------------------------------------------ cells

_text = st.text(st.characters(codec="utf-8") | st.sampled_from(CONTROL), max_size=40)
_odd_ts = st.sampled_from([
    "2024-05-01T08:00:00Z", "2024-05-01 08:00:00", "2024-05-01T08:00:00+14:00", "2024-05-01", "20240501T080000",
    "1714550400", "01/05/2024 08:00", "May 1 2024", "2024-13-01T00:00:00Z", "2024-02-30", "9999-12-31T23:59:59Z",
    "0001-01-01", "NaT", "nan", "now", "", " ", "2024-05-01T08:00:00.123456789Z", "2024-W18-3", "−2024-05-01",
])
_number = st.sampled_from(["0.5", "1", "0", "1.5", "-0.1", "nan", "NaN", "inf", "-inf", "1e309", "0x1p-1", "",
                           "high", " 0.7 ", "1,5", "٠٫٥"])
_bool = st.sampled_from(["true", "false", "True", "1", "0", "yes", "maybe", "", "nan"])
_cell = {
    "query_id": st.one_of(st.sampled_from(["q1", "q2", "q3", ""]), _text),
    "ts": st.one_of(_odd_ts, _text),
    "text": st.one_of(st.sampled_from(["where is my order", " ", "", "ｗｈｅｒｅ", "\x00"]), _text,
                      st.integers(10_000, 200_000).map(lambda n: "where " * (n // 6))),
    "locale": st.one_of(st.sampled_from(["en-US", "ja-JP", "*", ""]), _text),
    "model_intent": st.one_of(st.sampled_from(["order_tracking", "", "返品"]), _text),
    "model_confidence": st.one_of(_number, _text),
    "rule_id": st.one_of(st.sampled_from(["", "faq.hours"]), _text),
    "rule_version": st.sampled_from(["", "0a1b2c3d4e5f", "zz"]),
    "bundle_version": st.sampled_from(["", "1", "2.0", "2.5", "-1", "x", "99999999999999999999"]),
    "shadow": _bool,
}
# A cell's bytes: its text in UTF-8, or raw bytes that may be no UTF-8 at all.
_cell_bytes = {name: st.one_of(strategy.map(lambda s: s.encode("utf-8", "surrogatepass")), st.binary(max_size=12))
               for name, strategy in _cell.items()}


# Most rows valid, some with a cell or two replaced by anything at all.
_corruption = st.sampled_from(COLUMNS).flatmap(lambda name: st.tuples(st.just(name), _cell_bytes[name]))
_rows = st.lists(st.lists(_corruption, max_size=2).map(dict), min_size=1, max_size=12)


def _valid_row(i: int) -> dict[str, bytes]:
    return {"query_id": b"q%d" % i, "ts": b"2024-05-01T08:00:00Z", "text": b"where is my order", "locale": b"en-US",
            "model_intent": b"order_tracking", "model_confidence": b"0.9", "rule_id": b"", "rule_version": b"",
            "bundle_version": b"", "shadow": b"false"}


def _record(cells: list[bytes]) -> bytes:
    """One CSV record with every field quoted, so any bytes (line breaks, commas, quotes) stay one field."""
    return b",".join(b'"' + cell.replace(b'"', b'""') + b'"' for cell in cells) + b"\n"


# ------------------------------------------------------------------ the invariant


def check_read(kind: str, path: Path, rows_in: int | None) -> None:
    """Read ``path``; assert every row is accounted for, or that a refusal names the file."""
    quarantine = path.parent / "quarantine"
    report = LogReport()
    try:
        frame = read_log(path, quarantine_dir=quarantine, report=report, known_intents=None)
    except LogError as exc:
        assert_one_clear_line(str(exc), str(path))
        if str(exc).startswith(("no valid row", "no row")):
            frame = None  # every row bad, or none: still counted below
        else:
            tally(kind, "file refused, named")
            assert rows_in is None or report.rows_read == 0  # refused before any row: nothing half-read
            return
    assert report.rows_read == report.rows_valid + report.rows_quarantined
    if rows_in is not None:
        assert report.rows_read == rows_in, (report.rows_read, rows_in)
    bad = pd.concat([pd.read_parquet(p) for p in report.quarantine_files]) if report.quarantine_files else None
    assert (0 if bad is None else len(bad)) == report.rows_quarantined
    if bad is not None:
        assert bad["_reason"].str.len().gt(0).all()
        assert set(bad["_source_file"]) == {str(path)}
    if frame is not None:
        assert len(frame) == report.rows_valid
        _assert_contract(frame)
    tally(kind, "files read")
    tally(kind, "rows in", report.rows_read)
    tally(kind, "rows valid", report.rows_valid)
    tally(kind, "rows quarantined", report.rows_quarantined)


def _assert_contract(frame: pd.DataFrame) -> None:
    """What a consumer of the valid rows relies on."""
    assert frame["query_id"].notna().all() and not frame["query_id"].duplicated().any()
    assert not frame["query_id"].str.contains(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]",
                                              regex=True).any()
    assert frame["ts"].notna().all()
    assert frame["text"].notna().all() and (frame["text"].str.strip().str.len() > 0).all()
    confidence = frame["model_confidence"].dropna().to_numpy(dtype=float)
    assert ((confidence >= 0) & (confidence <= 1)).all()  # NaN is never in range: none is left either


def _folder() -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix="rulelife-fuzz-")


# ------------------------------------------------------------------ CSV rows


@fuzz(30)
@given(_rows)
@example([{name: b"" for name in _cell_bytes}])
@example([{}, {"text": b"where is my \xff order"}, {"query_id": b"q\x00"}, {"model_confidence": b"NaN"}, {}])
def test_csv_rows_of_any_bytes(corruptions):
    with _folder() as root:
        path = Path(root) / "log.csv"
        rows = [{**_valid_row(i), **corruption} for i, corruption in enumerate(corruptions)]
        path.write_bytes(_record([name.encode() for name in COLUMNS]) + b"".join(
            _record([row[name] for name in COLUMNS]) for row in rows))
        check_read("CSV rows (any bytes)", path, len(rows))


@fuzz(25)
@given(_rows, st.lists(st.integers(-3, 3), min_size=1, max_size=8), st.booleans())
def test_csv_records_that_do_not_match_the_header(corruptions, extra_fields, cut_last_line):
    records = []
    for i, (corruption, extra) in enumerate(zip(corruptions, extra_fields * len(corruptions))):
        row = {**_valid_row(i), **corruption}
        cells = [row[name] for name in COLUMNS]
        cells = cells + [b"extra"] * extra if extra >= 0 else cells[:extra]
        records.append(_record(cells))
    content = _record([name.encode() for name in COLUMNS]) + b"".join(records)
    if cut_last_line:
        content = content[:-5]  # a writer killed mid-line
    with _folder() as root:
        path = Path(root) / "log.csv"
        path.write_bytes(content)
        check_read("CSV records of the wrong width", path, None)


# ------------------------------------------------------------------ CSV files


@fuzz(40)
@given(st.binary(max_size=3_000))
@example(b"")
@example(b"\xef\xbb\xbf")
@example(b"query_id,ts,text,locale,model_intent,model_confidence")
def test_csv_files_of_random_bytes(content):
    with _folder() as root:
        path = Path(root) / "log.csv"
        path.write_bytes(content)
        check_read("CSV files (random bytes)", path, 0 if not content else None)


@fuzz(40)
@given(st.lists(st.sampled_from([*COLUMNS, "", " text", "TEXT", "query_id", "ts\x00", "true_intent", "ts"]),
                max_size=14).map(lambda names: [n.encode() for n in names])
       | st.lists(st.binary(max_size=12), max_size=8),
       st.integers(0, 3))
def test_csv_wrong_headers(header, rows):
    body = b"".join(_record([b"q%d" % i, b"2024-05-01T08:00:00Z", b"hi"] + [b"x"] * max(0, len(header) - 3))
                    for i in range(rows))
    with _folder() as root:
        path = Path(root) / "log.csv"
        path.write_bytes(b",".join(header) + b"\n" + body)
        check_read("CSV wrong headers", path, None)


# ------------------------------------------------------------------ Parquet


_parquet_columns = {
    "query_id": st.one_of(st.lists(_text, min_size=4, max_size=4).map(lambda v: pa.array(v, pa.string())),
                          st.just(pa.array([1, 2, 3, 3], pa.int64())),
                          st.just(pa.array([None, "a", "b", None], pa.string()))),
    "ts": st.one_of(st.lists(_odd_ts, min_size=4, max_size=4).map(lambda v: pa.array(v, pa.string())),
                    st.just(pa.array([1_714_550_400_000_000, None, 0, -1], pa.timestamp("us"))),
                    st.just(pa.array([1, 2, 3, 4], pa.int64())), st.just(pa.array([True, False, None, True]))),
    "text": st.one_of(st.lists(_text, min_size=4, max_size=4).map(lambda v: pa.array(v, pa.string())),
                      st.just(pa.array([b"\xff\xfe", b"ok", None, b"where"], pa.binary())),
                      st.just(pa.array([1.5, None, 3.0, float("nan")], pa.float64()))),
    "locale": st.just(pa.array(["en-US", "ja-JP\x00", None, "es"], pa.string())),
    "model_intent": st.one_of(st.just(pa.array(["x", None, "", "y"], pa.string())),
                              st.just(pa.array([None] * 4, pa.null()))),
    "model_confidence": st.one_of(
        st.lists(st.floats(allow_nan=True, allow_infinity=True) | st.none(), min_size=4, max_size=4)
        .map(lambda v: pa.array(v, pa.float64(), from_pandas=False)),
        st.just(pa.array(["0.5", "nan", "high", None], pa.string())),
        st.just(pa.array([0, 1, 2, None], pa.int32()))),
}


_VALID_PARQUET = {
    "query_id": pa.array(["q0", "q1", "q2", "q3"]),
    "ts": pa.array([pd.Timestamp("2024-05-01T08:00Z")] * 4, pa.timestamp("us", tz="UTC")),
    "text": pa.array(["where is my order"] * 4), "locale": pa.array(["en-US"] * 4),
    "model_intent": pa.array(["order_tracking"] * 4), "model_confidence": pa.array([0.9] * 4),
}


@fuzz(30)
@given(st.lists(st.sampled_from(list(_parquet_columns)).flatmap(
    lambda name: st.tuples(st.just(name), _parquet_columns[name])), max_size=2).map(dict),
       st.sets(st.sampled_from(list(_parquet_columns)), max_size=1))
def test_parquet_of_any_types_and_values(corrupted, dropped):
    columns = {**_VALID_PARQUET, **corrupted}
    table = pa.table({name: arr for name, arr in columns.items() if name not in dropped})
    with _folder() as root:
        path = Path(root) / "log.parquet"
        pq.write_table(table, path)
        check_read("Parquet typed columns", path, None if dropped else 4)


@fuzz(20)
@given(st.binary(max_size=2_000), st.booleans())
def test_parquet_files_of_random_bytes(content, magic):
    with _folder() as root:
        path = Path(root) / "log.parquet"
        path.write_bytes(b"PAR1" + content + b"PAR1" if magic else content)
        check_read("Parquet files (random bytes)", path, 0 if not content and not magic else None)


def test_a_nan_and_infinity_matrix_is_counted_exactly():
    # Hand-computed: of 4 rows, only "a" is valid; b (NaN beside an intent), c (∞) and d (-∞) are bad.
    with _folder() as root:
        path = Path(root) / "log.parquet"
        pq.write_table(pa.table({
            "query_id": ["a", "b", "c", "d"], "ts": pa.array([pd.Timestamp("2024-05-01T08:00Z")] * 4, pa.timestamp("us", tz="UTC")),
            "text": ["hi"] * 4, "locale": ["en"] * 4, "model_intent": ["x"] * 4,
            "model_confidence": pa.array([0.5, math.nan, math.inf, -math.inf], pa.float64())}), path)
        report = LogReport()
        frame = read_log(path, report=report)
        assert frame["query_id"].tolist() == ["a"] and report.rows_quarantined == 3
