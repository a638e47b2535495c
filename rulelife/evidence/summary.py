"""One table per rule: coverage, overlaps, conflicts, agreement with the model and safety false positives.

The view a team reviewing a batch of rules expects (Snorkel's
``LFAnalysis.lf_summary`` is the model): one row per rule, whatever its state,
from one pass over the log (:func:`rulelife.evidence.analysis.analyze`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from rulelife.config import Workspace
from rulelife.errors import ConfigError
from rulelife.evidence.analysis import BundleAnalysis
from rulelife.evidence.evaluation.stats import wilson_interval
from rulelife.rules.lifecycle import State
from rulelife.rules.matcher import CompiledRule, compile_rule
from rulelife.store import Store, registry

__all__ = ["RULE_STATES", "SUMMARY_COLUMNS", "parse_states", "registry_rules", "rule_summary"]

# What `--rules all` means: every rule that serves, is matched in shadow, or waits to.
RULE_STATES = (State.CANDIDATE.value, State.SHADOW.value, State.ACTIVE.value)
SUMMARY_COLUMNS = ["rule_id", "state", "intent", "fires", "coverage", "wins", "overlaps", "conflicts", "labelled",
                   "agreement", "agreement_low", "agreement_high", "safety_fp"]


def parse_states(text: str) -> list[str]:
    """``"candidate,active"`` or ``"all"`` as a list of lifecycle states.

    >>> parse_states("candidate, active")
    ['candidate', 'active']
    >>> parse_states("all")
    ['candidate', 'shadow', 'active']
    """
    names = [part.strip().lower() for part in text.split(",") if part.strip()]
    if names == ["all"]:
        return list(RULE_STATES)
    unknown = [name for name in names if name not in {s.value for s in State}]
    if not names or unknown:
        raise ConfigError(f"--rules takes lifecycle states separated by commas ({', '.join(RULE_STATES)}, "
                          f"disabled, ...) or all; got {text!r}")
    return names


def registry_rules(workspace: Workspace, states: Sequence[str], store: Store | None = None) -> list[CompiledRule]:
    """The registry's rules in ``states``, each at the version its state names, compiled."""
    store = store or Store.from_workspace(workspace)
    rules = [compile_rule(registry.rule_definition(store, status.rule_id))
             for state in dict.fromkeys(states) for status in registry.list_rules(store, state=state)]
    if not rules:
        raise ConfigError(f"no rule is in state {' or '.join(states)}; see `rulelife rules list`")
    return rules


def rule_summary(analysis: BundleAnalysis, states: Mapping[str, str]) -> pd.DataFrame:
    """One row a rule of the analysis (columns :data:`SUMMARY_COLUMNS`), by state then fires.

    ``coverage`` is the share of all queries the rule fires on; ``overlaps`` and
    ``conflicts`` count the queries on which it fires with another rule (of any
    intent, of another intent); ``agreement`` is the share of its labelled
    fires on which the model said the rule's intent, with a 95% Wilson
    interval; ``safety_fp`` counts its labelled fires on which the model said
    a safety intent other than the rule's.
    """
    c = analysis.counts
    rows = []
    for rule_id, intent in c.intents.items():
        labelled, agree = c.labelled_fires[rule_id], c.agrees[rule_id]
        low, high = wilson_interval(agree, labelled) if labelled else (np.nan, np.nan)
        rows.append([rule_id, states.get(rule_id, "unregistered"), intent, c.fires[rule_id],
                     c.fires[rule_id] / c.queries if c.queries else np.nan, c.wins[rule_id], c.overlapped[rule_id],
                     c.conflicted[rule_id], labelled, agree / labelled if labelled else np.nan, low, high,
                     c.safety_fps[rule_id]])
    frame = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    order = {state: rank for rank, state in enumerate(("active", "shadow", "candidate"))}
    frame["_order"] = frame["state"].map(lambda s: order.get(s, len(order)))
    frame = frame.sort_values(["_order", "fires", "rule_id"], ascending=[True, False, True], ignore_index=True)
    return frame.drop(columns="_order")
