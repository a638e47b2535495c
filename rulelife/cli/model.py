"""The model's side: ``rulelife residual``, ``export training-mix``, ``compare-models``, ``calibration``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rulelife.cli._common import (
    ActorOption,
    EngineOption,
    JsonOption,
    console,
    err_console,
    parse_day,
    print_json,
    workspace,
)
from rulelife.cli.gate import LogOption, SinceOption, UntilOption, _frame
from rulelife.mining import MIN_CONFIDENCE

export_app = typer.Typer(help="Export data for the model's next training run.", no_args_is_help=True)


def _window(since: str | None, until: str | None) -> dict:
    return {"since": parse_day(since, "--since"), "until": parse_day(until, "--until")}


def residual(ctx: typer.Context, log: LogOption = None, since: SinceOption = None, until: UntilOption = None,
             freeze: Annotated[bool, typer.Option(
                 "--freeze", help="Freeze the window as the residual baseline of each bundle that has none.")] = False,
             refreeze: Annotated[bool, typer.Option(
                 "--refreeze", help="With --freeze: replace the bundles' existing baselines too.")] = False,
             fallback_floor: Annotated[float | None, typer.Option(
                 "--fallback-floor", min=0.0, max=1.0,
                 help="Exit 1 unless the model's expected accuracy on the rules' calls (95% low end) reaches this.")
             ] = None,
             actor: ActorOption = "cli", engine: EngineOption = "local", as_json: JsonOption = False) -> None:
    """What the rules leave to the model: per day and intent x locale, the residual's share, the model's
    confidence, its accuracy on the residual vs all traffic (with a true_intent column), and fallback readiness."""
    from rulelife.evidence.analysis import records
    from rulelife.model.baseline import baselines, freeze_baselines
    from rulelife.model.fallback import fallback_readiness
    from rulelife.model.run import measure_residual
    from rulelife.store import Store

    ws = workspace(ctx)
    store = Store.from_workspace(ws)
    report = measure_residual(ws, log=log or None, store=store, engine=engine, **_window(since, until))
    frozen = (freeze_baselines(store, report, min_labels=ws.settings.residual_min_labels, actor=actor,
                               replace=refreeze) if freeze else [])
    fallback = fallback_readiness(report)
    summary = report.summary()
    stored = {n: {"first_day": b.first_day.isoformat(), "residual_accuracy": b.residual_correct / b.residual_labelled}
              for n, b in baselines(store).items() if b.residual_labelled}
    problem = fallback.check(fallback_floor) if fallback_floor is not None else None
    if as_json:
        print_json({"summary": summary, "days": records(report.days()), "intents": records(report.intents()),
                    "bundles": records(report.bundles()), "fallback": fallback.to_dict(), "frozen": frozen,
                    "baselines": stored, "fallback_problem": problem})
    else:
        a, r = summary["all_accuracy"], summary["residual_accuracy"]
        console.print(f"{summary['queries']:,} queries, {summary['residual_share']:.1%} left to the model; mean "
                      f"confidence {summary['residual_confidence_mean']:.3f} on the residual vs "
                      f"{summary['confidence_mean']:.3f} on all traffic", highlight=False)
        if a["n"]:
            console.print(f"model accuracy: residual {r['accuracy']:.3f} (95% {r['low']:.3f}-{r['high']:.3f}, "
                          f"n={r['n']}) vs all traffic {a['accuracy']:.3f} (95% {a['low']:.3f}-{a['high']:.3f}, "
                          f"n={a['n']})", highlight=False)
        else:
            console.print("model accuracy: unknown (no true_intent labels in the window)")
        _frame(report.days(), "per day")
        _frame(report.intents(), "per intent x locale")
        console.print(fallback.line(), highlight=False)
        for number in frozen:
            console.print(f"baseline frozen for bundle {number}", highlight=False)
    if problem:
        err_console.print(f"fallback check failed: {problem}", highlight=False)
        raise typer.Exit(1)


@export_app.command("training-mix")
def training_mix(ctx: typer.Context,
                 out: Annotated[Path, typer.Option("--out", help="Folder to write (Parquet parts + manifest.json).")],
                 share: Annotated[float, typer.Option(help="Share of the mix taken from rule-answered queries.")] = 0.3,
                 residual_rate: Annotated[float, typer.Option(
                     help="Share of the residual (model-served) queries taken.")] = 1.0,
                 seed: Annotated[int, typer.Option(help="Sampling seed: the same seed, the same rows.")] = 0,
                 log: LogOption = None, since: SinceOption = None, until: UntilOption = None,
                 engine: EngineOption = "local", as_json: JsonOption = False) -> None:
    """A reproducible sample for the model's next training set that mixes rule-answered queries back in."""
    from rulelife.model.run import export_training_mix

    ws = workspace(ctx)
    manifest = export_training_mix(ws, out, share=share, residual_rate=residual_rate, seed=seed, log=log or None,
                                   engine=engine, **_window(since, until))
    if as_json:
        print_json(manifest)
        return
    sources = ", ".join(f"{k} {v:,}" for k, v in manifest["rows_by_source"].items()) or "none"
    console.print(f"wrote {manifest['rows']:,} rows to {out} (labels: {sources}); rule-answered rate "
                  f"{manifest['rates']['rule_answered']:.4f}; content hash {manifest['content_hash'][:16]}",
                  highlight=False)


