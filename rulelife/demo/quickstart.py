"""``rulelife quickstart``: the whole lifecycle on the embedded default.

In a fresh folder, with no network: a workspace (SQLite), the shipped rules of
the example manga store, and simulated traffic in two periods. Before launch
the model answers everything; those logs feed every rule's dataset, and each
rule goes through the promotion gate (some are refused, with reasons). The
promoted rules are published as a bundle, and the live days are served day by
day, as the chatbot would have, with the simulator's drift scenarios
injected; after each day the nightly job runs (metrics, monitors, tickets,
auto-disables, republish) and the next day is served with what it
republished. It ends by writing the rule health page.

The demo's shadow rate is 0.2, not the production default of 0.05: at ten
thousand queries a day a 5% sample leaves most rules below the daily minimum
of shadow rows, and the agreement monitors would have nothing to judge.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import pandas as pd

from rulelife import progress
from rulelife.config import Workspace
from rulelife.errors import ConfigError, GateRefused
from rulelife.evidence import promotion
from rulelife.evidence.evaluation.stats import wilson_interval
from rulelife.evidence.live import live_evidence
from rulelife.mining.mine import mine_workspace
from rulelife.model.run import export_training_mix, measure_residual
from rulelife.monitoring import nightly, tickets
from rulelife.report import write_report
from rulelife.rules.lifecycle import State
from rulelife.serving import publish
from rulelife.serving.replay import ReplaySummary, replay, summarize_replay
from rulelife.serving.runtime import RuleClassifier
from rulelife.simulate import default_scenarios, simulate_traffic, write_ground_truth, write_log
from rulelife.store import Store, registry

__all__ = ["GateOutcome", "QuickstartResult", "run_quickstart", "shipped_rules_dir"]

ACTOR = "quickstart"
DEFAULT_START = date(2026, 1, 1)
DEMO_SHADOW_RATE = 0.2
# Live days the mined batch spends in shadow before each rule is judged on what it would have answered.
SHADOW_DAYS = 14


def shipped_rules_dir() -> Path:
    """The example deployment's rules: ``rules/`` in a checkout, or the copy in the wheel."""
    package = Path(__file__).resolve().parents[1]  # rulelife/
    for candidate in (package.parent / "rules", package / "_shipped_rules"):
        if candidate.is_dir():
            return candidate
    raise ConfigError("the shipped rules are missing from this installation; reinstall rulelife")


@dataclass(frozen=True)
class GateOutcome:
    rule_id: str
    promoted: bool
    agreement: float | None
    low: float | None
    high: float | None
    rows: int
    reasons: list[str]

    def to_dict(self) -> dict:
        return self.__dict__.copy()


@dataclass(frozen=True)
class QuickstartResult:
    workspace: Workspace
    history: tuple[date, date]
    live: tuple[date, date]
    gate: list[GateOutcome]
    bundle_number: int | None
    day: date
    summary: ReplaySummary
    model_call_cost: float
    nightly: list = field(default_factory=list)  # NightlyReport per live day
    tickets: list[dict] = field(default_factory=list)
    report: Path | None = None  # the rule health page
    candidates: list[dict] = field(default_factory=list)  # the miner's top proposals
    shadow: list[GateOutcome] = field(default_factory=list)  # the mined batch judged on its live evidence
    shadow_day: date | None = None
    vetoes: int = 0  # live queries the safety lexicon sent to the model although a rule fired
    veto_example: dict | None = None  # the first of them: text, the rule it stopped, the phrase
    residual: dict | None = None  # ResidualReport.summary() of the live days: accuracy on the residual vs all
    training_mix: dict | None = None  # the export's folder, rows and rows by label source

    @property
    def residual_shift(self) -> float | None:
        """The model's accuracy on the residual minus its accuracy on all labelled traffic."""
        if not self.residual or not self.residual["all_accuracy"]["n"]:
            return None
        return self.residual["residual_accuracy"]["accuracy"] - self.residual["all_accuracy"]["accuracy"]

    def to_dict(self) -> dict:
        return {
            "workspace": str(self.workspace.root),
            "history": [d.isoformat() for d in self.history],
            "live": [d.isoformat() for d in self.live],
            "gate": [g.to_dict() for g in self.gate],
            "bundle": self.bundle_number,
            "day": self.day.isoformat(),
            "summary": self.summary.to_dict(),
            "cost_saved": round(self.summary.model_calls_saved * self.model_call_cost, 4),
            "nightly": [r.to_dict() for r in self.nightly],
            "tickets": self.tickets,
            "report": str(self.report) if self.report else None,
            "candidates": self.candidates,
            "shadow": [g.to_dict() for g in self.shadow],
            "shadow_day": self.shadow_day.isoformat() if self.shadow_day else None,
            "vetoes": self.vetoes,
            "veto_example": self.veto_example,
            "residual": self.residual,
            "residual_shift": self.residual_shift,
            "training_mix": self.training_mix,
        }

    @property
    def disabled(self) -> list[tuple[date, str]]:
        return [(r.day, rule_id) for r in self.nightly for rule_id in r.disabled]


