"""Which intent each rule id of a log answers, from the bundles the log names."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from rulelife.errors import BundleError, LogError
from rulelife.serving.bundle import BundleStore

__all__ = ["BundleIntents", "unknown_rules_error"]


class BundleIntents:
    """rule id -> intent over the bundles the log names, each loaded once.

    Bundles are added in ascending number, so when two bundles disagree on a
    rule's intent (an edited rule: a new version) the newer one wins on
    every engine alike.
    """

    def __init__(self, bundle_dir: Path):
        self.store = BundleStore(bundle_dir)
        self.numbers: set[int] = set()
        self.intents: dict[str, str] = {}

    def add(self, numbers: Iterable[int]) -> None:
        for number in sorted({int(n) for n in numbers} - self.numbers):
            try:
                self.intents.update({r.id: r.intent for r in self.store.load(number).rules})
            except BundleError as exc:
                raise LogError(f"the log names bundle {number}, which cannot be loaded ({exc})") from None
            self.numbers.add(number)


def unknown_rules_error(message: str) -> LogError:
    return LogError(f"{message}; is --log the runtime's log for this bundle store?")
