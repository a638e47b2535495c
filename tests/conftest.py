"""Shared fixtures.

``store`` runs a test once on SQLite and once on PostgreSQL. The PostgreSQL
URL comes from RULELIFE_TEST_PG_URL (default: the local trust-auth server).
Locally a missing server skips those runs; with RULELIFE_REQUIRE_PG=1 (set by
.ci/run) it fails them instead. Each PostgreSQL test gets its own schema, so
tests never see each other's rows.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import sqlalchemy

from rulelife.store import Store

PG_URL = os.environ.get("RULELIFE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data"

_pg_checked: str | None = None


def _pg_problem() -> str:
    """'' when PostgreSQL answers, else why it does not (checked once)."""
    global _pg_checked
    if _pg_checked is None:
        try:
            engine = sqlalchemy.create_engine(PG_URL)
            with engine.connect() as conn:
                conn.execute(sqlalchemy.text("select 1"))
            engine.dispose()
            _pg_checked = ""
        except Exception as exc:  # any failure to connect means "no server here"
            _pg_checked = f"PostgreSQL at {PG_URL} is not reachable: {str(exc).splitlines()[0]}"
    return _pg_checked


def require_or_skip(problem: str, env: str) -> None:
    if not problem:
        return
    if os.environ.get(env) == "1":
        pytest.fail(f"{problem} ({env}=1 makes this mandatory)")
    pytest.skip(problem)


@pytest.fixture(autouse=True)
def _close_pooled_connections(monkeypatch):
    """After each test, close the pooled connections of every store it opened.

    A store closes its pool when it is dropped, but one a failing test's
    traceback keeps alive would hold its connections for the rest of the run;
    over a thousand tests that can be more than a PostgreSQL server allows by
    default (100). Disposing only empties a pool: an engine still referenced
    opens a connection again when next used.
    """
    opened = []
    connect = Store._connect

    def recording(*args, **kwargs):
        engine = connect(*args, **kwargs)
        opened.append(engine)
        return engine

    monkeypatch.setattr(Store, "_connect", staticmethod(recording))
    yield
    for engine in opened:
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """A fresh, empty database URL (plus schema) on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'registry.db'}", None
        return
    require_or_skip(_pg_problem(), "RULELIFE_REQUIRE_PG")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    yield PG_URL, schema
    engine = sqlalchemy.create_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


@pytest.fixture
def new_workspace(tmp_path, db_url, monkeypatch):
    """Make a fresh workspace on this test's backend: ``new_workspace(dataset_floor="300", ...)``.

    Each keyword becomes the ``RULELIFE_<KEY>`` setting (a string, as in the
    environment), so the workspace's own settings file stays the default one.
    """
    from rulelife.config import Workspace

    url, schema = db_url
    if schema:
        monkeypatch.setenv("RULELIFE_DB_SCHEMA", schema)

    def make(name: str = "ws", **settings: str) -> Workspace:
        for key, value in settings.items():
            monkeypatch.setenv(f"RULELIFE_{key.upper()}", value)
        return Workspace.create(tmp_path / name, db_url=url)

    return make


# Two small rules many tests share: a narrow order-tracking rule and a faq rule for every locale.
RULE_TEXTS = {
    "order_tracking/where.yaml": """\
id: order_tracking.where
intent: order_tracking
patterns: ["where is my order"]
locales: ["en-US"]
owner: ds
description: Where is my order.
""",
    "faq/hours.yaml": """\
id: faq.hours
intent: faq
patterns: ["opening hours"]
locales: ["*"]
owner: ds
description: Opening hours.
""",
}


@pytest.fixture
def rule_texts() -> dict[str, str]:
    """The YAML of the shared rules, by path under ``rules/`` (order_tracking.where, faq.hours)."""
    return dict(RULE_TEXTS)


@pytest.fixture
def rules_workspace(new_workspace):
    """Make a fresh workspace holding rules and sync them (as candidates, actor ana):
    ``rules_workspace({"faq/x.yaml": text}, webhook_url=...)``; no rules given: the shared two."""
    from rulelife.store import registry

    def make(rules: dict[str, str] | None = None, **settings: str):
        workspace = new_workspace(**settings)
        for name, text in (RULE_TEXTS if rules is None else rules).items():
            path = workspace.rules_dir / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        registry.sync_workspace(workspace, actor="ana")
        return workspace

    return make


@pytest.fixture
def live_workspace(rules_workspace):
    """The shared two rules, both made active without the gate and published (bundles 1 and 2)."""
    from rulelife.serving import publish

    workspace = rules_workspace()
    for rule_id in ("order_tracking.where", "faq.hours"):
        publish.set_state(workspace, rule_id, "active", actor="ana", reason="test setup")
    return workspace


@pytest.fixture
def store(db_url):
    url, schema = db_url
    store = Store(url, schema=schema)
    yield store
    store.dispose()


@pytest.fixture
def shared_data() -> Path:
    """The shared real datasets folder; skip (or fail under RULELIFE_REQUIRE_DATA=1) when absent."""
    problem = "" if DATA_DIR.is_dir() else f"shared datasets not found at {DATA_DIR}"
    require_or_skip(problem, "RULELIFE_REQUIRE_DATA")
    return DATA_DIR


@pytest.fixture(scope="session")
def spark_available() -> None:
    """Java and pyspark are here; skip (or fail under RULELIFE_REQUIRE_SPARK=1) otherwise."""
    import importlib.util
    import shutil

    problem = ""
    if importlib.util.find_spec("pyspark") is None:
        problem = "pyspark is not installed (pip install 'rulelife[spark]')"
    elif shutil.which("java") is None:
        problem = "no java on PATH: Spark's local mode needs a JRE (apt-get install default-jre-headless)"
    require_or_skip(problem, "RULELIFE_REQUIRE_SPARK")


@pytest.fixture(scope="session")
def chromium() -> tuple[str, str]:
    """Paths of Debian's chromium and chromedriver; skip (or fail under RULELIFE_REQUIRE_BROWSER=1) without them."""
    import importlib.util
    import shutil

    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    problem = ""
    if importlib.util.find_spec("selenium") is None:
        problem = "selenium is not installed (pip install -e '.[test]')"
    elif not browser or not driver:
        problem = "chromium / chromedriver not on PATH (apt-get install chromium chromium-driver)"
    require_or_skip(problem, "RULELIFE_REQUIRE_BROWSER")
    return browser, driver


# A process that dies (SIGKILL: no cleanup runs) half way through an atomic write.
_KILLED_WRITER = """
import os, signal, sys
from rulelife._files import atomic_path
with atomic_path(sys.argv[1]) as tmp:
    tmp.write_text(sys.argv[2])
    os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.fixture
def kill_mid_write():
    """``kill_mid_write(path, partial_text)``: a writer of ``path`` killed after writing ``partial_text``."""

    def kill(path: Path, partial: str) -> None:
        done = subprocess.run([sys.executable, "-c", _KILLED_WRITER, str(path), partial],
                              capture_output=True, check=False)
        assert done.returncode == -signal.SIGKILL, done.stderr.decode()

    return kill
