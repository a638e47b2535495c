"""Everything the rule health report shows, gathered from the store into plain data.

:func:`gather` reads the registry once and returns a :class:`ReportData`:
DataFrames and small dataclasses that the HTML layer only formats. Nothing
here renders, so a test (or a notebook) can check the numbers directly.

The report window is ``[since, until]`` (whole UTC days, both included).
``until`` is the newest day of the metrics table (the last nightly run), not
the wall clock, so a report of a backfilled or simulated workspace shows its
data. Series are read from further back than ``since`` where a monitor needs
a past (its ``lookback_days()``; the CUSUM, the start of the rule's current
version).

What a monitor judged is drawn from the monitor itself: the enabled
monitors, built from their ``[monitors.<name>]`` tables as the nightly job
builds them, and their own ``statistics()`` (the band, the threshold and the
verdict of every day). Nothing here recomputes a decision.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
from sqlalchemy import String, type_coerce
from sqlmodel import select

from rulelife.config import Workspace
from rulelife.errors import ConfigError, RulelifeError
from rulelife.evidence.evaluation.stats import wilson_interval
from rulelife.evidence.live import ShadowStanding, shadow_standing
from rulelife.monitoring.contract import (
    METRIC_COLUMNS,
    STATISTIC_COLUMNS,
    Monitor,
    MonitorContext,
    RuleInfo,
    empty_history,
    load_monitor,
)
from rulelife.monitoring.model_changes import all_changes, review_window
from rulelife.store import AuditRow, DailyMetricRow, EvaluationRow, PromotionRow, Store, TicketRow, registry, utcnow

__all__ = [
    "DEFAULT_DAYS",
    "EvaluationView",
    "Marker",
    "ReportData",
    "ResidualView",
    "TicketView",
    "gather",
    "load_metrics",
]

# The default window: the coverage monitor's 90-day reference, so what the
# page shows is what the monitors judged.
DEFAULT_DAYS = 90
# The CUSUM needs a rule's series from the start of its current version;
# the nightly job reads the same horizon (nightly.load_history).
HISTORY_DAYS = 400
# The monitors whose statistics the rule charts draw, by entry-point name.
CUSUM_MONITOR = "agreement_cusum"
COVERAGE_MONITOR = "coverage_drift"
FLOOR_MONITOR = "agreement_floor"
DRAWN = (CUSUM_MONITOR, COVERAGE_MONITOR, FLOOR_MONITOR)


@dataclass(frozen=True)
class Marker:
    """Something that happened to a rule on a day: a state change, a promotion, a change point."""

    rule_id: str
    day: date
    kind: str  # promote | revalidate | auto_disable | disable | ... | change_point | cusum_alarm | ticket
    label: str
    detail: str = ""
    locale: str | None = None
    check: str | None = None  # the monitor behind a ticket, change point or alarm


@dataclass(frozen=True)
class TicketView:
    id: int
    subject: str
    check: str
    locale: str | None
    severity: str
    title: str
    findings: int
    first_day: date | None
    last_day: date | None
    created_at: datetime
    evidence: dict


@dataclass(frozen=True)
class EvaluationView:
    """The newest EvaluationRow of a rule: the gate's verdict and ``Evaluation.to_dict()``."""

    id: int | None
    rule_id: str
    rule_version: str
    at: datetime
    actor: str
    passed: bool
    reasons: list[str]
    metrics: dict


@dataclass(frozen=True)
class ModelChangeView:
    """A model change and where its review stands on the report's last day."""

    first_day: date
    previous_version: str
    version: str
    review_ends: date  # the last day of the review window (the floor tickets instead of disabling)
    revalidated_on: date | None
    ticket_id: int | None

    def status(self, today: date) -> str:
        if self.revalidated_on is not None:
            ticket = f", ticket #{self.ticket_id}" if self.ticket_id is not None else ""
            return f"re-validated on {self.revalidated_on}{ticket}"
        if today <= self.review_ends:
            return f"in review until {self.review_ends}: agreement-floor failures file tickets, not disables"
        return f"review ended {self.review_ends}; re-validation runs at the next nightly"


