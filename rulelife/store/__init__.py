"""The registry store: rule versions, lifecycle states and the audit log."""

from rulelife.store.db import Store, utcnow
from rulelife.store.models import (
    AuditRow,
    DailyMetricRow,
    DatasetRow,
    DeliveryRow,
    EvaluationRow,
    EventDeliveryRow,
    EventRow,
    ModelChangeRow,
    ModelDayRow,
    NightlyRunRow,
    PromotionRow,
    ResidualBaselineRow,
    RuleStateRow,
    RuleVersionRow,
    SelectionRow,
    TicketEventRow,
    TicketRow,
)

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
    "Store",
    "TicketEventRow",
    "TicketRow",
    "utcnow",
]
