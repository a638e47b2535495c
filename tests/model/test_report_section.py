"""The health page's residual section shows the model's accuracy on the residual and fallback readiness."""

from __future__ import annotations

from datetime import UTC, datetime

from rulelife.report.html import write_report
from tests.model.conftest import DAY1, ROWS, write_day


def test_the_health_page_shows_residual_accuracy_and_fallback(ws, tmp_path):
    write_day(ws, ROWS, DAY1)
    now = datetime(2026, 2, 2, 6, tzinfo=UTC)
    text = write_report(ws, tmp_path / "r.html", since=DAY1, until=DAY1, now=now).path.read_text()
    assert "Model accuracy on the residual <b>0.667</b>" in text and "against 0.600" in text
    assert "take back 4 calls a day" in text


def test_the_health_page_shows_calibration_per_model_version(ws, tmp_path):
    # ROWS has true labels on 5 model answers (see conftest): confidences 0.9 right, 0.6 wrong, 0.8, 0.4 right,
    # 0.2 wrong; none at >= 0.95, so the reference precision is unknown and the line says there is no row there.
    write_day(ws, ROWS, DAY1)
    now = datetime(2026, 2, 2, 6, tzinfo=UTC)
    text = write_report(ws, tmp_path / "r.html", since=DAY1, until=DAY1, now=now).path.read_text()
    assert 'data-model="calibration"' in text
    # ECE by hand: bins 0.9 (1 right, 0.9), 0.6 (0, 0.6), 0.8 (1, 0.8), 0.4 (1, 0.4), 0.2 (0, 0.2):
    # (0.1 + 0.6 + 0.2 + 0.6 + 0.2) / 5 = 0.34.
    assert "model unknown: n=5, ECE 0.340; no labelled row at &gt;= 0.95" in text
