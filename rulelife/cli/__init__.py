"""The ``rulelife`` command line. Commands parse options and call one library
function each; :class:`RulelifeGroup` turns library errors into exit code 1."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from rulelife import progress
from rulelife._version import __version__
from rulelife.cli import bundle as bundle_commands
from rulelife.cli import gate as gate_commands
from rulelife.cli import history as history_commands
from rulelife.cli import mine as mine_commands
from rulelife.cli import model as model_commands
from rulelife.cli import monitor as monitor_commands
from rulelife.cli import rules as rules_commands
from rulelife.cli import safety as safety_commands
from rulelife.cli._common import (
    ActorOption,
    JsonOption,
    LogFormat,
    RulelifeGroup,
    configure_logging,
    console,
    deliver_events,
    err_console,
    exit_with,
    parse_day,
    print_json,
    print_publish,
    publish_summary,
    table,
    workspace,
)
from rulelife.cli.report import report_command
from rulelife.rules.lifecycle import State

app = typer.Typer(
    cls=RulelifeGroup,
    help="Manage keyword rules in front of an intent model: lint, register, bundle, serve, monitor.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(rules_commands.app, name="rules")
app.add_typer(bundle_commands.app, name="bundle")
app.add_typer(gate_commands.dataset_app, name="dataset")
app.add_typer(monitor_commands.monitor_app, name="monitor")
app.add_typer(monitor_commands.tickets_app, name="tickets")
app.add_typer(safety_commands.app, name="safety")
app.add_typer(model_commands.export_app, name="export")
app.add_typer(history_commands.evaluations_app, name="evaluations")
app.add_typer(history_commands.events_app, name="events")
app.command("evaluate")(gate_commands.evaluate)
app.command("promote")(gate_commands.promote)
app.command("revalidate")(gate_commands.revalidate)
app.command("analyze")(gate_commands.analyze)
app.command("mine")(mine_commands.mine)
app.command("report")(report_command)
app.command("residual")(model_commands.residual)
app.command("compare-models")(model_commands.compare_models)
app.command("calibration")(model_commands.calibration)


def _version(value: bool) -> None:
    if value:
        console.print(f"rulelife {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    workspace_dir: Annotated[
        Path | None,
        typer.Option("--workspace", "-w", envvar="RULELIFE_WORKSPACE",
                     help="Workspace folder (default: found from the current directory); also accepted after "
                          "the command."),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress (info) to stderr.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Log errors only.")] = False,
    log_format: Annotated[LogFormat, typer.Option("--log-format", case_sensitive=False,
                                                  help="text, or json: one JSON object a line for an orchestrator."
                                                  )] = LogFormat.text,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    if verbose and quiet:
        raise typer.BadParameter("--verbose and --quiet contradict each other; give one")
    configure_logging(verbose, quiet, log_format == LogFormat.json)
    ctx.obj = {"workspace": workspace_dir}


@app.command("init")
def init(
    directory: Annotated[Path, typer.Argument(help="Folder to create the workspace in.")] = Path("."),
    db_url: Annotated[str | None, typer.Option(help="Registry database URL (default: SQLite in the workspace).")] = None,
) -> None:
    """Create a workspace: rulelife.toml, rules/, bundles/, logs/ and the registry schema."""
    from rulelife.config import Workspace
    from rulelife.store import Store

    ws = Workspace.create(directory, db_url=db_url)
    Store.from_workspace(ws).dispose()
    console.print(f"workspace ready at {ws.root}\n  config: {ws.config_file}\n  database: {ws.db_url}", highlight=False)


@app.command("sync")
def sync(ctx: typer.Context, actor: ActorOption = "cli", as_json: JsonOption = False) -> None:
    """Lint rules/ and register new rules and new versions of edited ones."""
    from rulelife.store import registry

    report = registry.sync_workspace(workspace(ctx), actor=actor)
    if as_json:
        print_json(report.to_dict())
        return
    labels = {
        "registered": "new rules (candidates)",
        "new_versions": "new versions (back to candidate)",
        "pending": "edited while active (old version keeps serving until promoted)",
        "unchanged": "unchanged",
        "retired_ignored": "retired, edit ignored",
        "missing_files": "registered but no longer in rules/",
    }
    for key, label in labels.items():
        ids = getattr(report, key)
        if ids:
            shown = ", ".join(ids) if key != "unchanged" else str(len(ids))
            console.print(f"{label}: {shown}", highlight=False)


def _move(ctx: typer.Context, rule_id: str, state: State, actor: str, reason: str, as_json: bool) -> None:
    from rulelife.serving import publish
    from rulelife.store import Store, registry

    ws = workspace(ctx)
    store = Store.from_workspace(ws)
    already = publish.already_in(registry.get_status(store, rule_id), state)
    status, published = publish.set_state(ws, rule_id, state, actor=actor, reason=reason, store=store)
    result = {**status.to_dict(), "unchanged": already, **publish_summary(published)}
    if as_json:
        print_json(result)
    else:
        console.print(f"{rule_id} was already {status.state.value} at {status.version}: nothing to change"
                      if already else f"{rule_id} is now {status.state.value} at {status.version}", highlight=False)
        print_publish(published)
    exit_with(deliver_events(ws))


ReasonOption = Annotated[str, typer.Option("--reason", help="Why (recorded in the audit log).")]
RuleArgument = Annotated[str, typer.Argument(help="Rule id.")]


@app.command("disable")
def disable(ctx: typer.Context, rule_id: RuleArgument, reason: ReasonOption, actor: ActorOption = "cli",
            as_json: JsonOption = False) -> None:
    """Take a rule out of traffic and republish the bundle."""
    _move(ctx, rule_id, State.DISABLED, actor, reason, as_json)


@app.command("retire")
def retire(ctx: typer.Context, rule_id: RuleArgument, reason: ReasonOption, actor: ActorOption = "cli",
           as_json: JsonOption = False) -> None:
    """Retire a rule for good (final)."""
    _move(ctx, rule_id, State.RETIRED, actor, reason, as_json)


@app.command("classify")
def classify(
    ctx: typer.Context,
    text: Annotated[str, typer.Argument(help="The user message.")],
    locale: Annotated[str | None, typer.Option(help="Locale of the message, e.g. en-US.")] = None,
    query_id: Annotated[str | None, typer.Option(help="Query id (decides the shadow sample).")] = None,
    explain: Annotated[bool, typer.Option("--explain", help="Show every hit, veto and why the winner won.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Classify one message with the published bundle, as the runtime would."""
    from rulelife.serving.runtime import RuleClassifier

    ws = workspace(ctx)
    clf = RuleClassifier.from_store(ws.bundle_dir)  # the bundle carries the serving settings
    decision = clf.decide(text, locale=locale, query_id=query_id)
    match, veto = decision.match, decision.veto
    explanation = clf.explain(text, locale=locale) if explain else None
    if as_json:
        data = {"bundle": clf.bundle_version, "match": None if match is None else {
            "intent": match.intent, "rule_id": match.rule_id, "rule_version": match.rule_version,
            "pattern": match.pattern, "shadow": match.shadow, "fired": list(match.fired)},
            "veto": None if veto is None else veto._asdict()}
        if explanation is not None:
            data["explain"] = explanation.to_dict()
        print_json(data)
        return
    if veto is not None:
        console.print(f"the safety lexicon phrase {veto.phrase!r} ({veto.intent}) vetoed {veto.rule_id}"
                      + ("" if match else f" (bundle {clf.bundle_version}): send to the model"), highlight=False)
    if match is None and veto is None:
        console.print(f"no rule fired (bundle {clf.bundle_version}): send to the model")
    elif match is not None:
        console.print(f"{match.intent}  by {match.rule_id}@{match.rule_version} on '{match.pattern}' "
                      f"(bundle {match.bundle_version}{', shadow: call the model too' if match.shadow else ''})",
                      highlight=False)
    if explanation is not None:
        console.print(f"normalised: {explanation.normalized!r}", highlight=False)
        console.print(table(None, ["rule", "phrase", "kind", "span", "counted", "why"],
                            [[h.rule_id or "(lexicon)", h.phrase, h.kind, f"{h.start}-{h.end}", h.counted, h.reason]
                             for h in explanation.hits]))
        console.print(explanation.reason, highlight=False)


