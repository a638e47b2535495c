"""``rulelife mine``: propose candidate rules from high-confidence model predictions."""

from __future__ import annotations

import math
from collections import Counter
from typing import Annotated

import typer

from rulelife.cli._common import ActorOption, EngineOption, JsonOption, console, parse_day, print_json, table, workspace
from rulelife.cli.gate import LogOption, SinceOption, UntilOption
from rulelife.mining import MIN_CONFIDENCE


def _pct(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x:.1%}"


def _heldout(c) -> str:
    if c.heldout_fires is None:
        return "-"
    unsafe = sum(c.heldout_unsafe.values())
    return f"{_pct(c.heldout_precision or 0.0)} of {c.heldout_fires}" + (f", {unsafe} safety" if unsafe else "")


# Reasons a reviewer must see first: the rest (stop words, already proposed) are routine.
_ORDER = ("safety", "generic", "fragment", "unstable", "low_precision", "conflict", "lint", "file_exists",
          "covered_by_active", "too_generic", "low_support")


def _notable(skipped: list, top: int) -> list:
    rank = {reason: i for i, reason in enumerate(_ORDER)}
    shown = [s for s in skipped if s.reason in rank]
    return sorted(shown, key=lambda s: rank[s.reason])[:top]


def mine(
    ctx: typer.Context,
    log: LogOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    min_confidence: Annotated[float, typer.Option("--min-confidence", min=0.0, max=1.0,
                                                  help="Model confidence that makes a prediction a seed.")] = MIN_CONFIDENCE,
    min_support: Annotated[int, typer.Option("--min-support", min=1,
                                             help="Confident queries a phrase needs, and agreeing queries a rule needs.")] = 20,
    min_precision: Annotated[float, typer.Option("--min-precision", min=0.0, max=1.0,
                                                 help="Share of all labelled queries a rule fires on that the model "
                                                      "gives its intent.")] = 0.97,
    holdout: Annotated[float, typer.Option("--holdout", min=0.0, max=0.9,
                                           help="Share of the window's days, the latest, held out: candidates are "
                                                "chosen on the earlier days and counted on these.")] = 0.5,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Report only: write and register nothing.")] = False,
    top: Annotated[int, typer.Option(help="Candidates shown in the table.")] = 30,
    actor: ActorOption = "miner",
    engine: EngineOption = "local",
    as_json: JsonOption = False,
) -> None:
    """Propose rules from model-labelled traffic, write them under rules/ and register them as candidates."""
    from rulelife.mining.mine import mine_workspace

    report = mine_workspace(workspace(ctx), log=log or None, since=parse_day(since, "--since"),
                            until=parse_day(until, "--until"), min_confidence=min_confidence,
                            min_support=min_support, min_precision=min_precision, actor=actor, write=not dry_run,
                            engine=engine, holdout=holdout)
    if as_json:
        print_json(report.to_dict())
        return
    start, end = report.window
    console.print(f"chose on {report.log.rows_valid} log rows, {start}..{end} ({report.days} days): "
                  f"{len(report.candidates)} candidates, {len(report.written)} written", highlight=False)
    if report.heldout:
        console.print(f"held out {report.heldout}: each candidate's figures there never chose it, and its "
                      "dataset is built from after the choosing days", highlight=False)
    rows = [[c.id, c.locale, ", ".join(c.rule.patterns), ", ".join(c.rule.exclude), c.fires,
             f"{_pct(c.agreement)} [{_pct(c.low)}-{_pct(c.high)}]", _heldout(c), f"{c.fires_per_day:.1f}",
             f"{c.calls_saved_per_day:.1f}", f"{c.cost_saved_per_day:.4f}",
             ", ".join(f"{x['intent']} {x['count']}" for x in c.confusers),
             "written" if c.id in report.paths else ("dry run" if dry_run else "not written")]
            for c in report.candidates[:top]]
    console.print(table("candidate rules, most model calls saved first",
                        ["rule", "locale", "patterns", "exclude", "fires", "agreement [95%]", "held out", "fires/day",
                         "calls saved/day", "cost saved/day", "confusers", "file"], rows))
    problems = [s for s in report.statuses if s["status"] != "mined"]
    if problems:
        console.print(table("intents and locales with no candidate",
                            ["locale", "intent", "labelled", "confident", "why"],
                            [[s["locale"], s["intent"], s["labelled"], s["confident"], s["detail"]] for s in problems]))
    if report.skipped:
        counts = Counter(s.reason for s in report.skipped)
        console.print("skipped: " + ", ".join(f"{reason} {n}" for reason, n in counts.most_common()), highlight=False)
        console.print(table("skipped phrases and why (--json lists them all)",
                            ["phrase", "intent", "locale", "reason", "detail"],
                            [[s.phrase, s.intent, s.locale, s.reason, s.detail] for s in _notable(report.skipped, top)]))
    for note in report.notes:
        console.print(f"note: {note}", highlight=False)
    if report.sync is not None:
        console.print(f"registered as candidates: {', '.join(report.sync.registered) or 'none new'}",
                      highlight=False)
