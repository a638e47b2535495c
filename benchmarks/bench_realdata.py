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
- **Flows.** ``heldout``: the miner chooses on days 0-14 and the gate judges on
  days 15-29; ``shadow``: the batch is served in shadow on days 30-44 and
  promoted on that live evidence. Every figure is measured on days neither the
  miner nor the gate saw. ``window`` (gate on the choosing days) is kept to show
  that the gate now refuses it (``held_out``).
- **Configurations.** ``gate_on = lower_bound`` with dataset floors of 100,
  and ``gate_on = point`` with floors of 30 and of 20 (Settings overrides
  only; an intent has about 75 rows in 15 days, so the default floors of
  1,000 / 5,000 could never be met). The miner merges by intent (one rule per
  intent, up to 20 patterns) with ``min_support`` 10.
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

from benchmarks._realdata import (
    DAYS,
    DataError,
    check_safety,
    day,
    days_slice,
    failed_checks,
    load_folder,
    make_workspace,
    measure,
    model_traffic,
)
from rulelife.config import Workspace
from rulelife.errors import GateRefused
from rulelife.evidence import promotion
from rulelife.evidence.live import check_live, live_evidence
from rulelife.mining.lexicon import mine_lexicon, proposals_yaml
from rulelife.mining.mine import MiningReport, mine_workspace
from rulelife.monitoring import nightly
from rulelife.rules.lexicon import lexicon_path
from rulelife.serving import publish
from rulelife.serving.replay import replay
from rulelife.serving.runtime import RuleClassifier
from rulelife.simulate import write_log
from rulelife.store import Store, registry

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "bitext_cs_intent"
SAFETY = ("contact_human_agent", "complaint", "get_refund")
MINER = {"merge": "intent", "max_patterns": 20}
# An intent has about 75 rows in 15 choosing days: a phrase in 13% of them may seed a rule.
MIN_SUPPORT = 10
ACTOR = "bench"

Progress = Callable[[str], None]


@dataclass(frozen=True)
class GateConfig:
    """One setting under test: what agreement is judged on, the dataset floors, and the safety boundary.

    ``boundary``: ``off`` (no proximity check in the miner or the gate),
    ``proximity`` (the default settings), or ``lexicon`` (proximity, plus a
    lexicon of every phrase ``rulelife safety mine`` proposes on days 0-29,
    accepted whole in place of a person's review).
    """

    gate_on: str
    floor: int
    boundary: str = "proximity"

    @property
    def name(self) -> str:
        suffix = "" if self.boundary == "proximity" else f"+{self.boundary}"
        return f"{self.gate_on}/{self.floor}{suffix}"


# The interval gate needs about 73 agreeing held-out rows a rule; Bitext gives an intent about 75 in 15
# days, so it is shown for what it refuses. The point gate with lowered floors is the small-data setting.
CONFIGS = (GateConfig("lower_bound", 100), GateConfig("point", 30), GateConfig("point", 20),
           GateConfig("point", 20, "off"), GateConfig("point", 20, "lexicon"))


