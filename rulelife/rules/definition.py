"""Rule definitions: one YAML file a rule, versioned by the hash of its content.

A rule file lives at ``rules/<slug>/<name>.yaml`` and its id is
``<slug>.<name>``, where ``<slug>`` is :func:`intent_slug` of the rule's
intent. The ``intent`` field holds the intent exactly as the model emits it
(any case, punctuation or script); ids are slugs because they are file names
and URL parts. Lifecycle state is deliberately not in the file: it lives in
the registry, so the nightly job can disable a rule without a commit.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal, NamedTuple

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.tokens import AliasToken, AnchorToken, ScalarToken

from rulelife.errors import RuleFileError, clip, preview

# The safety lexicon sits beside the intent folders and is not a rule (see rules.lexicon).
LEXICON_FILE = "safety_lexicon.yaml"

__all__ = [
    "MAX_INTENT_LENGTH",
    "MAX_PHRASES",
    "MAX_PHRASE_LENGTH",
    "MAX_PRIORITY",
    "MAX_RULE_FILE_BYTES",
    "RULE_FIELDS",
    "Rule",
    "RuleFile",
    "YamlDocument",
    "check_rule",
    "intent_slug",
    "iter_rule_files",
    "load_rule",
    "load_rules",
    "parse_rule",
    "read_yaml",
    "read_yaml_document",
    "rule_json_schema",
    "rule_to_yaml",
]

MatchMode = Literal["word", "substring"]

_ID_PATTERN = r"^[a-z0-9_]+(\.[a-z0-9_]+)+$"

# The registry stores intents in 200-character columns, and a bundle-level
# ticket's subject ("bundle:<intent>|<locale>") in 220; 120 leaves room for both.
MAX_INTENT_LENGTH = 120
# The registry's rule-id column.
_MAX_ID_LENGTH = 200
# Bounds on what one rule file may ask of lint, the automaton and every
# request: a keyword phrase is a few words, and a rule that needs more than a
# thousand of them is several rules. The shipped rules use at most 28
# characters and 6 patterns.
MAX_PHRASE_LENGTH = 200
MAX_PHRASES = 1_000
# A locale tag (BCP 47 asks tools to hold at least 35 characters) and how many a rule may list.
_MAX_LOCALE_LENGTH = 64
_MAX_LOCALES = 100
# Priority only orders rules that fire together; the bound keeps it a number
# every store column and every reader holds exactly.
MAX_PRIORITY = 1_000
# owner, description and safety_justification are prose for people.
_MAX_PROSE_LENGTH = 5_000
# The largest rule file read: a rule at every bound above is about half of it.
MAX_RULE_FILE_BYTES = 1 << 20

# Long enough to read, short enough that "<slug>.<name>" stays a sane file
# name and fits the registry's 200-character rule id.
_SLUG_MAX = 64
_SLUG_READABLE = _SLUG_MAX - 9  # room for "_" and the 8-hex hash


def intent_slug(intent: str) -> str:
    """The folder name and rule-id prefix for an intent, whatever the model calls it.

    An intent that is already a slug (lower-case ASCII letters, digits and
    single inner ``_``, at most 64 characters) is its own slug. Any other
    intent keeps its readable ASCII part (lower-cased, each run of other
    characters turned into ``_``) followed by a hash of the exact name, so
    two different intents never share a slug (``Refund`` and ``refund``,
    ``card-arrival`` and ``card_arrival``). An intent with no ASCII letter or
    digit becomes ``intent_<hash>``.

    Parameters
    ----------
    intent
        The intent exactly as the model emits it.

    Returns
    -------
    A non-empty string of ``[a-z0-9_]``, stable across runs and machines.

    Examples
    --------
    >>> intent_slug("order_tracking")
    'order_tracking'
    >>> intent_slug("Billing & Payments"), intent_slug("billing_payments")
    ('billing_payments_a54dfa3f', 'billing_payments')
    >>> intent_slug("返品")
    'intent_eb74b03e'
    >>> intent_slug(intent_slug("card-arrival")) == intent_slug("card-arrival")
    True
    """
    readable = re.sub(r"[^a-z0-9]+", "_", intent.lower()).strip("_")
    if intent and readable == intent and len(intent) <= _SLUG_MAX:
        return intent
    digest = hashlib.sha1(intent.encode("utf-8")).hexdigest()[:8]
    return f"{readable[:_SLUG_READABLE].rstrip('_') or 'intent'}_{digest}"


def _not_blank(text: str) -> str:
    if not text.strip():
        raise ValueError("is empty; write the phrase or remove the entry")
    return text


# C0/C1 controls other than tab and line breaks (a NUL cannot be stored in
# PostgreSQL text and vanishes in normalisation), and the bidirectional
# overrides and isolates that make a line display otherwise than it reads.
_CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _plain_text(text: str) -> str:
    found = _CONTROLS.search(text)
    if found:
        raise ValueError(f"holds the control character U+{ord(found.group()):04X} at position {found.start()}; "
                         "remove it (rule text is plain text: an invisible character makes the file read "
                         "otherwise than it matches)")
    return text


def _at_most(limit: int, what: str, fix: str):
    def check(text: str) -> str:
        if len(text) > limit:
            raise ValueError(f"is {len(text):,} characters long; {what} holds at most {limit:,} characters: {fix}")
        return text
    return check


# Validated one item at a time, so an error names its index ("patterns[2]").
_Phrase = Annotated[str, AfterValidator(_not_blank), AfterValidator(_plain_text), AfterValidator(
    _at_most(MAX_PHRASE_LENGTH, "a phrase", "keep the words that decide the intent"))]
_Locale = Annotated[str, AfterValidator(_not_blank), AfterValidator(_plain_text), AfterValidator(
    _at_most(_MAX_LOCALE_LENGTH, "a locale", 'write a tag such as "en-US"'))]
_Prose = Annotated[str, AfterValidator(_plain_text), AfterValidator(
    _at_most(_MAX_PROSE_LENGTH, "this field", "shorten it"))]


class Rule(BaseModel):
    """One keyword rule: any pattern fires it, any exclude phrase vetoes it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(max_length=_MAX_ID_LENGTH, pattern=_ID_PATTERN, description="dotted id, <intent slug>.<name>")
    intent: Annotated[str, AfterValidator(_plain_text)] = Field(
        min_length=1, max_length=MAX_INTENT_LENGTH, description="exactly as the model emits it")
    patterns: tuple[_Phrase, ...] = Field(min_length=1, max_length=MAX_PHRASES)
    exclude: tuple[_Phrase, ...] = Field(default=(), max_length=MAX_PHRASES)
    locales: tuple[_Locale, ...] = Field(default=("*",), max_length=_MAX_LOCALES)
    match: MatchMode = "word"
    priority: int = Field(default=0, ge=-MAX_PRIORITY, le=MAX_PRIORITY)
    owner: Annotated[str, AfterValidator(_plain_text)] = Field(min_length=1, max_length=_MAX_ID_LENGTH)
    description: _Prose = ""
    # Why the rule may answer although its words live next to a safety intent (the gate's
    # neighbourhood check); empty: it may not. Recorded with the version like every field.
    safety_justification: _Prose = ""

    @field_validator("priority", mode="before")
    @classmethod
    def _priority_is_a_number(cls, value: object) -> object:
        # Lax int parsing would read YAML's `priority: yes` as 1 and "10" as 10.
        if isinstance(value, bool | str):
            raise ValueError(f"must be a whole number such as 0 or 10, got {preview(value)}")
        return value

    @field_validator("locales")
    @classmethod
    def _locales_not_empty(cls, locales: tuple[str, ...]) -> tuple[str, ...]:
        if not locales:
            raise ValueError('is empty; list at least one locale, or ["*"] for every locale')
        return locales

    def canonical(self) -> dict:
        """The definition with order-insensitive lists sorted and de-duplicated.

        Reordering patterns or reformatting the YAML does not change what the
        rule does, so it does not make a new version.
        """
        data = self.model_dump(mode="json")
        for key in ("patterns", "exclude", "locales"):
            data[key] = sorted(set(data[key]))
        if not data["safety_justification"]:
            del data["safety_justification"]  # so rules written before the field keep their versions
        return data

    @property
    def version(self) -> str:
        """Content hash of :meth:`canonical`: editing the rule makes a new version."""
        payload = json.dumps(self.canonical(), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:12]


