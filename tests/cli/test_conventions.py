"""Command-line conventions a scheduler and a person at a terminal rely on."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta

import pytest
import typer
from typer.testing import CliRunner

from rulelife import __version__
from rulelife.cli import app
from rulelife.cli._common import configure_logging, parse_day
from rulelife.config import Workspace
from rulelife.monitoring import nightly, tickets
from rulelife.monitoring.contract import Action, Finding, Severity
from rulelife.store import NightlyRunRow, Store, utcnow

runner = CliRunner()

RULE = """\
id: faq.opening_hours
intent: faq
patterns: ["opening hours"]
owner: ds@example.com
"""


def cli(*args: str) -> subprocess.CompletedProcess:
    """The installed entry point, as cron runs it (argv, a pipe for stdout)."""
    return subprocess.run([sys.executable, "-c", "from rulelife.cli import main; main()", *args],
                          capture_output=True, text=True)


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"rulelife {__version__}"


def test_named_days_are_utc():
    today = datetime.now(UTC).date()
    assert parse_day("today", "--date") == today
    assert parse_day("Yesterday", "--date") == today - timedelta(days=1)
    assert parse_day("2026-03-01", "--date") == date(2026, 3, 1)
    with pytest.raises(typer.BadParameter, match="use YYYY-MM-DD, today or yesterday"):
        parse_day("tomorrow", "--date")


@pytest.mark.parametrize("args", [["tickets", "list", "--status", "bogus"], ["analyze", "--engine", "dask"],
                                  ["promote", "faq.opening_hours", "--to", "live"]])
def test_choices_are_checked_before_anything_runs(tmp_path, args):
    Workspace.create(tmp_path / "ws")
    result = runner.invoke(app, ["-w", str(tmp_path / "ws"), *args])
    assert result.exit_code == 2
    assert "Invalid value" in result.output


def test_the_workspace_option_works_after_the_command(tmp_path):
    ws = Workspace.create(tmp_path / "ws")
    (ws.rules_dir / "faq").mkdir(parents=True)
    (ws.rules_dir / "faq" / "opening_hours.yaml").write_text(RULE)
    before, after = cli("-w", str(ws.root), "rules", "lint"), cli("rules", "lint", "-w", str(ws.root))
    assert before.returncode == after.returncode == 0, after.stderr
    assert after.stdout == before.stdout == "1 rules, no problems\n"


def test_piped_lines_are_not_hard_wrapped(tmp_path):
    ws = Workspace.create(tmp_path / "ws")
    (ws.rules_dir / "billing").mkdir(parents=True)
    # A long problem: the intent and the folder disagree (over 160 characters once the path is in).
    (ws.rules_dir / "billing" / "refund.yaml").write_text(RULE.replace("faq.opening_hours", "billing.refund"))
    result = cli("-w", str(ws.root), "rules", "lint")
    assert result.returncode == 1
    [line] = [line for line in result.stderr.splitlines() if "does not match the folder" in line]
    assert len(line) > 160 and line.endswith("or change the intent")


def _finding(subject: str, severity: Severity, day: date) -> Finding:
    return Finding(subject=subject, check="agreement_floor", severity=severity, action=Action.TICKET, day=day,
                   summary=f"{subject} needs a look")


@pytest.mark.store
def test_tickets_list_puts_the_most_severe_first(tmp_path, db_url):
    url, schema = db_url
    ws = Workspace.create(tmp_path / "ws", db_url=url)
    store = Store(url, schema=schema)
    with store.session() as session:
        for subject, severity in (("faq.a", Severity.INFO), ("faq.b", Severity.CRITICAL), ("faq.c", Severity.WARNING)):
            tickets.record_finding(session, _finding(subject, severity, date(2026, 3, 1)), sinks=[])
    env = {"RULELIFE_DB_SCHEMA": schema} if schema else {}
    result = runner.invoke(app, ["-w", str(ws.root), "tickets", "list", "--json"], env=env)
    assert result.exit_code == 0, result.output
    assert [t["subject"] for t in json.loads(result.output)] == ["faq.b", "faq.c", "faq.a"]


@pytest.mark.store
def test_catch_up_runs_the_days_after_the_last_success(tmp_path, db_url):
    url, schema = db_url
    store = Store(url, schema=schema)
    with pytest.raises(Exception, match="no successful nightly run on record"):
        nightly.catch_up_days(store, date(2026, 3, 5))
    with store.session() as session:
        for day, status in ((date(2026, 3, 1), "ok"), (date(2026, 3, 2), "no_traffic"), (date(2026, 3, 3), "failed")):
            session.add(NightlyRunRow(day=day, started_at=utcnow(), status=status))
    # The failed night and the missed ones are redone; the successful ones are not.
    assert nightly.catch_up_days(store, date(2026, 3, 5)) == [date(2026, 3, 3), date(2026, 3, 4), date(2026, 3, 5)]
    assert nightly.catch_up_days(store, date(2026, 3, 2)) == []


def test_catch_up_cli_with_nothing_to_count_from(tmp_path):
    ws = Workspace.create(tmp_path / "ws")
    result = runner.invoke(app, ["-w", str(ws.root), "monitor", "nightly", "--catch-up", "--to", "2026-03-05"])
    assert result.exit_code == 1
    assert "--from D --to D" in result.output
    result = runner.invoke(app, ["-w", str(ws.root), "monitor", "nightly", "--catch-up", "--date", "2026-03-05"])
    assert result.exit_code == 2


def test_json_log_lines(capsys):
    configure_logging(verbose=True, quiet=False, json_lines=True)
    try:
        logging.getLogger("rulelife.monitoring.nightly").info("day %s counted", "2026-03-01")
        entry = json.loads(capsys.readouterr().err.strip())
        assert (entry["level"], entry["logger"], entry["message"]) == ("info", "rulelife.monitoring.nightly",
                                                                      "day 2026-03-01 counted")
        configure_logging(verbose=False, quiet=True, json_lines=False)
        logging.getLogger("rulelife.x").warning("hidden under --quiet")
        assert capsys.readouterr().err == ""
    finally:
        configure_logging(verbose=False, quiet=False, json_lines=False)


def test_verbose_and_quiet_together_are_refused(tmp_path):
    result = runner.invoke(app, ["-v", "-q", "--version"])
    assert result.exit_code == 0  # --version is eager and wins
    result = runner.invoke(app, ["-v", "-q", "-w", str(tmp_path), "tickets", "list"])
    assert result.exit_code == 2
    assert "contradict" in result.output
