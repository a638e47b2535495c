"""rulelife residual, export training-mix and compare-models from the command line."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from rulelife.cli import app
from tests.model.conftest import DAY1, ROWS, write_day

runner = CliRunner()


def invoke(ws, *args):
    return runner.invoke(app, ["--workspace", str(ws.root), *args])


def test_residual_prints_both_accuracies_and_fallback(ws):
    write_day(ws, ROWS, DAY1)
    result = invoke(ws, "residual")
    assert result.exit_code == 0, result.output
    assert "model accuracy: residual 0.667" in result.output and "all traffic 0.600" in result.output
    assert "take back 4 calls a day" in result.output
    data = json.loads(invoke(ws, "residual", "--json", "--freeze").output)
    assert data["summary"]["residual_share"] == 0.5 and data["frozen"] == []  # 3 labels < 100: not frozen


def test_residual_fallback_floor_fails_the_command(ws):
    write_day(ws, ROWS, DAY1)
    result = invoke(ws, "residual", "--fallback-floor", "0.9")
    assert result.exit_code == 1
    assert "load-bearing" in result.output


def test_export_training_mix(ws, tmp_path):
    write_day(ws, ROWS, DAY1)
    result = invoke(ws, "export", "training-mix", "--out", str(tmp_path / "mix"), "--share", "0.5")
    assert result.exit_code == 0, result.output
    assert "wrote 7 rows" in result.output
    bad = invoke(ws, "export", "training-mix", "--out", str(tmp_path / "x"), "--share", "1.5")
    assert bad.exit_code == 1 and "--share must be" in bad.output


def test_compare_models(ws):
    frame = write_day(ws, ROWS, DAY1)
    frame["candidate_intent"] = frame["model_intent"]
    frame.to_parquet(next(ws.log_dir.glob("*.parquet")), index=False)
    result = invoke(ws, "compare-models", "--candidate-column", "candidate_intent")
    assert result.exit_code == 0, result.output
    assert "residual: agreement 1.000 on 4 rows; decision: no difference shown" in result.output
    missing = invoke(ws, "compare-models", "--candidate-column", "nope")
    assert missing.exit_code == 1 and "no column 'nope'" in missing.output