RULE_FIELDS = tuple(Rule.model_fields)


def rule_json_schema() -> dict:
    """The JSON schema of a rule file (from :class:`Rule`), for editors and CI checks.

    >>> schema = rule_json_schema()
    >>> sorted(schema["required"])
    ['id', 'intent', 'owner', 'patterns']
    >>> schema["properties"]["match"]["enum"]
    ['word', 'substring']
    """
    schema = Rule.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "rulelife rule file"
    return schema


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
    # The safety lexicon sits beside the intent folders and is not a rule.
    yield from sorted(p for p in files if p.is_file() and p != rules_dir / LEXICON_FILE)


def check_rule(data: object) -> tuple[Rule | None, list[tuple[str, str]]]:
    """Validate already-parsed YAML; return the rule (None if invalid) and every problem.

    Each problem is ``(field, message)``, the field written as in the file
    (``"patterns[2]"``, ``"owner"``, or ``"<file>"`` for the file as a whole).
    """
    if data is None:
        return None, [("<file>", "the file is empty; write the rule's fields (id, intent, patterns, owner, ...)")]
    if not isinstance(data, dict):
        return None, [
            ("<file>", f"a rule file must be a mapping of fields (id: ..., patterns: ...), got a {type(data).__name__}")
        ]
    try:
        return Rule.model_validate(data), []
    except ValidationError as exc:
        errors = exc.errors()
        # A list whose every entry failed is also "too short"; the entries' own errors say it better.
        with_bad_items = {err["loc"][:-1] for err in errors if len(err["loc"]) > 1}
        return None, [(_field_name(err["loc"]), _describe(err)) for err in errors
                      if not (err["type"] == "too_short" and err["loc"] in with_bad_items)]


