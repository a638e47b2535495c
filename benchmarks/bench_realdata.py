"""Mine, gate and serve rules on any labelled intent data, and measure what they answer.

Run: ``.venv/bin/python -m benchmarks.bench_realdata [--data DIR] [--safety A,B,C] [--json out.json] [--quick]``

Setup
-----
- **Data.** Every CSV in ``--data`` (default: the Bitext customer-service set),
  text and intent columns detected (``utterance|text|query|sentence``,
  ``intent|label|category``) or named with ``--text-col`` / ``--intent-col``.
  Intent names are used exactly as the data spells them.
- **Model.** TF-IDF word 1-2-grams + char_wb 2-5-grams into a logistic
  regression stands in for the production model. Every row gets an out-of-fold
  prediction (stratified 5-fold, seeded), so the log carries real model errors.
- **Traffic.** Rows shuffled (seeded), spread over 60 days from 2026-01-01,
  locale en-US, the true intent kept as an extra column, written with
  ``rulelife.simulate.write_log`` into each flow's own temporary workspace.
- **Flows.** ``window`` (mine, build datasets and gate on days 0-29, measure on
  30-59) is what rulelife does today, the baseline. ``heldout`` and ``shadow``
  judge mined rules on rows that did not select them; they are not built yet
  and are skipped with a note.
- **Configurations.** ``gate_on = lower_bound`` with dataset floors of 100 and
  ``gate_on = point`` with floors of 30 (Settings overrides only; an intent
  has a few hundred rows in a 30-day window, so the default floors of 1,000 /
  5,000 could never be met). The miner merges by intent (one rule per intent,
  up to 20 patterns), as ``bench_bitext`` does.
- **Measured.** The published bundle served by ``RuleClassifier.classify_many``
  on the measured days: coverage, agreement with the model and with the true
  label on what rules answer, safety false positives by either label, and a
  per-rule table listing every safety false positive's text.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from rulelife import operations, promotion, registry
from rulelife.config import Workspace
from rulelife.errors import GateRefused
from rulelife.mining import MiningReport, mine_workspace

from benchmarks._realdata import (DAYS, DataError, check_safety, day, days_slice, failed_checks, load_folder,
                                  make_workspace, measure, model_traffic)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "bitext_cs_intent"
SAFETY = ("contact_human_agent", "complaint", "get_refund")
MINER = {"merge": "intent", "max_patterns": 20}
MIN_SUPPORT = 20
ACTOR = "bench"

Progress = Callable[[str], None]


@dataclass(frozen=True)
class GateConfig:
    """One gate setting under test: what agreement is judged on, and the dataset floors."""

    gate_on: str
    floor: int

    @property
    def name(self) -> str:
        return f"{self.gate_on}/{self.floor}"


CONFIGS = (GateConfig("lower_bound", 100), GateConfig("point", 30))


@dataclass(frozen=True)
class Bench:
    """What every flow gets: the model-labelled traffic and the deployment's intents."""

    traffic: pd.DataFrame
    intents: tuple[str, ...]
    safety: tuple[str, ...]

    def workspace(self, root: Path, config: GateConfig, log: pd.DataFrame | None = None) -> Workspace:
        """A fresh workspace for ``config`` with ``log`` (default: all the traffic) as its query log."""
        return make_workspace(root, self.traffic if log is None else log, intents=self.intents,
                              safety=self.safety, gate_on=config.gate_on, floor=config.floor)


def mine(workspace: Workspace, first: int, last: int) -> MiningReport:
    """Mine days ``first``-``last`` with the benchmark's miner settings, writing and registering the candidates."""
    return mine_workspace(workspace, since=day(first), until=day(last), min_support=MIN_SUPPORT, actor=ACTOR,
                          **MINER)


def gate_all(workspace: Workspace, rule_ids: Sequence[str], first: int, last: int) -> dict:
    """Build every rule's dataset on days ``first``-``last``, promote each through the gate, publish once.

    Returns the promoted ids and, per refused rule, the names of the checks it failed.
    """
    store = operations.open_store(workspace)
    try:
        promoted, refused = [], {}
        if rule_ids:
            promotion.build_datasets(workspace, rule_ids, since=day(first), until=day(last), actor=ACTOR,
                                     store=store)
        for rule_id in rule_ids:
            try:
                promotion.promote(workspace, rule_id, actor=ACTOR, store=store, republish=False)
                promoted.append(rule_id)
            except GateRefused:
                refused[rule_id] = failed_checks(workspace, rule_id, store)
        # Published even when empty: the runtime then serves a bundle of no rules.
        operations.publish_active(workspace, actor=ACTOR, store=store)
        active = len(registry.active_rules(store))
    finally:
        store.dispose()
    return {"candidates": len(rule_ids), "promoted": len(promoted), "active": active, "promoted_ids": promoted,
            "refused": refused, "refusals": dict(sorted(Counter(k for ks in refused.values() for k in ks).items()))}


def window(bench: Bench, config: GateConfig, root: Path, progress: Progress) -> dict:
    """Today's behaviour: mine, build datasets and gate on days 0-29, measure on days 30-59.

    The gate sees the very rows that selected each rule, so its evidence is
    optimistic; this is the baseline the other flows are measured against.
    """
    half = DAYS // 2
    workspace = bench.workspace(root, config)
    progress(f"window {config.name}: mining days 0-{half - 1}")
    mined = mine(workspace, 0, half - 1)
    ids = [c.id for c in mined.written]
    progress(f"window {config.name}: gating {len(ids)} candidate(s)")
    gated = gate_all(workspace, ids, 0, half - 1)
    progress(f"window {config.name}: serving days {half}-{DAYS - 1}")
    measured = measure(workspace, days_slice(bench.traffic, half, DAYS - 1), bench.safety)
    return {"select_days": [0, half - 1], "gate_days": [0, half - 1], "measure_days": [half, DAYS - 1],
            "miner_skipped": len(mined.skipped), **gated, **measured}


