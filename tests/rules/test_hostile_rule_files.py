"""Hostile rule files: bounded values, no control characters, no YAML aliases, one-line errors.

Each refusal names the file, the field and the fix, and quotes at most a
bounded preview of the value it refuses.
"""

from __future__ import annotations

import pytest

from rulelife.errors import RuleFileError
from rulelife.rules.definition import MAX_PHRASE_LENGTH, MAX_PHRASES, MAX_PRIORITY, load_rule
from rulelife.rules.lint import lint_rules

HEAD = "id: faq.hours\nintent: faq\nowner: ds\n"


def write(tmp_path, text: str | bytes):
    path = tmp_path / "faq" / "hours.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def problems(tmp_path) -> list[str]:
    return [str(p) for p in lint_rules(tmp_path).problems]


def only_problem(tmp_path) -> str:
    found = problems(tmp_path)
    assert len(found) == 1, found
    assert "\n" not in found[0] and len(found[0]) < 600, found[0][:2000]
    return found[0]


def test_a_million_character_pattern_is_refused_by_its_length(tmp_path):
    path = write(tmp_path, HEAD + f"patterns: ['{'a' * 1_000_000}']\n")
    message = only_problem(tmp_path)
    assert message.startswith(f"{path}:4:12: patterns[0]: patterns[0] is 1,000,000 characters long; "
                              f"a phrase holds at most {MAX_PHRASE_LENGTH} characters")


def test_a_phrase_at_the_limit_is_fine(tmp_path):
    write(tmp_path, HEAD + f"patterns: ['opening {'h' * (MAX_PHRASE_LENGTH - 8)}']\n")
    assert problems(tmp_path) == []


def test_too_many_patterns_are_refused_without_checking_every_pair(tmp_path):
    phrases = ", ".join(f"'word{i} hours'" for i in range(10_000))
    write(tmp_path, HEAD + f"patterns: [{phrases}]\nexclude: [{phrases}]\n")
    found = problems(tmp_path)  # the pairwise checks alone would be 10^8 comparisons
    assert [m.split(": ", 2)[1] for m in found] == ["patterns", "exclude"]
    assert f"lists 10,000 entries; a rule holds at most {MAX_PHRASES:,}: split it into several rules" in found[0]


@pytest.mark.parametrize("char", ["\x00", "\x07", "\x1b", "\x7f", "\x85", "\u202e", "\u2066"])
def test_a_control_character_in_a_phrase_is_refused(tmp_path, char):
    write(tmp_path, HEAD + f'patterns: ["opening{char} hours"]\n'.encode("unicode_escape").decode()
          .replace("\\n", "\n").replace('\\"', '"'))
    message = only_problem(tmp_path)
    assert f"patterns[0] holds the control character U+{ord(char):04X} at position 7; remove it" in message


def test_control_characters_are_refused_in_every_text_field(tmp_path):
    write(tmp_path, 'id: faq.hours\nintent: "faq\\0"\nowner: "d\\x1bs"\npatterns: [hours]\n'
                    'locales: ["en\\0"]\ndescription: "a\\u202eb"\n')
    fields = sorted(m.split(": ")[1] for m in problems(tmp_path) if "control character" in m)
    assert fields == ["description", "intent", "locales[0]", "owner"]


def test_tabs_and_line_breaks_are_text(tmp_path):
    write(tmp_path, HEAD + 'patterns: ["opening\\thours"]\ndescription: |\n  Two\n  lines.\n')
    assert problems(tmp_path) == []


@pytest.mark.parametrize("value", ["100000000000000000000000000", str(MAX_PRIORITY + 1), str(-MAX_PRIORITY - 1)])
def test_priority_is_bounded(tmp_path, value):
    write(tmp_path, HEAD + f"patterns: [opening hours]\npriority: {value}\n")
    message = only_problem(tmp_path)
    assert f"priority: priority must be between -1,000 and 1,000, got {value}" in message


def test_an_integer_too_long_to_read_is_named_by_its_place(tmp_path):
    path = write(tmp_path, HEAD + f"patterns: [opening hours]\npriority: {'9' * 5000}\n")
    assert only_problem(tmp_path) == (f"{path}:5:11: <file>: a number of 5,000 digits; no rule field holds a number "
                                      "that long; fix the file so it parses")


