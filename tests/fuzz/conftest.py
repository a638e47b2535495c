"""Shared settings of the fuzz tests: how many cases, and the tally of their outcomes.

The normal suite tries a modest, fixed set of cases (derandomised, so a CI run
is repeatable). ``RULELIFE_FUZZ_EXAMPLES=N`` tries N random cases per test
instead; ``RULELIFE_FUZZ_REPORT=path.json`` writes the tally (cases per input
kind and their outcomes), the figures of docs/reliability.md.
"""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from pathlib import Path

from hypothesis import HealthCheck, settings

EXAMPLES = int(os.environ.get("RULELIFE_FUZZ_EXAMPLES") or 0)
# Outcome tally: input kind -> outcome -> cases (shrinking replays count too).
TALLY: dict[str, Counter] = defaultdict(Counter)
# Bounds every message must keep, whatever the input.
MAX_MESSAGE = 1_500


def fuzz(default: int, *, most: int | None = None):
    """Hypothesis settings: ``default`` fixed cases, or RULELIFE_FUZZ_EXAMPLES random ones (at most ``most``:
    a case of the largest inputs takes about a second)."""
    return settings(
        max_examples=min(EXAMPLES, most or EXAMPLES) if EXAMPLES else default,
        derandomize=not EXAMPLES,
        database=None,
        deadline=None,  # timing is the benchmarks' business; a hang still fails the run
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    )


def tally(kind: str, outcome: str, count: int = 1) -> None:
    TALLY[kind][outcome] += count


def assert_one_clear_line(message: str, *names: str) -> None:
    """A message a person can read: one line, bounded, naming what it is about."""
    assert "\n" not in message, message[:2000]
    assert len(message) <= MAX_MESSAGE, message[:2000]
    assert "Traceback" not in message
    for name in names:
        assert name in message, (name, message)


def pytest_sessionfinish(session, exitstatus):
    path = os.environ.get("RULELIFE_FUZZ_REPORT")
    if path and TALLY:
        report = {"examples_per_test": EXAMPLES or "default",
                  "kinds": {kind: dict(sorted(outcomes.items())) for kind, outcomes in sorted(TALLY.items())}}
        Path(path).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
