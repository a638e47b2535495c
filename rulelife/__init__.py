"""rulelife: lifecycle management for keyword rules in front of an intent model.

The façade holds what a chatbot service and a notebook reach for first. The
request path (``RuleClassifier`` and what it needs) is imported eagerly and
loads no SQL, pandas or great-expectations; :class:`Store`, :class:`Settings`
and :class:`Workspace` (SQLAlchemy, pydantic-settings) and :class:`Rule`
(pydantic) are imported on first
use, so ``from rulelife import RuleClassifier`` stays light.
"""

from rulelife._version import __version__
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
    StoreBusy,
    StoreError,
    UnknownRule,
    UnknownTicket,
    WorkspaceNotFound,
)
from rulelife.rules.lifecycle import State
from rulelife.rules.matcher import Explanation, LexiconVeto, Matcher, MatchResult
from rulelife.rules.normalize import NORMALIZATION_VERSION, normalize
from rulelife.serving.bundle import Bundle, BundleStore
from rulelife.serving.logwriter import QueryLogWriter
from rulelife.serving.runtime import Decision, Health, Match, RuleClassifier, format_lexicon_veto

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
    "Health",
    "JobLocked",
    "LexiconVeto",
    "LifecycleError",
    "LogError",
    "Match",
    "MatchResult",
    "Matcher",
    "NoDataset",
    "QueryLogWriter",
    "Rule",
    "RuleClassifier",
    "RuleError",
    "RuleFileError",
    "RulelifeError",
    "Settings",
    "State",
    "Store",
    "StoreBusy",
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


# Names the request path never needs, imported on first use (the store pulls
# in SQLAlchemy, the settings pydantic-settings, a rule pydantic: most of a cold import).
_LAZY = {"Store": "rulelife.store", "Settings": "rulelife.config", "Workspace": "rulelife.config",
         "Rule": "rulelife.rules.definition", "intent_slug": "rulelife.rules.definition"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'rulelife' has no attribute {name!r}")
