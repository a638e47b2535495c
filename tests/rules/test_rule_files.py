"""Rule files are read as YAML 1.2, and every problem names its file, line and column."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from rulelife.cli import app
from rulelife.errors import RuleFileError
from rulelife.rules.definition import load_rule, read_yaml_document
from rulelife.rules.lint import lint_rules

runner = CliRunner()

# Line numbers below are counted in this text (1-based).
GOOD = """\
id: faq.opening_hours
intent: faq
patterns: ["opening hours"]
owner: ds@example.com
"""

BAD = """\
id: faq.opening_hours
intent: faq
patterns:
  - opening hours
  - "   "
priority: yes
owner: ds@example.com
"""


def write(rules, name: str, text: str):
    path = rules / "faq" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_field_problems_carry_the_line_and_column_of_the_value(tmp_path):
    path = write(tmp_path, "opening_hours.yaml", BAD)
    problems = {p.field: p for p in lint_rules(tmp_path).problems}
    assert (problems["priority"].line, problems["priority"].column) == (6, 11)
    assert "must be a whole number such as 0 or 10, got 'yes'" in problems["priority"].message
    assert (problems["patterns[1]"].line, problems["patterns[1]"].column) == (5, 5)
    assert str(problems["priority"]).startswith(f"{path}:6:11: priority: ")


def test_yes_and_no_are_text_in_yaml_1_2():
    # YAML 1.1 reads `no` as False: the Norwegian locale would vanish.
    document_text = GOOD + "locales: [no, en]\n"
    assert "no" in read_yaml_text(document_text)["locales"]


def read_yaml_text(text: str) -> dict:
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "rule.yaml"
        path.write_text(text, encoding="utf-8")
        return read_yaml_document(path).data


def test_a_norwegian_rule_loads_with_its_locale(tmp_path):
    path = write(tmp_path, "opening_hours.yaml", GOOD + "locales: [no]\n")
    assert load_rule(path).locales == ("no",)


def test_a_key_written_twice_is_refused_with_its_line(tmp_path):
    path = write(tmp_path, "opening_hours.yaml", GOOD + "owner: someone@example.com\n")
    [problem] = lint_rules(tmp_path).problems
    assert problem.field == "<file>"
    assert (problem.line, problem.column) == (5, 1)
    assert 'duplicate key "owner"' in problem.message
    with pytest.raises(RuleFileError, match=rf"^{path}:5:1: invalid YAML: found duplicate key"):
        load_rule(path)


def test_a_syntax_error_names_its_line(tmp_path):
    write(tmp_path, "opening_hours.yaml", GOOD + "description: [unclosed\n")
    [problem] = lint_rules(tmp_path).problems
    assert problem.line == 6
    assert problem.message.endswith("; fix the file so it parses")


def test_load_rule_names_every_bad_field_with_its_place(tmp_path):
    path = write(tmp_path, "opening_hours.yaml", BAD)
    with pytest.raises(RuleFileError) as caught:
        load_rule(path)
    message = str(caught.value)
    assert f"{path}:5:5: patterns[1] " in message
    assert f"{path}:6:11: priority " in message


def test_values_are_plain_python(tmp_path):
    path = write(tmp_path, "opening_hours.yaml", GOOD + "description: >\n  folded\n  text\npriority: 0x10\n")
    data = read_yaml_document(path).data
    assert type(data["description"]) is str and data["description"] == "folded text\n"
    assert type(data["priority"]) is int and data["priority"] == 16
    assert type(data["patterns"]) is list


def test_cli_lint_prints_file_line_column(tmp_path):
    root = tmp_path / "ws"
    assert runner.invoke(app, ["init", str(root)]).exit_code == 0
    path = write(root / "rules", "opening_hours.yaml", BAD)
    result = runner.invoke(app, ["--workspace", str(root), "rules", "lint"])
    assert result.exit_code == 1
    assert f"{path}:6:11: priority: priority must be a whole number" in result.output
    result = runner.invoke(app, ["--workspace", str(root), "rules", "lint", "--json"])
    problem = next(p for p in json.loads(result.output)["problems"] if p["field"] == "priority")
    assert (problem["line"], problem["column"]) == (6, 11)


def test_cli_prints_the_rule_schema():
    result = runner.invoke(app, ["rules", "schema"])
    assert result.exit_code == 0, result.output
    schema = json.loads(result.output)
    assert sorted(schema["required"]) == ["id", "intent", "owner", "patterns"]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["priority"]["type"] == "integer"
