"""Exceptions raised by rulelife.

One root (:class:`RulelifeError`), a few grouping bases, and leaf classes
whose message always says what is wrong and what to do about it. The CLI
turns any :class:`RulelifeError` into a message and a non-zero exit code;
everything else is a bug and keeps its traceback.
"""

from __future__ import annotations


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


class GateRefused(LifecycleError):
    """The promotion gate refused a rule version; ``reasons`` lists every failed check."""

    def __init__(self, rule_id: str, reasons: list[str]):
        self.rule_id = rule_id
        self.reasons = list(reasons)
        lines = "\n".join(f"  - {reason}" for reason in self.reasons)
        super().__init__(f"promotion of {rule_id} refused; nothing was changed:\n{lines}")


class JobLocked(RulelifeError):
    """Another run of the same job holds its lock; retry later."""


class UnknownTicket(RulelifeError):
    """No ticket has that id."""


class NoDataset(RulelifeError):
    """No dataset has been built for this rule version."""


class DeliveryError(RulelifeError):
    """A sink did not take an event. ``permanent``: it never will (e.g. HTTP 400), so the event is
    dead-lettered; otherwise it stays pending, not retried before ``retry_at`` when the receiver said so."""

    def __init__(self, message: str, *, permanent: bool = False, retry_at=None):
        super().__init__(message)
        self.permanent = permanent
        self.retry_at = retry_at
