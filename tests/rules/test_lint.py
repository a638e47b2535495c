import doctest
import importlib
import json

import pytest
import yaml

from rulelife.rules.lint import LintProblem, lint_rules


def write_rule(root, relpath, **fields):
    """Write rules/<relpath>.yaml with a valid rule unless ``fields`` override it."""
    parts = relpath.split("/")
    data = {"id": ".".join(parts), "intent": parts[0], "patterns": ["where is my parcel"], "owner": "tests"}
    data.update(fields)
    data = {key: value for key, value in data.items() if value is not None}  # None drops a field
    return write_text(root, relpath, yaml.safe_dump(data, allow_unicode=True))


def write_text(root, relpath, text):
    path = root / "rules" / f"{relpath}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def only_problem(tmp_path):
    report = lint_rules(tmp_path / "rules")
    assert len(report.problems) == 1, [str(p) for p in report.problems]
    return report.problems[0]


def test_clean_folder_is_ok(tmp_path):
    write_rule(tmp_path, "order_tracking/where_is_my_order", patterns=["where is my order", "track my order"])
    write_rule(tmp_path, "returns/devolucion", patterns=["devolución"], locales=["es"], exclude=["no quiero"])
    write_rule(tmp_path, "catalog/gundam", patterns=["ガンダム"], locales=["ja-JP"], match="substring")
    report = lint_rules(tmp_path / "rules")
    assert report.ok, [str(p) for p in report.problems]
    ids = sorted(rf.rule.id for rf in report.rules)
    assert ids == ["catalog.gundam", "order_tracking.where_is_my_order", "returns.devolucion"]
    data = json.loads(json.dumps(report.to_dict()))
    assert data["ok"] is True and data["problems"] == [] and len(data["rules"]) == 3


def test_yaml_syntax_error_gives_line_and_column(tmp_path):
    path = write_text(tmp_path, "a/b", "id: a.b\npatterns: [x y, z\n")
    problem = only_problem(tmp_path)
    assert (problem.path, problem.field, problem.line, problem.column) == (path, "<file>", 3, 1)
    assert problem.message.startswith("invalid YAML: ")


@pytest.mark.parametrize(("text", "words"), [("- a\n- b\n", "got a list"), ("", "the file is empty")])
def test_file_that_is_not_a_mapping(tmp_path, text, words):
    path = write_text(tmp_path, "a/b", text)
    problem = only_problem(tmp_path)
    assert (problem.path, problem.field) == (path, "<file>")
    assert words in problem.message


def test_unknown_field_is_named_with_the_allowed_ones(tmp_path):
    path = write_rule(tmp_path, "a/b", pattern=["oops"])
    problem = only_problem(tmp_path)
    assert (problem.path, problem.field) == (path, "pattern")
    assert "pattern is not a rule field" in problem.message
    assert "allowed: id, intent, patterns, exclude, locales, match, priority, owner, description" in problem.message


def test_missing_required_field(tmp_path):
    path = write_rule(tmp_path, "a/b", owner=None)
    assert only_problem(tmp_path) == LintProblem(path, "owner", "owner is required but missing; add it")


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"match": "regex"}, "match", "must be one of 'word' or 'substring', got 'regex'"),
        ({"priority": "high"}, "priority", "must be a whole number"),
        ({"patterns": "where is my parcel"}, "patterns", "must be a list, got str"),
        ({"owner": 7}, "owner", "must be text, got int 7"),
        ({"patterns": ["where is my parcel", 42]}, "patterns[1]", "must be text, got int 42"),
    ],
)
def test_wrong_types_and_values(tmp_path, fields, field, words):
    path = write_rule(tmp_path, "a/b", **fields)
    problem = only_problem(tmp_path)
    assert (problem.path, problem.field) == (path, field)
    assert words in problem.message


def test_empty_patterns_list(tmp_path):
    path = write_rule(tmp_path, "a/b", patterns=[])
    # safe_dump sorts the keys: id, intent, owner, then `patterns: []` on line 4, its value at column 11
    assert only_problem(tmp_path) == LintProblem(path, "patterns", "patterns is empty; list at least one phrase", 4, 11)


@pytest.mark.parametrize("blank", ["", "   "])
def test_empty_or_whitespace_pattern(tmp_path, blank):
    path = write_rule(tmp_path, "a/b", patterns=["where is my parcel", blank])
    problem = only_problem(tmp_path)
    assert (problem.path, problem.field) == (path, "patterns[1]")
    assert "is empty" in problem.message


