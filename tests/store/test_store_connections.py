"""A library call that opens a store of its own closes its connections when it returns (SQLite and PostgreSQL)."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy.engine import make_url

from rulelife.serving import publish
from rulelife.store import registry


def open_connections(db_url: str) -> int:
    """Connections this process holds to the database: file handles on SQLite, sockets to the server on PostgreSQL."""
    url = make_url(db_url)
    targets = [os.readlink(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")
               if os.path.exists(f"/proc/self/fd/{fd}")]
    if url.get_backend_name() == "sqlite":
        return sum(target == str(Path(url.database).resolve()) for target in targets)
    ours = {target[len("socket:["):-1] for target in targets if target.startswith("socket:[")}
    port = f"{url.port or 5432:04X}"
    established = 0
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            # remote address:port, state 01 (established), socket inode
            if fields[2].endswith(f":{port}") and fields[3] == "01" and fields[9] in ours:
                established += 1
    return established


def test_calls_that_open_their_own_store_leave_no_connection_open(rules_workspace):
    workspace = rules_workspace()  # synced once: the rules are candidates
    for _ in range(5):
        registry.sync_workspace(workspace, actor="ana")
        registry.rule_details(workspace, "faq.hours")
        publish.set_state(workspace, "faq.hours", "shadow", actor="ana", reason="a test")  # publishes a bundle
        publish.set_state(workspace, "faq.hours", "candidate", actor="ana", reason="a test")
    assert open_connections(workspace.db_url) == 0  # 42 before such a store closed its pool when dropped


def test_a_store_the_caller_passes_stays_theirs_and_usable(rules_workspace):
    from rulelife.store import Store

    workspace = rules_workspace()
    store = Store.from_workspace(workspace)
    registry.sync_workspace(workspace, actor="ana", store=store)
    assert open_connections(workspace.db_url) >= 1  # the caller's pool keeps its connection for the next call
    assert [s.rule_id for s in registry.list_rules(store)] == ["faq.hours", "order_tracking.where"]
    store.dispose()
    assert open_connections(workspace.db_url) == 0
    assert [s.rule_id for s in registry.list_rules(store)] == ["faq.hours", "order_tracking.where"]  # connects again



def test_a_forked_child_that_drops_a_store_leaves_the_parents_connections_alone(db_url):
    from sqlalchemy import text

    from rulelife.store import Store

    url, schema = db_url
    store = Store(url, schema=schema)
    query = text("SELECT pg_backend_pid()" if store.engine.dialect.name == "postgresql" else "SELECT 1")

    def sessions() -> set:
        """The server session of every pooled connection (a dead one is replaced by a new session on checkout)."""
        held = [store.engine.connect() for _ in range(store.engine.pool.checkedin())]
        try:
            return {conn.execute(query).scalar() for conn in held}
        finally:
            for conn in held:
                conn.close()

    before = sessions()
    pid = os.fork()
    if pid == 0:  # the child drops its copy, as a worker's code going out of scope would
        del store
        os._exit(0)
    assert os.waitpid(pid, 0)[1] == 0
    assert sessions() == before  # the same server sessions: the child ended none of them
    store.dispose()
