"""Check a rules folder and report every problem at once.

``rulelife lint`` runs before a rule reaches the registry. It never stops at the
first problem: a person fixing a folder wants the whole list, each item naming
the file, the field (``patterns[2]``) and, in plain words, what to do.

Checks, per file: YAML syntax, the file is a mapping, unknown / missing /
mistyped fields, empty phrases, duplicate patterns, phrases that normalise to
nothing, to one character or only to stop words, a pattern its own exclude list
vetoes, and a folder or id that does not match the rule's intent (the folder
must be :func:`~rulelife.rules.definition.intent_slug` of the intent and the id
``<slug>.<name>``). Across files: duplicate ids, one pattern claimed by rules
of different intents in overlapping locales, and rules that can never win
because another rule shadows them.
Every problem is an error; there are no warnings to learn to ignore.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rulelife.errors import RuleFileError, preview
from rulelife.rules.definition import (
    MAX_PHRASE_LENGTH,
    MAX_PHRASES,
    MAX_RULE_FILE_BYTES,
    RuleFile,
    YamlDocument,
    check_rule,
    intent_slug,
    iter_rule_files,
    read_yaml_document,
)
from rulelife.rules.lexicon import lexicon_path, lint_lexicon
from rulelife.rules.matcher import CompiledRule, compile_rule, locale_applies
from rulelife.rules.normalize import normalize
from rulelife.rules.stopwords import stop_words_for

__all__ = ["LintProblem", "LintReport", "lint_rules"]

_WORDS = re.compile(r"\w+")


@dataclass(frozen=True)
class LintProblem:
    """One problem: where it is (file and field) and what to do about it."""

    path: Path
    field: str  # as written in the file: "patterns[2]", "id", or "<file>"
    message: str
    line: int | None = None  # 1-based, of the field's value; None for the file as a whole
    column: int | None = None

    def __str__(self) -> str:
        where = f":{self.line}:{self.column}" if self.line is not None else ""
        return f"{self.path}{where}: {self.field}: {self.message}"

    def to_dict(self) -> dict:
        return {"path": str(self.path), "line": self.line, "column": self.column, "field": self.field,
                "message": self.message}


@dataclass
class LintReport:
    """Every problem found, and the rule files that parsed (even those with problems)."""

    problems: list[LintProblem] = field(default_factory=list)
    rules: list[RuleFile] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        return {
            "ok": self.ok,
            "problems": [problem.to_dict() for problem in self.problems],
            "rules": [{"path": str(rf.path), "id": rf.rule.id, "version": rf.rule.version} for rf in self.rules],
        }


def lint_rules(rules_dir: Path, safety_intents: Sequence[str] | None = None) -> LintReport:
    """Lint every rule file under ``rules_dir``; see the module docstring for the checks.

    With ``safety_intents``, the safety lexicon beside the rules is linted too
    (:func:`rulelife.rules.lexicon.lint_lexicon`). Raises
    :class:`~rulelife.errors.RuleFileError` only if ``rules_dir`` is not a folder.
    """
    rules_dir = Path(rules_dir)
    report = LintReport()
    first_with_id: dict[str, Path] = {}
    for path in iter_rule_files(rules_dir):
        problems, rule_file = _lint_file(path, rules_dir, first_with_id)
        report.problems.extend(problems)
        if rule_file is not None:
            report.rules.append(rule_file)
    compiled = [(rf, compile_rule(rf.rule)) for rf in report.rules]
    report.problems.extend(_conflicts(compiled))
    report.problems.extend(_shadowed(compiled))
    if safety_intents is not None:
        report.problems.extend(LintProblem(lexicon_path(rules_dir), where, message)
                               for where, message in lint_lexicon(rules_dir, list(safety_intents)))
    # Files in path order; within a file, the order the checks found them.
    report.problems.sort(key=lambda problem: str(problem.path))
    return report


# ---------------------------------------------------------------- one file


def _lint_file(
    path: Path, rules_dir: Path, first_with_id: dict[str, Path]
) -> tuple[list[LintProblem], RuleFile | None]:
    try:
        document = read_yaml_document(path, max_bytes=MAX_RULE_FILE_BYTES)
    except RuleFileError as exc:
        return [LintProblem(path, "<file>", f"{exc.problem}; fix the file so it parses", exc.line, exc.column)], None
    data = document.data
    rule, field_problems = check_rule(data)
    found = [
        LintProblem(path, name, message if name == "<file>" else f"{name} {message}")
        for name, message in field_problems
    ]
    if isinstance(data, dict):
        found += _place_problems(path, rules_dir, data)
        found += _id_clash(path, data.get("id"), first_with_id)
        found += _phrase_problems(path, data)
    return [_located(problem, document) for problem in found], None if rule is None else RuleFile(path, rule)


def _located(problem: LintProblem, document: YamlDocument) -> LintProblem:
    """The problem with the line and column of its field's value, where the file has that field."""
    position = document.positions.get(problem.field)
    if position is None or problem.line is not None:
        return problem
    return LintProblem(problem.path, problem.field, problem.message, *position)


