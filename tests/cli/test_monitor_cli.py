"""CLI paths of the nightly job and tickets: exit codes a scheduler acts on, and messages."""

from __future__ import annotations

from typer.testing import CliRunner

from rulelife.cli import app
from rulelife.config import Workspace
from rulelife.store import Store

runner = CliRunner()


def test_nightly_needs_a_date_or_a_range(tmp_path):
    Workspace.create(tmp_path / "ws")
    result = runner.invoke(app, ["--workspace", str(tmp_path / "ws"), "monitor", "nightly"])
    assert result.exit_code == 2
    assert "--date" in result.output


def test_nightly_exits_75_while_another_run_holds_the_lock(tmp_path):
    ws = Workspace.create(tmp_path / "ws")
    store = Store.from_workspace(ws)
    with store.job_lock("nightly"):
        result = runner.invoke(app, ["--workspace", str(ws.root), "monitor", "nightly", "--date", "2026-02-01"])
    assert result.exit_code == 75
    assert "holds" in result.output and "Traceback" not in result.output


def test_nightly_without_a_log_for_the_day_exits_1_with_the_fix(tmp_path):
    ws = Workspace.create(tmp_path / "ws")
    result = runner.invoke(app, ["--workspace", str(ws.root), "monitor", "nightly", "--date", "2026-02-01"])
    assert result.exit_code == 1
    assert "query log" in result.output and "Traceback" not in result.output


def test_unknown_ticket_is_named(tmp_path):
    ws = Workspace.create(tmp_path / "ws")
    for args in (["tickets", "show", "42"], ["tickets", "close", "42", "--reason", "x"]):
        result = runner.invoke(app, ["--workspace", str(ws.root), *args])
        assert result.exit_code == 1, result.output
        assert "no ticket 42" in result.output
    result = runner.invoke(app, ["--workspace", str(ws.root), "tickets", "list", "--json"])
    assert result.exit_code == 0 and result.output.strip() == "[]"


def test_a_deprecated_setting_is_one_warning_line_naming_its_new_table(tmp_path):
    ws = Workspace.create(tmp_path / "ws")
    ws.config_file.write_text(ws.config_file.read_text().replace(
        "revalidate_within_days = 14\n", "revalidate_within_days = 14\nfloor_days = 2\n"))
    result = runner.invoke(app, ["--workspace", str(ws.root), "tickets", "list", "--json"])
    assert result.exit_code == 0, result.output
    assert (f"WARNING rulelife.warnings: {ws.config_file}: setting 'floor_days' is deprecated and read for this "
            "release only; set 'days' in the [monitors.agreement_floor] table instead") in result.output
    assert "FutureWarning" not in result.output