@dataclass(frozen=True)
class ResidualView:
    """The residual-distribution view of ``rulelife.operations.analyze`` (None fields: not computed, see ``note``)."""

    note: str
    bundle: int | None = None
    analysis: object | None = None  # rulelife.evidence.analysis.BundleAnalysis
    model: dict | None = None  # rulelife.model.residual.ResidualReport.summary() of the window
    fallback: str | None = None  # rulelife.model.fallback.FallbackReadiness.line()
    calibration: list[str] | None = None  # rulelife.model.calibration.CalibrationReport.lines(), or why none


@dataclass
class ReportData:
    """What the report shows; every frame is already restricted to the window unless said otherwise.

    Attributes
    ----------
    states
        One row per registered rule: rule_id, intent, state, version, expires_at.
    daily
        Per (rule_id, date) of the window, pooled over locales: fires, traffic
        (the rule's locales' traffic that day), fire_rate, shadow_n, agree_n,
        agreement and its Wilson interval (low, high).
    cusum
        The agreement CUSUM monitor's ``statistics()`` in the window: per
        (rule_id, locale, date) ``value`` (its S), the threshold ``high`` and ``alarm``
        (empty when the monitor is not run; see ``cusum_note``). ``cusum_h``
        is that threshold.
    fire_rates
        The coverage-drift monitor's ``statistics()`` in the window: per
        (rule_id, locale, date) fires, traffic, the fire rate ``value``, its
        reference ``median`` and the band (``low``, ``high``) the monitor held
        it to, and ``alarm`` (empty when the monitor is not run; see
        ``fire_rate_note``).
    floors
        Per rule, the floor the agreement floor monitor judged it against
        (rules it judged no day of are left out).
    coverage
        Per (intent, locale) over the window: fires of the intent's rules,
        traffic of the locale, coverage = fires / traffic.
    savings
        Per date: fires, shadow_n, calls_saved = fires - shadow_n, cost_saved.
    markers
        State changes, promotions, detected change points and CUSUM alarms.
    shadow
        Each rule in shadow: its live evidence up to ``until`` and the gate's
        checks on it, as ``rulelife promote`` and the nightly judge it.
    """

    workspace: str
    generated_at: datetime
    since: date
    until: date
    floor: float  # the promotion gate's agreement floor
    model_call_cost: float
    revalidate_within_days: int
    states: pd.DataFrame
    daily: pd.DataFrame
    cusum: pd.DataFrame
    cusum_h: float | None
    cusum_note: str
    fire_rates: pd.DataFrame
    fire_rate_note: str
    floors: dict[str, float]
    coverage: pd.DataFrame
    savings: pd.DataFrame
    markers: list[Marker]
    tickets: list[TicketView]
    auto_disables: list[AuditRow]
    near_expiry: pd.DataFrame
    evaluations: dict[str, EvaluationView]
    residual: ResidualView
    notes: list[str] = field(default_factory=list)
    shadow: list[ShadowStanding] = field(default_factory=list)
    vetoes: dict[str, int] = field(default_factory=dict)  # rule id -> messages the safety lexicon vetoed in the window
    # rule id -> every stored evaluation of the rule, oldest first (``evaluations`` holds the newest)
    evaluation_history: dict[str, list[EvaluationView]] = field(default_factory=dict)
    model_changes: list[ModelChangeView] = field(default_factory=list)  # oldest first

    @property
    def days(self) -> int:
        return (self.until - self.since).days + 1

    def rule_ids(self) -> list[str]:
        """Rules with metrics in the window, in rule-id order."""
        return sorted(self.daily["rule_id"].unique()) if not self.daily.empty else []

    def counts(self) -> dict[str, int]:
        return {
            "rules": len(self.states),
            "rules_with_metrics": len(self.rule_ids()),
            "days": self.days,
            "open_tickets": len(self.tickets),
            "auto_disables": len(self.auto_disables),
            "near_expiry": len(self.near_expiry),
            "evaluations": len(self.evaluations),
            "change_points": sum(m.kind == "change_point" for m in self.markers),
            "shadow_rules": len(self.shadow),
        }