def _place_problems(path: Path, rules_dir: Path, data: dict) -> list[LintProblem]:
    """The folder must be the intent's slug and the id ``<slug>.<name>`` (the intent is the truth)."""
    parts = path.relative_to(rules_dir).with_suffix("").parts
    intent, rule_id = data.get("intent"), data.get("id")
    slug = intent_slug(intent) if isinstance(intent, str) and intent else None
    if len(parts) < 2:
        move = f"move it to {rules_dir}/{slug or '<intent slug>'}/{path.name}"
        return [LintProblem(path, "<file>", f"a rule file must be in a folder named after its intent; {move}")]
    found = []
    # Without a usable intent the folder stands in for it (the intent's own error is reported elsewhere).
    expected_id = ".".join((slug or parts[0], *parts[1:]))
    if isinstance(rule_id, str) and rule_id != expected_id:
        place = "/".join(parts) + path.suffix
        whose = f"a rule of intent {preview(intent)} at {place}" if slug else f"a file at {place}"
        message = f"id {preview(rule_id)} does not match the file's place; {whose} must have id {preview(expected_id)}"
        found.append(LintProblem(path, "id", f"{message}: change the id or move the file"))
    if slug is not None and slug != parts[0]:
        message = f"intent {preview(intent)} does not match the folder {parts[0]!r} the file is in"
        target = Path(rules_dir, slug, *parts[1:]).with_suffix(path.suffix)
        move = f"its folder is {slug!r}: move the file to {target} or change the intent"
        found.append(LintProblem(path, "intent", f"{message}; {move}"))
    return found


def _id_clash(path: Path, rule_id: object, first_with_id: dict[str, Path]) -> list[LintProblem]:
    if not isinstance(rule_id, str):
        return []
    first = first_with_id.setdefault(rule_id, path)
    if first == path:
        return []
    message = f"id {preview(rule_id)} is already used by {first}; ids must be unique, rename one of them"
    return [LintProblem(path, "id", message)]


def _phrase_list(data: dict, name: str) -> list[tuple[int, str, str]]:
    """(index, phrase, normalised) for the usable phrases of ``data[name]``.

    Non-text, blank and over-long entries, and lists over the limit, are
    skipped: field validation already reports them (and the pairwise checks
    below would cost the square of a huge list).
    """
    phrases = data.get(name)
    if not isinstance(phrases, list) or len(phrases) > MAX_PHRASES:
        return []
    return [(i, p, normalize(p)) for i, p in enumerate(phrases)
            if isinstance(p, str) and p.strip() and len(p) <= MAX_PHRASE_LENGTH]


def _phrase_problems(path: Path, data: dict) -> list[LintProblem]:
    locales = data.get("locales", ["*"])
    if (not isinstance(locales, list) or not locales or len(locales) > 100
            or not all(isinstance(loc, str) and len(loc) <= 64 for loc in locales)):
        locales = ["*"]  # the field check reports bad locales; judge stop words by every language
    stop_words = stop_words_for(locales)
    patterns, excludes = _phrase_list(data, "patterns"), _phrase_list(data, "exclude")
    found = []
    for name, phrases in (("patterns", patterns), ("exclude", excludes)):
        first_index: dict[str, int] = {}
        for index, phrase, norm in phrases:
            where = f"{name}[{index}]"
            weak = _weak_phrase(phrase, norm, stop_words, locales)
            if weak:
                found.append(LintProblem(path, where, weak))
            if norm and norm in first_index:
                message = f"{phrase!r} repeats {name}[{first_index[norm]}] once normalised (both are {norm!r})"
                found.append(LintProblem(path, where, f"{message}; remove one"))
            first_index.setdefault(norm, index)
    found += _self_vetoes(path, patterns, excludes, word=data.get("match", "word") != "substring")
    return found


def _self_vetoes(path: Path, patterns: list, excludes: list, *, word: bool) -> list[LintProblem]:
    """Excludes that veto one of the rule's own patterns wherever it fires."""
    found = []
    distinct: dict[str, tuple[int, str]] = {}  # normalised pattern -> its first (index, text)
    for index, pattern, norm in patterns:
        distinct.setdefault(norm, (index, pattern))
    for e_index, exclude, e_norm in excludes:
        for p_norm, (p_index, pattern) in distinct.items():
            if e_norm and e_norm == p_norm:
                message = (
                    f"{exclude!r} is also patterns[{p_index}]; the rule would veto itself whenever "
                    "that pattern fires: remove it from one list"
                )
            elif e_norm and _occurs(e_norm, p_norm, word):
                message = (
                    f"{exclude!r} occurs inside patterns[{p_index}] ({pattern!r}), so that pattern can never "
                    "fire without being vetoed: narrow the exclude or drop the pattern"
                )
            else:
                continue
            found.append(LintProblem(path, f"exclude[{e_index}]", message))
    return found