@app.command("simulate")
def simulate(
    out: Annotated[Path, typer.Option(help="Folder to write one Parquet file a day into.")],
    days: Annotated[int, typer.Option(min=1, help="Number of days.")] = 30,
    queries_per_day: Annotated[int, typer.Option(min=1, help="Mean queries a day.")] = 2000,
    start: Annotated[str, typer.Option(help="First day, YYYY-MM-DD.")] = "2026-01-01",
    seed: Annotated[int, typer.Option(help="Random seed.")] = 7,
    drift: Annotated[bool, typer.Option(help="Inject the standard drift scenarios.")] = True,
) -> None:
    """Write simulated, model-labelled manga-store traffic (runtime columns empty)."""
    from rulelife.simulate import default_scenarios, simulate_traffic, write_ground_truth, write_log

    first = parse_day(start, "--start")
    scenarios = default_scenarios(first, days) if drift else []
    frame = simulate_traffic(start=first, days=days, queries_per_day=queries_per_day, seed=seed, scenarios=scenarios)
    files = write_log(frame, out)
    write_ground_truth(scenarios, out / "scenarios.json")
    console.print(f"wrote {len(frame)} queries in {len(files)} files to {out}", highlight=False)


@app.command("quickstart")
def quickstart(
    directory: Annotated[Path, typer.Argument(help="Folder for the demo workspace.")] = Path("rulelife-demo"),
    history_days: Annotated[int, typer.Option(min=1, help="Days of model-only traffic before launch.")] = 21,
    live_days: Annotated[int, typer.Option(min=7, help="Days served by the rules after launch.")] = 56,
    queries_per_day: Annotated[int, typer.Option(min=1, help="Mean queries a day.")] = 8_000,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 7,
    as_json: JsonOption = False,
) -> None:
    """Set up a demo workspace and run the whole lifecycle on simulated traffic."""
    from rulelife.demo.quickstart import per_rule_table, run_quickstart

    # Each step printed as it happens (stderr, so --json output stays one document).
    with progress.reporting(lambda message, is_step: is_step and err_console.print(message, highlight=False)):
        result = run_quickstart(directory, history_days=history_days, live_days=live_days,
                                queries_per_day=queries_per_day, seed=seed)
    if as_json:
        print_json(result.to_dict())
        return
    ws = result.workspace
    console.print(f"[bold]workspace[/] {escape(str(ws.root))}", markup=True, highlight=False)
    console.print(f"history {result.history[0]}..{result.history[1]} (model only) and live "
                  f"{result.live[0]}..{result.live[1]} (rules serving) simulated into {ws.log_dir}", highlight=False)
    promoted = [g for g in result.gate if g.promoted]
    console.print(table(f"promotion gate: {len(promoted)} of {len(result.gate)} rules promoted",
                        ["rule", "result", "agreement", "95% interval", "rows", "why not"],
                        [[g.rule_id, "promoted" if g.promoted else "REFUSED", _pct(g.agreement),
                          f"{_pct(g.low)}-{_pct(g.high)}", g.rows, "\n".join(g.reasons)] for g in result.gate]))
    if result.candidates:
        console.print(table("the miner's top proposals (put in shadow: matched, never answering, until live evidence promotes them)",
                            ["rule", "locale", "patterns", "agreement", "95% interval", "model calls saved/day"],
                            [[c["id"], c["locale"], ", ".join(c["patterns"][:4]), _pct(c["agreement"]),
                              f"{_pct(c['low'])}-{_pct(c['high'])}", f"{c['calls_saved_per_day']:.0f}"]
                             for c in result.candidates]))
    if result.shadow:
        earned = [g for g in result.shadow if g.promoted]
        # The promoted ones, then the few closest to their floor: the whole batch is `rules list --state shadow`.
        waiting = sorted((g for g in result.shadow if not g.promoted), key=lambda g: -g.rows)[:5]
        console.print(table(f"the mined batch in shadow, judged on {result.shadow_day} on its live evidence: "
                            f"{len(earned)} of {len(result.shadow)} promoted (the others: `rulelife rules list "
                            "--state shadow`)",
                            ["rule", "result", "agreement (live)", "95% interval", "labelled rows", "why not"],
                            [[g.rule_id, "promoted" if g.promoted else "stays in shadow", _pct(g.agreement),
                              f"{_pct(g.low)}-{_pct(g.high)}", g.rows, "\n".join(g.reasons)]
                             for g in [*earned, *waiting]]))
    s = result.summary
    frame = per_rule_table(s)
    rows = [[r.rule_id, r.intent, r.fires, f"{r.fire_rate:.2%}", r.shadow_n, _pct(r.agreement)]
            for r in frame.itertuples()]
    console.print(table(f"live day {result.day} through bundle {result.bundle_number}",
                        ["rule", "intent", "fires", "fire rate", "shadow n", "agreement (shadow)"], rows))
    cost = s.model_calls_saved * result.model_call_cost
    console.print(
        f"queries {s.queries}: rules answered {s.rule_answers} ({s.coverage:.1%}), "
        f"{s.shadow_answers} of them in the shadow sample; model calls {s.model_calls} "
        f"(saved {s.model_calls_saved}, {cost:.2f} at {result.model_call_cost}/call)",
        highlight=False,
    )
    console.print(f"nightly job over {len(result.nightly)} live days; drift scenarios in {ws.log_dir / 'scenarios.json'}",
                  highlight=False)
    if result.veto_example:
        example = result.veto_example
        stopped = ", ".join(f"{rule} by {phrase!r}" for rule, phrase in example["veto"].items())
        console.print(f"safety lexicon: {result.vetoes} live queries went to the model although a rule fired, e.g. "
                      f"{example['text']!r} ({example['locale']}, {example['day']}): {stopped}", highlight=False)
    _print_model_side(result)
    console.print(table("auto-disabled by the nightly job", ["day", "rule"],
                        [[day, rule_id] for day, rule_id in result.disabled]) if result.disabled
                  else "no rule was auto-disabled")
    console.print(f"rule health page: {result.report}", highlight=False)
    console.print(table(f"tickets ({len(result.tickets)}; files under {ws.resolve(ws.settings.ticket_dir)})",
                        ["id", "subject", "check", "severity", "findings", "first day", "last day", "status"],
                        [[t["id"], t["subject"], t["check"], t["severity"], t["findings"], t["first_day"],
                          t["last_day"], t["status"]] for t in result.tickets]))