def load_metrics(store: Store, first: date, last: date) -> pd.DataFrame:
    """The metrics rows of days ``first..last`` as the monitors' DataFrame (``METRIC_COLUMNS``).

    Reads plain columns, not ORM objects, and leaves ``fp_by_class`` and the
    example queries out (``fp_by_class`` is an empty dict on every row): the
    report reads a year of every rule, where building one object per row
    and parsing its JSON would dominate the run time. The day is read as text
    (SQLite) or a date (PostgreSQL) and parsed once for the whole column.
    """
    c = DailyMetricRow
    columns = (type_coerce(c.day, String), c.rule_id, c.rule_version, c.intent, c.locale, c.traffic, c.fires,
               c.fire_rate, c.shadow_n, c.agree_n, c.agreement, c.safety_fp)
    query = select(*columns).where(c.day >= first, c.day <= last)
    with store.session() as session:
        rows = session.connection().execute(query).all()
    if not rows:
        return empty_history()
    names = [n for n in METRIC_COLUMNS if n != "fp_by_class"]
    # Column lists, not from_records: pandas builds a frame from row objects several times slower.
    frame = pd.DataFrame(dict(zip(names, (list(column) for column in zip(*rows)))))
    frame["date"] = pd.to_datetime(frame["date"].astype(str))
    frame["fp_by_class"] = [{} for _ in range(len(frame))]
    frame = frame.astype({k: v for k, v in METRIC_COLUMNS.items() if k != "fp_by_class"})
    return frame.sort_values(["date", "rule_id", "locale"], kind="stable", ignore_index=True)


def load_vetoes(store: Store, first: date, last: date) -> dict[str, int]:
    """Per rule, the messages a safety-lexicon phrase sent to the model where the rule would have
    answered, days ``first..last`` (rules with none are left out; NULL rows predate the count)."""
    from sqlalchemy import func

    c = DailyMetricRow
    query = (select(c.rule_id, func.sum(c.vetoed)).where(c.day >= first, c.day <= last, c.vetoed > 0)
             .group_by(c.rule_id))
    with store.session() as session:
        return {rule_id: int(n) for rule_id, n in session.connection().execute(query).all()}


def _last_metric_day(store: Store) -> date | None:
    from sqlalchemy import func

    with store.session() as session:
        return session.exec(select(func.max(DailyMetricRow.day))).first()


def _first_metric_day(store: Store) -> date | None:
    from sqlalchemy import func

    with store.session() as session:
        return session.exec(select(func.min(DailyMetricRow.day))).first()


def _daily(history: pd.DataFrame, since: date) -> pd.DataFrame:
    """Per rule and day, pooled over locales (see ReportData.daily)."""
    columns = ["rule_id", "date", "intent", "fires", "traffic", "fire_rate", "shadow_n", "agree_n", "agreement",
               "low", "high"]
    if history.empty:
        return pd.DataFrame(columns=columns)
    # A locale's traffic on a day is on every row of that locale; a rule with no
    # row on a day its locale had traffic fired 0 times (as coverage_drift reads it).
    # traffic[d, r] = the traffic of rule r's locales on day d (NaN: none of them had any).
    locale_traffic = history.groupby(["date", "locale"])["traffic"].max().unstack("locale")
    rule_locales = (history.groupby(["rule_id", "locale"]).size().unstack("locale", fill_value=0) > 0)
    rule_locales = rule_locales.reindex(columns=locale_traffic.columns, fill_value=False).astype(float)
    known = locale_traffic.notna().astype(float) @ rule_locales.T > 0
    traffic = (locale_traffic.fillna(0) @ rule_locales.T).where(known)
    traffic.index.name, traffic.columns.name = "date", "rule_id"
    grid = traffic.stack().rename("traffic").reset_index()  # rows where a locale of the rule had traffic
    starts = history.groupby("rule_id")["date"].min()
    grid = grid[grid["date"] >= grid["rule_id"].map(starts)]
    sums = history.groupby(["rule_id", "date"], as_index=False)[["fires", "shadow_n", "agree_n"]].sum()
    out = grid.merge(sums, on=["rule_id", "date"], how="left")
    out[["fires", "shadow_n", "agree_n"]] = out[["fires", "shadow_n", "agree_n"]].fillna(0)
    out = out.sort_values(["rule_id", "date"], ignore_index=True)
    out["fire_rate"] = out["fires"] / out["traffic"].where(out["traffic"] > 0)
    intents = history.drop_duplicates("rule_id", keep="last").set_index("rule_id")["intent"].astype(str)
    out["intent"] = out["rule_id"].map(intents)
    out = out[out["date"] >= pd.Timestamp(since)].reset_index(drop=True)
    sampled = out["shadow_n"] > 0
    out["agreement"] = (out["agree_n"] / out["shadow_n"]).where(sampled)
    bounds = [wilson_interval(a, n) if n > 0 else (math.nan, math.nan)
              for a, n in zip(out["agree_n"].tolist(), out["shadow_n"].tolist())]
    out["low"] = [b[0] for b in bounds]
    out["high"] = [b[1] for b in bounds]
    return out[columns]


