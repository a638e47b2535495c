"""Registry tables. Times are aware UTC (sqlmodel stores UTC on both backends
and returns aware values); JSON is text, so both backends hold the same values."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Text, UniqueConstraint
from sqlmodel import Field, SQLModel

__all__ = [
    "AuditRow",
    "DailyMetricRow",
    "DatasetRow",
    "DeliveryRow",
    "EvaluationRow",
    "EventDeliveryRow",
    "EventRow",
    "ModelChangeRow",
    "ModelDayRow",
    "NightlyRunRow",
    "PromotionRow",
    "ResidualBaselineRow",
    "RuleStateRow",
    "RuleVersionRow",
    "SelectionRow",
    "TicketEventRow",
    "TicketRow",
]


class RuleVersionRow(SQLModel, table=True):
    """One immutable version of a rule definition (canonical JSON)."""

    __tablename__ = "rule_versions"
    __table_args__ = (UniqueConstraint("rule_id", "version", name="uq_rule_version"),)

    id: int | None = Field(default=None, primary_key=True)
    rule_id: str = Field(index=True, max_length=200)
    version: str = Field(max_length=64)
    intent: str = Field(max_length=200)
    definition: str = Field(sa_type=Text)
    source_path: str = Field(default="", sa_type=Text)
    registered_at: datetime
    registered_by: str = Field(default="", max_length=200)


class RuleStateRow(SQLModel, table=True):
    """The one lifecycle state of a rule.

    Invariant: ``version`` is the version the state applies to (the live one
    for an active rule); ``latest_version`` is the newest registered, which
    differs from ``version`` while an edit of an active rule awaits promotion.
    """

    __tablename__ = "rule_states"

    rule_id: str = Field(primary_key=True, max_length=200)
    intent: str = Field(max_length=200)
    state: str = Field(max_length=20, index=True)
    version: str = Field(max_length=64)
    latest_version: str = Field(max_length=64)
    updated_at: datetime
    expires_at: datetime | None = None


class AuditRow(SQLModel, table=True):
    """One lifecycle event: who, when, why, and the evidence behind it."""

    __tablename__ = "audit_log"

    id: int | None = Field(default=None, primary_key=True)
    rule_id: str = Field(index=True, max_length=200)
    at: datetime = Field(index=True)
    actor: str = Field(max_length=200)
    action: str = Field(max_length=40)
    from_state: str | None = Field(default=None, max_length=20)
    to_state: str = Field(max_length=20)
    from_version: str | None = Field(default=None, max_length=64)
    to_version: str = Field(max_length=64)
    reason: str = Field(default="", sa_type=Text)
    evidence: str = Field(default="{}", sa_type=Text)


class DatasetRow(SQLModel, table=True):
    """A dataset snapshot built for one rule version (rows live in a Parquet file)."""

    __tablename__ = "datasets"

    content_hash: str = Field(primary_key=True, max_length=64)
    rule_id: str = Field(index=True, max_length=200)
    rule_version: str = Field(max_length=64)
    built_at: datetime = Field(index=True)
    built_by: str = Field(default="", max_length=200)
    window_start: datetime | None = None
    window_end: datetime | None = None
    rows: int
    fires: int  # times the rule fired in the window, labelled or not
    path: str = Field(sa_type=Text)
    meta: str = Field(default="{}", sa_type=Text)  # sources, counts per stratum, populations, notes


class EvaluationRow(SQLModel, table=True):
    """One evaluation of a rule version on a dataset, and the gate's verdict."""

    __tablename__ = "evaluations"

    id: int | None = Field(default=None, primary_key=True)
    rule_id: str = Field(index=True, max_length=200)
    rule_version: str = Field(max_length=64)
    dataset_hash: str = Field(max_length=64)
    at: datetime = Field(index=True)
    actor: str = Field(default="", max_length=200)
    passed: bool
    reasons: str = Field(default="[]", sa_type=Text)
    metrics: str = Field(default="{}", sa_type=Text)


class PromotionRow(SQLModel, table=True):
    """A successful promotion: which version went where, on what evidence, by whom."""

    __tablename__ = "promotions"

    id: int | None = Field(default=None, primary_key=True)
    rule_id: str = Field(index=True, max_length=200)
    rule_version: str = Field(max_length=64)
    dataset_hash: str = Field(max_length=64)
    evaluation_id: int | None = None
    at: datetime = Field(index=True)
    actor: str = Field(max_length=200)
    from_state: str = Field(max_length=20)
    to_state: str = Field(max_length=20)
    kind: str = Field(default="promote", max_length=20)  # promote | revalidate
    expires_at: datetime | None = None
    metrics: str = Field(default="{}", sa_type=Text)
    # The model versions that labelled the evidence (JSON, version -> labelled rows); NULL on rows written
    # before the log named model versions, or when it did not.
    model_versions: str | None = Field(default=None, sa_type=Text)


