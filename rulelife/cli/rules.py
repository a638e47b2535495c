"""``rulelife rules ...``: lint, list and inspect rules."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from rulelife.cli._common import JsonOption, RulelifeGroup, console, err_console, print_json, table, workspace

app = typer.Typer(cls=RulelifeGroup, help="Lint, list and inspect rules.", no_args_is_help=True)


@app.command("lint")
def lint(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Check every rule file and report every problem at once (exit 1 if any)."""
    from rulelife.rules.lint import lint_rules

    ws = workspace(ctx)
    report = lint_rules(ws.rules_dir, safety_intents=ws.settings.safety_intents)
    if as_json:
        print_json(report.to_dict())
    elif report.ok:
        console.print(f"{len(report.rules)} rules, no problems")
    else:
        for problem in report.problems:
            err_console.print(str(problem), highlight=False, soft_wrap=True)
        err_console.print(f"{len(report.problems)} problem(s)")
    if not report.ok:
        raise typer.Exit(1)


@app.command("schema")
def schema() -> None:
    """Print the JSON schema of a rule file, for editors (e.g. a yaml-language-server modeline)."""
    from rulelife.rules.definition import rule_json_schema

    print_json(rule_json_schema())


@app.command("list")
def list_rules(
    ctx: typer.Context,
    state: Annotated[str | None, typer.Option(help="Only rules in this state.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Every registered rule with its state and versions."""
    from rulelife.store import Store, registry

    statuses = registry.list_rules(Store.from_workspace(workspace(ctx)), state=state)
    if as_json:
        print_json([s.to_dict() for s in statuses])
        return
    rows = [
        [s.rule_id, s.intent, s.state.value, s.version, s.pending_version or "", s.expires_at.date() if s.expires_at else ""]
        for s in statuses
    ]
    console.print(table(None, ["rule", "intent", "state", "version", "pending", "expires"], rows))


@app.command("show")
def show(
    ctx: typer.Context,
    rule_id: Annotated[str, typer.Argument(help="Rule id, e.g. order_tracking.where_is_my_order.")],
    as_json: JsonOption = False,
) -> None:
    """A rule's definition, state, version history and audit log."""
    from rulelife.store import registry

    details = registry.rule_details(workspace(ctx), rule_id)
    if as_json:
        print_json(details.to_dict())
        return
    status = details.status
    console.print(f"[bold]{escape(status.rule_id)}[/]  {status.state.value} at {status.version}", markup=True,
                  highlight=False)
    if status.pending_version:
        console.print(f"pending version {status.pending_version} (promote it to make it live)")
    for key, value in details.definition.items():
        console.print(f"  {key}: {value}", highlight=False)
    console.print(table("versions", ["version", "registered", "by", "file"],
                        [[v["version"], v["registered_at"], v["registered_by"], v["source_path"]] for v in details.versions]))
    console.print(table("audit", ["at", "actor", "action", "from", "to", "version", "reason"],
                        [[a["at"], a["actor"], a["action"], a["from_state"], a["to_state"], a["to_version"], a["reason"]]
                         for a in details.audit]))
