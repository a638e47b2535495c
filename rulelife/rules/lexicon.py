"""The safety lexicon: reviewed phrases that send a message to the model.

Cost optimisation stops at safety boundaries. A message that holds a lexicon
phrase of a safety intent is never answered by a rule of another intent: it
goes to the model. The lexicon is one YAML file, ``<rules_dir>/safety_lexicon.yaml``,
reviewed like rules (proposals come from ``rulelife safety mine``; hand
additions are welcome), linted, and compiled into the bundle, whose version
it is part of::

    owner: trust-and-safety
    phrases:
      - {phrase: stolen, intent: escalation}
      - {phrase: speak to a human, intent: escalation}
      - {phrase: 返品, intent: return_request, locales: [ja-JP], match: substring}
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rulelife.errors import RuleFileError
from rulelife.rules.definition import LEXICON_FILE, read_yaml
from rulelife.rules.normalize import normalize
from rulelife.rules.stopwords import stop_words_for

__all__ = ["LEXICON_FILE", "Lexicon", "LexiconEntry", "lexicon_path", "lint_lexicon", "load_lexicon"]



class LexiconEntry(BaseModel):
    """One phrase that signals a safety intent."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    phrase: str = Field(min_length=1)
    intent: str = Field(min_length=1)
    locales: tuple[str, ...] = ("*",)
    match: str = Field("word", pattern="^(word|substring)$")
    note: str = ""


class Lexicon(BaseModel):
    """Every reviewed safety phrase; its version is the hash of its canonical content."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    owner: str = Field(min_length=1)
    phrases: tuple[LexiconEntry, ...] = ()

    @property
    def version(self) -> str:
        """Editing the lexicon makes a new version (and so a new bundle).

        >>> Lexicon(owner="t", phrases=[LexiconEntry(phrase="stolen", intent="escalation")]).version
        '8b3944d73ccf'
        """
        entries = sorted({json.dumps(e.model_dump(mode="json", exclude={"note"}), sort_keys=True)
                          for e in self.phrases})
        return hashlib.sha256("\n".join(entries).encode("utf-8")).hexdigest()[:12]

    def intents(self) -> list[str]:
        return sorted({e.intent for e in self.phrases})


def lexicon_path(rules_dir: Path) -> Path:
    return Path(rules_dir) / LEXICON_FILE


def _read(path: Path) -> object:
    return read_yaml(path)  # one YAML reader, with its line-numbered errors


def load_lexicon(rules_dir: Path) -> Lexicon | None:
    """The workspace's lexicon, or None when it has none; raises on an invalid file."""
    path = lexicon_path(rules_dir)
    if not path.is_file():
        return None
    data = _read(path)
    try:
        return Lexicon.model_validate(data if data is not None else {})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "<file>"
        raise RuleFileError(f"{path}: {where}: {first['msg']}; fix the entry (see `rulelife rules lint`)") from None


def lint_lexicon(rules_dir: Path, safety_intents: list[str]) -> list[tuple[str, str]]:
    """Every problem of the lexicon file as (field, message); [] when it is clean or absent."""
    path = lexicon_path(rules_dir)
    if not path.is_file():
        return []
    try:
        data = _read(path)
    except RuleFileError as exc:
        return [("<file>", str(exc).split(": ", 1)[-1])]
    try:
        lexicon = Lexicon.model_validate(data if data is not None else {})
    except ValidationError as exc:
        return [(".".join(str(p) for p in e["loc"]) or "<file>", f"{e['msg']}; fix the entry")
                for e in exc.errors()]
    problems = []
    seen: dict[tuple[str, str], int] = {}
    for i, entry in enumerate(lexicon.phrases):
        where = f"phrases[{i}]"
        norm = normalize(entry.phrase)
        stops = stop_words_for(list(entry.locales))
        if len(norm) < 2:
            problems.append((where, f"{entry.phrase!r} normalises to {norm!r}, one character or none: it would "
                                    "veto almost every message; write a word or a phrase"))
        elif entry.match == "word" and all(w in stops for w in norm.split()):
            problems.append((where, f"{entry.phrase!r} is only stop words: it would veto almost every message; "
                                    "write the content word (e.g. 'stolen', 'speak to a human')"))
        if entry.intent not in safety_intents:
            problems.append((where, f"intent {entry.intent!r} is not a safety intent ({', '.join(safety_intents)}); "
                                    "add it to safety_intents in rulelife.toml or fix the entry"))
        key = (norm, entry.intent)
        if key in seen:
            problems.append((where, f"{entry.phrase!r} repeats phrases[{seen[key]}]; remove one"))
        seen.setdefault(key, i)
    return problems