def _rule_infos(states: pd.DataFrame) -> dict[str, RuleInfo]:
    """Every registered rule as if active at its registry version.

    The monitors judge active rules only; the report also wants the CUSUM of
    a rule the nightly job just disabled, up to its last day of traffic.
    """
    return {r.rule_id: RuleInfo(r.rule_id, r.intent, "active", r.version, r.expires_at)
            for r in states.itertuples()}


@dataclass(frozen=True)
class _Drawn:
    """A monitor the rule charts draw: its statistics up to ``until`` (None: nothing, see ``note``)."""

    monitor: Monitor | None
    statistics: pd.DataFrame | None = None
    note: str = ""


def _enabled(workspace: Workspace, name: str) -> _Drawn:
    """The monitor ``name`` as the nightly job builds it, or why the page cannot draw it."""
    if name not in workspace.settings.enabled_monitors:
        return _Drawn(None, note=f"the nightly job does not run the {name} monitor (not in enabled_monitors)")
    try:
        return _Drawn(load_monitor(name, workspace.settings))
    except ConfigError as exc:
        return _Drawn(None, note=f"the {name} monitor cannot be built ({exc})")


def _drawn(found: _Drawn, history: pd.DataFrame, context: MonitorContext, states: pd.DataFrame) -> _Drawn:
    """``found`` with its monitor's own statistics() over ``history``."""
    if found.monitor is None:
        return found
    stats = found.monitor.statistics(history, context)
    name = found.monitor.name
    if stats is None:
        return _Drawn(found.monitor, note=f"the installed {name} monitor has no statistics() to plot")
    missing = sorted(set(STATISTIC_COLUMNS) - set(stats.columns))
    if missing:
        return _Drawn(found.monitor, note=f"the {name} monitor's statistics() lack {', '.join(missing)}")
    if stats.empty:
        return _Drawn(found.monitor, stats)
    # The context counts every rule as active (the page also shows rules disabled since); a rule
    # that is not active was judged up to its last day of metrics, and no further.
    last = history.groupby("rule_id")["date"].max()
    active = set(states.loc[states["state"] == "active", "rule_id"]) if not states.empty else set()
    judged = stats["rule_id"].isin(active).to_numpy() | (stats["date"] <= stats["rule_id"].map(last)).to_numpy()
    return _Drawn(found.monitor, stats[judged].reset_index(drop=True))


def _day_of(value) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