def parse_rule(data: object, source: str) -> Rule:
    """Validate already-parsed YAML into a :class:`Rule`, naming every bad field."""
    rule, problems = check_rule(data)
    if rule is None:
        described = "; ".join(message if field == "<file>" else f"{field} {message}" for field, message in problems)
        raise RuleFileError(f"{source}: {described}")
    return rule


def _field_name(loc: tuple) -> str:
    name = ""
    for part in loc:
        text = str(part)
        if not (isinstance(part, int) or (len(text) <= 60 and text.isprintable())):
            text = preview(text, 60)  # a key with a line break or a megabyte of text stays one short line
        name += f"[{text}]" if name and isinstance(part, int) else (f".{text}" if name else text)
    return name or "<file>"


_TYPE_WORDS = {
    "string_type": "text",
    "tuple_type": "a list",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
}


def _describe(err: dict) -> str:
    kind, value = err["type"], err.get("input")
    if kind == "missing":
        return "is required but missing; add it"
    if kind == "extra_forbidden":
        return f"is not a rule field; remove it or fix its spelling (allowed: {', '.join(RULE_FIELDS)})"
    if kind == "literal_error":
        return f"must be one of {err['ctx']['expected']}, got {preview(value)}"
    if kind == "string_too_short":
        return "is empty; fill it in"
    if kind == "string_too_long":
        return (f"is {len(value):,} characters long; the registry holds at most "
                f"{err['ctx']['max_length']} characters")
    if kind == "too_short":
        return "is empty; list at least one phrase"
    if kind == "too_long":
        return (f"lists {err['ctx']['actual_length']:,} entries; a rule holds at most {err['ctx']['max_length']:,}: "
                "split it into several rules")
    if kind in ("greater_than_equal", "less_than_equal"):
        return (f"must be between {-MAX_PRIORITY:,} and {MAX_PRIORITY:,}, got {preview(value, 40)}; priority only "
                "orders rules that fire together, so a small number such as 10 does")
    if kind == "string_pattern_mismatch":
        return f"{preview(value)} is not a dotted lower-case id such as order_tracking.where_is_my_order"
    if kind in _TYPE_WORDS:
        return f"must be {_TYPE_WORDS[kind]}, got {type(value).__name__} {preview(value)}"
    if kind == "value_error":
        return str(err["ctx"]["error"])
    return f"{err['msg']} (got {preview(value)})"


class YamlDocument(NamedTuple):
    """A parsed YAML file as plain Python, and where each field's value starts."""

    data: object
    # field as written in the file ("patterns[2]", "owner") -> 1-based (line, column) of its value
    positions: dict[str, tuple[int, int]]

    def where(self, field: str) -> str:
        """``":line:column"`` of ``field``'s value, or "" where the field is not in the file."""
        position = self.positions.get(field)
        return f":{position[0]}:{position[1]}" if position else ""


def _yaml_parser() -> YAML:
    # YAML 1.2 (ruamel's default): `yes`, `on`, `no` are text, not booleans, and
    # a key written twice is an error instead of the last value silently winning.
    return YAML(typ="rt", pure=True)


