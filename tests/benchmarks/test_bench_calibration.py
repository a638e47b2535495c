"""bench_calibration on a Bitext slice: two model versions, every figure present and consistent."""

from __future__ import annotations

import json

import pandas as pd

from benchmarks import _realdata
from benchmarks.bench_calibration import real_data

INTENTS = ["cancel_order", "track_order", "recover_password", "get_refund"]


def test_two_versions_on_a_bitext_slice(shared_data, tmp_path):
    data = _realdata.load_folder(shared_data / "bitext_cs_intent", intents=INTENTS)
    folder = tmp_path / "slice"
    folder.mkdir()
    data.rename(columns={"text": "utterance"}).to_csv(folder / "slice.csv", index=False)
    report = real_data(folder, quick=True)
    json.loads(json.dumps(report, default=str))  # JSON-ready as --json writes it
    calibration = report["calibration"]
    assert calibration["reference"] == "v1" and calibration["basis"] == "true"
    versions = {v["version"]: v for v in calibration["versions"]}
    assert set(versions) == {"v1", "v2"} and sum(v["n"] for v in versions.values()) == report["rows"] == len(data)
    for v in versions.values():
        assert 0 <= v["ece"] <= 1 and sum(c["n"] for c in v["curve"]) == v["n"]
    # The reference reaches its own precision at 0.95 at the latest.
    assert versions["v1"]["threshold"] <= 0.95
    assert len(report["lines"]) == 3 and pd.notna(calibration["reference_precision"])