def _markers(store: Store, since: date, until: date, findings,
             stats: pd.DataFrame | None) -> tuple[list[Marker], list[AuditRow]]:
    markers: list[Marker] = []
    auto_disables: list[AuditRow] = []
    with store.session() as session:
        audit = session.exec(select(AuditRow).order_by(AuditRow.at, AuditRow.id)).all()
        promotions = session.exec(select(PromotionRow).order_by(PromotionRow.at, PromotionRow.id)).all()
        tickets = session.exec(select(TicketRow).order_by(TicketRow.id)).all()
    for row in audit:
        evidence = json.loads(row.evidence or "{}")
        # The nightly job acts on a day's metrics (evidence["day"]); its wall-clock
        # time can be much later (a backfill), so the metric day places the marker.
        day = _day_of(evidence.get("day")) or row.at.date()
        if row.action == "promote":
            continue  # the PromotionRow below says the same with its kind
        markers.append(Marker(row.rule_id, day, row.action, f"{row.from_state or '-'} → {row.to_state}",
                              f"{row.actor}: {row.reason}"))
        if row.action == "auto_disable" and since <= day <= until:
            auto_disables.append(row)
    for row in promotions:
        markers.append(Marker(row.rule_id, row.at.date(), row.kind,
                              f"{row.kind} {row.rule_version[:8]} → {row.to_state}", f"by {row.actor}"))
    seen = set()
    evidences = [(f.subject, f.evidence) for f in findings]
    evidences += [(t.subject, json.loads(t.evidence or "{}")) for t in tickets if t.check == CUSUM_MONITOR]
    for rule_id, evidence in evidences:
        day, locale = _day_of(evidence.get("change_point")), evidence.get("locale")
        if day is not None and (rule_id, locale, day) not in seen:
            seen.add((rule_id, locale, day))
            markers.append(Marker(rule_id, day, "change_point", f"change point ({locale})",
                                  f"agreement below its usual {evidence.get('mu0', float('nan')):.1%}", locale,
                                  CUSUM_MONITOR))
    if stats is not None and not stats.empty:
        # The first day of each series the monitor itself alarmed on.
        for (rule_id, locale), rows in stats[stats["alarm"]].groupby(["rule_id", "locale"], sort=True):
            first = rows.iloc[0]
            markers.append(Marker(str(rule_id), first["date"].date(), "cusum_alarm", f"CUSUM alarm ({locale})",
                                  f"S = {first['value']:.2f} above h = {first['high']:.2f}", str(locale),
                                  CUSUM_MONITOR))
    for t in tickets:  # the day a monitor first filed each ticket on a rule
        if t.first_day is not None and not t.subject.startswith("bundle:"):
            markers.append(Marker(t.subject, t.first_day, "ticket", f"ticket #{t.id} {t.check} ({t.status})",
                                  t.title, t.locale, t.check))
    markers = [m for m in markers if since <= m.day <= until]
    return sorted(markers, key=lambda m: (m.rule_id, m.day, m.kind)), auto_disables


# Open tickets, most severe first, then the most recently seen: what needs someone comes first.
SEVERITY_RANK = {"critical": 0, "warning": 1, "info": 2}


def _tickets(store: Store) -> list[TicketView]:
    with store.session() as session:
        rows = session.exec(select(TicketRow).where(TicketRow.status == "open").order_by(TicketRow.id)).all()
    rows = sorted(rows, key=lambda t: (SEVERITY_RANK.get(t.severity, len(SEVERITY_RANK)),
                                       -(t.last_day or date.min).toordinal(), t.id))
    return [TicketView(t.id, t.subject, t.check, t.locale, t.severity, t.title, t.findings, t.first_day,
                       t.last_day, t.created_at, json.loads(t.evidence or "{}")) for t in rows]


def _evaluation_history(store: Store) -> dict[str, list[EvaluationView]]:
    """Every stored evaluation per rule, oldest first."""
    out: dict[str, list[EvaluationView]] = {}
    with store.session() as session:
        rows = session.exec(select(EvaluationRow).order_by(EvaluationRow.at, EvaluationRow.id)).all()
    for row in rows:
        out.setdefault(row.rule_id, []).append(
            EvaluationView(row.id, row.rule_id, row.rule_version, row.at, row.actor, row.passed,
                           json.loads(row.reasons or "[]"), json.loads(row.metrics or "{}")))
    return dict(sorted(out.items()))


def _shadow(store: Store, workspace: Workspace, until: date) -> list[ShadowStanding]:
    """Every shadow rule's standing, judged by live_evidence's own gate checks (never recomputed here)."""
    return [shadow_standing(store, s.rule_id, workspace.settings, until=until)
            for s in registry.list_rules(store, state="shadow")]


