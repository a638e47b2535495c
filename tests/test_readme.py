"""The README's two commands are the contract with a new user and with CI."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("# "), "the README starts with its title"
    start = lines.index("```bash")
    end = lines.index("```", start + 1)
    assert start <= 3, "the two commands are the README's first lines"
    return lines[start + 1 : end]


def test_readme_opens_with_exactly_two_commands():
    commands = readme_commands()
    assert len(commands) == 2
    assert "quickstart" in commands[0]
    assert "pytest" in commands[1]


def test_ci_runs_the_readme_test_command_verbatim():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert readme_commands()[1] in ci
    for flag in ("PG", "DATA", "SPARK", "BROWSER"):
        assert f"RULELIFE_REQUIRE_{flag}=1" in "\n".join(ci)
