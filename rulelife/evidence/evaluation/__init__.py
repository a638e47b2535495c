"""Evaluation of a rule version against the model, and its statistics."""

from rulelife.evidence.evaluation.evaluate import Evaluation, StratumResult, evaluate_rule
from rulelife.evidence.evaluation.stats import (
    StratifiedEstimate,
    rule_of_three,
    samples_to_settle,
    stratified_agreement,
    wilson_interval,
)

__all__ = [
    "Evaluation",
    "StratifiedEstimate",
    "StratumResult",
    "evaluate_rule",
    "rule_of_three",
    "samples_to_settle",
    "stratified_agreement",
    "wilson_interval",
]