def _coverage(history: pd.DataFrame) -> pd.DataFrame:
    if history.empty:
        return pd.DataFrame(columns=["intent", "locale", "fires", "traffic", "coverage"])
    traffic = history.groupby(["date", "locale"])["traffic"].max().groupby(level="locale").sum()
    fires = history.groupby(["intent", "locale"])["fires"].sum()
    grid = pd.MultiIndex.from_product([sorted(history["intent"].unique()), sorted(traffic.index)],
                                      names=["intent", "locale"])
    frame = fires.reindex(grid, fill_value=0).rename("fires").reset_index()
    frame["traffic"] = frame["locale"].map(traffic).astype("int64")
    frame["coverage"] = frame["fires"] / frame["traffic"].where(frame["traffic"] > 0)
    return frame


def _savings(history: pd.DataFrame, cost: float) -> pd.DataFrame:
    if history.empty:
        return pd.DataFrame(columns=["date", "fires", "shadow_n", "calls_saved", "cost_saved"])
    # Every fire answers a query without the model, except the shadow sample,
    # for which the model is called anyway.
    frame = history.groupby("date")[["fires", "shadow_n"]].sum().reset_index()
    frame["calls_saved"] = frame["fires"] - frame["shadow_n"]
    frame["cost_saved"] = frame["calls_saved"] * cost
    return frame


def _near_expiry(states: pd.DataFrame, now: datetime, within_days: int) -> pd.DataFrame:
    horizon = now + timedelta(days=within_days)
    rows = states[(states["state"] == "active") & states["expires_at"].notna()]
    rows = rows[np.array([e <= horizon for e in rows["expires_at"]], dtype=bool)].copy()
    rows["days_left"] = [(e - now).total_seconds() / 86400 for e in rows["expires_at"]]
    return rows.sort_values("days_left", ignore_index=True)


def _residual(workspace: Workspace, since: date, until: date) -> ResidualView:
    log_dir = workspace.log_dir
    if not log_dir.is_dir() or not any(p.is_file() for p in log_dir.rglob("*") if p.suffix in (".parquet", ".csv")):
        return ResidualView(f"no query log under {log_dir}; the residual view needs the model-labelled log")
    from rulelife.evidence.analysis import analyze

    try:
        bundle, analysis = analyze(workspace, since=since, until=until)
    except RulelifeError as exc:
        return ResidualView(f"the residual view could not be computed: {exc}")
    if not analysis.labelled:
        return ResidualView(f"the query log of {since}..{until} has no model-labelled rows", bundle.number)
    from rulelife.model.fallback import fallback_readiness
    from rulelife.model.run import measure_residual

    model = measure_residual(workspace, since=since, until=until)
    return ResidualView(f"bundle {bundle.number} (the current one) over the query log of {since}..{until}",
                        bundle.number, analysis, model.summary(), fallback_readiness(model).line(),
                        _calibration(workspace, since, until))


def _calibration(workspace: Workspace, since: date, until: date) -> list[str]:
    from rulelife.errors import NoLabels
    from rulelife.model.run import measure_calibration

    try:
        return measure_calibration(workspace, since=since, until=until).lines()
    except NoLabels:
        return ["calibration: unknown (no true_intent labels and no shadow sample in the window)"]


