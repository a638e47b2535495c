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
from rulelife.matcher import Explanation, Matcher, MatchResult
from rulelife.normalize import NORMALIZATION_VERSION, normalize
from rulelife.rules import Rule

__version__ = "0.1.0"

__all__ = [
    "NORMALIZATION_VERSION",
    "BundleError",
    "BundleIntegrityError",
    "ConfigError",
    "Explanation",
    "LifecycleError",
    "LogError",
    "MatchResult",
    "Matcher",
    "Rule",
    "RuleError",
    "RuleFileError",
    "RulelifeError",
    "StoreError",
    "UnknownRule",
    "WorkspaceNotFound",
    "normalize",
    "__version__",
]