@dataclass(frozen=True)
class Bench:
    """What every flow gets: the model-labelled traffic and the deployment's intents."""

    traffic: pd.DataFrame
    intents: tuple[str, ...]
    safety: tuple[str, ...]

    def workspace(self, root: Path, config: GateConfig, log: pd.DataFrame | None = None) -> Workspace:
        """A fresh workspace for ``config`` with ``log`` (default: all the traffic) as its query log."""
        # "off": no word is ever near a safety intent (no rows threshold can be met).
        extra = {"safety_proximity_rows": 10**9} if config.boundary == "off" else {}
        workspace = make_workspace(root, self.traffic if log is None else log, intents=self.intents,
                                   safety=self.safety, gate_on=config.gate_on, floor=config.floor, **extra)
        if config.boundary == "lexicon":
            proposed = mine_lexicon(workspace, since=day(0), until=day(DAYS // 2 - 1))
            lexicon_path(workspace.rules_dir).write_text(proposals_yaml(proposed.proposals, owner=ACTOR),
                                                         encoding="utf-8")
        return workspace


def mine(workspace: Workspace, first: int, last: int) -> MiningReport:
    """Mine days ``first``-``last`` with the benchmark's miner settings, writing and registering the candidates."""
    return mine_workspace(workspace, since=day(first), until=day(last), min_support=MIN_SUPPORT, actor=ACTOR,
                          **MINER)


def gate_all(workspace: Workspace, rule_ids: Sequence[str], first: int | None, last: int) -> dict:
    """Build every rule's dataset on days ``first``-``last``, promote each through the gate, publish once.

    ``first`` None: each mined rule's dataset starts after the days that chose it.

    Returns the promoted ids and, per refused rule, the names of the checks it failed.
    """
    store = Store.from_workspace(workspace)
    try:
        promoted, refused = [], {}
        if rule_ids:
            promotion.build_datasets(workspace, rule_ids, since=None if first is None else day(first),
                                     until=day(last), actor=ACTOR, store=store)
        for rule_id in rule_ids:
            try:
                promotion.promote(workspace, rule_id, actor=ACTOR, store=store, republish=False)
                promoted.append(rule_id)
            except GateRefused:
                refused[rule_id] = failed_checks(workspace, rule_id, store)
        # Published even when empty: the runtime then serves a bundle of no rules.
        publish.publish_active(workspace, actor=ACTOR, store=store)
        active = len(registry.active_rules(store))
    finally:
        store.dispose()
    return {"candidates": len(rule_ids), "promoted": len(promoted), "active": active, "promoted_ids": promoted,
            "refused": refused, "refusals": dict(sorted(Counter(k for ks in refused.values() for k in ks).items()))}


def window(bench: Bench, config: GateConfig, root: Path, progress: Progress) -> dict:
    """The old protocol: gate mined rules on datasets of days 0-29, the days that chose them.

    Their evidence overlaps their choosing days, so the gate refuses every one
    (``held_out``); kept to show that guarantee on real data.
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

    The miner chooses on days 0-14 and counts its candidates on days 15-29;
    each mined rule's dataset is built from days 15-29 (the default after its
    choosing days), the gate judges it there, and the promoted rules are
    measured on days 30-59, which neither the miner nor the gate saw.
    """
    half = DAYS // 2
    workspace = bench.workspace(root, config, days_slice(bench.traffic, 0, half - 1))
    progress(f"heldout {config.name}: mining days 0-{half - 1} (choosing on the first half)")
    mined = mine(workspace, 0, half - 1)
    ids = [c.id for c in mined.written]
    progress(f"heldout {config.name}: gating {len(ids)} candidate(s) on the held-out days")
    gated = gate_all(workspace, ids, None, half - 1)
    progress(f"heldout {config.name}: serving days {half}-{DAYS - 1}")
    measured = measure(workspace, days_slice(bench.traffic, half, DAYS - 1), bench.safety)
    chosen, held = mined.window, mined.heldout
    return {"select_days": [(chosen[0] - day(0)).days, (chosen[1] - day(0)).days],
            "gate_days": [(held.start - day(0)).days, (held.end - day(0)).days] if held else None,
            "measure_days": [half, DAYS - 1], "miner_skipped": len(mined.skipped),
            "miner_skips": dict(Counter(s.reason for s in mined.skipped).most_common()), **gated, **measured}


def shadow(bench: Bench, config: GateConfig, root: Path, progress: Progress) -> dict:
    """Mined rules judged on their own live shadow traffic.

    Mine on days 0-29, put the whole batch in shadow, serve days 30-44 through
    the runtime (shadow rules matched, never answering; what they would have
    said logged) with the nightly job after each day, promote each rule on
    that live evidence, and measure the promoted rules on days 45-59.
    """
    half, live_end = DAYS // 2, DAYS // 2 + 14
    workspace = bench.workspace(root, config, days_slice(bench.traffic, 0, half - 1))
    progress(f"shadow {config.name}: mining days 0-{half - 1}")
    mined = mine(workspace, 0, half - 1)
    ids = [c.id for c in mined.written]
    store = Store.from_workspace(workspace)
    try:
        for rule_id in ids:
            promotion.promote(workspace, rule_id, actor=ACTOR, to="shadow", store=store, republish=False)
        publish.publish_active(workspace, actor=ACTOR, store=store)
        classifier = RuleClassifier(workspace.bundle_dir, shadow_rate=workspace.settings.shadow_rate)
        for index in range(half, live_end + 1):
            progress(f"shadow {config.name}: serving day {index} with {len(ids)} rule(s) in shadow")
            classifier.refresh()  # a nightly may have disabled a shadow rule and republished
            served = replay(days_slice(bench.traffic, index, index).drop(columns=["true_intent"]), classifier)
            write_log(served, workspace.log_dir)
            nightly.run_nightly(workspace, day(index), store=store, actor="nightly")
        promoted, refused = [], {}
        for rule_id in ids:
            if registry.get_status(store, rule_id).state.value != "shadow":
                refused[rule_id] = ["disabled_in_shadow"]
                continue
            try:
                promotion.promote(workspace, rule_id, actor=ACTOR, store=store, republish=False)
                promoted.append(rule_id)
            except GateRefused:
                decision = check_live(live_evidence(store, rule_id), workspace.settings)
                refused[rule_id] = [c.name for c in decision.checks if not c.passed]
        publish.publish_active(workspace, actor=ACTOR, store=store)
        active = len(registry.active_rules(store))
    finally:
        store.dispose()
    progress(f"shadow {config.name}: serving days {live_end + 1}-{DAYS - 1}")
    measured = measure(workspace, days_slice(bench.traffic, live_end + 1, DAYS - 1), bench.safety)
    return {"select_days": [0, half - 1], "gate_days": [half, live_end], "measure_days": [live_end + 1, DAYS - 1],
            "miner_skipped": len(mined.skipped), "candidates": len(ids), "promoted": len(promoted),
            "active": active, "promoted_ids": promoted, "refused": refused,
            "refusals": dict(sorted(Counter(k for ks in refused.values() for k in ks).items())), **measured}


# ``window`` (the miner's choosing days used as evidence) is kept to show the guarantee: the gate now refuses
# every such rule (held_out). The default flows are the two honest ones.
FLOWS = {"heldout": heldout, "shadow": shadow, "window": window}
DEFAULT_FLOWS = ("heldout", "shadow")


def run(data_dir: Path = DATA, *, safety: Sequence[str] = SAFETY, text_col: str | None = None,
        intent_col: str | None = None, intents: Sequence[str] | None = None, quick: bool = False,
        flows: Sequence[str] = DEFAULT_FLOWS, configs: Sequence[GateConfig] = CONFIGS,
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
                    folder = f"{flow}-{config.name}".replace("/", "-").replace("+", "-")
                    result = FLOWS[flow](bench, config, Path(tmp) / folder, progress)
                except NotImplementedError as exc:
                    skipped[flow] = str(exc)
                    progress(f"{flow}: skipped ({exc})")
                    break
                results.append({"flow": flow, "config": config.name, "gate_on": config.gate_on,
                                "dataset_floor": config.floor, "boundary": config.boundary, **result})
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
             f"({m['folds']} folds); heldout: choose days 0-14, gate 15-29, measure 30-59; shadow: choose 0-14, "
             f"live shadow 30-44, measure 45-59; safety: {', '.join(m['safety_intents'])}",
             "",
             "| " + " | ".join(COLUMNS.values()) + " |",
             "|" + "|".join("---" for _ in COLUMNS) + "|"]
    for row in report["results"]:
        promoted = f"{row['promoted']}/{row['candidates']}"
        cells = [promoted if key == "promoted" else _fmt(row[key]) for key in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("\nThe model's accuracy before the bundle (all measured traffic) and after it (the residual), 95% Wilson:")
    for row in report["results"]:
        a, r = row["model_accuracy_all"], row["model_accuracy_residual"]
        lines.append(f"- {row['flow']} {row['config']}: all {a['accuracy']:.1%} ({a['low']:.1%}-{a['high']:.1%}, "
                     f"n={a['n']}) -> residual {r['accuracy']:.1%} ({r['low']:.1%}-{r['high']:.1%}, n={r['n']})")
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
    parser.add_argument("--flows", type=_names, default=list(DEFAULT_FLOWS),
                        help=f"comma-separated flows among {', '.join(FLOWS)} (default: {', '.join(DEFAULT_FLOWS)})")
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
