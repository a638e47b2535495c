"""The registry store: rule versions, lifecycle states and the audit log."""

from rulelife.store.db import Store, utcnow
from rulelife.store.models import (
    AuditRow,
    DailyMetricRow,
    DatasetRow,
    DeliveryRow,
    EvaluationRow,
    NightlyRunRow,
    PromotionRow,
    RuleStateRow,
    RuleVersionRow,
    TicketEventRow,
    TicketRow,
)

__all__ = [
    "AuditRow",
    "DailyMetricRow",
    "DatasetRow",
    "DeliveryRow",
    "EvaluationRow",
    "NightlyRunRow",
    "PromotionRow",
    "RuleStateRow",
    "RuleVersionRow",
    "Store",
    "TicketEventRow",
    "TicketRow",
    "utcnow",
]