def _weak_phrase(phrase: str, norm: str, stop_words: frozenset[str], locales: Sequence[str]) -> str | None:
    """Why a phrase would fire on almost anything (or nothing), or None if it is fine."""
    if not norm:
        return (
            f"{phrase!r} normalises to nothing (only invisible or control characters); "
            "write a real phrase or remove it"
        )
    if len(norm) == 1:
        return (
            f"{phrase!r} normalises to the single character {norm!r}, which occurs in far too many queries; "
            "use a longer phrase"
        )
    words = _WORDS.findall(norm)
    if not words:
        return f"{phrase!r} has no letters or digits; add a word"
    if all(word in stop_words for word in words):
        return (
            f"{phrase!r} is only stop words for locales {', '.join(locales)}, so it fires on most queries; "
            "add a content word"
        )
    return None


def _is_word_char(char: str) -> bool:
    return char.isalnum() or char == "_"


def _occurs(needle: str, haystack: str, word: bool) -> bool:
    """Whether the matcher would find ``needle`` inside ``haystack`` (same boundary rule).

    Used on a pattern: if an exclude occurs inside the pattern's own text, every
    query where the pattern fires also holds the exclude. At the pattern's edges
    the query is on a word boundary already, so only inner edges need checking.
    """
    start = haystack.find(needle)
    while start != -1:
        end = start + len(needle)
        left_ok = not (word and start > 0 and _is_word_char(needle[0]) and _is_word_char(haystack[start - 1]))
        right_ok = not (word and end < len(haystack) and _is_word_char(needle[-1]) and _is_word_char(haystack[end]))
        if left_ok and right_ok:
            return True
        start = haystack.find(needle, start + 1)
    return False


# ---------------------------------------------------------------- across files


def _first_index(patterns: Sequence[str]) -> dict[str, int]:
    """Normalised pattern -> index of its first occurrence in the file."""
    index: dict[str, int] = {}
    for i, pattern in enumerate(patterns):
        index.setdefault(normalize(pattern), i)
    return index


def _overlap(a: Sequence[str], b: Sequence[str]) -> bool:
    """Whether some query locale lets both rules fire (``*`` overlaps all, ``en`` overlaps ``en-us``)."""
    return any(locale_applies(a, loc) for loc in b) or any(locale_applies(b, loc) for loc in a)


def _conflicts(compiled: list[tuple[RuleFile, CompiledRule]]) -> list[LintProblem]:
    """One normalised pattern in rules of different intents whose locales overlap."""
    claims: dict[str, list[tuple[RuleFile, CompiledRule]]] = defaultdict(list)
    for rf, cr in compiled:
        for pattern in cr.patterns:
            claims[pattern].append((rf, cr))
    found = []
    for pattern, holders in claims.items():
        for later in range(1, len(holders)):
            rf, cr = holders[later]
            for other_rf, other in holders[:later]:
                if other.intent != cr.intent and _overlap(other.locales, cr.locales):
                    index = _first_index(rf.rule.patterns)[pattern]
                    message = (
                        f"{pattern!r} is also a pattern of {other.id} ({other_rf.path}), intent {other.intent!r}, "
                        "in overlapping locales; one query cannot mean both intents: keep the pattern in one rule "
                        "or separate the locales"
                    )
                    found.append(LintProblem(rf.path, f"patterns[{index}]", message))
    return found


def _outranks(s: CompiledRule, r: CompiledRule) -> bool:
    # Equal priority: s fires every pattern r does, so s's longest hit is at
    # least r's, and the id decides only when they are equally long.
    return s.priority > r.priority or (s.priority == r.priority and s.id < r.id)


def _shadows(s: CompiledRule, r: CompiledRule) -> bool:
    """Whether ``s`` wins every query on which ``r`` would fire."""
    return (
        set(r.patterns) <= set(s.patterns)
        and _outranks(s, r)
        and all(locale_applies(s.locales, loc) for loc in r.locales)
        and (s.match == "substring" or r.match == "word")
        and set(s.exclude) <= set(r.exclude)
    )


def _shadowed(compiled: list[tuple[RuleFile, CompiledRule]]) -> list[LintProblem]:
    by_pattern: dict[str, list[tuple[RuleFile, CompiledRule]]] = defaultdict(list)
    for rf, cr in compiled:
        for pattern in cr.patterns:
            by_pattern[pattern].append((rf, cr))
    found = []
    for rf, cr in compiled:
        if not cr.patterns:
            continue
        shadows = [(s_rf, s) for s_rf, s in by_pattern[cr.patterns[0]] if s is not cr and _shadows(s, cr)]
        if shadows:
            s_rf, s = min(shadows, key=lambda pair: pair[1].id)
            message = (
                f"the rule can never win: every pattern is also a pattern of {s.id} ({s_rf.path}), which outranks "
                f"it (priority {s.priority} against {cr.priority}, then id), covers its locales, fires wherever it "
                "does and is vetoed no more often; give it a pattern of its own, raise its priority, or retire it"
            )
            found.append(LintProblem(rf.path, "patterns", message))
    return found