def compare_models(ctx: typer.Context,
                   candidate_column: Annotated[str | None, typer.Option(
                       help="Log column with the candidate model's intent.")] = None,
                   candidate_file: Annotated[Path | None, typer.Option(
                       help="CSV or Parquet file of the candidate's answers, joined by query id.")] = None,
                   candidate_id_column: Annotated[str, typer.Option(help="Query id column of --candidate-file.")
                                                  ] = "query_id",
                   candidate_intent_column: Annotated[str, typer.Option(
                       help="Intent column of --candidate-file.")] = "candidate_intent",
                   log: LogOption = None, since: SinceOption = None, until: UntilOption = None,
                   engine: EngineOption = "local", as_json: JsonOption = False) -> None:
    """A candidate model vs the current one on the residual and on all traffic: agreement, accuracy with
    intervals (with a true_intent column), and the decision, per intent."""
    from rulelife.evidence.analysis import records
    from rulelife.model.run import compare_models as run_compare

    ws = workspace(ctx)
    counts = run_compare(ws, candidate_column=candidate_column, candidate_file=candidate_file,
                         candidate_columns=(candidate_id_column, candidate_intent_column), log=log or None,
                         engine=engine, **_window(since, until))
    frame = counts.table()
    if as_json:
        print_json({"rows_without_candidate": counts.missing, "table": records(frame)})
        return
    if counts.missing:
        console.print(f"{counts.missing:,} rows the current model answered have no candidate answer (left out)",
                      highlight=False)
    for scope in ("residual", "all"):
        top = frame[(frame["scope"] == scope) & (frame["intent"] == "(all intents)")].iloc[0]
        console.print(f"{scope}: agreement {top['agreement']:.3f} on {top['n']:,} rows; decision: {top['decision']}",
                      highlight=False)
    columns = ["scope", "intent", "n", "agreement", "labelled", "current_accuracy", "current_low", "current_high",
               "candidate_accuracy", "candidate_low", "candidate_high", "decision"]
    _frame(frame[columns], "candidate vs current, per scope and intent (95% Wilson intervals)")


def calibration(ctx: typer.Context,
                reference: Annotated[str | None, typer.Option(
                    "--reference", help="Model version whose precision the others' thresholds keep "
                                        "(default: the oldest version in the window).")] = None,
                threshold: Annotated[float, typer.Option(
                    "--threshold", min=0.0, max=1.0, help="Confidence threshold to measure precision at "
                                                          "(default: the miner's).")] = MIN_CONFIDENCE,
                labels_file: Annotated[Path | None, typer.Option(
                    "--labels-file", help="CSV or Parquet file of true intents, joined by query id.")] = None,
                labels_id_column: Annotated[str, typer.Option(help="Query id column of --labels-file.")
                                            ] = "query_id",
                labels_intent_column: Annotated[str, typer.Option(help="Intent column of --labels-file.")
                                                ] = "true_intent",
                log: LogOption = None, since: SinceOption = None, until: UntilOption = None,
                engine: EngineOption = "local", as_json: JsonOption = False) -> None:
    """Calibration of each model version where labels exist: expected calibration error, the reliability
    curve, precision at the miner's confidence threshold, and the threshold that keeps the reference's."""
    from rulelife.model.run import measure_calibration

    ws = workspace(ctx)
    report = measure_calibration(ws, log=log or None, reference=reference, threshold=threshold,
                                 labels_file=labels_file, labels_columns=(labels_id_column, labels_intent_column),
                                 engine=engine, **_window(since, until))
    if as_json:
        print_json(report.to_dict())
        return
    for line in report.lines():
        console.print(line, highlight=False)
    import pandas as pd

    rows = [{"version": v.version, **{k: c[k] for k in ("low", "high", "n", "confidence", "accuracy")}}
            for v in report.versions for c in v.curve if c["n"]]
    _frame(pd.DataFrame(rows), "reliability curve (10 equal-width bins; confidence and accuracy are bin means)")