def _print_model_side(result) -> None:
    """The residual accuracy shift and the training-mix export of the quickstart's live days."""
    r = result.residual
    if r and r["all_accuracy"]["n"]:
        a, res = r["all_accuracy"], r["residual_accuracy"]
        console.print(f"model accuracy on the residual {res['accuracy']:.3f} (95% {res['low']:.3f}-{res['high']:.3f}, "
                      f"n={res['n']:,}) vs {a['accuracy']:.3f} on all labelled traffic (n={a['n']:,}): "
                      f"{result.residual_shift:+.3f}" + (", the rules took the easy queries, so an unchanged model "
                                                         "looks worse on what it serves"
                                                         if result.residual_shift < 0 else ""), highlight=False)
    mix = result.training_mix
    if mix:
        sources = ", ".join(f"{k} {v:,}" for k, v in mix["rows_by_source"].items())
        console.print(f"training mix for the model's next version: {mix['rows']:,} rows ({sources}) in {mix['path']} "
                      "(rulelife export training-mix)", highlight=False)


def _pct(x) -> str:
    return "" if x is None or math.isnan(x) else f"{x:.1%}"


def hoist_workspace(argv: list[str]) -> list[str]:
    """``-w DIR`` / ``--workspace DIR`` given after the command, moved before it, where the root option lives.

    >>> hoist_workspace(["tickets", "list", "-w", "ws", "--json"])
    ['-w', 'ws', 'tickets', 'list', '--json']
    >>> hoist_workspace(["--workspace=ws", "sync"])
    ['--workspace=ws', 'sync']
    """
    out, hoisted, index = [], [], 0
    while index < len(argv):
        arg = argv[index]
        if arg == "--":
            out.extend(argv[index:])
            break
        if arg in ("-w", "--workspace") and index + 1 < len(argv):
            hoisted += [arg, argv[index + 1]]
            index += 2
            continue
        if arg.startswith("--workspace="):
            hoisted.append(arg)
        else:
            out.append(arg)
        index += 1
    return hoisted + out


def main() -> None:
    app(args=hoist_workspace(sys.argv[1:]), prog_name="rulelife")
