"""A database another writer holds: a clear, retryable refusal (StoreBusy, exit 75), never a traceback."""

from __future__ import annotations

import sqlite3

import pytest
from typer.testing import CliRunner

from rulelife.cli import app
from rulelife.config import Workspace
from rulelife.errors import StoreBusy
from rulelife.store import Store, registry
from tests.conftest import RULE_TEXTS

runner = CliRunner()


@pytest.fixture
def ws(tmp_path, monkeypatch):
    monkeypatch.setenv("RULELIFE_DB_BUSY_TIMEOUT", "0.2")
    workspace = Workspace.create(tmp_path / "ws")
    for name, text in RULE_TEXTS.items():
        path = workspace.rules_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    registry.sync_workspace(workspace, actor="ana")
    return workspace


@pytest.fixture
def held(ws):
    """Another process's write transaction on the workspace's SQLite file, open for the test."""
    other = sqlite3.connect(ws.root / "rulelife.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    yield
    other.execute("ROLLBACK")
    other.close()


def test_the_busy_timeout_is_a_setting_of_30_seconds_by_default(tmp_path):
    assert Workspace.create(tmp_path / "plain").settings.db_busy_timeout == 30.0


def test_a_write_past_the_busy_timeout_raises_store_busy_and_keeps_nothing(ws, held):
    store = Store.from_workspace(ws)
    assert store.busy_timeout == 0.2
    with pytest.raises(StoreBusy, match=r"busy with another writer after waiting 0.2 s \(db_busy_timeout\).*run it "
                                        "again"):
        registry.transition(store, "faq.hours", "active", actor="ana", reason="now")
    store.dispose()


def test_the_cli_exits_75_with_one_line_for_a_busy_database(ws, held):
    result = runner.invoke(app, ["-w", str(ws.root), "retire", "faq.hours", "--reason", "replaced"])
    assert result.exit_code == 75, result.output
    assert "is busy with another writer" in result.output and "Traceback" not in result.output


def test_once_the_other_writer_is_done_the_same_command_succeeds(ws):
    other = sqlite3.connect(ws.root / "rulelife.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    args = ["-w", str(ws.root), "retire", "faq.hours", "--reason", "replaced"]
    assert runner.invoke(app, args).exit_code == 75
    other.execute("ROLLBACK")
    other.close()
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert registry.get_status(Store.from_workspace(ws), "faq.hours").state.value == "retired"
