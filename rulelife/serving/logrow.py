"""The query log's columns: what the runtime writes and every batch job reads.

They live in the serving layer because the runtime's
:class:`~rulelife.serving.logwriter.QueryLogWriter` writes them and sits below
the reader; :mod:`rulelife.querylog.schema` gives each kind its dtype and
parses it.
"""

from __future__ import annotations

__all__ = ["LABEL_COLUMNS", "LEXICON_VETO_KEY_PATTERN", "LOG_COLUMNS", "MODEL_VERSION", "OPTIONAL_RUNTIME_COLUMNS", "REQUIRED_COLUMNS",
           "RUNTIME_COLUMNS", "SHADOW_RULES_PATTERN"]

# Column -> kind (string, timestamp: UTC, float, int, bool), in file order.
LOG_COLUMNS: dict[str, str] = {
    "query_id": "string",
    "ts": "timestamp",
    "text": "string",
    "locale": "string",
    "model_intent": "string",
    "model_confidence": "float",
    "rule_id": "string",
    "rule_version": "string",
    "bundle_version": "int",
    "shadow": "bool",
    "shadow_rules": "string",
    "lexicon_veto": "string",
    "model_version": "string",
}
REQUIRED_COLUMNS = ("query_id", "ts", "text", "locale", "model_intent", "model_confidence")
# Written by the chatbot runtime; a log from before the rules existed has none.
RUNTIME_COLUMNS = ("rule_id", "rule_version", "bundle_version", "shadow")
# Written by a runtime whose bundle holds shadow rules: the shadow rules that
# would have fired, as ``rule_id@version`` joined by ``;`` (ids are slugs and
# versions hex, so neither holds a separator); empty or NA when none. Optional:
# a log without the column is valid and reads as "no shadow rule fired".
# ``lexicon_veto``, written by a runtime whose bundle holds a safety lexicon:
# the rule that would have answered had a lexicon phrase not stopped it, as a
# JSON object ``{"rule_id@version": "phrase"}`` (JSON so any phrase round-trips;
# the key is a slug and a hex version as in shadow_rules); empty or NA when the
# lexicon changed nothing. Optional like shadow_rules.
OPTIONAL_RUNTIME_COLUMNS = ("shadow_rules", "lexicon_veto")
SHADOW_RULES_PATTERN = r"^[^;@\s]+@[0-9a-f]+(;[^;@\s]+@[0-9a-f]+)*$"
LEXICON_VETO_KEY_PATTERN = r"^[^;@\s]+@[0-9a-f]+$"
# ``model_version``: which model labelled the row (free text the service
# chooses, e.g. ``intent-clf-2026-05``), so the nightly can tell a retrained
# model from a drifting rule. Optional: a log without it reads as "unknown".
MODEL_VERSION = "model_version"
# Written by whoever labels traffic (an annotation job, a replay of a labelled
# set), never by the runtime: the intent the query truly had. Optional: a log
# without it reads as "unlabelled", and the model's accuracy is then unknown.
LABEL_COLUMNS: dict[str, str] = {"true_intent": "string"}
