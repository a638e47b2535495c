"""``rulelife dataset build``, ``evaluate``, ``promote`` and ``revalidate``."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from rulelife._files import atomic_write
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
    print_publish,
    table,
    workspace,
)
from rulelife.errors import GateRefused
from rulelife.rules.lifecycle import State

if TYPE_CHECKING:  # annotations only: commands import what they run, so --help stays fast
    from rulelife.evidence import batch, promotion
    from rulelife.store import Store

class Target(StrEnum):
    """Where ``promote --to`` moves a rule."""

    shadow = "shadow"
    active = "active"


dataset_app = typer.Typer(cls=RulelifeGroup, help="Build per-rule evaluation datasets.", no_args_is_help=True)

# Text, not Path: a Path would fold s3://bucket into s3:/bucket.
LogOption = Annotated[list[str] | None, typer.Option(
    "--log", help="Query log file, folder or URI such as s3://bucket/log/ (repeatable; default: the workspace's logs/).")]
SinceOption = Annotated[str | None, typer.Option("--since", help="First day of the log window, YYYY-MM-DD.")]
UntilOption = Annotated[str | None, typer.Option("--until", help="Last day of the log window, YYYY-MM-DD.")]
RulesArgument = Annotated[list[str] | None, typer.Argument(
    metavar="RULE_ID", help="One or more rule ids (or select them with --state).", show_default=False)]
StateOption = Annotated[State | None, typer.Option(
    "--state", case_sensitive=False, show_default=False,
    help="Every rule in this registry state (e.g. candidate: every rule the miner registered), instead of ids.")]


def _pct(x) -> str:
    return "n/a" if x is None or x != x else f"{x:.1%}"


def select_rules(ctx: typer.Context, rule_ids: list[str] | None,
                 state: State | None) -> tuple[str | None, Store | None, list[str]]:
    """The rules a command works on: ``(rule_id, None, [])`` for one rule id, which keeps the
    single-rule output; ``(None, store, ids)`` for several ids or every rule in ``state``."""
    from rulelife.evidence import batch
    from rulelife.store import Store

    if bool(rule_ids) == (state is not None):
        fix = ("name rule ids or --state, not both" if rule_ids else "name one or more rule ids, or select rules "
               "with --state") + " (e.g. --state candidate for every candidate the miner registered)"
        raise typer.BadParameter(fix, param_hint="RULE_ID / --state")
    if state is None and len(rule_ids) == 1:
        return rule_ids[0], None, []
    store = Store.from_workspace(workspace(ctx))
    return None, store, list(rule_ids) if rule_ids else batch.rules_in_state(store, state)


def _nothing_selected(state: State | None) -> None:
    console.print(f"no rule is {state.value if state else 'selected'}: nothing to do", highlight=False)


def print_verdicts(result: batch.BatchResult, state: State | None, as_json: bool, delivered: int = 0) -> None:
    """One table of verdicts with every reason and a totals line; exit 1 unless every rule passed,
    else ``delivered`` (the exit code of the events' delivery)."""
    if as_json:
        print_json(result.to_dict())
    elif not result.verdicts:
        _nothing_selected(state)
    else:
        to = f" to {result.verdicts[0].to}" if result.action == "promote" else ""
        rows = [[escape(v.rule_id), escape(v.intent), v.verdict,
                 "" if v.agreement is None else f"{_pct(v.agreement)} [{_pct(v.low)}-{_pct(v.high)}]",
                 "" if v.rows is None else v.rows, "\n".join(f"- {escape(r)}" for r in v.reasons)]
                for v in result.verdicts]
        console.print(table(f"{result.action}{to}: {len(rows)} rules",
                            ["rule", "intent", "verdict", "agreement [95%]", "rows", "reasons"], rows))
        console.print(", ".join(f"{n} {name}{'s' if name == 'error' and n != 1 else ''}"
                                for name, n in result.counts().items()), highlight=False)
        print_publish(result.published)
    if not result.passed:
        raise typer.Exit(1)
    exit_with(delivered)


def print_datasets(result: batch.DatasetBatch, state: State | None, as_json: bool, quarantine_dir: Path) -> None:
    """One table of the datasets built and one line on the single read of the log."""
    if as_json:
        print_json(result.to_dict())
        return
    if not result.datasets:
        _nothing_selected(state)
        return
    rows = []
    for built, intent in zip(result.datasets, result.intents, strict=True):
        snap = built.snapshot
        rows.append([escape(snap.rule_id), escape(intent), snap.rule_version, snap.content_hash[:12],
                     f"{snap.rows} / {snap.meta.get('target_size', '')}",
                     ", ".join(f"{k} {v}" for k, v in sorted(snap.counts.items())), snap.fires,
                     "\n".join(f"- {escape(note)}" for note in snap.meta.get("notes", []))])
    console.print(table(f"datasets: {len(rows)} rules", ["rule", "intent", "version", "dataset", "rows / floor",
                                                         "strata", "fires", "notes"], rows))
    log = result.log
    console.print(f"{len(rows)} datasets from one read of the log: {log.rows_read} rows read, {log.rows_valid} "
                  f"valid, in {len(log.files_read)} files", highlight=False)
    if log.rows_quarantined:
        console.print(f"{log.rows_quarantined} bad log rows quarantined under {quarantine_dir}", highlight=False)


@dataset_app.command("build")
def build(ctx: typer.Context, rule_ids: RulesArgument = None, state: StateOption = None, log: LogOption = None,
          since: SinceOption = None, until: UntilOption = None, actor: ActorOption = "cli",
          engine: EngineOption = "local", as_json: JsonOption = False) -> None:
    """Build the datasets of rules' latest versions (production, hard-negative and adversarial strata),
    several rules in one pass over the log."""
    from rulelife.evidence import batch, promotion

    options = dict(log=log or None, since=parse_day(since, "--since"), until=parse_day(until, "--until"),
                   actor=actor, engine=engine)
    single, store, ids = select_rules(ctx, rule_ids, state)
    if single is None:
        ws = workspace(ctx)
        print_datasets(batch.build_many(ws, ids, store=store, **options), state, as_json, ws.quarantine_dir)
        return
    rule_id = single
    result = promotion.build_rule_dataset(workspace(ctx), rule_id, **options)
    if as_json:
        print_json(result.to_dict())
        return
    snap = result.snapshot
    console.print(f"dataset {snap.content_hash[:12]} for {rule_id}@{snap.rule_version}: {snap.rows} rows "
                  f"({', '.join(f'{k} {v}' for k, v in sorted(snap.counts.items()))}); rule fired {snap.fires} times "
                  f"in {result.log.rows_valid} valid log rows", highlight=False)
    if result.log.rows_quarantined:
        console.print(f"{result.log.rows_quarantined} bad log rows quarantined under "
                      f"{workspace(ctx).quarantine_dir}", highlight=False)
    for note in snap.meta.get("notes", []):
        console.print(f"note: {note}", highlight=False)


def print_evaluation(result: promotion.EvaluationResult) -> None:
    e = result.evaluation
    p = e.production
    console.print(f"[bold]{escape(e.rule_id)}@{e.rule_version}[/] on dataset {e.dataset_hash[:12]} ({e.rows} rows)",
                  markup=True, highlight=False)
    console.print(f"agreement with the model (production, weighted by traffic): {_pct(p.estimate)} "
                  f"[95% {_pct(p.low)}-{_pct(p.high)}] on {p.n} rows; raw {e.production_raw[0]}/{e.production_raw[1]}",
                  highlight=False)
    if e.samples_to_settle:
        console.print(f"about {e.samples_to_settle} more production samples would settle the floor either way")
    console.print(table("strata", ["stratum", "n", "agreement", "95% interval", "fires", "false pos.", "safety FP",
                                   "safety FP bound"],
                        [[s.stratum, s.n, _pct(s.agreement), f"{_pct(s.low)}-{_pct(s.high)}" if s.n else "",
                          s.fires, s.false_positives, sum(s.safety_false_positives.values()),
                          _pct(s.safety_fp_upper_bound) if s.safety_fp_upper_bound is not None else ""]
                         for s in e.strata]))
    if e.disagreements:
        flag = f" — {e.dominant_disagreement} takes more than half" if e.dominant_disagreement else ""
        console.print("disagreements by model class: " + ", ".join(f"{k} {v}" for k, v in e.disagreements.items())
                      + flag, highlight=False)
    for name, rows in e.slices.items():
        console.print(table(f"by {name}", [name, "n", "agreement", "95% interval"],
                            [[r["value"], r["n"], _pct(r["agreement"]), f"{_pct(r['low'])}-{_pct(r['high'])}"]
                             for r in rows]))
    console.print(f"fires in the window: {e.fire_count}"
                  + (f" ({e.fires_per_day:.0f}/day)" if e.fires_per_day else ""), highlight=False)
    for note in e.notes:
        console.print(f"note: {note}", highlight=False)
    verdict = "[green]passes[/]" if result.decision.passed else "[red]fails[/]"
    console.print(f"gate: {verdict}", markup=True)
    for check in result.decision.checks:
        console.print(f"  {'ok ' if check.passed else 'NO '} {check.name}: {check.detail}", highlight=False)


def evaluate(
    ctx: typer.Context,
    rule_ids: RulesArgument = None,
    state: StateOption = None,
    actor: ActorOption = "cli",
    html: Annotated[Path | None, typer.Option("--html", help="Also write the evaluation as a page for reviewers.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Evaluate rules' latest versions on their newest datasets and show what the gate would say: one rule
    id shows the whole evaluation (exit 0 whatever the gate says), several rules (or --state) one table of
    verdicts (exit 1 when any fails)."""
    from rulelife.evidence import batch, promotion

    single, store, ids = select_rules(ctx, rule_ids, state)
    if single is None:
        if html is not None:
            raise typer.BadParameter("writes the page of one rule; name a single rule id", param_hint="--html")
        print_verdicts(batch.evaluate_many(workspace(ctx), ids, actor=actor, store=store), state, as_json)
        return
    result = promotion.evaluate(workspace(ctx), single, actor=actor)
    if html is not None:
        from rulelife.report import render_evaluation_html

        atomic_write(html, render_evaluation_html(result))
        err_console.print(f"evaluation page: {html}", highlight=False)
    if as_json:
        print_json(result.to_dict())
    else:
        print_evaluation(result)


def promote(
    ctx: typer.Context,
    actor: Annotated[str, typer.Option("--actor", help="Who promotes (recorded with the promotion).")],
    rule_ids: RulesArgument = None,
    state: StateOption = None,
    to: Annotated[Target, typer.Option("--to", case_sensitive=False, help="shadow or active.")] = Target.active,
    as_json: JsonOption = False,
) -> None:
    """Promote rules' latest versions through the gate; a refusal lists every reason and changes nothing for
    that rule. Several rules (or --state) are promoted one by one, published once, and shown in one table of
    verdicts (exit 1 when any was refused or failed)."""
    from rulelife.evidence import batch, promotion

    ws = workspace(ctx)
    single, store, ids = select_rules(ctx, rule_ids, state)
    if single is None:
        result = batch.promote_many(ws, ids, actor=actor, to=to, store=store)
        print_verdicts(result, state, as_json, deliver_events(ws))
        return
    rule_id = single
    try:
        result = promotion.promote(ws, rule_id, actor=actor, to=to)
    except GateRefused as refused:
        deliver_events(ws)  # the refusal is an event too
        if as_json:
            print_json({"promoted": False, "rule_id": rule_id, "reasons": refused.reasons})
            raise typer.Exit(1) from None
        raise
    if as_json:
        print_json({"promoted": True, **result.to_dict()})
    else:
        s = result.status
        if result.unchanged:
            console.print(f"{rule_id} is already {s.state.value} at {s.version}: nothing to promote (to promote "
                          "an edit, `rulelife sync` it first)", highlight=False)
        else:
            console.print(f"{rule_id}@{s.version} is now {s.state.value}; expires {s.expires_at}", highlight=False)
        print_publish(result.published)
    exit_with(deliver_events(ws))


def revalidate(ctx: typer.Context, log: LogOption = None, since: SinceOption = None, until: UntilOption = None,
               within_days: Annotated[int | None, typer.Option(help="Days ahead of expiry to revalidate.")] = None,
               actor: ActorOption = "cli", engine: EngineOption = "local", as_json: JsonOption = False) -> None:
    """Rebuild datasets and re-run the gate for rules near or past expiry (exit 1 if any fails); without
    --since the evidence starts at the latest model change, when the model changed."""
    from rulelife.evidence import promotion
    from rulelife.store import Store

    ws = workspace(ctx)
    changed = None if since else promotion.latest_model_change(Store.from_workspace(ws))
    if changed is not None and not as_json:
        console.print(f"evidence from {changed} on: the model changed that day (give --since to choose)")
    results = promotion.revalidate(ws, actor=actor, log=log or None, since=parse_day(since, "--since"),
                                   until=parse_day(until, "--until"), within_days=within_days, engine=engine)
    if as_json:
        print_json([r.to_dict() for r in results])
    elif not results:
        console.print("no rule is near or past expiry")
    for r in results if not as_json else []:
        console.print(f"{r.rule_id}: {r.action}", highlight=False)
        for line in r.detail:
            err_console.print(f"  - {line}", highlight=False)
    delivered = deliver_events(ws)
    if any(not r.passed for r in results):
        raise typer.Exit(1)
    exit_with(delivered)


def analyze(ctx: typer.Context, log: LogOption = None, since: SinceOption = None, until: UntilOption = None,
            bundle: Annotated[int | None, typer.Option(help="Bundle number (default: CURRENT).")] = None,
            rules: Annotated[str | None, typer.Option(
                "--rules", help="Analyse the registry's rules in these states instead of a bundle, published or "
                                "not: candidate, shadow, active (comma-separated), or all.")] = None,
            top: Annotated[int, typer.Option(help="Rows shown per table.")] = 15,
            engine: EngineOption = "local", as_json: JsonOption = False) -> None:
    """One summary row per rule (coverage, overlaps, conflicts, agreement, safety FP), then the pairs that
    overlap or conflict, rules shadowed in traffic, coverage per intent x locale, residual traffic."""
    from rulelife.evidence.analysis import analyze as run_analysis
    from rulelife.evidence.summary import parse_states, registry_rules, rule_summary
    from rulelife.store import Store, registry

    if rules is not None and bundle is not None:
        raise typer.BadParameter("give --bundle or --rules, not both")
    ws = workspace(ctx)
    store = Store.from_workspace(ws)
    selected = registry_rules(ws, parse_states(rules), store=store) if rules is not None else None
    used, result = run_analysis(ws, log=log or None, since=parse_day(since, "--since"),
                                until=parse_day(until, "--until"), bundle_number=bundle, rules=selected,
                                engine=engine)
    summary = rule_summary(result, {s.rule_id: s.state.value for s in registry.list_rules(store)})
    source = f"bundle {used.number}" if used is not None else f"{len(selected)} {rules} rules"
    if as_json:
        from rulelife.evidence.analysis import records

        print_json({"bundle": used.number if used is not None else None, "rules": rules,
                    "rule_summary": records(summary), **result.to_dict()})
        return
    console.print(f"{source} over {result.queries} queries: rules answer {_pct(result.coverage)} "
                  f"({_pct(result.labelled_coverage)} of model-labelled traffic)", highlight=False)
    _frame(summary.head(top * 4), f"per rule (agreement with the model on labelled fires, 95% interval; safety FP: "
                                  f"the model said one of {', '.join(ws.settings.safety_intents)})")
    _frame(result.rule_overlaps().head(top), "overlaps (queries on which both rules fire)")
    _frame(result.rule_conflicts().head(top), "conflicts (overlaps between different intents)")
    _frame(result.shadowed_rules().head(top), "rules that fire but never win")
    _frame(result.coverages().head(top * 2), "coverage per model intent x locale")
    console.print(
        f"residual traffic (left to the model): mean confidence {result.residual_confidence_mean:.3f} vs "
        f"{result.labelled_confidence_mean:.3f} on all traffic; below 0.5: "
        f"{_pct(result.residual_low_confidence_share)} vs {_pct(result.labelled_low_confidence_share)}",
        highlight=False)
    _frame(result.residual_summary(), "model confidence histogram: all labelled vs residual")


def _frame(frame, title: str) -> None:
    if frame.empty:
        console.print(f"{title}: none")
        return
    rows = [[f"{v:.3f}" if isinstance(v, float) else v for v in row] for row in frame.itertuples(index=False)]
    console.print(table(title, [str(c) for c in frame.columns], rows))
