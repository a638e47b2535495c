"""The nightly monitor job: metrics of the day, monitors, actions, republish.

Unattended and idempotent. For one UTC day, under a job lock:

1. stream the day's runtime log and count each live rule version's metrics
   per locale (:mod:`rulelife.monitoring.metrics`); replace that day's rows in the
   metrics table (one transaction: a re-run replaces, never duplicates);
2. run every configured monitor over the metrics history (monitors decide,
   never write);
3. apply the findings in one transaction: tickets (one open per subject ×
   check; a day's finding is appended once) and auto-disables (an audit row
   carrying the finding as evidence), with every ticket event put in the
   outbox;
   with ``shadow_auto_promote`` on, promote the shadow rules whose live
   evidence clears the gate (:func:`rulelife.evidence.live.promote_ready`;
   a rule disabled in this step is no longer in shadow);
   with ``residual_check`` on, freeze the residual baseline of a bundle seen
   for the first time and ticket a residual-accuracy drop below it
   (:mod:`rulelife.monitoring.residual_check`);
   a change of the model that labels the traffic (the log's dominant
   ``model_version``) is recorded once, with a ``model.changed`` event; the
   monitors are told the latest change, and at the end of its review
   window every active rule is re-validated against the new model's labels
   (:mod:`rulelife.monitoring.model_changes`);
4. republish the bundle if what is active changed (a no-op otherwise); while
   a rollback pins the bundle, leave it (less any rule just taken out of
   traffic), report ``bundle_pinned`` and keep one ``bundle_pinned`` ticket
   open until `rulelife bundle unpin`;
5. deliver the outbox (ticket and registry events); a failed delivery stays
   for the next run, one the receiver refused for good is dead-lettered.

A crash anywhere leaves the store consistent: each step either committed
whole or not at all, and re-running the day redoes what is missing without
doubling what is there. Each attempt is a ``nightly_runs`` row; one a killed
process left ``running`` is marked ``crashed`` by the next run.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
from sqlmodel import delete, func, select

from rulelife.config import Workspace
from rulelife.errors import BundleError, ConfigError, LogError
from rulelife.evidence.live import promote_ready
from rulelife.monitoring import counting
from rulelife.monitoring.contract import (
    Action,
    Finding,
    Monitor,
    MonitorContext,
    RuleInfo,
    Severity,
    empty_history,
    load_monitors,
    require_monitors,
)
from rulelife.monitoring.lexicon_review import review_lexicon
from rulelife.monitoring.metrics import RuleVersionInfo, finalize, fp_json
from rulelife.monitoring.model_changes import detect_change, latest_change, record_day
from rulelife.monitoring.model_review import revalidate_change
from rulelife.monitoring.model_versions import day_versions
from rulelife.monitoring.outbox import DeliveryReport, deliver_pending, sinks_for
from rulelife.monitoring.residual_check import residual_findings
from rulelife.monitoring.tickets import close_ticket, record_event, record_finding
from rulelife.querylog import LogReport
from rulelife.rules.lifecycle import State
from rulelife.serving.bundle import BundleStore, PublishResult
from rulelife.serving.publish import publish_active
from rulelife.store import DailyMetricRow, NightlyRunRow, RuleStateRow, Store, TicketRow, registry, utcnow

__all__ = ["EXIT_DELIVERY_PENDING", "EXIT_LOCKED", "PIN_TICKET", "NightlyReport", "close_pin_ticket", "load_history",
           "load_monitors", "run_nightly", "sinks_for"]

EXIT_LOCKED = 75  # EX_TEMPFAIL: another run holds the lock; retry later
EXIT_DELIVERY_PENDING = 4  # the day is done but some deliveries wait for the next run (or were refused for good)
PIN_TICKET = ("bundle:CURRENT", "bundle_pinned")  # subject and check of the ticket a pinned bundle keeps open


@dataclass
class NightlyReport:
    day: date
    status: str = "running"  # ok | no_traffic
    log: dict = field(default_factory=dict)
    metric_rows: int = 0
    findings: list[dict] = field(default_factory=list)
    disabled: list[str] = field(default_factory=list)
    promoted: list[str] = field(default_factory=list)  # shadow rules auto-promoted tonight
    shadow_waiting: dict[str, str] = field(default_factory=dict)  # shadow rule -> what it still needs
    tickets_opened: int = 0
    tickets_appended: int = 0
    bundle: int | None = None
    bundle_published: bool = False
    bundle_pinned: dict | None = None  # the pin that kept the registry's rules unpublished, and what waits
    model: dict = field(default_factory=dict)  # the day's dominant model version, and the latest model change
    deliveries: DeliveryReport = field(default_factory=DeliveryReport)
    notes: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return EXIT_DELIVERY_PENDING if self.deliveries.pending else 0

    def to_dict(self) -> dict:
        data = {k: v for k, v in self.__dict__.items() if k != "deliveries"}
        data["day"] = self.day.isoformat()
        data["deliveries"] = self.deliveries.to_dict()
        data["exit_code"] = self.exit_code
        return data




def live_rules(bundles: BundleStore, numbers: Sequence[int]) -> tuple[list[RuleVersionInfo], list[str]]:
    notes = []
    infos: dict[tuple[str, str], RuleVersionInfo] = {}
    if not numbers:
        pointer = bundles.pointer()
        if pointer is None:
            return [], ["no bundle is named in the log and none is published: no rule was live"]
        numbers = [pointer["number"]]
        notes.append(f"no rule answered this day; bundle {pointer['number']} (CURRENT) is taken as live")
    for number in sorted(set(numbers)):
        try:
            bundle = bundles.load(int(number))
        except BundleError as exc:
            raise LogError(f"the log names bundle {number}, which cannot be loaded ({exc})") from None
        for rule in bundle.rules:
            serving = "shadow" if rule.shadow else "active"
            infos[(rule.id, rule.version, serving)] = RuleVersionInfo(rule.id, rule.version, rule.intent,
                                                                      rule.locales, serving)
    return list(infos.values()), notes


def _read_day(workspace: Workspace, day: date, source, report: NightlyReport, log_report: LogReport,
              engine: str, spark):
    try:
        return counting.daily_counts(workspace, day, log=source, engine=engine, spark=spark, report=log_report)
    except LogError as exc:
        message = str(exc)
        if log_report.rows_read == 0 and log_report.files_read and "the files are empty" in message:
            report.status = "no_traffic"
            report.notes.append(f"the log for {day} has no rows: no traffic that day; metrics left as they were")
            return None, []
        if "no file" in message:
            raise LogError(
                f"no log rows for {day} in {source}: {message}. Pass the day's runtime log with --log, "
                "or the --date the log is for"
            ) from None
        raise


def _write_metrics(store: Store, day: date, table: pd.DataFrame, examples: dict[str, list[dict]]) -> int:
    with store.session() as session:
        session.exec(delete(DailyMetricRow).where(DailyMetricRow.day == day))
        for row in table.itertuples(index=False):
            session.add(DailyMetricRow(
                day=row.date.date(), rule_id=row.rule_id, rule_version=row.rule_version, intent=row.intent,
                locale=row.locale, traffic=int(row.traffic), fires=int(row.fires), fire_rate=float(row.fire_rate),
                shadow_n=int(row.shadow_n), agree_n=int(row.agree_n),
                agreement=None if pd.isna(row.agreement) else float(row.agreement),
                safety_fp=int(row.safety_fp), fp_by_class=fp_json(row.fp_by_class),
                examples=json.dumps(examples.get(row.rule_id, [])), serving=row.serving, vetoed=int(row.vetoed),
                model_version=None if pd.isna(row.model_version) else row.model_version,
                model_versions=None if pd.isna(row.model_versions) else row.model_versions,
            ))
    return len(table)


def load_history(store: Store, until: date, *, days: int = 400) -> tuple[pd.DataFrame, dict[str, list[dict]]]:
    """Metrics of the ``days`` days up to ``until`` as the monitors' DataFrame, and
    the newest example queries per rule."""
    since = until - timedelta(days=days)
    with store.session() as session:
        rows = session.exec(
            select(DailyMetricRow).where(DailyMetricRow.day > since, DailyMetricRow.day <= until)
            .order_by(DailyMetricRow.day, DailyMetricRow.rule_id, DailyMetricRow.locale)
        ).all()
    if not rows:
        return empty_history().assign(serving=pd.Series(dtype="string"), vetoed=pd.Series(dtype="int64")), {}
    frame = pd.DataFrame([{
        "date": pd.Timestamp(r.day), "rule_id": r.rule_id, "rule_version": r.rule_version, "intent": r.intent,
        "locale": r.locale, "traffic": r.traffic, "fires": r.fires, "fire_rate": r.fire_rate,
        "shadow_n": r.shadow_n, "agree_n": r.agree_n, "agreement": r.agreement, "safety_fp": r.safety_fp,
        "fp_by_class": json.loads(r.fp_by_class), "serving": r.serving or "active", "vetoed": r.vetoed or 0,
    } for r in rows])
    template = empty_history()
    for column in template.columns:
        frame[column] = frame[column].astype(template[column].dtype)
    frame["serving"] = frame["serving"].astype("string")
    examples: dict[str, list[dict]] = {}
    for r in rows:  # ascending by day: the newest wins
        found = json.loads(r.examples)
        if found:
            examples[r.rule_id] = found
    return frame, examples


def _rule_infos(store: Store) -> dict[str, RuleInfo]:
    return {s.rule_id: RuleInfo(s.rule_id, s.intent, s.state.value, s.version, s.expires_at)
            for s in registry.list_rules(store)}


def _apply(workspace: Workspace, store: Store, findings: list[Finding], actor: str, report: NightlyReport) -> bool:
    """Tickets and disables in one transaction; True if a rule was disabled."""
    sinks = list(sinks_for(workspace))
    changed = False
    with store.session() as session:
        for finding in findings:
            ticket = record_finding(session, finding, sinks)
            if ticket is not None:
                if ticket.findings == 1:
                    report.tickets_opened += 1
                else:
                    report.tickets_appended += 1
            if finding.action != Action.DISABLE or finding.rule_id is None:
                continue
            status = session.exec(select(RuleStateRow).where(
                RuleStateRow.rule_id == finding.rule_id).with_for_update()).first()
            if status is None or status.state not in (State.ACTIVE, State.SHADOW):
                continue
            registry.apply_transition(session, finding.rule_id, State.DISABLED, actor=actor,
                                      reason=f"{finding.check}: {finding.summary}", evidence=finding.to_dict(),
                                      action="auto_disable")
            report.disabled.append(finding.rule_id)
            changed = True
            ticket = ticket or session.exec(select(TicketRow).where(TicketRow.open_key == finding.dedupe_key)).first()
            if ticket is not None:
                record_event(session, ticket, "action", f"disable@{finding.day.isoformat()}",
                             {"action": f"rule {finding.rule_id} disabled", "check": finding.check}, sinks,
                             day=finding.day)
    return changed


def run_nightly(
    workspace: Workspace,
    day: date,
    *,
    log: Path | Sequence[Path] | None = None,
    actor: str = "nightly",
    store: Store | None = None,
    deliver: bool = True,
    monitors: Sequence[Monitor] | None = None,
    engine: str = "local",
    spark=None,
) -> NightlyReport:
    """Run the nightly job for ``day`` (see the module docstring); raise
    :class:`~rulelife.errors.JobLocked` if another run holds the lock.

    ``monitors`` overrides the configured ones (``Settings.enabled_monitors``,
    found by entry-point name and built from their ``[monitors.<name>]``
    tables), e.g. to run a team's :class:`Monitor` objects directly.
    ``engine`` counts the day's log locally (``local``, ``local-pool``) or on
    Apache Spark (``spark``, with an optional session); see
    :mod:`rulelife.engines`. Everything after the counting is the same.
    """
    store = store or Store.from_workspace(workspace)
    report = NightlyReport(day=day)
    source = log if log is not None else workspace.log_dir
    with store.job_lock("nightly"):
        with store.session() as session:
            crashed = _mark_crashed(session)
            if crashed:
                report.notes.append(f"marked {crashed} earlier run(s) left 'running' by a killed job as 'crashed'")
            run = NightlyRunRow(day=day, started_at=utcnow(), actor=actor)
            session.add(run)
            session.flush()
            run_id = run.id
        try:
            _run_locked(workspace, store, day, source, actor, report, deliver, monitors, engine, spark)
        except BaseException:
            _finish(store, run_id, "failed", report)
            raise
        _finish(store, run_id, report.status, report)
    return report


def _run_locked(workspace, store, day, source, actor, report, deliver, monitors, engine, spark) -> None:
    # Built first: a bad [monitors.<name>] table stops the run before it writes anything.
    settings = workspace.settings
    monitors = load_monitors(settings.enabled_monitors, settings) if monitors is None else require_monitors(monitors)
    log_report = LogReport()
    counts, numbers = _read_day(workspace, day, source, report, log_report, engine, spark)
    report.log = log_report.to_dict()
    if log_report.rows_quarantined:
        report.notes.append(f"{log_report.rows_quarantined} bad log rows quarantined under {workspace.quarantine_dir}")
    if counts is not None:
        live, notes = live_rules(BundleStore(workspace.bundle_dir), numbers)
        report.notes += notes
        table = finalize(counts, live)
        report.metric_rows = _write_metrics(store, day, table, counts.examples)
        report.status = "ok"
        report.model["version"] = record_day(store, day, day_versions(counts.models).get(day, {}))
        detect_change(store, day, actor=actor, notes=report.notes)
    change = latest_change(store, day)
    if change is not None:
        report.model["change"] = change.to_dict()
    history, examples = load_history(store, day)
    rules = _rule_infos(store)
    gone = sorted(set(history["rule_id"]) - set(rules)) if not history.empty else []
    if gone:
        report.notes.append(f"metrics mention rules the registry no longer has (ignored): {', '.join(gone)}")
    context = MonitorContext(day=day, settings=workspace.settings, rules=rules, examples=examples,
                             model_changed_on=None if change is None else change.first_day)
    findings: list[Finding] = []
    for monitor in monitors:
        findings.extend(monitor.check(history, context))
    findings.extend(review_lexicon(workspace, store, day, report.notes))
    if settings.residual_check and counts is not None:
        findings.extend(residual_findings(workspace, store, day, source, engine, spark, report.notes))
    report.findings = [f.to_dict() for f in findings]
    _apply(workspace, store, findings, actor, report)
    if change is not None:
        review = revalidate_change(store, day, change, rules, settings.model_revalidate_days,
                                   list(sinks_for(workspace)))
        if review is not None:
            report.model["revalidation"] = review
            report.tickets_opened += review["ticket_id"] is not None
    if workspace.settings.shadow_auto_promote:
        outcomes = promote_ready(workspace, store, day, actor)
        report.promoted = [o.rule_id for o in outcomes if o.promoted]
        report.shadow_waiting = {o.rule_id: o.reason for o in outcomes if not o.promoted}
    published = publish_active(workspace, actor=actor, store=store, reason=f"nightly of {day}")
    report.bundle, report.bundle_published = published.bundle.number, published.published
    if published.pin is not None:
        _report_pin(workspace, store, day, published, report)
    else:
        close_pin_ticket(store, actor, list(sinks_for(workspace)))
    if deliver:
        report.deliveries = deliver_pending(store, sinks_for(workspace))


def _report_pin(workspace: Workspace, store: Store, day: date, published: PublishResult,
                report: NightlyReport) -> None:
    """Say that a rollback's pin kept the registry's rules unpublished: in the report and in one open ticket."""
    pin = published.pin
    waiting = published.waiting or {}
    report.bundle_pinned = {**pin.to_dict(), "waiting": published.waiting, "narrowed": list(published.narrowed)}
    held = ", ".join(f"{len(waiting[k])} {k}" for k in ("added", "removed", "changed") if waiting.get(k))
    summary = (f"CURRENT is pinned to bundle {pin.number} (rolled back by {pin.actor} on {pin.at[:10]}: {pin.reason}); "
               f"the nightly did not publish the registry's rules ({held or 'none differ'})"
               + (f" and took {', '.join(published.narrowed)} out of the pinned bundle, as the registry did"
                  if published.narrowed else "")
               + ". Review with `rulelife bundle diff`, then `rulelife bundle unpin`")
    report.notes.append(summary)
    subject, check = PIN_TICKET
    finding = Finding(subject=subject, check=check, severity=Severity.WARNING, action=Action.TICKET, day=day,
                      summary=summary, evidence=report.bundle_pinned)
    with store.session() as session:
        ticket = record_finding(session, finding, list(sinks_for(workspace)))
    if ticket is not None and ticket.findings == 1:
        report.tickets_opened += 1
    elif ticket is not None:
        report.tickets_appended += 1


def close_pin_ticket(store: Store, actor: str, sinks: list[str]) -> bool:
    """Close the open ``bundle_pinned`` ticket, if any (the pin is gone); True if one was closed."""
    key = "::".join(PIN_TICKET)
    with store.session() as session:
        ticket = session.exec(select(TicketRow.id).where(TicketRow.open_key == key)).first()
    if ticket is None:
        return False
    close_ticket(store, ticket, actor=actor, reason="the bundle pin was lifted", sinks=sinks)
    return True


def _mark_crashed(session) -> int:
    """Close the rows of runs that never finished; return how many.

    Called holding the job lock: a run still marked ``running`` now cannot
    be alive (it would hold the lock), so its process was killed.
    """
    now = utcnow()
    rows = session.exec(select(NightlyRunRow).where(NightlyRunRow.status == "running")).all()
    for row in rows:
        row.status, row.finished_at = "crashed", now
        session.add(row)
    return len(rows)


def _finish(store: Store, run_id: int, status: str, report: NightlyReport) -> None:
    with store.session() as session:
        run = session.get(NightlyRunRow, run_id)
        run.status = status
        run.finished_at = utcnow()
        run.summary = json.dumps(report.to_dict(), default=str)
        session.add(run)


def backfill(workspace: Workspace, start: date, end: date, **options) -> list[NightlyReport]:
    """Run the nightly job for every day from ``start`` to ``end`` in order."""
    if end < start:
        raise LogError(f"--from {start} is after --to {end}; swap them")
    store = options.pop("store", None) or Store.from_workspace(workspace)
    reports = []
    day = start
    while day <= end:
        reports.append(run_nightly(workspace, day, store=store, **options))
        day += timedelta(days=1)
    return reports


def catch_up_days(store: Store, until: date) -> list[date]:
    """The days after the last successful run (``ok`` or ``no_traffic``) up to ``until``, oldest first:
    what missed or failed nights left undone. Raises :class:`~rulelife.errors.ConfigError` when no run
    ever succeeded (there is nothing to count from: give the first day explicitly)."""
    with store.session() as session:
        last = session.exec(select(func.max(NightlyRunRow.day))
                            .where(NightlyRunRow.status.in_(("ok", "no_traffic")))).one()
    if last is None:
        raise ConfigError("no successful nightly run on record to catch up from; run "
                          "`rulelife monitor nightly --from D --to D` once for the first days")
    return [last + timedelta(days=offset) for offset in range(1, (until - last).days + 1)]