def test_duplicate_patterns_after_normalisation(tmp_path):
    path = write_rule(tmp_path, "a/b", patterns=["where is my parcel", "track parcel", "Track  PARCEL"])
    problem = only_problem(tmp_path)
    assert (problem.path, problem.field) == (path, "patterns[2]")
    assert "repeats patterns[1]" in problem.message


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"patterns": ["where is my parcel", "\u200b\u200d"]}, "patterns[1]", "normalises to nothing"),
        ({"patterns": ["where is my parcel", "Ｘ"]}, "patterns[1]", "single character 'x'"),
        ({"patterns": ["where is my parcel", "The Of"], "locales": ["en"]}, "patterns[1]", "stop words for locales en"),
        ({"patterns": ["where is my parcel", "de la"], "locales": ["es-MX"]}, "patterns[1]", "only stop words"),
        ({"patterns": ["ガンダム", "から"], "locales": ["ja"], "match": "substring"}, "patterns[1]", "only stop words"),
        ({"patterns": ["where is my parcel", "de la"]}, "patterns[1]", "only stop words for locales *"),  # default *
        ({"exclude": ["the"], "locales": ["en-GB"]}, "exclude[0]", "only stop words"),
        ({"patterns": ["where is my parcel", "?!"]}, "patterns[1]", "no letters or digits"),
    ],
)
def test_weak_phrases(tmp_path, fields, field, words):
    path = write_rule(tmp_path, "a/b", **fields)
    problem = only_problem(tmp_path)
    assert (problem.path, problem.field) == (path, field)
    assert words in problem.message


def test_stop_words_depend_on_the_rules_locale(tmp_path):
    write_rule(tmp_path, "a/b", patterns=["de la"], locales=["en"])  # Spanish stop words, English rule
    write_rule(tmp_path, "a/c", patterns=["bill"], locales=["en"])  # content word kept out of the list
    assert lint_rules(tmp_path / "rules").ok


@pytest.mark.parametrize(
    ("locales_a", "locales_b", "conflict"),
    [
        (["*"], ["en-US"], True),
        (["en"], ["en-US"], True),
        (["en-US"], ["en"], True),
        (["en-US"], ["en_us"], True),
        (["en-US"], ["en-GB"], False),
        (["es"], ["en"], False),
    ],
)
def test_same_pattern_in_two_intents_with_overlapping_locales(tmp_path, locales_a, locales_b, conflict):
    write_rule(tmp_path, "a/x", patterns=["where is my parcel"], locales=locales_a)
    path = write_rule(tmp_path, "b/y", patterns=["track it", "Where is my PARCEL"], locales=locales_b)
    report = lint_rules(tmp_path / "rules")
    if not conflict:
        assert report.ok, [str(p) for p in report.problems]
        return
    (problem,) = report.problems
    assert (problem.path, problem.field) == (path, "patterns[1]")
    assert "also a pattern of a.x" in problem.message and "intent 'a'" in problem.message


def test_same_pattern_in_one_intent_is_not_a_conflict(tmp_path):
    write_rule(tmp_path, "a/x", patterns=["where is my parcel", "parcel status"])
    write_rule(tmp_path, "a/y", patterns=["where is my parcel", "parcel tracking"])
    assert lint_rules(tmp_path / "rules").ok


@pytest.mark.parametrize(
    ("exclude", "field", "words"),
    [
        (["Where is my  parcel"], "exclude[0]", "is also patterns[0]"),
        (["my parcel"], "exclude[0]", "occurs inside patterns[0]"),
    ],
)
def test_pattern_vetoed_by_its_own_exclude(tmp_path, exclude, field, words):
    path = write_rule(tmp_path, "a/b", exclude=exclude)
    problem = only_problem(tmp_path)
    assert (problem.path, problem.field) == (path, field)
    assert words in problem.message


def test_exclude_inside_a_word_of_the_pattern_is_fine(tmp_path):
    write_rule(tmp_path, "a/b", patterns=["reorder my parcel"], exclude=["order"])  # "order" not a word here
    assert lint_rules(tmp_path / "rules").ok


def test_duplicate_ids_across_files(tmp_path):
    first = write_rule(tmp_path, "a/b")
    second = write_rule(tmp_path, "a/b_copy", id="a.b")
    problems = lint_rules(tmp_path / "rules").problems
    # The copy's id also does not match its place; both are reported.
    assert [(p.path, p.field) for p in problems] == [(second, "id"), (second, "id")]
    assert f"'a.b' is already used by {first}" in problems[1].message


@pytest.mark.parametrize(
    ("relpath", "fields", "expected"),
    [
        ("a/b", {"id": "a.c"}, [("id", "must have id 'a.b'")]),
        ("a/sub/b", {"id": "a.b"}, [("id", "must have id 'a.sub.b'")]),
        # The intent decides the folder and the id: here only the file is misplaced.
        ("a/b", {"id": "z.b", "intent": "z"}, [("intent", "does not match the folder 'a'")]),
        ("a/b", {"intent": "z"}, [("id", "a rule of intent 'z' at a/b.yaml must have id 'z.b'"),
                                  ("intent", "its folder is 'z': move the file to {rules}/z/b.yaml")]),
    ],
)
def test_id_and_intent_match_the_files_place(tmp_path, relpath, fields, expected):
    path = write_rule(tmp_path, relpath, **fields)
    problems = lint_rules(tmp_path / "rules").problems
    assert [(p.path, p.field) for p in problems] == [(path, field) for field, _ in expected]
    for problem, (_, words) in zip(problems, expected):
        assert words.format(rules=tmp_path / "rules") in problem.message


