"""Monitor quality: do the monitors catch the simulator's injected drifts, and
how often do they cry wolf?

The full lifecycle runs on simulated traffic (history → datasets → gate →
bundle → replay of the live days), then every configured monitor is run day
by day over the growing metrics history, exactly as the nightly job would but
without acting (monitors are pure, so nothing needs writing). Each finding is
matched against the scenarios' ground truth: a finding on a rule (or a bundle
intent × locale) that a scenario affects, on or after its first day, is a
detection of the most recent such scenario; any other finding is a false
alarm.

The monitors are told of a model change as the nightly tells them (the first
day the log's dominant ``model_version`` differs). The ``model_retrain``
path is scored on its own (:attr:`QualityReport.model_change`): whether the
change is seen on its first day, whether the re-validation at the end of the
review window lists exactly the rules the relabel moved, and what the
agreement monitors do on those rules told of the change and not told.
"""

from __future__ import annotations

import shutil
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

import pandas as pd

from rulelife.config import Workspace
from rulelife.errors import ConfigError, GateRefused
from rulelife.evidence import promotion
from rulelife.monitoring.contract import MonitorContext, RuleInfo, load_monitors
from rulelife.monitoring.metrics import RuleVersionInfo, count_chunk, finalize
from rulelife.monitoring.model_changes import review_window
from rulelife.monitoring.model_review import shifts_in
from rulelife.monitoring.model_versions import changes
from rulelife.serving import publish
from rulelife.serving.replay import replay
from rulelife.serving.runtime import RuleClassifier
from rulelife.simulate import Scenario, default_scenarios, simulate_traffic
from rulelife.store import Store, registry

__all__ = ["QualityReport", "monitor_quality"]

ACTOR = "quality"


@dataclass
class QualityReport:
    live: tuple[date, date]
    rules: int
    rule_days: int
    detections: list[dict] = field(default_factory=list)  # per scenario × monitor
    false_alarms: list[dict] = field(default_factory=list)  # per monitor
    refused: list[str] = field(default_factory=list)
    model_change: dict = field(default_factory=dict)  # the model_retrain path (see _score_model_change)

    def to_dict(self) -> dict:
        return {
            "live": [d.isoformat() for d in self.live],
            "rules": self.rules,
            "rule_days": self.rule_days,
            "detections": self.detections,
            "false_alarms": self.false_alarms,
            "refused": self.refused,
            "model_change": self.model_change,
        }


def _affects(scenario: Scenario, subject: str, intents: dict[str, str]) -> bool:
    if subject.startswith("bundle:"):
        intent, _, locale = subject[len("bundle:") :].rpartition("|")  # an intent may hold "|"
        rule_intents = {intents.get(r) for r in scenario.rules}
        locales = {loc.lower() for loc in scenario.locales} or None
        return intent in rule_intents and (locales is None or locale.lower() in locales)
    return subject in scenario.rules


def _setup(root: Path, history_days: int, live_days: int, queries_per_day: int, seed: int, start: date,
           shadow_rate: float):
    from rulelife.demo.quickstart import shipped_rules_dir

    Workspace.create(root)
    workspace = Workspace.load(root, shadow_rate=shadow_rate)
    if not any(workspace.rules_dir.rglob("*.yaml")):
        shutil.copytree(shipped_rules_dir(), workspace.rules_dir, dirs_exist_ok=True)
    store = Store.from_workspace(workspace)
    registry.sync_workspace(workspace, actor=ACTOR, store=store)
    launch = start + timedelta(days=history_days)
    scenarios = default_scenarios(launch, live_days)
    traffic = simulate_traffic(start=start, days=history_days + live_days, queries_per_day=queries_per_day,
                               seed=seed, scenarios=scenarios)
    day = traffic["ts"].dt.date
    from rulelife.simulate import write_log

    write_log(traffic[day < launch], workspace.log_dir)
    candidates = [s.rule_id for s in registry.list_rules(store, state="candidate")]
    promotion.build_datasets(workspace, candidates, since=start, until=launch - timedelta(days=1), actor=ACTOR,
                             store=store)
    refused = []
    for rule_id in candidates:
        try:
            promotion.promote(workspace, rule_id, actor=ACTOR, store=store, republish=False)
        except GateRefused:
            refused.append(rule_id)
    publish.publish_active(workspace, actor=ACTOR, store=store)
    classifier = RuleClassifier.from_store(workspace.bundle_dir)  # the bundle carries the shadow rate
    live = replay(traffic[day >= launch], classifier)
    return workspace, store, classifier, live, scenarios, refused, launch


