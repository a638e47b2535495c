"""Registry tables. Times are aware UTC (sqlmodel stores UTC on both backends
and returns aware values); JSON is text, so both backends hold the same values."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Text, UniqueConstraint
from sqlmodel import Field, SQLModel

__all__ = ["AuditRow", "DatasetRow", "EvaluationRow", "PromotionRow", "RuleStateRow", "RuleVersionRow"]


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
