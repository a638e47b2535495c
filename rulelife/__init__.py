"""rulelife: lifecycle management for keyword rules in front of an intent model."""

from rulelife.errors import (
    BundleError,
    BundleIntegrityError,
    ConfigError,
    LifecycleError,
    LogError,
    RuleError,
    RuleFileError,
    RulelifeError,
    StoreError,
    UnknownRule,
    WorkspaceNotFound,
)
from rulelife.matcher import Explanation, LexiconVeto, Matcher, MatchResult
from rulelife.normalize import NORMALIZATION_VERSION, normalize
from rulelife.rules import Rule, intent_slug
from rulelife.runtime import Decision, Match, RuleClassifier, format_lexicon_veto
from rulelife.bundle import Bundle, BundleStore
from rulelife.config import Settings, Workspace
from rulelife.lifecycle import State
from rulelife.store import Store

__version__ = "0.1.0"

__all__ = [
    "NORMALIZATION_VERSION",
    "BundleError",
    "BundleIntegrityError",
    "ConfigError",
    "Bundle",
    "BundleStore",
    "Explanation",
    "LexiconVeto",
    "LifecycleError",
    "LogError",
    "Decision",
    "Match",
    "MatchResult",
    "Matcher",
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
    "Workspace",
    "WorkspaceNotFound",
    "format_lexicon_veto",
    "normalize",
    "intent_slug",
    "__version__",
]
