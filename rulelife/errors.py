"""Exceptions raised by rulelife.

One root (:class:`RulelifeError`), a few grouping bases, and leaf classes
whose message always says what is wrong and what to do about it. The CLI
turns any :class:`RulelifeError` into a message and a non-zero exit code;
everything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import math
import reprlib


class RulelifeError(Exception):
    """Base of every error rulelife raises on purpose."""


class ConfigError(RulelifeError, ValueError):
    """A setting or the workspace is missing or invalid."""


class WorkspaceNotFound(ConfigError):
    """No workspace was found from the current directory or --workspace."""


class RuleError(RulelifeError, ValueError):
    """A rule definition is invalid."""


class RuleFileError(RuleError):
    """A rule file cannot be read or parsed; ``problem``, ``line`` and ``column`` say where, when known."""

    def __init__(self, message: str, *, problem: str | None = None, line: int | None = None,
                 column: int | None = None):
        super().__init__(message)
        self.problem = problem if problem is not None else message
        self.line = line
        self.column = column


class UnknownRule(RulelifeError, KeyError):
    """A rule id is not in the registry or the rules folder."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class StoreError(RulelifeError):
    """The registry database cannot be reached or used."""


class StoreBusy(StoreError):
    """Another writer holds the database (SQLite's lock past ``db_busy_timeout``, a PostgreSQL deadlock or
    serialization conflict); nothing of this command's transaction was kept: run it again."""


class LifecycleError(RulelifeError):
    """A lifecycle transition is not allowed from the rule's current state."""


class BundleError(RulelifeError):
    """A bundle cannot be built, found or loaded."""


class BundleIntegrityError(BundleError):
    """A bundle file is truncated or was modified after it was written."""


class RollbackRefused(BundleError):
    """A rollback would serve rules the registry took out of traffic; ``blocked`` names each and why."""

    def __init__(self, number: int, blocked: list[str]):
        self.number = number
        self.blocked = list(blocked)
        lines = "\n".join(f"  - {line}" for line in self.blocked)
        super().__init__(
            f"rollback to bundle {number} refused; CURRENT was not moved. It would serve "
            f"{len(self.blocked)} rule(s) the registry took out of traffic:\n{lines}\n"
            f"Roll back to another bundle, or serve them anyway with --force --reason \"why\" (audited)")


class LogError(RulelifeError, ValueError):
    """A query log cannot be read or has no usable rows."""


class NoLabels(LogError):
    """The log window holds no labelled row to measure the model against."""


class GateRefused(LifecycleError):
    """The promotion gate refused a rule version; ``reasons`` lists every failed check."""

    def __init__(self, rule_id: str, reasons: list[str]):
        self.rule_id = rule_id
        self.reasons = list(reasons)
        lines = "\n".join(f"  - {reason}" for reason in self.reasons)
        super().__init__(f"promotion of {rule_id} refused; nothing was changed:\n{lines}")


class NotFittedError(RulelifeError, ValueError, AttributeError):
    """A learning object was used before ``fit``; the built-in bases are those callers of scikit-learn catch."""


class JobLocked(RulelifeError):
    """Another run of the same job holds its lock; retry later."""


class UnknownTicket(RulelifeError):
    """No ticket has that id."""


class NoDataset(RulelifeError):
    """No dataset has been built for this rule version."""


_PREVIEW = reprlib.Repr()
_PREVIEW.maxlevel, _PREVIEW.maxlist, _PREVIEW.maxtuple, _PREVIEW.maxdict, _PREVIEW.maxset = 2, 3, 3, 3, 3


def preview(value: object, limit: int = 80) -> str:
    """``repr(value)`` bounded to about ``limit`` characters, for quoting input in a message.

    A message quotes the value it refuses, but that value may be a megabyte
    (a pasted log line, a YAML alias expanded many times over): past the limit
    the middle is cut and the full length is said, so every message stays
    one readable line. Nested containers are cut too, without walking them.

    >>> preview("where is my order")
    "'where is my order'"
    >>> preview("a" * 1_000_000, limit=20)
    "'aaaaaaa...aaaaaaaa' (1,000,000 characters)"
    >>> preview([["lol"] * 9] * 9)
    "[['lol', 'lol', 'lol', ...], ['lol', 'lol', 'lol', ...], ['lol', 'lol', 'lol', ...], ...] (9 items)"
    >>> preview(10**26), preview(10**5000)
    ('100000000000000000000000000', 'a whole number of about 5,001 digits')
    """
    if isinstance(value, int) and value.bit_length() > 3.33 * limit:  # str() of a huge int is slow, then refused
        return f"a whole number of about {int(value.bit_length() * math.log10(2)) + 1:,} digits"
    _PREVIEW.maxstring = _PREVIEW.maxother = _PREVIEW.maxlong = limit
    text = _PREVIEW.repr(value)
    if isinstance(value, str) and len(value) > limit:
        return f"{text} ({len(value):,} characters)"
    if isinstance(value, (list, tuple, dict, set)) and len(value) > _PREVIEW.maxlist:
        return f"{text} ({len(value):,} items)"
    return text


def clip(text: str, limit: int = 200) -> str:
    r"""``text`` as one line of at most about ``limit`` characters, for passing on another library's message.

    >>> clip("CSV parse error: Expected 6 columns, got 2: q1,hi")
    'CSV parse error: Expected 6 columns, got 2: q1,hi'
    >>> clip("found duplicate key with value [" + "'lol', " * 10_000 + "]", limit=40)
    "found duplicate key with value ['lol', '… (70,033 characters)"
    >>> clip("two\nlines")
    'two\\nlines'
    """
    line = text.replace("\r", "\\r").replace("\n", "\\n")
    return line if len(line) <= limit else f"{line[:limit]}… ({len(text):,} characters)"


class DeliveryError(RulelifeError):
    """A sink did not take an event. ``permanent``: it never will (e.g. HTTP 400), so the event is
    dead-lettered; otherwise it stays pending, not retried before ``retry_at`` when the receiver said so."""

    def __init__(self, message: str, *, permanent: bool = False, retry_at=None):
        super().__init__(message)
        self.permanent = permanent
        self.retry_at = retry_at
