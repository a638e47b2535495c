"""Progress of long library calls, for whoever runs them.

The library says what it is doing (:func:`step` for a new phase, :func:`tick`
for detail inside one, such as rows read); it never prints. Both go to the
``rulelife.progress`` logger (steps at info, ticks at info at most every few
seconds), so ``--verbose`` or a JSON log shows them in a cron log; a caller
may also install a reporter for the duration of a call (the CLI shows a
spinner on a terminal, and quickstart prints each step as it goes).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

__all__ = ["reporting", "reporting_active", "step", "tick"]

log = logging.getLogger("rulelife.progress")
Reporter = Callable[[str, bool], None]  # (message, is_step)
_reporter: ContextVar[Reporter | None] = ContextVar("rulelife_progress", default=None)
_last_tick = ContextVar("rulelife_progress_tick", default=0.0)
TICK_SECONDS = 5.0  # a tick reaches the log at most this often


def step(message: str) -> None:
    """A new phase of the current call: always logged at info."""
    log.info(message)
    reporter = _reporter.get()
    if reporter is not None:
        reporter(message, True)


def tick(message: str) -> None:
    """Detail inside a phase (rows read so far); logged at most every ``TICK_SECONDS``."""
    now = time.monotonic()
    if now - _last_tick.get() >= TICK_SECONDS:
        _last_tick.set(now)
        log.info(message)
    reporter = _reporter.get()
    if reporter is not None:
        reporter(message, False)


def reporting_active() -> bool:
    """Whether a reporter is installed (an outer caller already shows progress)."""
    return _reporter.get() is not None


@contextmanager
def reporting(reporter: Reporter) -> Iterator[None]:
    """Send :func:`step` and :func:`tick` to ``reporter(message, is_step)`` inside the block."""
    token = _reporter.set(reporter)
    try:
        yield
    finally:
        _reporter.reset(token)
