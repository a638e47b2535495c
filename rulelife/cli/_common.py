"""What every command shares: the error boundary, the workspace, output helpers."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.core import TyperGroup

from rulelife.errors import RulelifeError

if TYPE_CHECKING:  # annotations only: commands import what they run, so --help stays fast
    from rulelife.config import Workspace

# Piped output (CI logs, `| less`) gets a wide console instead of rich's 80
# columns, so tables of dotted rule ids are not folded into unreadable cells.
# Markup and emoji codes are off: intents, phrases and messages are printed as
# they are ("Billing [/VIP]" is an intent name, not a closing tag); the few
# styled lines pass markup=True and escape what they interpolate.
console = Console(width=None if sys.stdout.isatty() else 160, markup=False, emoji=False)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 160, markup=False, emoji=False)

JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of tables.")]
ActorOption = Annotated[str, typer.Option("--actor", help="Who does this (recorded in the audit log).")]
EngineOption = Annotated[str, typer.Option(
    "--engine", help="Where to count the log: local (one process), local-pool (one process a core) or spark "
                     "(the active Spark session, or a local one; needs the spark extra).")]


class RulelifeGroup(TyperGroup):
    """Turns every :class:`RulelifeError` into one line on stderr and exit code 1.

    The library raises and never exits; this is the only place that decides
    what a user sees. Anything else is a bug and keeps its traceback.
    """
    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except RulelifeError as exc:
            err_console.print(f"[bold red]error:[/] {escape(str(exc))}", markup=True, highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None


def workspace(ctx: typer.Context) -> Workspace:
    """The workspace named by --workspace / $RULELIFE_WORKSPACE, or found from the cwd."""
    from rulelife.config import Workspace

    root = ctx.find_root()
    explicit: Path | None = (root.obj or {}).get("workspace")
    return Workspace.find(explicit)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n")


def table(title: str | None, columns: list[str], rows: list[list[Any]]) -> Table:
    out = Table(title=title, title_justify="left")
    for column in columns:
        out.add_column(column, overflow="fold")
    for row in rows:
        out.add_row(*("" if v is None else str(v) for v in row))
    return out