def monitor_quality(
    root: Path | None = None,
    *,
    history_days: int = 28,
    live_days: int = 120,
    queries_per_day: int = 5000,
    seed: int = 11,
    shadow_rate: float = 0.2,
    start: date = date(2026, 1, 1),
) -> QualityReport:
    """Run the monitors over ``live_days`` of simulated drift and score them.

    ``shadow_rate`` defaults to 0.2 because at 5,000 queries a day a 5%
    sample leaves most rules under the daily minimum of shadow rows, and the
    agreement monitors would judge nothing; production volumes do not need it.
    """
    if live_days < 30:
        raise ConfigError(f"live_days must be at least 30 so each drift has history before it, got {live_days}")
    cleanup = root is None
    root = Path(tempfile.mkdtemp(prefix="rulelife-quality-")) if root is None else Path(root)
    try:
        workspace, store, classifier, live, scenarios, refused, launch = _setup(
            root, history_days, live_days, queries_per_day, seed, start, shadow_rate)
        bundle = classifier.bundle
        settings = workspace.settings
        intents = {r.id: r.intent for r in bundle.rules}
        versions = [RuleVersionInfo(r.id, r.version, r.intent, r.locales) for r in bundle.rules]
        history = finalize(count_chunk(live, intents, settings.safety_intents), versions)
        far = datetime.now().astimezone() + timedelta(days=3650)  # expiry is not what is being scored
        rules = {r.id: RuleInfo(r.id, r.intent, "active", r.version, far) for r in bundle.rules}
        monitors = load_monitors(settings.enabled_monitors, settings)
        days = sorted(history["date"].dt.date.unique())
        dominants = history.groupby(history["date"].dt.date)["model_version"].first()
        found = changes((d, None if pd.isna(v) else str(v)) for d, v in dominants.items())
        findings = _run(history, monitors, days, settings, rules, found)
        report = QualityReport(live=(launch, launch + timedelta(days=live_days - 1)), rules=len(rules),
                               rule_days=len(rules) * len(days), refused=refused)
        _score(report, findings, scenarios, intents, [m.name for m in monitors])
        retrain = next((sc for sc in scenarios if sc.kind == "model_retrain"), None)
        if retrain is not None:
            agreement = [m for m in monitors if m.name in ("agreement_cusum", "agreement_floor")]
            untold = _run(history, agreement, days, settings, rules, [])
            report.model_change = _score_model_change(retrain, found, history, rules, settings, findings, untold)
        store.dispose()
        return report
    finally:
        if cleanup:
            shutil.rmtree(root, ignore_errors=True)


def _run(history: pd.DataFrame, monitors, days, settings, rules, found) -> list:
    """Every monitor's findings day by day, told of the model changes in ``found`` as the nightly tells them."""
    findings = []
    for day in days:
        upto = history[history["date"] <= pd.Timestamp(day)]
        seen = [first for first, _, _ in found if first <= day]
        context = MonitorContext(day=day, settings=settings, rules=rules, model_changed_on=seen[-1] if seen else None)
        for monitor in monitors:
            findings.extend(monitor.check(upto, context))
    return findings


def _score_model_change(retrain: Scenario, found, history, rules, settings, told, untold) -> dict:
    """The retrain path: seen on its day? the moved rules listed? alarms and disables, told vs untold."""
    days = settings.model_revalidate_days
    seen = next((first for first, _, version in found if version == retrain.model_version), None)
    out: dict = {"scenario": retrain.name, "start": retrain.start_day.isoformat(),
                 "seen_on": None if seen is None else seen.isoformat(), "seen_on_first_day": seen == retrain.start_day,
                 "relabelled_rules": sorted(retrain.rules), "review_days": days}
    if seen is None:
        return out
    start, end = review_window(seen, days)
    shifts = shifts_in(history, rules, (start - timedelta(days=days), start - timedelta(days=1)), (start, end))
    listed = sorted(s.rule_id for s in shifts if s.moved)
    measured = {s.rule_id for s in shifts if s.before_n and s.after_n}
    out.update(listed=listed, missed=sorted(set(retrain.rules) & measured - set(listed)),
               wrongly_listed=sorted(set(listed) - set(retrain.rules)),
               unmeasured=sorted(set(retrain.rules) - measured))

    def on_moved(findings, check):
        return [f for f in findings if f.check == check and f.day >= seen and f.subject in retrain.rules]

    for name, findings in (("told", told), ("untold", untold)):
        alarms = on_moved(findings, "agreement_cusum")
        disables = [f for f in on_moved(findings, "agreement_floor") if f.action.value == "disable"]
        out[name] = {
            "cusum_alarm_days": len({(f.subject, f.day) for f in alarms}),
            "cusum_first_alarm": min((f.day for f in alarms), default=None),
            "floor_disables_in_window": len({f.subject for f in disables if f.day <= end}),
            "floor_disables_after_window": len({f.subject for f in disables if f.day > end}),
            "floor_tickets_in_window": len({f.subject for f in on_moved(findings, "agreement_floor")
                                            if f.day <= end and f.action.value == "ticket"}),
        }
        first = out[name]["cusum_first_alarm"]
        out[name]["cusum_first_alarm"] = None if first is None else first.isoformat()
    return out


def _score(report: QualityReport, findings, scenarios, intents, monitor_names) -> None:
    first: dict[tuple[str, str], date] = {}
    subjects: dict[tuple[str, str], set[str]] = defaultdict(set)
    false_days: dict[str, int] = defaultdict(int)
    false_subjects: dict[str, set[str]] = defaultdict(set)
    ordered = sorted(scenarios, key=lambda s: s.start_day)
    for f in findings:
        # A finding is credited to the most recent scenario affecting its
        # subject that had started by then: drifts on the same rule overlap,
        # and the newest one is the change the monitor is reacting to.
        cause = None
        for s in ordered:
            if f.day >= s.start_day and _affects(s, f.subject, intents):
                cause = s
        if cause is not None:
            key = (cause.name, f.check)
            first[key] = min(first.get(key, f.day), f.day)
            subjects[key].add(f.subject)
        else:
            false_days[f.check] += 1
            false_subjects[f.check].add(f.subject)
    for s in scenarios:
        for name in monitor_names:
            day = first.get((s.name, name))
            report.detections.append({
                "scenario": s.name, "start": s.start_day.isoformat(), "monitor": name, "fired": day is not None,
                "first_day": day.isoformat() if day else None,
                "delay_days": (day - s.start_day).days if day else None,
                "subjects": sorted(subjects.get((s.name, name), ())),
            })
    for name in monitor_names:
        report.false_alarms.append({
            "monitor": name, "alarm_days": false_days.get(name, 0),
            "subjects": sorted(false_subjects.get(name, ())),
            "per_1000_rule_days": round(1000 * false_days.get(name, 0) / max(report.rule_days, 1), 2),
        })
