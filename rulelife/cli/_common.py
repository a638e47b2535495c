"""What every command shares: the error boundary, the workspace, output helpers."""

from __future__ import annotations

import json
import logging
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.core import TyperGroup

from rulelife import progress
from rulelife.errors import JobLocked, RulelifeError, StoreBusy

if TYPE_CHECKING:  # annotations only: commands import what they run, so --help stays fast
    from rulelife.config import Workspace
    from rulelife.serving.bundle import PublishResult

# Piped output (CI logs, `| less`) gets a wide console instead of rich's 80
# columns, so tables of dotted rule ids are not folded into unreadable cells.
# Markup and emoji codes are off: intents, phrases and messages are printed as
# they are ("Billing [/VIP]" is an intent name, not a closing tag); the few
# styled lines pass markup=True and escape what they interpolate.
# Plain lines are never hard-wrapped when piped (soft_wrap): one finding stays one line in a cron log.
console = Console(width=None if sys.stdout.isatty() else 160, soft_wrap=not sys.stdout.isatty(), markup=False,
                  emoji=False)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 160, soft_wrap=not sys.stderr.isatty(),
                      markup=False, emoji=False)


class LogFormat(StrEnum):
    text = "text"
    json = "json"


class Engine(StrEnum):
    """Where a command counts the log (``rulelife.engines``)."""

    local = "local"
    local_pool = "local-pool"
    spark = "spark"


JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of tables.")]
ActorOption = Annotated[str, typer.Option("--actor", help="Who does this (recorded in the audit log).")]
EngineOption = Annotated[Engine, typer.Option(
    "--engine", help="Where to count the log: local (one process), local-pool (one process a core) or spark "
                     "(the active Spark session, or a local one; needs the spark extra).")]


EXIT_RETRY = 75  # EX_TEMPFAIL: another writer or run held the database or the job; run it again later


class RulelifeGroup(TyperGroup):
    """Turns every :class:`RulelifeError` into one line on stderr and exit code 1 (75 when the
    database or a job lock was busy: :class:`StoreBusy`, :class:`JobLocked`; retrying is the fix).

    The library raises and never exits; this is the only place that decides
    what a user sees. Anything else is a bug and keeps its traceback.
    """

    def invoke(self, ctx: typer.Context) -> Any:
        with warnings.catch_warnings():  # restores showwarning on the way out
            warnings.showwarning = _show_warning
            try:
                with _spinner():
                    return super().invoke(ctx)
            except RulelifeError as exc:
                err_console.print(f"[bold red]error:[/] {escape(str(exc))}", markup=True, highlight=False,
                                  soft_wrap=True)
                raise typer.Exit(EXIT_RETRY if isinstance(exc, StoreBusy | JobLocked) else 1) from None


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A warning meant for the user (a deprecated setting) as one log line, not a source location:
    it follows --quiet and --log-format like every other line the command logs."""
    logging.getLogger("rulelife.warnings").warning("%s", message)


@contextmanager
def _spinner() -> Iterator[None]:
    """On a terminal, the library's progress as a transient line on stderr (nothing when piped:
    ``--verbose`` logs the steps instead)."""
    if not err_console.is_terminal or progress.reporting_active():
        yield
        return
    status = err_console.status("")
    started = False

    def show(message: str, is_step: bool) -> None:
        nonlocal started
        status.update(message)
        if not started:
            status.start()
            started = True

    try:
        with progress.reporting(show):
            yield
    finally:
        if started:
            status.stop()


def workspace(ctx: typer.Context) -> Workspace:
    """The workspace named by --workspace / $RULELIFE_WORKSPACE, or found from the cwd."""
    from rulelife.config import Workspace

    root = ctx.find_root()
    explicit: Path | None = (root.obj or {}).get("workspace")
    return Workspace.find(explicit)


EXIT_DELIVERY_PENDING = 4  # done, but some deliveries wait for a later run (as the nightly's exit 4)


def deliver_events(ws: Workspace, *, attempts: int | None = 1) -> int:
    """Send what the command recorded (registry and ticket events) to the sinks now, and say on stderr
    what stays pending or was refused for good; return 4 then, else 0. One webhook attempt by default:
    the nightly retries what is left, so a receiver that is down does not hold a person's command."""
    from rulelife.monitoring.outbox import deliver_workspace

    report = deliver_workspace(ws, attempts=attempts)
    for line in report.failed:
        err_console.print(f"delivery pending (kept for the next run): {line}", highlight=False, soft_wrap=True)
    for line in report.dead:
        err_console.print(f"delivery refused for good (dead-lettered): {line}", highlight=False, soft_wrap=True)
    return EXIT_DELIVERY_PENDING if report.pending else 0


def publish_summary(published: PublishResult | None) -> dict:
    """What a publish did, for --json: the bundle, whether CURRENT moved, and the pin that held it."""
    if published is None:
        return {"bundle": None, "bundle_published": False, "current_repaired": None, "pinned": None}
    return {"bundle": published.bundle.number, "bundle_published": published.published,
            "current_repaired": published.repaired, "pinned": published.pin.to_dict() if published.pin else None,
            "narrowed": list(published.narrowed), "waiting": published.waiting}


def print_publish(published: PublishResult | None) -> None:
    """What a publish did, for a person: a pin that kept the registry's change from serving is said."""
    if published is None:
        return
    if published.narrowed:
        console.print(f"took {', '.join(published.narrowed)} out of the pinned bundle (the registry took them out "
                      f"of traffic): now serving bundle {published.bundle.number}", highlight=False)
    elif published.published:
        console.print(f"published bundle {published.bundle.number}")
    pin = published.pin
    if pin is not None:
        console.print(f"CURRENT is pinned to bundle {pin.number} (rolled back by {pin.actor}: {pin.reason}); "
                      "the registry's rules are served after `rulelife bundle unpin`", highlight=False)


def exit_with(code: int) -> None:
    if code:
        raise typer.Exit(code)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n")


def table(title: str | None, columns: list[str], rows: list[list[Any]]) -> Table:
    out = Table(title=title, title_justify="left")
    for column in columns:
        out.add_column(column, overflow="fold")
    for row in rows:
        out.add_row(*("" if v is None else str(v) for v in row))
    return out


def parse_day(value: str | None, option: str) -> date | None:
    """A UTC day: ``today``, ``yesterday`` or ``YYYY-MM-DD`` (so a cron line needs no ``date -d``)."""
    if value is None:
        return None
    today = datetime.now(UTC).date()
    named = {"today": today, "yesterday": today - timedelta(days=1)}
    if value.strip().lower() in named:
        return named[value.strip().lower()]
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date; use YYYY-MM-DD, today or yesterday (UTC)",
                                 param_hint=option) from None


class JsonLogFormatter(logging.Formatter):
    """One JSON object a line, for orchestrators that parse logs (Airflow, Kubernetes, cloud logging)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {"ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
                 "level": record.levelname.lower(), "logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(verbose: bool, quiet: bool, json_lines: bool) -> None:
    """The ``rulelife`` loggers to stderr: warnings by default, info with --verbose, errors only with --quiet."""
    level = logging.ERROR if quiet else logging.INFO if verbose else logging.WARNING
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLogFormatter() if json_lines else logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("rulelife")
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False
