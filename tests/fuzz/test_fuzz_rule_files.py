"""Fuzzing rule files: whatever the bytes, lint names the file and field, or the rule is valid.

Every case ends in one of two ways: a valid rule (which then compiles and
matches), or lint problems, each one line that names the file, a field
(``<file>`` for the file as a whole) and the fix. ``load_rule`` raises
:class:`RuleFileError` and nothing else. Never a traceback, never a hang.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from rulelife.errors import RuleFileError
from rulelife.rules.definition import MAX_PHRASES, RULE_FIELDS, load_rule
from rulelife.rules.lint import lint_rules
from rulelife.rules.matcher import compile_rule

from .conftest import assert_one_clear_line, fuzz, tally

GOOD = {"id": "faq.hours", "intent": "faq", "patterns": ["opening hours"], "owner": "ds"}


def check_file(kind: str, content: bytes, name: str = "hours.yaml") -> None:
    """Write ``content`` as rules/faq/<name>, lint and load it; assert every outcome is a clear one."""
    with tempfile.TemporaryDirectory(prefix="rulelife-fuzz-") as root:
        path = Path(root) / "faq" / name
        path.parent.mkdir()
        path.write_bytes(content)
        report = lint_rules(Path(root))
        for problem in report.problems:
            assert problem.path == path
            assert problem.field
            assert_one_clear_line(str(problem), str(path))
        try:
            rule = load_rule(path)
        except RuleFileError as exc:
            assert_one_clear_line(str(exc), str(path))
            assert not report.rules or report.problems  # lint saw a problem too
            tally(kind, "refused, problems named" if report.rules == [] else "refused by lint checks")
            return
        # A rule that loads compiles and matches its own first pattern.
        compiled = compile_rule(rule)
        assert compiled.patterns or not rule.patterns
        tally(kind, "valid" if report.ok else "loads, lint problems named")


# ------------------------------------------------------------------ random bytes


@fuzz(60)
@given(st.binary(max_size=2_000))
@example(b"\xff\xfe" + "id: faq.hours".encode("utf-16-le"))
@example(b"id: faq.hours\x00\nintent: faq\n")
@example(b"id: -_\nintent: ._\n")
@example(b"\xef\xbb\xbf" + b"id: faq.hours\nintent: faq\npatterns: [opening hours]\nowner: ds\n")
def test_random_bytes(content):
    check_file("random bytes", content)


@fuzz(30)
@given(st.binary(max_size=64), st.integers(0, 200), st.sampled_from([b"latin-1", b"utf-16", b"cp1252"]))
def test_valid_yaml_with_bytes_that_are_not_utf8(noise, at, encoding):
    text = yaml.safe_dump({**GOOD, "description": "café ✓ ü"}, allow_unicode=True)
    content = text.encode(encoding.decode(), errors="replace")
    check_file("non-UTF-8", content[:at] + noise + content[at:])


# ------------------------------------------------------------------ wrong types, odd values

_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=50),
    st.text(st.characters(codec="utf-8"), max_size=300), st.sampled_from(["", " ", "\x00", "\u202e", "yes", "no",
                                                                           "~", "null", ".nan", "*", "word"]),
)
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(
    st.text(max_size=10), inner, max_size=5), max_leaves=20)


def _dump(data: object) -> bytes:
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False).encode("utf-8", errors="surrogatepass")


@fuzz(60)
@given(st.dictionaries(st.sampled_from([*RULE_FIELDS, "extra", "Id", "patterns "]), _values, max_size=12))
@example({**GOOD, "priority": 10**26})
@example({**GOOD, "priority": float("nan")})
@example({**GOOD, "patterns": [None, 3, ["x"]]})
@example({**GOOD, "locales": []})
def test_wrong_types_and_values(fields):
    check_file("wrong types", _dump({**GOOD, **fields}))


@fuzz(30)
@given(_values)
def test_a_document_that_is_not_a_mapping_or_is_nested(value):
    check_file("not a mapping", _dump(value))


# ------------------------------------------------------------------ huge lists and values


@fuzz(3, most=25)
@given(st.sampled_from(["patterns", "exclude", "locales"]), st.integers(MAX_PHRASES - 2, 10_000),
       st.sampled_from(["word{i}", "opening hours", "x" * 300 + "{i}", "{i}"]))
def test_ten_thousand_element_lists(field, size, template):
    values = [template.format(i=i) for i in range(size)]
    check_file("huge lists", _dump({**GOOD, field: values}))


@fuzz(6, most=25)
@given(st.sampled_from(["patterns", "intent", "owner", "description", "id"]), st.integers(10**4, 10**6))
def test_huge_values(field, size):
    value = "h" * size
    check_file("huge values", _dump({**GOOD, field: [value] if field == "patterns" else value}))


# ------------------------------------------------------------------ ids that look like paths


@fuzz(40)
@given(st.sampled_from(["../../etc/passwd", "faq/../../x", "/abs.path", "faq.hours/", "C:\\faq.hours",
                        "faq..hours", ".faq.hours", "faq.hours\x00", " faq.hours", "faq.hours\n", "faq.~",
                        "faq.hours.yaml", "%2e%2e.faq", "faq.\u202ehours"])
       | st.text(st.sampled_from("./\\:~_-a1\x00 %"), min_size=1, max_size=20))
def test_ids_that_look_like_paths(rule_id):
    with tempfile.TemporaryDirectory(prefix="rulelife-fuzz-") as root:
        before = sorted(Path(root).rglob("*"))
        path = Path(root) / "faq" / "hours.yaml"
        path.parent.mkdir()
        path.write_bytes(_dump({**GOOD, "id": rule_id}))
        report = lint_rules(Path(root))
        # Refused by name: the id field, or the file at the id's line (a value YAML cannot read).
        ids = [p for p in report.problems if p.field == "id" or (p.field == "<file>" and p.line == 1)]
        if rule_id != "faq.hours":
            assert ids, (rule_id, [str(p) for p in report.problems])
            for problem in ids:
                assert_one_clear_line(str(problem), str(path))
        assert sorted(Path(root).rglob("*")) == sorted([*before, path.parent, path])  # nothing written
    tally("path-like ids", "refused, id named" if rule_id != "faq.hours" else "valid")


# ------------------------------------------------------------------ YAML features


@fuzz(15)
@given(st.integers(2, 9), st.integers(2, 12), st.sampled_from(["patterns", "description", "extra"]))
def test_anchor_bombs(width, depth, field):
    lines = [f"l0: &l0 [{', '.join(['lol'] * width)}]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]" for i in range(1, depth)]
    text = yaml.safe_dump(GOOD, sort_keys=False) + "\n".join(lines) + f"\n{field}: *l{depth - 1}\n"
    check_file("anchor bombs", text.encode())


@fuzz(20)
@given(st.sampled_from(list(GOOD)), st.text(max_size=20))
def test_duplicate_keys(field, value):
    text = yaml.safe_dump(GOOD, sort_keys=False) + f"{field}: {json_quote(value)}\n"
    check_file("duplicate keys", text.encode("utf-8", errors="surrogatepass"))


def json_quote(value: str) -> str:
    import json

    return json.dumps(value)


@fuzz(25)
@given(st.sampled_from(["[" * 3000, "{a: " * 3000, "- " * 3000, "!!python/object:os.system ls", "!!binary AAAA",
                        "? [a, b]\n: c", "<<: {id: x}", "%YAML 1.1\n---\nid: x", "--- a\n--- b", "&a x: *a",
                        "priority: 0x1F", "priority: 1e3", "priority: 1_000", "priority: .inf", "id: !!int 3",
                        "9" * 5000 + ": x"]),
       st.booleans())
def test_odd_yaml(text, after_good):
    head = yaml.safe_dump(GOOD, sort_keys=False) if after_good else ""
    check_file("odd YAML", (head + text + "\n").encode())


def test_the_tally_is_kept():
    # A structural check that the figures of docs/reliability.md are gathered.
    from .conftest import TALLY

    check_file("random bytes", b"")
    assert TALLY["random bytes"]
    assert not math.isnan(sum(TALLY["random bytes"].values()))
