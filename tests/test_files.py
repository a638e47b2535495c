"""Atomic writes: a reader sees the old file or the new one, never half of one; a failed or
killed write changes nothing, and its temporary file does not outlive it for long."""

from __future__ import annotations

import logging
import os
import time

import pandas as pd
import pyarrow as pa
import pytest

from rulelife._files import STALE_AFTER, atomic_path, atomic_write, is_temp, remove_temps


def listing(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def mode(path) -> int:
    return path.stat().st_mode & 0o777


def test_a_write_replaces_the_whole_file_and_leaves_nothing_else(tmp_path):
    target = tmp_path / "new-folder" / "CURRENT"
    atomic_write(target, "old pointer\n")
    atomic_write(target, "café\n")  # text is written as UTF-8
    assert target.read_bytes() == b"caf\xc3\xa9\n"
    atomic_write(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    assert listing(target.parent) == ["CURRENT"]


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_the_mode_is_the_one_asked_for_whatever_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        atomic_write(tmp_path / "bundle", b"x")
        atomic_write(tmp_path / "settings", "x", mode=0o600)
        with atomic_path(tmp_path / "rows.parquet") as tmp:
            pd.DataFrame({"n": [1]}).to_parquet(tmp)
    finally:
        os.umask(old)
    assert (mode(tmp_path / "bundle"), mode(tmp_path / "settings"), mode(tmp_path / "rows.parquet")) == (
        0o644, 0o600, 0o644)


@pytest.mark.parametrize("partial", ["", "a,b\n3"])
def test_an_exception_inside_the_block_keeps_the_previous_file(tmp_path, partial):
    target = tmp_path / "rows.csv"
    atomic_write(target, "a,b\n1,2\n")
    with pytest.raises(RuntimeError, match="disk full"), atomic_path(target) as tmp:
        tmp.write_text(partial)
        raise RuntimeError("disk full")
    assert target.read_text() == "a,b\n1,2\n"
    assert listing(tmp_path) == ["rows.csv"]


def test_a_failing_parquet_writer_keeps_the_previous_file(tmp_path):
    target = tmp_path / "rows.parquet"
    with atomic_path(target) as tmp:
        pd.DataFrame({"n": [1, 2]}).to_parquet(tmp, index=False)
    with pytest.raises(pa.ArrowInvalid, match="column n"), atomic_path(target) as tmp:
        pd.DataFrame({"n": [3, object()]}).to_parquet(tmp, index=False)
    assert pd.read_parquet(target)["n"].tolist() == [1, 2]
    assert listing(tmp_path) == ["rows.parquet"]


def test_a_killed_writer_keeps_the_previous_file_and_its_temp_goes_once_stale(tmp_path, kill_mid_write, caplog):
    target = tmp_path / "ticket-00001.json"
    atomic_write(target, '{"id": 1}')
    kill_mid_write(target, '{"id": 1, "ev')
    kill_mid_write(tmp_path / "ticket-00002.json", '{"id')
    assert target.read_text() == '{"id": 1}'
    old, young = sorted((n for n in listing(tmp_path) if is_temp(n)), key=lambda n: "00002" in n)
    assert old.startswith(".ticket-00001.json.") and young.startswith(".ticket-00002.json.")
    # The first was untouched for longer than STALE_AFTER: its writer is gone. The second may be a live writer's.
    day_ago = time.time() - STALE_AFTER - 60
    os.utime(tmp_path / old, (day_ago, day_ago))
    with caplog.at_level(logging.WARNING, logger="rulelife._files"):
        atomic_write(tmp_path / "ticket-00003.json", "{}")
    assert f"removed 1 temporary file(s) left in {tmp_path}" in caplog.text
    assert listing(tmp_path) == sorted([young, "ticket-00001.json", "ticket-00003.json"])
    # Whoever holds the folder's lock knows no writer is live and removes them all.
    assert remove_temps(tmp_path) == 1
    assert listing(tmp_path) == ["ticket-00001.json", "ticket-00003.json"]


@pytest.mark.parametrize(("name", "temporary"), [
    (".bundle-000002.rlb.k2j4_x9a.tmp", True),
    (".CURRENT.abcd1234.tmp", True),
    ("bundle-000002.rlb", False),
    ("CURRENT", False),
    (".lock", False),
    ("notes.tmp", False),
    (".notes.tmp", False),
])
def test_only_the_temporary_names_of_atomic_writes_are_recognised(name, temporary):
    assert is_temp(name) is temporary


def test_a_missing_folder_has_no_temps(tmp_path):
    assert remove_temps(tmp_path / "absent") == 0
