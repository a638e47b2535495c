import pytest
import yaml

from rulelife.errors import RuleFileError
from rulelife.rules.definition import Rule, check_rule, load_rule, load_rules, parse_rule, rule_to_yaml

RULE_YAML = """\
id: order_tracking.where_is_my_order
intent: order_tracking
patterns: [where is my order, track my order]
exclude: [cancel]
locales: [en]
owner: alice
"""

REFORMATTED_YAML = """\
# same rule, other layout and pattern order
owner: alice
locales:
  - en
patterns:
  - track my order
  - where is my order
exclude:
  - cancel
intent: order_tracking
id: order_tracking.where_is_my_order
"""


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_version_ignores_pattern_order_and_yaml_layout(tmp_path):
    first = load_rule(write(tmp_path / "a.yaml", RULE_YAML))
    second = load_rule(write(tmp_path / "b.yaml", REFORMATTED_YAML))
    assert first.version == second.version
    assert len(first.version) == 12


def test_version_changes_when_a_pattern_changes(tmp_path):
    edited = RULE_YAML.replace("track my order", "track my parcel")
    assert load_rule(write(tmp_path / "a.yaml", RULE_YAML)).version != load_rule(
        write(tmp_path / "b.yaml", edited)
    ).version


def test_load_rules_reads_every_file_sorted(tmp_path):
    write(tmp_path / "rules/b/two.yaml", RULE_YAML)
    write(tmp_path / "rules/a/one.yml", REFORMATTED_YAML)
    loaded = load_rules(tmp_path / "rules")
    assert [rf.path.name for rf in loaded] == ["one.yml", "two.yaml"]


def test_parse_error_names_the_file_and_the_field(tmp_path):
    path = write(tmp_path / "r.yaml", RULE_YAML.replace("owner: alice\n", "").replace("[cancel]", "[cancel, ' ']"))
    with pytest.raises(RuleFileError) as info:
        load_rule(path)
    message = str(info.value)
    assert f"{path}: owner is required but missing" in message  # a missing field has no line
    assert f"{path}:4:19: exclude[1] is empty" in message  # line and column of the value


def test_yaml_syntax_error_names_line_and_column(tmp_path):
    path = write(tmp_path / "r.yaml", "id: a.b\npatterns: [a, b\n")
    with pytest.raises(RuleFileError, match=r"r\.yaml:3:1: invalid YAML: expected ',' or ']'") as info:
        load_rule(path)
    assert (info.value.line, info.value.column) == (3, 1)


def test_parse_rule_refuses_a_non_mapping():
    with pytest.raises(RuleFileError, match="src: a rule file must be a mapping"):
        parse_rule(["a"], "src")


def test_check_rule_lists_every_field_problem():
    data = {"id": "Bad", "intent": "x", "patterns": [], "owner": 3, "match": "regex", "priority": True, "colour": 1}
    rule, problems = check_rule(data)
    assert rule is None
    assert [field for field, _ in problems] == ["id", "patterns", "match", "priority", "owner", "colour"]


def test_priority_must_be_a_real_integer():
    base = {"id": "a.b", "intent": "a", "patterns": ["x y"], "owner": "o"}
    assert check_rule({**base, "priority": 3})[0].priority == 3
    for bad in (True, "3"):
        rule, problems = check_rule({**base, "priority": bad})
        assert rule is None and problems[0][0] == "priority"


def test_rule_to_yaml_round_trips():
    rule = parse_rule(yaml.safe_load(RULE_YAML), "src")
    again = parse_rule(yaml.safe_load(rule_to_yaml(rule)), "src")
    assert again == rule and isinstance(again, Rule)
