"""rulelife: lifecycle management for keyword rules in front of an intent model.

The façade holds what a chatbot service and a notebook reach for first. The
request path (``RuleClassifier`` and what it needs) is imported eagerly and
loads no SQL, pandas or great-expectations; :class:`Store` is imported on
first use, so ``from rulelife import RuleClassifier`` stays light.
"""

from rulelife._version import __version__
from rulelife.config import Settings, Workspace
from rulelife.errors import (
    BundleError,
    BundleIntegrityError,
    ConfigError,
    GateRefused,
    JobLocked,
    LifecycleError,
    LogError,
    NoDataset,
    RuleError,
    RuleFileError,
    RulelifeError,
    StoreError,
    UnknownRule,
    UnknownTicket,
    WorkspaceNotFound,
)
from rulelife.rules.definition import Rule, intent_slug
from rulelife.rules.lifecycle import State
from rulelife.rules.matcher import Explanation, LexiconVeto, Matcher, MatchResult
from rulelife.rules.normalize import NORMALIZATION_VERSION, normalize
from rulelife.serving.bundle import Bundle, BundleStore
from rulelife.serving.runtime import Decision, Match, RuleClassifier, format_lexicon_veto

__all__ = [
    "NORMALIZATION_VERSION",
    "Bundle",
    "BundleError",
    "BundleIntegrityError",
    "BundleStore",
    "ConfigError",
    "Decision",
    "Explanation",
    "GateRefused",
    "JobLocked",
    "LexiconVeto",
    "LifecycleError",
    "LogError",
    "Match",
    "MatchResult",
    "Matcher",
    "NoDataset",
    "Rule",
    "RuleClassifier",
    "RuleError",
    "RuleFileError",
    "RulelifeError",
    "Settings",
    "State",
    "Store",
    "StoreError",
    "UnknownRule",
    "UnknownTicket",
    "Workspace",
    "WorkspaceNotFound",
    "__version__",
    "format_lexicon_veto",
    "intent_slug",
    "normalize",
]


def __getattr__(name: str):
    # The store pulls in SQLAlchemy (most of a cold import): only on first use.
    if name == "Store":
        from rulelife.store import Store

        globals()["Store"] = Store
        return Store
    raise AttributeError(f"module 'rulelife' has no attribute {name!r}")