_LONG_NUMBER = re.compile(r"(?<![\w.])\d{4301,}")  # past sys.get_int_max_str_digits()


def _plain(node: object, path: tuple, positions: dict[str, tuple[int, int]]) -> object:
    """The round-trip tree as plain dicts, lists and scalars, recording each value's position."""
    if isinstance(node, CommentedMap):
        out = {}
        for key, value in node.items():
            position = node.lc.value(key)  # None for a key merged in with <<
            if position is not None:
                positions[_field_name((*path, key))] = (position[0] + 1, position[1] + 1)
            out[_plain(key, (), {})] = _plain(value, (*path, key), positions)
        return out
    if isinstance(node, CommentedSeq):
        out = []
        for index, value in enumerate(node):
            line, column = node.lc.item(index)
            positions[_field_name((*path, index))] = (line + 1, column + 1)
            out.append(_plain(value, (*path, index), positions))
        return out
    for kind in (bool, str, int, float):  # ruamel's scalar subclasses (folded text, hex ints, ...) as plain values
        if isinstance(node, kind) and type(node) is not kind:
            return kind(node)
    return node


_BRACKET = re.compile(r"[\[\]{}]")
_MAX_DEPTH = 32  # a rule nests two levels; the YAML scanner slows with the square of the depth


def _refuse_deep_nesting(path: Path, text: str) -> None:
    """Raise where brackets nest deeper than any rule file needs (quotes are ignored: a bound, not a parse)."""
    depth = 0
    for bracket in _BRACKET.finditer(text):
        depth = depth + 1 if bracket.group() in "[{" else max(0, depth - 1)
        if depth > _MAX_DEPTH:
            line = text.count("\n", 0, bracket.start()) + 1
            column = bracket.start() - text.rfind("\n", 0, bracket.start())
            problem = f"values nested more than {_MAX_DEPTH} levels deep; a rule file is a flat mapping of fields"
            raise RuleFileError(f"{path}:{line}:{column}: {problem}", problem=problem, line=line, column=column)


_DIGITLESS_NUMBER = re.compile(r"[-+]?[._]*(?:[eE][-+]?[._]*)?")


def _number_that_is_not(text: str) -> tuple[int | None, int | None]:
    """Line and column of the first plain value made of number signs without a digit, if any."""
    for token in YAML(typ="rt", pure=True).scan(text):
        if isinstance(token, ScalarToken) and token.plain and _DIGITLESS_NUMBER.fullmatch(token.value):
            return token.start_mark.line + 1, token.start_mark.column + 1
    return None, None


def _refuse_anchors(path: Path, text: str) -> None:
    """Raise at the first anchor or alias, found by the scanner alone.

    Before anything is built from the file: nine aliases of nine aliases,
    eight levels deep, are 43 million values from a 400-byte file, and the
    YAML reader's own errors (a duplicate key's) print the expanded value.
    """
    try:
        for token in YAML(typ="rt", pure=True).scan(text):
            if isinstance(token, AnchorToken | AliasToken):
                line, column = token.start_mark.line + 1, token.start_mark.column + 1
                sign = "&" if isinstance(token, AnchorToken) else "*"
                problem = (f"the YAML {'anchor' if sign == '&' else 'alias'} {sign}{clip(str(token.value), 40)} is "
                           "not allowed: anchors and aliases let a small file stand for a huge value; write the "
                           "value out")
                raise RuleFileError(f"{path}:{line}:{column}: {problem}", problem=problem, line=line, column=column)
    except MarkedYAMLError:
        return  # a syntax error: the parser reports it with its place


