"""An older registry gains the columns a newer release declares, and keeps its rows."""

from __future__ import annotations

import pytest
import sqlalchemy

from rulelife.store import Store

pytestmark = pytest.mark.store


def test_missing_nullable_column_is_added_and_rows_survive(db_url):
    url, schema = db_url
    Store(url, schema=schema).dispose()
    engine = sqlalchemy.create_engine(url, connect_args={"options": f"-csearch_path={schema}"} if schema else {})
    with engine.begin() as conn:
        # What an older release made: the audit table without its newest column.
        conn.execute(sqlalchemy.text('ALTER TABLE "audit_log" DROP COLUMN "evidence"'))
        conn.execute(sqlalchemy.text(
            "INSERT INTO audit_log (rule_id, at, actor, action, to_state, to_version, reason) "
            "VALUES ('a.b', '2026-01-01 00:00:00', 'ana', 'sync', 'candidate', 'v1', 'old row')"))
    engine.dispose()

    store = Store(url, schema=schema)
    columns = {c["name"] for c in sqlalchemy.inspect(store.engine).get_columns("audit_log")}
    with store.engine.connect() as conn:
        rows = conn.execute(sqlalchemy.text("SELECT rule_id, reason FROM audit_log")).all()
    store.dispose()
    assert "evidence" in columns
    assert [tuple(r) for r in rows] == [("a.b", "old row")]


def test_the_job_lock_is_per_deployment_not_per_database(db_url, tmp_path):
    url, schema = db_url
    if schema is None:
        pytest.skip("one SQLite file is one deployment; the lock file sits beside it")
    from rulelife.errors import JobLocked

    mine, same, other = Store(url, schema=schema), Store(url, schema=schema), Store(url, schema=f"{schema}_b")
    try:
        with mine.job_lock("nightly"):
            with pytest.raises(JobLocked):
                with same.job_lock("nightly"):
                    pass
            with other.job_lock("nightly"):  # another schema on the same database is another deployment
                pass
    finally:
        for store in (mine, same, other):
            store.dispose()
        engine = sqlalchemy.create_engine(url)
        with engine.begin() as conn:
            conn.execute(sqlalchemy.text(f'DROP SCHEMA IF EXISTS "{schema}_b" CASCADE'))
        engine.dispose()