def heldout(bench: Bench, config: GateConfig, root: Path, progress: Progress) -> dict:
    """Mined rules gated on rows that did not select them.

    Will mine on the earlier part of days 0-29 (the rows that select each
    rule), build datasets and gate on the later part of days 0-29 (rows the
    miner never saw), and measure the promoted rules on days 30-59.
    """
    raise NotImplementedError("needs the held-out miner")


def shadow(bench: Bench, config: GateConfig, root: Path, progress: Progress) -> dict:
    """Mined rules judged on their own live shadow traffic.

    Will mine on days 0-29, promote the batch to shadow, serve days 30-44
    with the shadow rules matched by the runtime (what they would have
    answered logged beside the model's answer), promote on that live
    evidence, and measure the promoted rules on days 45-59.
    """
    raise NotImplementedError("needs live shadow evidence")


FLOWS = {"window": window, "heldout": heldout, "shadow": shadow}


def run(data_dir: Path = DATA, *, safety: Sequence[str] = SAFETY, text_col: str | None = None,
        intent_col: str | None = None, intents: Sequence[str] | None = None, quick: bool = False,
        flows: Sequence[str] = tuple(FLOWS), configs: Sequence[GateConfig] = CONFIGS,
        progress: Progress = lambda msg: print(msg, file=sys.stderr)) -> dict:
    """Run every flow under every configuration; flows not built yet are listed in ``skipped``.

    ``quick`` uses 3 cross-validation folds instead of 5 (a smoke run; the
    model is then a little weaker).
    """
    unknown = [f for f in flows if f not in FLOWS]
    if unknown:
        raise DataError(f"unknown flow(s) {', '.join(unknown)}; choose among {', '.join(FLOWS)}")
    data = load_folder(data_dir, text_col=text_col, intent_col=intent_col, intents=intents)
    all_intents = tuple(sorted(data["intent"].unique()))
    check_safety(safety, all_intents)
    folds = 3 if quick else 5
    progress(f"labelling {len(data)} rows with {folds}-fold out-of-fold predictions")
    traffic = model_traffic(data, folds=folds)
    bench = Bench(traffic, all_intents, tuple(safety))
    results, skipped = [], {}
    with tempfile.TemporaryDirectory(prefix="bench-realdata-") as tmp:
        for flow in flows:
            for config in configs:
                try:
                    result = FLOWS[flow](bench, config, Path(tmp) / f"{flow}-{config.gate_on}", progress)
                except NotImplementedError as exc:
                    skipped[flow] = str(exc)
                    progress(f"{flow}: skipped ({exc})")
                    break
                results.append({"flow": flow, "config": config.name, "gate_on": config.gate_on,
                                "dataset_floor": config.floor, **result})
    accuracy = float((traffic["model_intent"] == traffic["true_intent"]).mean())
    meta = {"data": str(data_dir), "rows": len(traffic), "intents": len(all_intents), "folds": folds,
            "model_accuracy_oof": accuracy, "safety_intents": list(safety), "days": DAYS,
            "miner": {**MINER, "min_support": MIN_SUPPORT}}
    return {"meta": meta, "results": results, "skipped": skipped}


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1%}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items()) or "-"
    return str(value)


COLUMNS = {"flow": "flow", "config": "gate/floor", "promoted": "promoted", "coverage": "coverage",
           "agreement_model": "agreement (model)", "agreement_true": "agreement (true)",
           "safety_fp_model": "safety FP (model)", "safety_fp_true": "safety FP (true)", "refusals": "refusals"}


def format_report(report: dict) -> str:
    """The header line, the Markdown table (one row per flow and configuration) and the skipped flows."""
    m = report["meta"]
    lines = [f"{m['rows']} rows, {m['intents']} intents, out-of-fold model accuracy {m['model_accuracy_oof']:.1%} "
             f"({m['folds']} folds); windows: select and gate days 0-{DAYS // 2 - 1}, measure days "
             f"{DAYS // 2}-{DAYS - 1} (window flow); safety: {', '.join(m['safety_intents'])}",
             "",
             "| " + " | ".join(COLUMNS.values()) + " |",
             "|" + "|".join("---" for _ in COLUMNS) + "|"]
    for row in report["results"]:
        promoted = f"{row['promoted']}/{row['candidates']}"
        cells = [promoted if key == "promoted" else _fmt(row[key]) for key in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [f"\n{flow}: skipped ({why})" for flow, why in report["skipped"].items()]
    return "\n".join(lines)


def _names(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="folder of CSV files (default: Bitext)")
    parser.add_argument("--safety", type=_names, default=list(SAFETY), help="comma-separated safety intents")
    parser.add_argument("--text-col", default=None, help="text column (default: detected)")
    parser.add_argument("--intent-col", default=None, help="intent column (default: detected)")
    parser.add_argument("--intents", type=_names, default=None, help="comma-separated intents to keep (default: all)")
    parser.add_argument("--flows", type=_names, default=list(FLOWS), help="comma-separated flows (default: all)")
    parser.add_argument("--json", type=Path, default=None, help="also write every figure and per-rule row here")
    parser.add_argument("--quick", action="store_true", help="3 cross-validation folds instead of 5")
    args = parser.parse_args(argv)
    try:
        report = run(args.data, safety=args.safety, text_col=args.text_col, intent_col=args.intent_col,
                     intents=args.intents, quick=args.quick, flows=args.flows)
    except DataError as exc:  # bad input: one line, the exit status argparse uses for bad arguments
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    print(format_report(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")


if __name__ == "__main__":
    main()
