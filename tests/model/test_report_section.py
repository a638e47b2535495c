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
