"""Database access: one engine per URL, schema created on first use, and
SQLAlchemy errors translated into :class:`StoreError` at this boundary."""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import event, inspect, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, OperationalError, SQLAlchemyError
from sqlmodel import Session, SQLModel, create_engine

from rulelife.errors import JobLocked, StoreBusy, StoreError
from rulelife.store import models  # noqa: F401  (registers the tables)

__all__ = ["Store", "utcnow"]

# Another writer won: SQLite's lock (past the busy timeout, or at once when a read must turn into a
# write after another commit), a PostgreSQL deadlock or serialization failure. Retrying is the fix.
_BUSY = ("database is locked", "database table is locked", "deadlock detected", "could not serialize access")
_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def utcnow() -> datetime:
    """Aware UTC now, to the second: every table stores and returns UTC."""
    return datetime.now(UTC).replace(microsecond=0)


def _masked(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    return str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__


class Store:
    """The registry database (SQLite by default, PostgreSQL by URL).

    Parameters
    ----------
    url
        SQLAlchemy URL, e.g. ``sqlite:///rulelife.db`` or
        ``postgresql+psycopg://user@host:5432/db``.
    schema
        PostgreSQL only: keep the tables in this schema (created if missing),
        so several deployments can share one database.
    busy_timeout
        SQLite only: seconds a write waits for another writer's lock before
        it gives up with :class:`StoreBusy`.
    """

    def __init__(self, url: str, *, schema: str | None = None, busy_timeout: float = 30.0):
        self.url = url
        self.schema = schema
        self.busy_timeout = busy_timeout
        self.engine = self._connect(url, schema, busy_timeout)
        # A store a library call opened for itself (``store=None``) is dropped when the call returns; its
        # pooled connections close then, not at the collector's next pass: a scheduler or a notebook that
        # calls the library all day would otherwise hold connections PostgreSQL counts against its limit.
        weakref.finalize(self, _dispose_in, self.engine, os.getpid())
        self.create_schema()

    @classmethod
    def from_workspace(cls, workspace) -> Store:
        return cls(workspace.db_url, schema=workspace.settings.db_schema,
                   busy_timeout=workspace.settings.db_busy_timeout)

    @staticmethod
    def _connect(url: str, schema: str | None, busy_timeout: float = 30.0) -> Engine:
        try:
            parsed = make_url(url)
        except ArgumentError:
            raise StoreError(
                f"db_url {url!r} is not a database URL; use sqlite:///path/to/file.db "
                "or postgresql+psycopg://user@host:5432/dbname"
            ) from None
        kwargs: dict = {}
        if parsed.get_backend_name() == "sqlite":
            kwargs["connect_args"] = {"timeout": busy_timeout}
        else:
            kwargs["pool_pre_ping"] = True
            if schema:
                if not _SCHEMA_NAME.match(schema):
                    raise StoreError(f"db_schema {schema!r} is not a plain identifier; use letters, digits and _")
                kwargs["connect_args"] = {"options": f"-csearch_path={schema}"}
        try:
            engine = create_engine(url, **kwargs)
        except (NoSuchModuleError, ModuleNotFoundError) as exc:
            raise StoreError(f"no database driver for {_masked(url)} ({exc}); install it or fix db_url") from None
        if parsed.get_backend_name() == "sqlite":
            event.listen(engine, "connect", _sqlite_pragmas)
        return engine

    def create_schema(self) -> None:
        """Create missing tables (idempotent)."""
        try:
            with self.engine.begin() as conn:
                if self.schema and self.engine.dialect.name == "postgresql":
                    conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"'))
            SQLModel.metadata.create_all(self.engine)
            self._add_missing_columns()
        except SQLAlchemyError as exc:
            raise self._translate(exc) from None

    def _add_missing_columns(self) -> None:
        """Add columns a newer release declares to tables an older release created.

        Additive only: a new column must be nullable or carry a default, so the
        rows already there stay valid; nothing is ever dropped or retyped.
        """
        existing = inspect(self.engine)
        with self.engine.begin() as conn:
            for table in SQLModel.metadata.sorted_tables:
                if not existing.has_table(table.name):
                    continue
                present = {c["name"] for c in existing.get_columns(table.name)}
                for column in table.columns:
                    if column.name in present:
                        continue
                    kind = column.type.compile(dialect=self.engine.dialect)
                    default = column.server_default.arg if column.server_default is not None else None
                    clause = f" DEFAULT {default}" if default is not None else ""
                    conn.execute(text(f'ALTER TABLE "{table.name}" ADD COLUMN "{column.name}" {kind}{clause}'))

    def _translate(self, exc: SQLAlchemyError) -> StoreError:
        message = str(exc).lower()
        if isinstance(exc, DBAPIError) and any(word in message for word in _BUSY):
            waited = f" after waiting {self.busy_timeout:g} s (db_busy_timeout)" \
                if self.engine.dialect.name == "sqlite" else ""
            return StoreBusy(
                f"the database at {_masked(self.url)} is busy with another writer{waited}: {_first_line(exc)}. "
                "Nothing of this command was kept; run it again in a moment")
        if isinstance(exc, OperationalError) and any(
            word in message for word in ("connect", "could not", "unable to open", "refused", "timeout")
        ):
            return StoreError(
                f"cannot reach the database at {_masked(self.url)}: {_first_line(exc)}. "
                "Check db_url in rulelife.toml (or RULELIFE_DB_URL) and that the server is running."
            )
        return StoreError(f"database error at {_masked(self.url)}: {_first_line(exc)}")

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success, rolls back on error, and raises
        :class:`StoreError` for database failures."""
        try:
            with Session(self.engine, expire_on_commit=False) as session:
                try:
                    yield session
                    session.commit()
                except BaseException:
                    session.rollback()
                    raise
        except SQLAlchemyError as exc:
            raise self._translate(exc) from None

    @contextmanager
    def job_lock(self, name: str) -> Iterator[None]:
        """Hold an exclusive lock named ``name`` across processes and hosts.

        PostgreSQL: a session advisory lock (every host sharing the database
        sees it). SQLite: an flock on a file beside the database (the database
        is one host's file anyway). Raises :class:`JobLocked` at once if another
        holder has it, so a scheduler can retry later instead of queueing.
        """
        if self.engine.dialect.name == "postgresql":
            # Advisory locks are per database: the schema is in the key, so deployments that share a
            # database in their own schemas never block each other's nightly runs.
            scoped = f"{self.schema or ''}/{name}".encode()
            key = int.from_bytes(hashlib.blake2b(scoped, digest_size=8).digest(), "big", signed=True)
            with self.engine.connect() as conn:
                got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
                if not got:
                    raise JobLocked(f"another {name} run holds the lock on {_masked(self.url)}; try again later")
                try:
                    yield
                finally:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                    conn.commit()
            return
        database = self.engine.url.database
        path = Path(f"{database}.{name}.lock") if database and database != ":memory:" else Path(f".{name}.lock")
        with open(path, "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise JobLocked(f"another {name} run holds {path}; try again later") from None
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def drop_all(self) -> None:
        """Drop every table (tests and ``rulelife init --reset`` only)."""
        SQLModel.metadata.drop_all(self.engine)

    def dispose(self) -> None:
        """Close the pooled connections now (the store stays usable: it connects again when used)."""
        self.engine.dispose()


def _dispose_in(engine: Engine, pid: int) -> None:
    """Close ``engine``'s pool, in the process that opened it only: a forked child shares the parent's sockets,
    and closing a PostgreSQL connection there would end the parent's session."""
    if os.getpid() == pid:
        engine.dispose()


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the runtime's readers and the nightly writer work at once.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