def gather(workspace: Workspace, store: Store, *, since: date | None = None, until: date | None = None,
           now: datetime | None = None, residual: bool = True) -> ReportData:
    """Read the store (and, with ``residual``, the query log) into a :class:`ReportData`.

    ``since`` defaults to :data:`DEFAULT_DAYS` days before ``until``, and is
    never earlier than the first day of metrics; ``until`` defaults to the
    newest metrics day (today when there are none). ``now`` (default: the
    clock) judges expiry, whose dates are wall-clock times.
    """
    settings = workspace.settings
    now = now or utcnow()
    until = until or _last_metric_day(store) or now.date()
    if since is not None and since > until:
        raise ConfigError(f"since={since} is after the newest metrics day {until}; pick an earlier --since")
    first = _first_metric_day(store)
    since = since or until - timedelta(days=DEFAULT_DAYS - 1)
    if first is not None and first <= until:
        since = max(since, first)
    found = {name: _enabled(workspace, name) for name in DRAWN}
    # Each drawn monitor gets the days before ``since`` it reads, and at least the horizon the
    # nightly job gives every monitor (a lookback of None: all of it).
    lookbacks = [d.monitor.lookback_days() for d in found.values() if d.monitor is not None]
    back = max([n for n in lookbacks if n is not None], default=0)
    history = load_metrics(store, min(since - timedelta(days=back), until - timedelta(days=HISTORY_DAYS)), until)
    in_window = history[history["date"] >= pd.Timestamp(since)]

    statuses = registry.list_rules(store)
    states = pd.DataFrame(
        [{"rule_id": s.rule_id, "intent": s.intent, "state": s.state.value, "version": s.version,
          "latest_version": s.latest_version, "expires_at": s.expires_at} for s in statuses],
        columns=["rule_id", "intent", "state", "version", "latest_version", "expires_at"],
    )
    context = MonitorContext(day=until, settings=settings, rules=_rule_infos(states))
    drawn = {name: _drawn(d, history, context, states) for name, d in found.items()}
    cusum = drawn[CUSUM_MONITOR]
    # The change points the CUSUM's findings name on the last day (tickets name the earlier ones).
    findings = cusum.monitor.check(history, context) if cusum.statistics is not None else []
    markers, auto_disables = _markers(store, since, until, findings, cusum.statistics)
    floor_stats = drawn[FLOOR_MONITOR].statistics
    floors = ({} if floor_stats is None or floor_stats.empty
              else floor_stats.groupby("rule_id")["low"].last().astype(float).to_dict())
    evaluations = _evaluation_history(store)
    return ReportData(
        workspace=str(workspace.root), generated_at=now, since=since, until=until,
        floor=settings.agreement_floor, model_call_cost=settings.model_call_cost,
        revalidate_within_days=settings.revalidate_within_days,
        states=states,
        daily=_daily(history, since),
        cusum=_in_window(cusum.statistics, since, ["value", "high", "alarm"]),
        cusum_h=_threshold(cusum.statistics), cusum_note=cusum.note,
        fire_rates=_in_window(drawn[COVERAGE_MONITOR].statistics, since,
                              ["fires", "traffic", "value", "median", "low", "high", "alarm"]),
        fire_rate_note=drawn[COVERAGE_MONITOR].note, floors=floors,
        coverage=_coverage(in_window), savings=_savings(in_window, settings.model_call_cost),
        markers=markers, tickets=_tickets(store), auto_disables=auto_disables,
        near_expiry=_near_expiry(states, now, settings.revalidate_within_days),
        evaluations={rule_id: views[-1] for rule_id, views in evaluations.items()},
        evaluation_history=evaluations,
        residual=_residual(workspace, since, until) if residual else ResidualView("not computed (residual=False)"),
        shadow=_shadow(store, workspace, until),
        vetoes=load_vetoes(store, since, until),
        model_changes=_model_changes(store, settings.model_revalidate_days),
    )


def _model_changes(store: Store, review_days: int) -> list[ModelChangeView]:
    return [ModelChangeView(c.first_day, c.previous_version, c.version, review_window(c.first_day, review_days)[1],
                            c.revalidated_on, c.ticket_id) for c in all_changes(store)]


def _in_window(stats: pd.DataFrame | None, since: date, columns: list[str]) -> pd.DataFrame:
    """The statistics' rows from ``since`` on, keyed by rule, locale and date (a column a monitor
    does not compute is NaN)."""
    keys = ["rule_id", "locale", "date"]
    if stats is None or stats.empty:
        return pd.DataFrame(columns=keys + columns)
    rows = stats[stats["date"] >= pd.Timestamp(since)]
    return rows.reindex(columns=keys + columns).reset_index(drop=True)


def _threshold(stats: pd.DataFrame | None) -> float | None:
    """The CUSUM's alarm threshold as its statistics carry it (one h for every series)."""
    if stats is None or stats.empty:
        return None
    return float(stats["high"].iloc[-1])
