"""The stored evaluations of a rule: list them, show one, compare two.

Every ``rulelife evaluate`` and every promotion (refused ones included) keeps
its evaluation: the gate's verdict and reasons, and the numbers behind them.
This module reads them back, newest first, as
:class:`EvaluationRecord` objects; :func:`compare` puts two side by side
(by default the rule's two newest), so a reviewer sees what moved between a
refusal and the next try.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import select

from rulelife.errors import RulelifeError
from rulelife.store import EvaluationRow, Store, registry

__all__ = ["Comparison", "EvaluationRecord", "compare", "get_evaluation", "list_evaluations"]


@dataclass(frozen=True)
class EvaluationRecord:
    """One stored evaluation of a rule version and the gate's verdict."""

    id: int
    rule_id: str
    rule_version: str
    dataset_hash: str
    at: datetime
    actor: str
    passed: bool
    reasons: tuple[str, ...]
    metrics: dict  # Evaluation.to_dict() as stored

    @property
    def figures(self) -> dict:
        """The numbers a reviewer compares, by name (None where the evaluation had none)."""
        production = self.metrics.get("production") or {}
        return {
            "agreement": _number(production.get("estimate")),
            "agreement_low": _number(production.get("low")),
            "agreement_high": _number(production.get("high")),
            "rows": self.metrics.get("rows"),
            "production_rows": production.get("n"),
            "safety_false_positives": self.metrics.get("safety_false_positives"),
            "severity_weighted_fp": _number(self.metrics.get("severity_weighted_fp")),
            "fires_per_day": _number(self.metrics.get("fires_per_day")),
            "samples_to_settle": self.metrics.get("samples_to_settle"),
        }

    def to_dict(self, *, metrics: bool = False) -> dict:
        data = {"id": self.id, "rule_id": self.rule_id, "rule_version": self.rule_version,
                "dataset_hash": self.dataset_hash, "at": self.at.isoformat(), "actor": self.actor,
                "passed": self.passed, "reasons": list(self.reasons), **self.figures}
        if metrics:
            data["metrics"] = self.metrics
        return data


def _number(value) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def _record(row: EvaluationRow) -> EvaluationRecord:
    return EvaluationRecord(row.id, row.rule_id, row.rule_version, row.dataset_hash, row.at, row.actor, row.passed,
                            tuple(json.loads(row.reasons)), json.loads(row.metrics))


def list_evaluations(store: Store, rule_id: str) -> list[EvaluationRecord]:
    """Every stored evaluation of ``rule_id``, newest first; raises UnknownRule for an unknown id."""
    registry.get_status(store, rule_id)
    with store.session() as session:
        rows = session.exec(select(EvaluationRow).where(EvaluationRow.rule_id == rule_id)
                            .order_by(EvaluationRow.at.desc(), EvaluationRow.id.desc())).all()
    return [_record(row) for row in rows]


def get_evaluation(store: Store, rule_id: str, evaluation_id: int | None = None) -> EvaluationRecord:
    """Evaluation ``evaluation_id`` of ``rule_id`` (default: its newest)."""
    records = list_evaluations(store, rule_id)
    if not records:
        raise RulelifeError(f"{rule_id} has no stored evaluation; run `rulelife evaluate {rule_id}`")
    if evaluation_id is None:
        return records[0]
    for record in records:
        if record.id == evaluation_id:
            return record
    ids = ", ".join(str(r.id) for r in records)
    raise RulelifeError(f"evaluation {evaluation_id} is not one of {rule_id}'s (its evaluations: {ids}); "
                        f"see `rulelife evaluations list {rule_id}`")


@dataclass(frozen=True)
class Comparison:
    """Two evaluations of one rule side by side: ``rows`` is (what, in a, in b, change)."""

    a: EvaluationRecord
    b: EvaluationRecord
    rows: tuple[tuple[str, object, object, object], ...]
    reasons_gone: tuple[str, ...]  # in a's refusal, not in b's
    reasons_new: tuple[str, ...]

    def to_dict(self) -> dict:
        return {"a": self.a.to_dict(), "b": self.b.to_dict(),
                "rows": [{"what": w, "a": x, "b": y, "change": c} for w, x, y, c in self.rows],
                "reasons_gone": list(self.reasons_gone), "reasons_new": list(self.reasons_new)}


def compare(store: Store, rule_id: str, a: int | None = None, b: int | None = None) -> Comparison:
    """Evaluations ``a`` (older) and ``b`` of ``rule_id``; by default its two newest."""
    records = list_evaluations(store, rule_id)
    if a is None and b is None:
        if len(records) < 2:
            raise RulelifeError(f"{rule_id} has {len(records)} stored evaluation(s); compare needs two "
                                f"(run `rulelife evaluate {rule_id}` again, or name two ids)")
        older, newer = records[1], records[0]
    else:
        if a is None or b is None:
            raise RulelifeError("name both evaluations to compare, or neither (the two newest)")
        older, newer = get_evaluation(store, rule_id, a), get_evaluation(store, rule_id, b)
    fields = [("version", older.rule_version, newer.rule_version), ("dataset", older.dataset_hash[:12],
              newer.dataset_hash[:12]), ("passed", older.passed, newer.passed)]
    fields += [(name, older.figures[name], newer.figures[name]) for name in older.figures]
    rows = tuple((name, x, y, _change(x, y)) for name, x, y in fields)
    return Comparison(older, newer, rows, tuple(r for r in older.reasons if r not in newer.reasons),
                      tuple(r for r in newer.reasons if r not in older.reasons))


def _change(x, y):
    """b - a for numbers (rounded to 4 places), 'changed' or '' otherwise.

    >>> _change(0.93, 0.97), _change(True, False), _change("v1", "v1")
    (0.04, 'changed', '')
    """
    if isinstance(x, (int, float)) and isinstance(y, (int, float)) and not isinstance(x, bool) \
            and not isinstance(y, bool):
        return round(y - x, 4)
    return "" if x == y else "changed"
