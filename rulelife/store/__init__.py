"""The registry store: rule versions, lifecycle states and the audit log."""

from rulelife.store.db import Store, utcnow
from rulelife.store.models import AuditRow, DatasetRow, EvaluationRow, PromotionRow, RuleStateRow, RuleVersionRow

__all__ = [
    "AuditRow",
    "DatasetRow",
    "EvaluationRow",
    "PromotionRow",
    "RuleStateRow",
    "RuleVersionRow",
    "Store",
    "utcnow",
]
