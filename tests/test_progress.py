"""The library reports progress; callers decide what to show."""

from __future__ import annotations

import logging

from rulelife import progress


def test_steps_and_ticks_reach_the_reporter_and_the_log(caplog, monkeypatch):
    seen = []
    clock = iter([100.0, 101.0, 106.0])
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    progress._last_tick.set(0.0)
    with caplog.at_level(logging.INFO, logger="rulelife.progress"):
        assert not progress.reporting_active()
        with progress.reporting(lambda message, is_step: seen.append((message, is_step))):
            assert progress.reporting_active()
            progress.step("counting")
            progress.tick("1 file")  # t=100: logged
            progress.tick("2 files")  # t=101: within 5 s of the last, not logged
            progress.tick("3 files")  # t=106: logged
        progress.step("outside any reporter")  # logged, nobody else to tell
    assert seen == [("counting", True), ("1 file", False), ("2 files", False), ("3 files", False)]
    assert [r.getMessage() for r in caplog.records] == ["counting", "1 file", "3 files", "outside any reporter"]