def _gate_all(workspace: Workspace, store, rule_ids: list[str]) -> list[GateOutcome]:
    outcomes = []
    for rule_id in rule_ids:
        try:
            result = promotion.promote(workspace, rule_id, actor=ACTOR, store=store, republish=False)
        except GateRefused as refused:
            evaluation = promotion.evaluate(workspace, rule_id, actor=ACTOR, store=store, record=True).evaluation
            p = evaluation.production
            outcomes.append(GateOutcome(rule_id, False, p.estimate, p.low, p.high, evaluation.rows, refused.reasons))
            continue
        p = result.evaluation.evaluation.production
        outcomes.append(GateOutcome(rule_id, True, p.estimate, p.low, p.high, result.evaluation.evaluation.rows, []))
    return outcomes


def _to_shadow(workspace: Workspace, store, rule_ids: list[str]) -> list[str]:
    """Put a mined batch in shadow (no gate: shadow never answers) and publish once."""
    moved = []
    for rule_id in rule_ids:
        if registry.get_status(store, rule_id).state == State.CANDIDATE:
            promotion.promote(workspace, rule_id, actor=ACTOR, to=State.SHADOW, store=store, republish=False)
            moved.append(rule_id)
    publish.publish_active(workspace, actor=ACTOR, store=store)
    return moved


def _judge_shadow(workspace: Workspace, store) -> list[GateOutcome]:
    """Promote each shadow rule whose live evidence clears the gate; say why for the others."""
    outcomes = []
    for status in registry.list_rules(store, state=State.SHADOW.value):
        evidence = live_evidence(store, status.rule_id)
        low, high = wilson_interval(evidence.agree, evidence.labelled) if evidence.labelled else (None, None)
        share = evidence.agree / evidence.labelled if evidence.labelled else None
        try:
            promotion.promote(workspace, status.rule_id, actor=ACTOR, store=store, republish=False)
            outcomes.append(GateOutcome(status.rule_id, True, share, low, high, evidence.labelled, []))
        except GateRefused as refused:
            outcomes.append(GateOutcome(status.rule_id, False, share, low, high, evidence.labelled, refused.reasons))
    publish.publish_active(workspace, actor=ACTOR, store=store)
    return outcomes