def test_folder_and_id_of_an_intent_that_is_not_a_slug(tmp_path):
    path = write_rule(tmp_path, "Billing & Payments/refund", intent="Billing & Payments", id="billing_payments.refund")
    problems = lint_rules(tmp_path / "rules").problems
    assert [str(p) for p in problems] == [
        f"{path}:1:5: id: id 'billing_payments.refund' does not match the file's place; a rule of intent "
        "'Billing & Payments' at Billing & Payments/refund.yaml must have id 'billing_payments_a54dfa3f.refund': "
        "change the id or move the file",
        f"{path}:2:9: intent: intent 'Billing & Payments' does not match the folder 'Billing & Payments' the file is in; "
        f"its folder is 'billing_payments_a54dfa3f': move the file to "
        f"{tmp_path / 'rules' / 'billing_payments_a54dfa3f' / 'refund.yaml'} or change the intent",
    ]
    path.unlink()
    write_rule(tmp_path, "billing_payments_a54dfa3f/refund", intent="Billing & Payments",
               id="billing_payments_a54dfa3f.refund")
    report = lint_rules(tmp_path / "rules")
    assert report.ok, [str(p) for p in report.problems]
    assert [rf.rule.intent for rf in report.rules] == ["Billing & Payments"]


def test_nested_rule_with_matching_id_is_fine(tmp_path):
    write_rule(tmp_path, "a/sub/b")
    assert lint_rules(tmp_path / "rules").ok


def test_rule_file_outside_an_intent_folder(tmp_path):
    path = write_rule(tmp_path, "loose", id="x.loose", intent="X-Ray")
    problem = only_problem(tmp_path)
    assert (problem.path, problem.field) == (path, "<file>")
    assert problem.message == ("a rule file must be in a folder named after its intent; "
                               f"move it to {tmp_path / 'rules'}/x_ray_fdb3c40b/loose.yaml")


@pytest.mark.parametrize(
    ("shadow", "victim", "shadowed"),
    [
        ({"priority": 1}, {}, True),
        ({}, {}, True),  # equal priority, a.a sorts before a.b
        ({"priority": -1}, {}, False),
        ({"match": "substring"}, {"match": "substring"}, True),
        ({"match": "substring"}, {}, True),
        ({}, {"match": "substring"}, False),  # the victim fires inside words where a.a cannot
        ({"locales": ["en"]}, {"locales": ["en-US"]}, True),
        ({"locales": ["en-US"]}, {"locales": ["en"]}, False),
        ({"locales": ["en"]}, {}, False),  # the victim's * is wider
        ({"exclude": ["cancel"]}, {"exclude": ["cancel", "refund"]}, True),
        ({"exclude": ["cancel"]}, {}, False),  # a.a can be vetoed where the victim is not
    ],
)
def test_shadowed_rule(tmp_path, shadow, victim, shadowed):
    write_rule(tmp_path, "a/a", patterns=["where is my parcel", "parcel status"], **shadow)
    path = write_rule(tmp_path, "a/b", patterns=["Where is my parcel"], **victim)
    report = lint_rules(tmp_path / "rules")
    if not shadowed:
        assert report.ok, [str(p) for p in report.problems]
        return
    (problem,) = report.problems
    assert (problem.path, problem.field) == (path, "patterns")
    assert "can never win" in problem.message and "a.a" in problem.message


def test_rule_with_a_pattern_of_its_own_is_not_shadowed(tmp_path):
    write_rule(tmp_path, "a/a", patterns=["where is my parcel"], priority=5)
    write_rule(tmp_path, "a/b", patterns=["where is my parcel", "parcel late"])
    assert lint_rules(tmp_path / "rules").ok


def test_every_problem_is_reported_at_once(tmp_path):
    write_text(tmp_path, "a/broken", "id: [\n")
    write_rule(tmp_path, "a/many", patterns=["where is my parcel", "the", "x"], match="regex", colour="red", owner=None)
    write_rule(tmp_path, "b/other", patterns=["where is my parcel"], id="b.wrong")
    report = lint_rules(tmp_path / "rules")
    found = {(p.path.relative_to(tmp_path / "rules").as_posix(), p.field) for p in report.problems}
    assert found == {
        ("a/broken.yaml", "<file>"),
        ("a/many.yaml", "match"),
        ("a/many.yaml", "owner"),
        ("a/many.yaml", "colour"),
        ("a/many.yaml", "patterns[1]"),
        ("a/many.yaml", "patterns[2]"),
        ("b/other.yaml", "id"),
    }
    assert len(report.problems) == len(found)
    assert [rf.rule.id for rf in report.rules] == ["b.wrong"]
    assert not report.ok
    assert len(report.to_dict()["problems"]) == 7


def test_problems_print_as_path_field_message(tmp_path):
    path = write_rule(tmp_path, "a/b", owner=None)
    assert str(only_problem(tmp_path)) == f"{path}: owner: owner is required but missing; add it"


def test_stopwords_doctests():
    assert doctest.testmod(importlib.import_module("rulelife.rules.stopwords")).failed == 0