ANCHOR_BOMB = """\
id: faq.hours
intent: faq
owner: ds
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
patterns: *h
"""


def test_an_anchor_bomb_is_refused_at_its_first_anchor_without_expanding(tmp_path):
    path = write(tmp_path, ANCHOR_BOMB)  # 9^8 = 43 million strings once expanded
    message = only_problem(tmp_path)
    assert message == (f"{path}:4:4: <file>: the YAML anchor &a is not allowed: anchors and aliases let a small "
                       "file stand for a huge value; write the value out; fix the file so it parses")
    with pytest.raises(RuleFileError, match="anchors and aliases let a small file stand for a huge value"):
        load_rule(path)


def test_an_alias_of_a_scalar_is_refused_too(tmp_path):
    write(tmp_path, HEAD.replace("owner: ds", "owner: &who ds") + "patterns: [*who]\n")
    assert "the YAML anchor &who is not allowed" in only_problem(tmp_path)


def test_deep_nesting_is_refused_before_the_yaml_reader_slows_down(tmp_path):
    # The YAML scanner takes seconds on a few thousand nested brackets (quadratic in the depth).
    path = write(tmp_path, HEAD + "patterns: " + "[" * 5000 + "]" * 5000 + "\n")
    assert only_problem(tmp_path).startswith(f"{path}:4:43: <file>: values nested more than 32 levels deep")


def test_deep_block_nesting_is_a_clear_error(tmp_path):
    write(tmp_path, "- " * 3000 + "x\n")
    assert "nested too deeply" in only_problem(tmp_path)


def test_a_file_over_the_size_limit_is_refused_before_parsing(tmp_path):
    path = write(tmp_path, HEAD + "patterns: [opening hours]\n" + "# padding\n" * 150_000)
    message = only_problem(tmp_path)
    assert message.startswith(f"{path}: <file>: the file is 1,500,0")
    assert "a rule file holds at most 1,048,576 bytes" in message


def test_a_byte_that_is_not_utf8_names_its_line(tmp_path):
    path = write(tmp_path, HEAD.encode() + b"patterns: [opening \xff hours]\n")
    assert only_problem(tmp_path).startswith(f"{path}:4:20: <file>: the byte 0xFF is not UTF-8 (invalid start byte)")


def test_a_huge_unknown_key_is_named_by_a_preview(tmp_path):
    write(tmp_path, HEAD + "patterns: [opening hours]\n? " + "k" * 100_000 + "\n: 1\n")  # an explicit key
    message = only_problem(tmp_path)
    assert "is not a rule field" in message and "(100,000 characters)" in message


def test_a_huge_wrong_type_value_is_quoted_by_a_preview(tmp_path):
    write(tmp_path, HEAD + f"patterns: [opening hours]\nmatch: '{'w' * 100_000}'\n")
    message = only_problem(tmp_path)
    assert "match must be one of 'word' or 'substring'" in message and "(100,000 characters)" in message


def test_a_duplicate_key_holding_an_alias_bomb_is_refused_before_it_expands(tmp_path):
    # The YAML reader's duplicate-key error prints the value: expanded, 282 billion strings.
    lines = ["l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 12)]
    path = write(tmp_path, HEAD + "patterns: [opening hours]\n" + "\n".join(lines) + "\npatterns: *l11\n")
    assert only_problem(tmp_path).startswith(f"{path}:5:5: <file>: the YAML anchor &l0 is not allowed")


def test_a_duplicate_key_error_quotes_a_bounded_value(tmp_path):
    write(tmp_path, HEAD + "patterns: [opening hours]\npatterns: [" + ", ".join(["hours"] * 50_000) + "]\n")
    message = only_problem(tmp_path)
    assert "found duplicate key" in message and "characters)" in message


@pytest.mark.parametrize("value", ["-_", "._", "+_.", "_"])
def test_a_value_the_yaml_reader_takes_for_a_number_but_cannot_read_is_named_by_its_place(tmp_path, value):
    path = write(tmp_path, HEAD + f"patterns: [opening hours]\npriority: {value}\n")
    message = only_problem(tmp_path)
    assert message.startswith(f"{path}:5:11: <file>: invalid YAML: a value the YAML reader takes for a number") \
        or message.startswith(f"{path}:5:11: priority: priority must be a whole number"), message
