"""``rulelife quickstart``: the whole spine on the embedded default.

In a fresh folder, with no network: a workspace (SQLite), the shipped rules of
the example manga store, simulated traffic, a published bundle, and a replay
of the traffic through the runtime, summarised as a person would want it.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pandas as pd

from rulelife import operations, registry
from rulelife.config import Workspace
from rulelife.errors import ConfigError
from rulelife.replay import ReplaySummary, replay, summarize_replay
from rulelife.runtime import RuleClassifier
from rulelife.simulate import default_scenarios, simulate_traffic, write_ground_truth, write_log

__all__ = ["QuickstartResult", "run_quickstart", "shipped_rules_dir"]

ACTOR = "quickstart"
DEFAULT_START = date(2026, 1, 1)


def shipped_rules_dir() -> Path:
    """The example deployment's rules: ``rules/`` in a checkout, or the copy in the wheel."""
    package = Path(__file__).resolve().parent
    for candidate in (package.parent / "rules", package / "_shipped_rules"):
        if candidate.is_dir():
            return candidate
    raise ConfigError("the shipped rules are missing from this installation; reinstall rulelife")


@dataclass(frozen=True)
class QuickstartResult:
    workspace: Workspace
    log_files: list[Path]
    bundle_number: int
    activated: list[str]
    day: date
    summary: ReplaySummary
    model_call_cost: float

    def to_dict(self) -> dict:
        return {
            "workspace": str(self.workspace.root),
            "log_files": len(self.log_files),
            "bundle": self.bundle_number,
            "activated": self.activated,
            "day": self.day.isoformat(),
            "summary": self.summary.to_dict(),
            "cost_saved": round(self.summary.model_calls_saved * self.model_call_cost, 4),
        }


def run_quickstart(
    root: Path,
    *,
    days: int = 30,
    queries_per_day: int = 2000,
    seed: int = 7,
    start: date = DEFAULT_START,
) -> QuickstartResult:
    """Set up ``root`` and run the spine end to end (idempotent on re-run)."""
    if days < 1 or queries_per_day < 1:
        raise ConfigError(f"days and queries_per_day must be at least 1, got {days} and {queries_per_day}")
    workspace = Workspace.create(root)
    if not any(workspace.rules_dir.rglob("*.yaml")):
        shutil.copytree(shipped_rules_dir(), workspace.rules_dir, dirs_exist_ok=True)
    store = operations.open_store(workspace)
    operations.sync(workspace, actor=ACTOR, store=store)

    activated = []
    for status in registry.list_rules(store, state="candidate"):
        # Direct activation stands in for the promotion gate on a fresh demo.
        registry.transition(
            store, status.rule_id, "active", actor=ACTOR,
            reason="quickstart: shipped starter rule activated without a gate",
            expiry_days=workspace.settings.expiry_days,
        )
        activated.append(status.rule_id)
    published = operations.publish_active(workspace, actor=ACTOR, store=store)

    scenarios = default_scenarios(start, days)
    traffic = simulate_traffic(start=start, days=days, queries_per_day=queries_per_day, seed=seed, scenarios=scenarios)
    classifier = RuleClassifier.from_store(workspace.bundle_dir, shadow_rate=workspace.settings.shadow_rate)
    production = replay(traffic, classifier)
    log_files = write_log(production, workspace.log_dir)
    write_ground_truth(scenarios, workspace.log_dir / "scenarios.json")

    last_day = start + timedelta(days=days - 1)
    day_rows = production[production["ts"].dt.date == last_day]
    intents = {rule.id: rule.intent for rule in published.bundle.rules}
    summary = summarize_replay(day_rows, intents)
    store.dispose()
    return QuickstartResult(
        workspace=workspace,
        log_files=log_files,
        bundle_number=published.bundle.number,
        activated=activated,
        day=last_day,
        summary=summary,
        model_call_cost=workspace.settings.model_call_cost,
    )


def per_rule_table(summary: ReplaySummary) -> pd.DataFrame:
    return summary.per_rule[["rule_id", "intent", "fires", "fire_rate", "shadow_n", "agreement"]]
