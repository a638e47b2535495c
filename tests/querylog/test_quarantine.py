"""The quarantine file appears whole or not at all, readable by others, with no temporary file left."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from rulelife._files import is_temp
from rulelife.querylog.quarantine import QuarantineWriter


def test_the_quarantine_file_appears_only_when_closed(tmp_path):
    folder = tmp_path / "q"
    writer = QuarantineWriter(directory=folder, source=tmp_path / "day.csv", run_id="r1", taken=set())
    writer.write(pa.table({"text": ["", "x"]}), np.array([3, 7]), np.array(["empty text", "bad locale"]))
    writer.write(pa.table({"text": ["y"]}), np.array([12]), np.array(["bad locale"]))
    # While the file is being written, a reader of the folder sees no quarantine file at all.
    assert not writer.path.exists()
    assert [is_temp(p.name) for p in folder.iterdir()] == [True]
    writer.close()
    assert [p.name for p in folder.iterdir()] == ["day-r1.parquet"]
    table = pq.read_table(writer.path)
    assert table.column("_row").to_pylist() == [3, 7, 12]
    assert table.column("_reason").to_pylist() == ["empty text", "bad locale", "bad locale"]
    assert writer.path.stat().st_mode & 0o777 == 0o644
