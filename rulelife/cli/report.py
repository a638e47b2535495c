"""``rulelife report``: write the rule health report (registered by rulelife.cli)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rulelife.cli._common import JsonOption, console, parse_day, print_json, workspace

__all__ = ["report_command"]

OutOption = Annotated[Path, typer.Option("--out", "-o", help="HTML file to write (one self-contained page).")]
ReportSinceOption = Annotated[
    str | None, typer.Option("--since", help="First day of the report window, YYYY-MM-DD (default: 90 days back).")
]


def report_command(ctx: typer.Context, out: OutOption = Path("rule-health.html"), since: ReportSinceOption = None,
                   as_json: JsonOption = False) -> None:
    """Write the rule health report: bundle, tickets, per-rule agreement, CUSUM and fire rate, evaluations."""
    from rulelife.report.html import write_report

    result = write_report(workspace(ctx), out, since=parse_day(since, "--since"))
    if as_json:
        print_json(result.to_dict())
        return
    c = result.counts
    console.print(f"report of {result.since}..{result.until} written to {result.path} ({result.size / 1e6:.2f} MB): "
                  f"{c['rules_with_metrics']} rules with metrics, {c['open_tickets']} open tickets, "
                  f"{c['auto_disables']} auto-disables, {c['near_expiry']} near expiry", highlight=False)
