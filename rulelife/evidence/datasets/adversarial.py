"""The curated adversarial file kept next to a rule.

``rules/<slug>/<name>.yaml`` has its adversarial queries in
``rules/<slug>/<name>.adversarial.csv`` (``<slug>`` is the intent's slug, the
rule id's first part) with columns text, locale, model_intent, note: queries
written to trip the rule, each labelled with what the model answers for it
(the intent exactly as the model emits it).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from rulelife.errors import RuleFileError

__all__ = ["ADVERSARIAL_COLUMNS", "adversarial_path", "read_adversarial"]

ADVERSARIAL_COLUMNS = ("text", "locale", "model_intent", "note")


def adversarial_path(rules_dir: Path, rule_id: str) -> Path:
    # The id, not the intent, names the place: it is already the folder's slug.
    folder, _, name = rule_id.partition(".")
    return Path(rules_dir) / folder / f"{name.replace('.', '/')}.adversarial.csv"


def read_adversarial(path: Path) -> pd.DataFrame | None:
    """The adversarial rows, or None when the rule has no such file (allowed)."""
    if not path.exists():
        return None
    try:
        frame = pd.read_csv(path, dtype="string", keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise RuleFileError(f"{path}: cannot read the adversarial file ({exc}); fix the CSV") from None
    missing = [c for c in ADVERSARIAL_COLUMNS if c not in frame.columns]
    if missing:
        raise RuleFileError(
            f"{path}: missing column(s) {', '.join(missing)}; the header must be {','.join(ADVERSARIAL_COLUMNS)}"
        )
    empty = frame.index[frame["text"].str.strip() == ""].tolist()
    if empty:
        raise RuleFileError(f"{path}: row(s) {', '.join(str(i + 2) for i in empty)} have empty text; fill or delete them")
    return frame[list(ADVERSARIAL_COLUMNS)].reset_index(drop=True)
