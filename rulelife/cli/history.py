"""``rulelife evaluations ...`` (a rule's stored evaluations) and ``rulelife events ...`` (the registry's
events and the outbox)."""

from __future__ import annotations

from typing import Annotated

import typer

from rulelife.cli._common import (
    JsonOption,
    RulelifeGroup,
    console,
    deliver_events,
    exit_with,
    print_json,
    table,
    workspace,
)

evaluations_app = typer.Typer(cls=RulelifeGroup, help="A rule's stored evaluations: list, show, compare.",
                              no_args_is_help=True)
events_app = typer.Typer(cls=RulelifeGroup, help="Registry events and their deliveries to the sinks.",
                         no_args_is_help=True)

RuleArgument = Annotated[str, typer.Argument(help="Rule id.")]


def _pct(x) -> str:
    return "" if x is None else f"{x:.1%}"


def _store(ctx: typer.Context):
    from rulelife.store import Store

    return Store.from_workspace(workspace(ctx))


@evaluations_app.command("list")
def list_evaluations(ctx: typer.Context, rule_id: RuleArgument, as_json: JsonOption = False) -> None:
    """Every stored evaluation of a rule, newest first, refused promotions included."""
    from rulelife.evidence import history

    records = history.list_evaluations(_store(ctx), rule_id)
    if as_json:
        print_json([r.to_dict() for r in records])
        return
    if not records:
        console.print(f"{rule_id} has no stored evaluation; run `rulelife evaluate {rule_id}`", highlight=False)
        return
    console.print(table(None, ["id", "at", "by", "version", "dataset", "gate", "agreement [95%]", "rows", "reasons"],
                        [[r.id, r.at.isoformat(), r.actor, r.rule_version, r.dataset_hash[:12],
                          "passed" if r.passed else "refused",
                          f"{_pct(r.figures['agreement'])} [{_pct(r.figures['agreement_low'])}-"
                          f"{_pct(r.figures['agreement_high'])}]", r.figures["rows"], len(r.reasons)]
                         for r in records]))


@evaluations_app.command("show")
def show_evaluation(ctx: typer.Context, rule_id: RuleArgument,
                    evaluation_id: Annotated[int | None, typer.Argument(help="Evaluation id (default: the newest).")]
                    = None, as_json: JsonOption = False) -> None:
    """One stored evaluation: the gate's verdict, every reason and the figures behind them."""
    from rulelife.evidence import history

    record = history.get_evaluation(_store(ctx), rule_id, evaluation_id)
    if as_json:
        print_json(record.to_dict(metrics=True))
        return
    console.print(f"evaluation {record.id} of {record.rule_id}@{record.rule_version} on dataset "
                  f"{record.dataset_hash[:12]}, {record.at.isoformat()} by {record.actor}: "
                  f"{'passed' if record.passed else 'refused'}", highlight=False)
    for name, value in record.figures.items():
        console.print(f"  {name}: {'' if value is None else value}", highlight=False)
    for reason in record.reasons:
        console.print(f"  - {reason}", highlight=False)


@evaluations_app.command("compare")
def compare_evaluations(ctx: typer.Context, rule_id: RuleArgument,
                        a: Annotated[int | None, typer.Argument(help="Older evaluation id.")] = None,
                        b: Annotated[int | None, typer.Argument(help="Newer evaluation id.")] = None,
                        as_json: JsonOption = False) -> None:
    """Two evaluations of a rule side by side (default: its two newest), and which reasons came and went."""
    from rulelife.evidence import history

    result = history.compare(_store(ctx), rule_id, a, b)
    if as_json:
        print_json(result.to_dict())
        return
    console.print(table(f"{rule_id}: evaluation {result.a.id} -> {result.b.id}", ["", str(result.a.id),
                                                                                 str(result.b.id), "change"],
                        [list(row) for row in result.rows]))
    for reason in result.reasons_gone:
        console.print(f"  resolved: {reason}", highlight=False)
    for reason in result.reasons_new:
        console.print(f"  new: {reason}", highlight=False)


@events_app.command("list")
def list_events(
    ctx: typer.Context,
    subject: Annotated[str | None, typer.Option("--subject", help="A rule id, or bundle:N.")] = None,
    kind: Annotated[str | None, typer.Option("--type", help="e.g. rule.disabled, bundle.rolled_back.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="Newest events shown.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """The newest registry events (promotions, shadow moves, disables, expiries, retirements, refusals,
    publishes, rollbacks) and where each was delivered."""
    from rulelife.monitoring.events import list_events as load

    rows = load(_store(ctx), subject=subject, kind=kind, limit=limit)
    if as_json:
        print_json([{**event, "deliveries": [{"sink": d.sink, "status": d.status, "attempts": d.attempts,
                                              "last_error": d.last_error} for d in deliveries]}
                    for event, deliveries in rows])
        return
    console.print(table(None, ["at", "type", "summary", "delivered", "id"],
                        [[e["at"], e["type"], e["summary"], ", ".join(f"{d.sink}: {d.status}" for d in deliveries)
                          or "not yet", e["id"]] for e, deliveries in rows]))


@events_app.command("pending")
def pending(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Deliveries still pending or refused for good (dead-lettered), ticket events' and registry events'."""
    from rulelife.monitoring.events import list_undelivered

    rows = list_undelivered(_store(ctx))
    if as_json:
        print_json(rows)
        return
    if not rows:
        console.print("every event was delivered")
        return
    console.print(table(None, ["at", "type", "subject", "sink", "status", "attempts", "last error", "id"],
                        [[r["at"], r["type"], r["subject"], r["sink"], r["status"], r["attempts"], r["last_error"],
                          r["id"]] for r in rows]))


@events_app.command("deliver")
def deliver(ctx: typer.Context) -> None:
    """Deliver what is pending now (with the configured webhook attempts); exit 4 if some stays pending."""
    code = deliver_events(workspace(ctx), attempts=None)
    console.print("every pending event was delivered" if not code else "some deliveries stay pending")
    exit_with(code)


@events_app.command("retry")
def retry(ctx: typer.Context,
          event_id: Annotated[str | None, typer.Argument(help="Event id (default: every dead-lettered one).")] = None
          ) -> None:
    """Make dead-lettered deliveries pending again (after the receiver was fixed) and deliver them."""
    from rulelife.monitoring.events import retry_dead

    ws = workspace(ctx)
    count = retry_dead(_store(ctx), event_id)
    console.print(f"{count} dead-lettered deliver{'y' if count == 1 else 'ies'} pending again")
    exit_with(deliver_events(ws, attempts=None))