class SelectionRow(SQLModel, table=True):
    """The log days a miner looked at to choose a rule: its evidence must come from other days.

    Keyed by rule, not version: editing a mined rule does not un-see the
    rows that chose its phrases. ``heldout_*`` is the window the miner
    reported held-out figures on (never used to choose), when it had one.
    """

    __tablename__ = "selections"

    id: int | None = Field(default=None, primary_key=True)
    rule_id: str = Field(index=True, max_length=200)
    rule_version: str = Field(max_length=64)
    window_start: date
    window_end: date
    heldout_start: date | None = None
    heldout_end: date | None = None
    at: datetime
    actor: str = Field(default="", max_length=200)
    figures: str = Field(default="{}", sa_type=Text)  # the miner's selection and held-out counts


class DailyMetricRow(SQLModel, table=True):
    """One rule version's metrics for one UTC day and locale (see rulelife.monitoring.contract.METRIC_COLUMNS)."""

    __tablename__ = "daily_metrics"
    __table_args__ = (UniqueConstraint("day", "rule_id", "rule_version", "locale", name="uq_daily_metric"),)

    id: int | None = Field(default=None, primary_key=True)
    day: date = Field(index=True)
    rule_id: str = Field(index=True, max_length=200)
    rule_version: str = Field(max_length=64)
    intent: str = Field(max_length=200)
    locale: str = Field(max_length=40)
    traffic: int
    fires: int
    fire_rate: float
    shadow_n: int
    agree_n: int
    agreement: float | None = None
    safety_fp: int = 0
    fp_by_class: str = Field(default="{}", sa_type=Text)
    examples: str = Field(default="[]", sa_type=Text)
    # "active" (the rule answered) or "shadow" (it would have: live evidence
    # of a shadow rule); NULL on rows written before shadow rules were counted.
    serving: str | None = Field(default=None, max_length=10)
    # Messages a safety-lexicon phrase sent to the model where this rule would
    # have answered; NULL on rows written before vetoes were counted.
    vetoed: int | None = None
    # The model behind the day's labels: the version that labelled most rows, and every version named
    # (JSON, version -> rows); NULL when the log names none.
    model_version: str | None = Field(default=None, max_length=200)
    model_versions: str | None = Field(default=None, sa_type=Text)


class TicketRow(SQLModel, table=True):
    """A ticket for a person: one open ticket per subject × check.

    Invariant: ``open_key`` equals ``dedupe_key`` while the ticket is open and
    is NULL once closed, so the unique constraint allows one open ticket per
    key (both backends allow many NULLs) and any number of closed ones.
    """

    __tablename__ = "tickets"

    id: int | None = Field(default=None, primary_key=True)
    dedupe_key: str = Field(index=True, max_length=300)
    open_key: str | None = Field(default=None, unique=True, max_length=300)
    subject: str = Field(index=True, max_length=220)
    check: str = Field(max_length=100)
    locale: str | None = Field(default=None, max_length=40)
    severity: str = Field(max_length=20)
    status: str = Field(default="open", max_length=20, index=True)
    title: str = Field(sa_type=Text)
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None = None
    closed_by: str | None = Field(default=None, max_length=200)
    close_reason: str | None = Field(default=None, sa_type=Text)
    findings: int = 0
    first_day: date | None = None  # the day of the first finding (simulated or backfilled days included)
    last_day: date | None = None
    evidence: str = Field(default="{}", sa_type=Text)  # the newest finding's evidence


class TicketEventRow(SQLModel, table=True):
    """Something that happened to a ticket. ``fingerprint`` makes a re-run of
    the same day append nothing twice."""

    __tablename__ = "ticket_events"
    __table_args__ = (UniqueConstraint("ticket_id", "fingerprint", name="uq_ticket_event"),)

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(index=True)
    fingerprint: str = Field(max_length=300)
    kind: str = Field(max_length=20)  # opened | appended | action | closed
    at: datetime
    day: date | None = None
    body: str = Field(default="{}", sa_type=Text)
    # The id a receiver de-duplicates on (sent as Idempotency-Key); NULL on rows
    # written before events had ids, which are sent as ``ticket-event-<id>``.
    uid: str | None = Field(default=None, max_length=64)


