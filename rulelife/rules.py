"""Rule definitions: one YAML file a rule, versioned by the hash of its content.

A rule file lives at ``rules/<intent>/<name>.yaml`` and its id is
``<intent>.<name>``. Lifecycle state is deliberately not in the file: it lives
in the registry, so the nightly job can disable a rule without a commit.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from rulelife.errors import RuleFileError

__all__ = [
    "RULE_FIELDS",
    "Rule",
    "RuleFile",
    "iter_rule_files",
    "load_rule",
    "load_rules",
    "parse_rule",
    "read_yaml",
    "rule_to_yaml",
]

MatchMode = Literal["word", "substring"]

_ID_PATTERN = r"^[a-z0-9_]+(\.[a-z0-9_]+)+$"


class Rule(BaseModel):
    """One keyword rule: any pattern fires it, any exclude phrase vetoes it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=_ID_PATTERN, description="dotted id, <intent>.<name>")
    intent: str = Field(min_length=1)
    patterns: tuple[str, ...] = Field(min_length=1)
    exclude: tuple[str, ...] = ()
    locales: tuple[str, ...] = ("*",)
    match: MatchMode = "word"
    priority: int = 0
    owner: str = Field(min_length=1)
    description: str = ""

    @field_validator("patterns", "exclude")
    @classmethod
    def _phrases_are_text(cls, phrases: tuple[str, ...]) -> tuple[str, ...]:
        for phrase in phrases:
            if not phrase.strip():
                raise ValueError("phrases must not be empty; remove the empty entry")
        return phrases

    @field_validator("locales")
    @classmethod
    def _locales_not_empty(cls, locales: tuple[str, ...]) -> tuple[str, ...]:
        if not locales:
            raise ValueError('list at least one locale, or ["*"] for every locale')
        return locales

    def canonical(self) -> dict:
        """The definition with order-insensitive lists sorted and de-duplicated.

        Reordering patterns or reformatting the YAML does not change what the
        rule does, so it does not make a new version.
        """
        data = self.model_dump(mode="json")
        for key in ("patterns", "exclude", "locales"):
            data[key] = sorted(set(data[key]))
        return data

    @property
    def version(self) -> str:
        """Content hash of :meth:`canonical`: editing the rule makes a new version."""
        payload = json.dumps(self.canonical(), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:12]


RULE_FIELDS = tuple(Rule.model_fields)


@dataclass(frozen=True)
class RuleFile:
    """A rule together with where it was read from."""

    path: Path
    rule: Rule


def iter_rule_files(rules_dir: Path) -> Iterator[Path]:
    """Yield every ``*.yaml`` / ``*.yml`` file under ``rules_dir``, sorted."""
    rules_dir = Path(rules_dir)
    if not rules_dir.is_dir():
        raise RuleFileError(
            f"rules folder {rules_dir} does not exist; create it or set rules_dir "
            "in rulelife.toml"
        )
    files = [*rules_dir.rglob("*.yaml"), *rules_dir.rglob("*.yml")]
    yield from sorted(p for p in files if p.is_file())


def parse_rule(data: object, source: str) -> Rule:
    """Validate already-parsed YAML into a :class:`Rule`, naming every bad field."""
    if not isinstance(data, dict):
        raise RuleFileError(f"{source}: a rule file must be a mapping of fields, got {type(data).__name__}")
    try:
        return Rule.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(_describe(err) for err in exc.errors())
        raise RuleFileError(f"{source}: {problems}") from None


def _describe(err: dict) -> str:
    field = ".".join(str(part) for part in err["loc"]) or "<rule>"
    if err["type"] == "missing":
        return f"field '{field}' is missing; add it"
    if err["type"] == "extra_forbidden":
        allowed = ", ".join(RULE_FIELDS)
        return f"field '{field}' is unknown; allowed fields are {allowed}"
    return f"field '{field}': {err['msg']}"


def read_yaml(path: Path) -> object:
    """Read one YAML document, turning parser errors into :class:`RuleFileError`."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RuleFileError(f"{path}: cannot read the file ({exc})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or str(exc)
        raise RuleFileError(f"{path}: invalid YAML{where}: {problem}") from None


def load_rule(path: Path) -> Rule:
    """Read and validate one rule file."""
    return parse_rule(read_yaml(path), str(path))


def load_rules(rules_dir: Path) -> list[RuleFile]:
    """Load every rule under ``rules_dir``; raise on the first invalid file.

    Use :func:`rulelife.lint.lint_rules` to see every problem at once.
    """
    return [RuleFile(path, load_rule(path)) for path in iter_rule_files(rules_dir)]


def rule_to_yaml(rule: Rule) -> str:
    """Render a rule as the YAML a person would write (field order kept)."""
    data = rule.model_dump(mode="json")
    if not data["exclude"]:
        del data["exclude"]
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
