"""``rulelife monitor nightly`` and ``rulelife tickets ...``."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from rulelife.cli._common import (
    ActorOption,
    EngineOption,
    JsonOption,
    RulelifeGroup,
    console,
    deliver_events,
    err_console,
    exit_with,
    parse_day,
    print_json,
    table,
    workspace,
)
from rulelife.cli.gate import LogOption
from rulelife.errors import JobLocked, RulelifeError

if TYPE_CHECKING:  # annotations only: commands import what they run, so --help stays fast
    from rulelife.monitoring import nightly

class TicketStatus(StrEnum):
    open = "open"
    closed = "closed"
    all = "all"


SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}

monitor_app = typer.Typer(cls=RulelifeGroup, help="The nightly monitor job.", no_args_is_help=True)
tickets_app = typer.Typer(cls=RulelifeGroup, help="Tickets filed by the monitors.", no_args_is_help=True)


@monitor_app.command("nightly")
def run(
    ctx: typer.Context,
    log: LogOption = None,
    day: Annotated[str | None, typer.Option("--date", help="The UTC day to process: YYYY-MM-DD, today or yesterday.")] = None,
    start: Annotated[str | None, typer.Option("--from", help="Backfill from this day (with --to).")] = None,
    end: Annotated[str | None, typer.Option("--to", help="Backfill up to this day, inclusive.")] = None,
    catch_up: Annotated[bool, typer.Option("--catch-up", help="Every day since the last successful run, up to "
                                                              "--to (default yesterday, UTC).")] = False,
    actor: ActorOption = "nightly",
    engine: EngineOption = "local",
    as_json: JsonOption = False,
) -> None:
    """Daily metrics, monitors, auto-disables, tickets and republish for one day (or a range).

    Exit codes: 0 done; 1 failed (safe to re-run); 4 done, but some ticket
    deliveries are pending (kept for the next run); 75 another run holds the lock.
    """
    from rulelife.monitoring import nightly

    ws = workspace(ctx)
    if catch_up:
        if day is not None or start is not None:
            raise typer.BadParameter("--catch-up finds its own first day; give --to at most")
        from rulelife.store import Store

        days = nightly.catch_up_days(Store.from_workspace(ws), parse_day(end or "yesterday", "--to"))
        if not days:
            console.print("nothing to catch up: the last successful run covers every day up to "
                          f"{parse_day(end or 'yesterday', '--to')}", highlight=False)
            return
        start, end = days[0].isoformat(), days[-1].isoformat()
    elif (day is None) == (start is None or end is None):
        raise typer.BadParameter("give --date D, both --from D and --to D, or --catch-up")
    try:
        if day is not None:
            reports = [nightly.run_nightly(ws, parse_day(day, "--date"), log=log or None, actor=actor, engine=engine)]
        else:
            reports = nightly.backfill(ws, parse_day(start, "--from"), parse_day(end, "--to"), log=log or None,
                                       actor=actor, engine=engine)
    except JobLocked as exc:
        err_console.print(f"error: {exc}", highlight=False)
        raise typer.Exit(nightly.EXIT_LOCKED) from None
    if ws.settings.report_after_nightly:
        _write_health_page(ws, reports[-1])
    if as_json:
        print_json([r.to_dict() for r in reports] if day is None else reports[0].to_dict())
    else:
        for report in reports:
            _print_report(report)
    code = max(r.exit_code for r in reports)
    if code:
        raise typer.Exit(code)


def _write_health_page(ws, report: nightly.NightlyReport) -> None:
    """The morning view, fresh after the run; a failed page never fails the night."""

    from rulelife.report import write_report

    out = ws.resolve(ws.settings.ticket_dir) / "rule-health.html"
    try:
        write_report(ws, out, residual=False)
        report.notes.append(f"rule health page written to {out}")
    except RulelifeError as exc:
        report.notes.append(f"rule health page not written: {exc}")


def _print_report(report: nightly.NightlyReport) -> None:
    log = report.log
    console.print(f"[bold]{report.day}[/] " + escape(
                  f"{report.status}: {log.get('rows_valid', 0)} log rows, "
                  f"{report.metric_rows} metric rows, {len(report.findings)} findings, "
                  f"{report.tickets_opened} tickets opened, {report.tickets_appended} appended, "
                  f"disabled: {', '.join(report.disabled) or 'none'}; bundle {report.bundle}"
                  f"{' (republished)' if report.bundle_published else ''}"), markup=True, highlight=False)
    for finding in report.findings:
        console.print(f"  {finding['severity']:8} {finding['action']:7} {finding['subject']} "
                      f"[{finding['check']}] {finding['summary']}", highlight=False)
    for rule_id in report.promoted:
        console.print(f"  promoted {rule_id} to active on its live shadow evidence", highlight=False)
    for rule_id, reason in report.shadow_waiting.items():
        console.print(f"  in shadow {rule_id}: {reason}", highlight=False)
    if report.bundle_pinned:
        console.print(f"  bundle pinned: CURRENT stays on bundle {report.bundle_pinned['number']} until "
                      "`rulelife bundle unpin`", highlight=False)
    for note in report.notes:
        console.print(f"  note: {note}", highlight=False)
    for failure in report.deliveries.failed:
        err_console.print(f"  delivery pending: {failure}", highlight=False)
    for failure in report.deliveries.dead:
        err_console.print(f"  delivery refused for good (dead-lettered; `rulelife events retry` after fixing the "
                          f"receiver): {failure}", highlight=False)


@tickets_app.command("list")
def list_tickets(
    ctx: typer.Context,
    status: Annotated[TicketStatus, typer.Option(case_sensitive=False, help="Which tickets.")] = TicketStatus.open,
    as_json: JsonOption = False,
) -> None:
    """Tickets, most severe first, then the most recently seen."""
    from rulelife.monitoring import tickets
    from rulelife.store import Store

    rows = tickets.list_tickets(Store.from_workspace(workspace(ctx)), status=status.value)
    rows.sort(key=lambda t: (-SEVERITY_RANK.get(t.severity, -1), -(t.last_day.toordinal() if t.last_day else 0), t.id))
    if as_json:
        print_json([tickets.ticket_dict(t) for t in rows])
        return
    console.print(table(None, ["id", "status", "severity", "subject", "check", "locale", "findings", "last day", "title"],
                        [[t.id, t.status, t.severity, t.subject, t.check, t.locale, t.findings, t.last_day, t.title]
                         for t in rows]))


@tickets_app.command("show")
def show(ctx: typer.Context, ticket_id: Annotated[int, typer.Argument(help="Ticket id.")],
         as_json: JsonOption = False) -> None:
    """A ticket with every event and its latest evidence."""
    from rulelife.monitoring import tickets
    from rulelife.store import Store

    ticket, events = tickets.get_ticket(Store.from_workspace(workspace(ctx)), ticket_id)
    data = tickets.ticket_dict(ticket, events)
    if as_json:
        print_json(data)
        return
    text = tickets.render_markdown(data)
    if console.is_terminal:
        from rich.markdown import Markdown

        console.print(Markdown(text))
    else:
        console.print(text, highlight=False, markup=False)


@tickets_app.command("close")
def close(ctx: typer.Context, ticket_id: Annotated[int, typer.Argument(help="Ticket id.")],
          reason: Annotated[str, typer.Option("--reason", help="Why it is closed.")], actor: ActorOption = "cli") -> None:
    """Close a ticket; the next finding of the same check opens a new one. Exit 4 when the close (or an
    earlier event) could not be delivered yet: it is kept for the next run."""
    from rulelife.monitoring import nightly, tickets
    from rulelife.store import Store

    ws = workspace(ctx)
    store = Store.from_workspace(ws)
    ticket = tickets.close_ticket(store, ticket_id, actor=actor, reason=reason, sinks=list(nightly.sinks_for(ws)))
    console.print(f"closed ticket {ticket.id}")
    exit_with(deliver_events(ws))


@monitor_app.command("quality")
def quality(
    days: Annotated[int, typer.Option("--days", min=30, help="Live days of simulated drift to score.")] = 120,
    queries_per_day: Annotated[int, typer.Option(min=100, help="Mean simulated queries a day.")] = 5000,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 11,
    as_json: JsonOption = False,
) -> None:
    """Score the monitors on the simulator's injected drifts: detection day, delay, false alarms."""
    from rulelife.demo.quality import monitor_quality

    report = monitor_quality(live_days=days, queries_per_day=queries_per_day, seed=seed)
    if as_json:
        print_json(report.to_dict())
        return
    console.print(f"live {report.live[0]}..{report.live[1]}: {report.rules} rules promoted "
                  f"(refused: {', '.join(report.refused) or 'none'}), {report.rule_days} rule-days", highlight=False)
    console.print(table("detections (per scenario and monitor)",
                        ["scenario", "starts", "monitor", "fired", "first day", "delay (days)", "subjects"],
                        [[d["scenario"], d["start"], d["monitor"], "yes" if d["fired"] else "no", d["first_day"],
                          d["delay_days"], len(d["subjects"])] for d in report.detections]))
    console.print(table("false alarms (findings no scenario explains)",
                        ["monitor", "alarm days", "per 1000 rule-days", "subjects"],
                        [[f["monitor"], f["alarm_days"], f["per_1000_rule_days"], ", ".join(f["subjects"][:6])]
                         for f in report.false_alarms]))
    change = report.model_change
    if change:
        console.print(f"model change ({change['scenario']}, from {change['start']}): seen on {change['seen_on']}; "
                      f"re-validation lists {', '.join(change.get('listed', [])) or 'none'} "
                      f"(relabelled: {', '.join(change['relabelled_rules'])})", highlight=False)
        console.print(table("on the relabelled rules, told of the change vs not",
                            ["", "CUSUM alarm days", "first alarm", "floor disables in window",
                             "floor tickets in window", "floor disables after"],
                            [[name, c["cusum_alarm_days"], c["cusum_first_alarm"], c["floor_disables_in_window"],
                              c["floor_tickets_in_window"], c["floor_disables_after_window"]]
                             for name, c in ((n, change[n]) for n in ("told", "untold") if n in change)]))