class _Delivery(SQLModel):
    """What an outbox row holds, whichever kind of event it carries.

    ``status``: pending (delivered by the next run), delivered, or dead (the
    receiver refused it for good, e.g. HTTP 400: kept, reported, not retried
    until `rulelife events retry`). ``next_attempt_at``: the receiver asked
    (Retry-After) not to be called before then.
    """

    id: int | None = Field(default=None, primary_key=True)
    event_id: int = Field(index=True)
    sink: str = Field(max_length=40)
    status: str = Field(default="pending", max_length=20, index=True)  # pending | delivered | dead
    attempts: int = 0
    last_error: str | None = Field(default=None, sa_type=Text)
    updated_at: datetime
    next_attempt_at: datetime | None = None


class DeliveryRow(_Delivery, table=True):
    """The tickets' outbox: one row per ticket event and sink until it is delivered.
    A failed delivery stays pending for the next run; nothing is lost."""

    __tablename__ = "deliveries"
    __table_args__ = (UniqueConstraint("event_id", "sink", name="uq_delivery"),)


class EventRow(SQLModel, table=True):
    """A registry event: a rule changed state, a promotion was refused, a bundle was published or rolled back.

    Written in the transaction of the change it reports (a bundle's, from its
    publish history), so an event exists exactly when its change does.
    ``uid`` is the stable id a receiver de-duplicates on. ``queued`` turns
    true once the event has an outbox row for each sink configured when it
    was first delivered.
    """

    __tablename__ = "registry_events"

    id: int | None = Field(default=None, primary_key=True)
    uid: str = Field(unique=True, max_length=64)
    type: str = Field(max_length=60, index=True)  # rule.promoted, bundle.rolled_back, ... (README: Events)
    at: datetime = Field(index=True)
    actor: str = Field(default="", max_length=200)
    subject: str = Field(max_length=220, index=True)  # a rule id, or bundle:<number>
    data: str = Field(default="{}", sa_type=Text)
    queued: bool = Field(default=False, index=True)


class EventDeliveryRow(_Delivery, table=True):
    """The registry events' outbox: one row per event and sink until it is delivered."""

    __tablename__ = "event_deliveries"
    __table_args__ = (UniqueConstraint("event_id", "sink", name="uq_event_delivery"),)


class NightlyRunRow(SQLModel, table=True):
    """One attempt of the nightly job for one day (a re-run adds a row)."""

    __tablename__ = "nightly_runs"

    id: int | None = Field(default=None, primary_key=True)
    day: date = Field(index=True)
    started_at: datetime
    finished_at: datetime | None = None
    status: str = Field(default="running", max_length=20)  # running | ok | no_traffic | failed | crashed
    actor: str = Field(default="nightly", max_length=200)
    summary: str = Field(default="{}", sa_type=Text)


class ResidualBaselineRow(SQLModel, table=True):
    """The model on the residual of one bundle, frozen when the bundle first served labelled traffic.

    A later drop below it happened under the same rules, so it is the model's
    (or the traffic's), not the rules' shift. Frozen once; a person may refreeze.
    """

    __tablename__ = "residual_baselines"

    bundle_version: int = Field(primary_key=True)  # -1: traffic no bundle stamped
    first_day: date
    last_day: date
    frozen_at: datetime
    frozen_by: str = Field(default="", max_length=200)
    queries: int
    residual: int
    labelled: int
    correct: int
    residual_labelled: int
    residual_correct: int
    summary: str = Field(default="{}", sa_type=Text)  # residual share, accuracies with intervals, confidences


class ModelDayRow(SQLModel, table=True):
    """The model versions one counted day's log named, and the dominant one (a re-run replaces the row)."""

    __tablename__ = "model_days"

    day: date = Field(primary_key=True)
    model_version: str = Field(max_length=200)  # dominant: labelled most of the day's rows
    versions: str = Field(default="{}", sa_type=Text)  # JSON, version -> rows
    counted_at: datetime


class ModelChangeRow(SQLModel, table=True):
    """A model change: the first counted day whose dominant version differs from the previous counted day's.

    The first version ever seen is a start, not a change, and has no row.
    ``revalidated_on`` and ``ticket_id`` are set once, when the nightly has
    re-validated the active rules against the new model's labels and filed
    the one ticket of the change.
    """

    __tablename__ = "model_changes"

    id: int | None = Field(default=None, primary_key=True)
    first_day: date = Field(unique=True)
    version: str = Field(max_length=200)
    previous_version: str = Field(max_length=200)
    detected_at: datetime
    revalidated_on: date | None = None
    ticket_id: int | None = None