def run_quickstart(
    root: Path,
    *,
    history_days: int = 21,
    live_days: int = 56,
    queries_per_day: int = 8_000,
    seed: int = 7,
    start: date = DEFAULT_START,
) -> QuickstartResult:
    """Set up ``root`` and run the lifecycle end to end (safe to re-run)."""
    if history_days < 1 or live_days < 7 or queries_per_day < 1:
        raise ConfigError(
            f"need history_days >= 1, live_days >= 7 (one day per drift scenario) and queries_per_day >= 1, "
            f"got {history_days}, {live_days}, {queries_per_day}"
        )
    workspace = Workspace.create(root, settings={"shadow_rate": DEMO_SHADOW_RATE})
    if not any(workspace.rules_dir.rglob("*.yaml")):
        shutil.copytree(shipped_rules_dir(), workspace.rules_dir, dirs_exist_ok=True)
    store = Store.from_workspace(workspace)
    synced = registry.sync_workspace(workspace, actor=ACTOR, store=store)
    progress.step(f"workspace {workspace.root}: {len(synced.registered)} shipped rules registered as candidates")

    launch = start + timedelta(days=history_days)
    last = launch + timedelta(days=live_days - 1)
    # Drift happens after launch, where the runtime and the monitors can see it.
    scenarios = default_scenarios(launch, live_days)
    traffic = simulate_traffic(start=start, days=history_days + live_days, queries_per_day=queries_per_day,
                               seed=seed, scenarios=scenarios)
    day = traffic["ts"].dt.date
    write_log(traffic[day < launch], workspace.log_dir)
    progress.step(f"simulated {history_days} days of history before launch ({int((day < launch).sum()):,} queries)")
    write_ground_truth(scenarios, workspace.log_dir / "scenarios.json")

    candidates = [s.rule_id for s in registry.list_rules(store, state="candidate")]
    history_end = launch - timedelta(days=1)
    promotion.build_datasets(workspace, candidates, since=start, until=history_end, actor=ACTOR, store=store)
    outcomes = _gate_all(workspace, store, candidates)
    published = publish.publish_active(workspace, actor=ACTOR, store=store)
    progress.step(f"gate: {sum(o.promoted for o in outcomes)} of {len(outcomes)} rules promoted on their datasets; "
                  f"bundle {published.bundle.number} published")
    # Mine the pre-launch traffic for what the model answers confidently and
    # no live rule covers yet; the proposals are registered as candidates,
    # never made active.
    mined = mine_workspace(workspace, since=start, until=history_end, actor="quickstart-miner", store=store)
    # The mined batch goes to shadow: matched by the runtime, never answering,
    # its would-be answers counted against the model's each night.
    _to_shadow(workspace, store, [c.id for c in mined.written])
    progress.step(f"mined {len(mined.written)} candidate rules from the history; they go to shadow")

    # The control loop, day by day: the runtime serves the day with the bundle
    # CURRENT names (picking up what last night republished), then the
    # nightly job judges that day, so a rule it disables stops answering.
    classifier = RuleClassifier.from_store(workspace.bundle_dir)  # the bundle carries the shadow rate
    reports = []
    served = None
    judged: list[GateOutcome] = []
    shadow_day = None
    vetoes, veto_example = 0, None
    for offset in range(live_days):
        current = launch + timedelta(days=offset)
        if offset == min(SHADOW_DAYS, live_days - 1):
            judged, shadow_day = _judge_shadow(workspace, store), current
            progress.step(f"{current}: shadow batch judged on its live evidence, "
                          f"{sum(o.promoted for o in judged)} of {len(judged)} promoted")
        classifier.refresh()
        served = replay(traffic[day == current], classifier)
        write_log(served, workspace.log_dir)
        vetoed = served[served["lexicon_veto"].notna()]
        vetoes += len(vetoed)
        if veto_example is None and len(vetoed):
            first = vetoed.iloc[0]
            veto_example = {"day": current.isoformat(), "text": first["text"], "locale": first["locale"],
                            "veto": json.loads(first["lexicon_veto"])}
        reports.append(nightly.run_nightly(workspace, current, store=store, actor="nightly"))
        disabled = reports[-1].disabled
        (progress.step if disabled else progress.tick)(
            f"{current}: live day {offset + 1} of {live_days} served and judged by the nightly"
            + (f"; auto-disabled {', '.join(disabled)}" if disabled else ""))
    intents = {rule.id: rule.intent for rule in classifier.bundle.rules}
    summary = summarize_replay(served, intents)
    opened = [tickets.ticket_dict(t) for t in tickets.list_tickets(store, status="all")]
    # The model's side of the live days: the residual it served (the simulator's log has true labels),
    # and the training mix for its next version, with rule-answered queries put back in.
    residual = measure_residual(workspace, since=launch, until=last, store=store).summary()
    progress.step(f"model accuracy on the residual {residual['residual_accuracy']['accuracy']:.3f} vs "
                  f"{residual['all_accuracy']['accuracy']:.3f} on all labelled traffic")
    mix_dir = workspace.root / "training-mix"
    manifest = export_training_mix(workspace, mix_dir, since=launch, until=last, store=store)
    progress.step(f"training mix: {manifest['rows']:,} rows written to {mix_dir}")
    report = write_report(workspace, workspace.root / "rule-health.html", store=store)
    progress.step(f"rule health page written to {report.path}")
    store.dispose()
    return QuickstartResult(
        workspace=workspace,
        history=(start, history_end),
        live=(launch, last),
        gate=outcomes,
        bundle_number=classifier.bundle_version,
        day=last,
        summary=summary,
        model_call_cost=workspace.settings.model_call_cost,
        nightly=reports,
        tickets=opened,
        report=report.path,
        candidates=[c.to_dict() for c in sorted(mined.candidates, key=lambda c: -c.calls_saved_per_day)[:5]],
        shadow=judged,
        shadow_day=shadow_day,
        vetoes=vetoes,
        veto_example=veto_example,
        residual=residual,
        training_mix={"path": str(mix_dir), "rows": manifest["rows"], "rows_by_source": manifest["rows_by_source"],
                      "content_hash": manifest["content_hash"]},
    )


def per_rule_table(summary: ReplaySummary) -> pd.DataFrame:
    return summary.per_rule[["rule_id", "intent", "fires", "fire_rate", "shadow_n", "agreement"]]
