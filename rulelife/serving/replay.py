"""Replay a query log through a published bundle, as the runtime would have.

The chatbot service writes, for every query, the rule that answered (if any),
its version, the bundle version, the shadow flag, the shadow rules that
would have fired (``shadow_rules``) and the rule the safety lexicon stopped
(``lexicon_veto``); the model is called only when no rule
answered or the query is in the shadow sample. Replaying a
model-labelled log (such as simulated traffic) through a bundle produces
exactly those columns, so every offline job sees production-shaped data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from rulelife.serving.runtime import RuleClassifier, format_lexicon_veto, format_shadow_rules

__all__ = ["ReplaySummary", "replay", "summarize_replay"]


def replay(log: pd.DataFrame, classifier: RuleClassifier) -> pd.DataFrame:
    """Return a copy of ``log`` with the runtime columns filled.

    ``model_intent`` and ``model_confidence`` are blanked on rule answers
    outside the shadow sample, because in production the model never saw them.
    """
    bundle = classifier.bundle
    decisions = classifier.decide_many(log["text"], log["locale"], log["query_id"].astype(str))
    matches = [d.match for d in decisions]
    hit = np.fromiter((m is not None for m in matches), dtype=bool, count=len(matches))
    versions = {rule.id: rule.version for rule in bundle.shadow_rules}
    out = log.copy()
    out["rule_id"] = pd.array([m.rule_id if m else None for m in matches], dtype="string")
    out["rule_version"] = pd.array([m.rule_version if m else None for m in matches], dtype="string")
    # A miss names its bundle too where shadow rules fired or the lexicon
    # stopped a rule: their versions live there.
    out["bundle_version"] = pd.array(
        [d.bundle_version if d.match or d.shadow_rules or d.veto else None for d in decisions], dtype="Int64")
    out["shadow"] = pd.array([m.shadow if m else None for m in matches], dtype="boolean")
    out["shadow_rules"] = pd.array(
        [format_shadow_rules((r, versions[r]) for r in d.shadow_rules) for d in decisions], dtype="string")
    out["lexicon_veto"] = pd.array([format_lexicon_veto(d.veto) for d in decisions], dtype="string")
    unseen = hit & ~out["shadow"].fillna(False).to_numpy(dtype=bool)
    out["model_intent"] = out["model_intent"].astype("string").mask(unseen)
    out["model_confidence"] = out["model_confidence"].astype("Float64").mask(unseen)
    return out


@dataclass(frozen=True)
class ReplaySummary:
    """What a replayed log says about the rules: a DataFrame per rule plus totals."""

    queries: int
    rule_answers: int
    shadow_answers: int
    model_calls: int
    model_calls_saved: int
    per_rule: pd.DataFrame  # rule_id, intent, fires, fire_rate, shadow_n, agree_n, agreement

    @property
    def coverage(self) -> float:
        return self.rule_answers / self.queries if self.queries else 0.0

    def to_dict(self) -> dict:
        return {
            "queries": self.queries,
            "rule_answers": self.rule_answers,
            "coverage": round(self.coverage, 4),
            "shadow_answers": self.shadow_answers,
            "model_calls": self.model_calls,
            "model_calls_saved": self.model_calls_saved,
            "per_rule": self.per_rule.to_dict(orient="records"),
        }


def summarize_replay(replayed: pd.DataFrame, rule_intents: dict[str, str]) -> ReplaySummary:
    """Fire rate, shadow share and agreement (on shadow rows) per rule."""
    hits = replayed[replayed["rule_id"].notna()]
    shadow = hits[hits["shadow"].fillna(False).astype(bool)]
    queries = len(replayed)
    fires = hits.groupby("rule_id").size()
    shadow_n = shadow.groupby("rule_id").size()
    intents = shadow["rule_id"].map(rule_intents)
    agree_n = (shadow["model_intent"] == intents).groupby(shadow["rule_id"]).sum()
    per_rule = pd.DataFrame({"fires": fires, "shadow_n": shadow_n, "agree_n": agree_n}).fillna(0).astype(int)
    per_rule.index.name = "rule_id"
    per_rule = per_rule.reset_index()
    per_rule.insert(1, "intent", per_rule["rule_id"].map(rule_intents))
    per_rule["fire_rate"] = per_rule["fires"] / queries if queries else 0.0
    # Agreement is only measurable on the shadow sample; None where it is empty.
    per_rule["agreement"] = [a / n if n else None for a, n in zip(per_rule["agree_n"], per_rule["shadow_n"])]
    per_rule = per_rule.sort_values(["fires", "rule_id"], ascending=[False, True], ignore_index=True)
    rule_answers = len(hits)
    return ReplaySummary(
        queries=queries,
        rule_answers=rule_answers,
        shadow_answers=len(shadow),
        model_calls=queries - rule_answers + len(shadow),
        model_calls_saved=rule_answers - len(shadow),
        per_rule=per_rule,
    )