def read_yaml_document(path: Path, *, max_bytes: int | None = None) -> YamlDocument:
    """Read one YAML document (YAML 1.2) with its field positions; raise
    :class:`RuleFileError` naming the line and column of a syntax error.

    Anchors and aliases (``&name``, ``*name``) are refused: a rule file is
    short, and an alias lets a small file stand for a huge value. With
    ``max_bytes``, a larger file is refused before it is parsed.
    """
    try:
        size = Path(path).stat().st_size
        if max_bytes is not None and size > max_bytes:
            problem = (f"the file is {size:,} bytes; a rule file holds at most {max_bytes:,} bytes "
                       f"({MAX_PHRASES:,} phrases of {MAX_PHRASE_LENGTH} characters fit): split it into several rules")
            raise RuleFileError(f"{path}: {problem}", problem=problem)
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        line = exc.object.count(b"\n", 0, exc.start) + 1
        column = exc.start - exc.object.rfind(b"\n", 0, exc.start)
        problem = (f"the byte 0x{exc.object[exc.start]:02X} is not UTF-8 ({exc.reason}); "
                   "save the file as UTF-8 text")
        raise RuleFileError(f"{path}:{line}:{column}: {problem}", problem=problem, line=line, column=column) from None
    except OSError as exc:
        raise RuleFileError(f"{path}: cannot read the file ({exc})", problem=f"cannot read the file ({exc})") from None
    _refuse_deep_nesting(path, text)
    if "&" in text or "*" in text:  # only then can the file hold an anchor or an alias
        _refuse_anchors(path, text)
    too_long = _LONG_NUMBER.search(text)
    if too_long:  # the YAML reader would stop at Python's 4,300-digit limit without saying where
        line = text.count("\n", 0, too_long.start()) + 1
        column = too_long.start() - text.rfind("\n", 0, too_long.start())
        problem = f"a number of {len(too_long.group()):,} digits; no rule field holds a number that long"
        raise RuleFileError(f"{path}:{line}:{column}: {problem}", problem=problem, line=line, column=column)
    try:
        tree = _yaml_parser().load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (None, None)
        # The message may quote a value (a duplicate key's): clipped, it stays one line.
        problem = f"invalid YAML: {clip(exc.problem or exc.context or 'cannot parse')}"
        where = f":{line}:{column}" if line is not None else ""
        raise RuleFileError(f"{path}{where}: {problem}", problem=problem, line=line, column=column) from None
    except YAMLError as exc:
        problem = f"invalid YAML: {clip(str(exc))}"
        raise RuleFileError(f"{path}: {problem}", problem=problem) from None
    except (ValueError, IndexError) as exc:  # the YAML reader takes `-_` or `._` for a number, then fails on it
        line, column = _number_that_is_not(text)
        problem = (f"invalid YAML: a value the YAML reader takes for a number cannot be read as one "
                   f"({clip(f'{type(exc).__name__}: {exc}', 80)}); quote it")
        where = f":{line}:{column}" if line is not None else ""
        raise RuleFileError(f"{path}{where}: {problem}", problem=problem, line=line, column=column) from None
    except RecursionError:
        problem = "invalid YAML: values nested too deeply; a rule file is a flat mapping of fields"
        raise RuleFileError(f"{path}: {problem}", problem=problem) from None
    positions: dict[str, tuple[int, int]] = {}
    try:
        data = _plain(tree, (), positions)
    except RecursionError:
        problem = "values nested too deeply; a rule file is a flat mapping of fields"
        raise RuleFileError(f"{path}: {problem}", problem=problem) from None
    return YamlDocument(data, positions)


def read_yaml(path: Path) -> object:
    """Read one YAML document (YAML 1.2) as plain Python; see :func:`read_yaml_document`."""
    return read_yaml_document(path).data


def load_rule(path: Path) -> Rule:
    """Read and validate one rule file; the error names every bad field with its line and column."""
    document = read_yaml_document(path, max_bytes=MAX_RULE_FILE_BYTES)
    rule, problems = check_rule(document.data)
    if rule is None:
        shown = "; ".join(f"{path}{document.where(field)}: " + (message if field == "<file>" else f"{field} {message}")
                          for field, message in problems[:_PROBLEMS_SHOWN])
        more = len(problems) - _PROBLEMS_SHOWN
        raise RuleFileError(shown + (f"; and {more} more (`rulelife rules lint` lists them all)" if more > 0 else ""))
    return rule


_PROBLEMS_SHOWN = 3  # an error stays a readable line; lint lists every problem


def load_rules(rules_dir: Path) -> list[RuleFile]:
    """Load every rule under ``rules_dir``; raise on the first invalid file.

    Use :func:`rulelife.rules.lint.lint_rules` to see every problem at once.
    """
    return [RuleFile(path, load_rule(path)) for path in iter_rule_files(rules_dir)]


def rule_to_yaml(rule: Rule) -> str:
    """Render a rule as the YAML a person would write (field order kept)."""
    data = rule.model_dump(mode="json")
    for optional in ("exclude", "safety_justification"):
        if not data[optional]:
            del data[optional]
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
