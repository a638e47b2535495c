"""``rulelife safety ...``: the safety lexicon, proposed from the log and reviewed like rules."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rulelife._files import atomic_write
from rulelife.cli._common import EngineOption, JsonOption, console, parse_day, print_json, table, workspace
from rulelife.cli.gate import LogOption, SinceOption, UntilOption

app = typer.Typer(help="The safety lexicon: phrases that send a message to the model, never to a rule.",
                  no_args_is_help=True)


@app.command("mine")
def mine(
    ctx: typer.Context,
    log: LogOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    holdout: Annotated[float, typer.Option("--holdout", min=0.0, max=0.9,
                                           help="Share of the window's days, the latest, the proposals are "
                                                "recounted on.")] = 0.5,
    min_share: Annotated[float | None, typer.Option("--min-share", min=0.0, max=1.0,
                                                    help="Share of a phrase's queries the safety intent needs "
                                                         "(default: lexicon_min_share).")] = None,
    min_support: Annotated[int | None, typer.Option("--min-support", min=1,
                                                    help="Safety-intent queries a phrase needs "
                                                         "(default: lexicon_min_support).")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write the proposals, in the lexicon's format, "
                                                           "to this file for review.")] = None,
    engine: EngineOption = "local",
    as_json: JsonOption = False,
) -> None:
    """Propose lexicon phrases that lean toward a safety intent, and measure what the lexicon vetoes."""
    from rulelife.mining.lexicon import mine_lexicon, proposals_yaml

    ws = workspace(ctx)
    report = mine_lexicon(ws, log=log or None, since=parse_day(since, "--since"), until=parse_day(until, "--until"),
                          holdout=holdout, min_share=min_share, min_support=min_support, engine=engine)
    if out is not None:
        atomic_write(out, proposals_yaml(report.proposals, owner="safety-review"))
    if as_json:
        print_json(report.to_dict())
        return
    held = f", recounted on {report.heldout}" if report.heldout else ""
    console.print(f"proposed on {report.window}{held}: {len(report.proposals)} phrase(s)", highlight=False)
    rows = [[p.phrase, p.locale, p.intent, f"{p.share:.0%} of {p.total}",
             "-" if p.heldout_share is None else f"{p.heldout_share:.0%} of {p.heldout_total}",
             ", ".join(f"{i} {n}" for i, n in sorted(p.by_intent.items(), key=lambda kv: -kv[1])[:4])]
            for p in report.proposals]
    console.print(table("proposed safety phrases (review them into rules/safety_lexicon.yaml)",
                        ["phrase", "locale", "intent", "share", "held out", "queries per intent"], rows))
    if report.veto_share is not None:
        console.print(f"lexicon {report.lexicon_version} would send {report.veto_share:.1%} of the window's "
                      "traffic to the model", highlight=False)
    for warning in report.warnings:
        console.print(f"warning: {warning}", highlight=False)
    if out is not None:
        console.print(f"wrote {len(report.proposals)} proposal(s) to {out}", highlight=False)
