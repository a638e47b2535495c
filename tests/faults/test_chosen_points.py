"""The kill points the random suite found divergent, each killed on purpose (SIGKILL) and re-run."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pandas as pd
from sqlmodel import select

from rulelife.querylog import LogReport, iter_log
from rulelife.serving import publish
from rulelife.serving.bundle import BundleStore
from rulelife.store import EventRow, Store

# The reader dies after its quarantine file is in place and before the file's verdict marker is saved.
_KILLED_READER = """
import os, signal, sys
from rulelife.querylog import iter_log, quarantine, reader

def dies(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

reader.save_verdict = dies
for _ in iter_log(sys.argv[1], quarantine_dir=sys.argv[2]):
    pass
"""

LOG = """query_id,ts,text,locale,model_intent,model_confidence
q1,2026-03-01T10:00:00Z,where is my order,en-US,order_tracking,0.9
q2,2026-03-01T10:01:00Z,hello,en-US,chitchat,1.7
q3,not a time,hi,en-US,chitchat,0.9
q4,2026-03-01T10:03:00Z,thanks,en-US,chitchat,0.8
"""


def quarantined(folder) -> list[tuple[int, str]]:
    rows = []
    for path in sorted(folder.glob("*.parquet")):
        frame = pd.read_parquet(path)
        rows += list(zip(frame["_row"].tolist(), frame["_reason"].tolist()))
    return sorted(rows)


def test_a_read_killed_between_its_quarantine_file_and_its_marker_quarantines_each_row_once(tmp_path):
    log = tmp_path / "queries-2026-03-01.csv"
    log.write_text(LOG)
    folder = tmp_path / "quarantine"
    killed = subprocess.run([sys.executable, "-c", _KILLED_READER, str(log), str(folder)], capture_output=True,
                            check=False)
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()
    first = quarantined(folder)
    assert [row for row, _ in first] == [1, 2] and not (folder / ".validated").exists()  # rows out, no marker
    report = LogReport()
    rows = sum(len(chunk) for chunk in iter_log(log, quarantine_dir=folder, report=report))
    assert (rows, report.rows_quarantined) == (2, 2)
    assert quarantined(folder) == first  # the same two rows, once
    again = LogReport()
    list(iter_log(log, quarantine_dir=folder, report=again))
    assert again.files_cached == [str(log)] and quarantined(folder) == first


# A publish that dies after CURRENT moved and before its history line is written.
_KILLED_PUBLISH = """
import os, signal, sys
from rulelife.config import Workspace
from rulelife.serving import publish
from rulelife.serving.bundle import BundleStore

def dies(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

BundleStore._append_history = dies
publish.set_state(Workspace.load(sys.argv[1]), "order_tracking.where", "disabled", actor="ana", reason="misroutes")
"""


def test_a_publish_killed_after_current_moved_writes_its_history_line_and_event_once_on_re_run(live_workspace):
    ws = live_workspace
    bundles = BundleStore(ws.bundle_dir)
    assert [e["number"] for e in bundles.history()] == [1, 2]
    killed = subprocess.run([sys.executable, "-c", _KILLED_PUBLISH, str(ws.root)], capture_output=True,
                            check=False)
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()
    assert bundles.pointer()["number"] == 3 and [e["number"] for e in bundles.history()] == [1, 2]
    _, published = publish.set_state(ws, "order_tracking.where", "disabled", actor="ana", reason="misroutes")
    assert published.published and published.bundle.number == 3
    history = bundles.history()
    assert [(e["number"], e["previous"]) for e in history] == [(1, None), (2, 1), (3, 2)]
    publish.publish_active(ws, actor="ana")  # nothing left to do: no second line
    assert len(bundles.history()) == 3
    store = Store.from_workspace(ws)
    with store.session() as session:
        subjects = session.exec(select(EventRow.subject).where(EventRow.type == "bundle.published")).all()
    assert sorted(subjects) == ["bundle:1", "bundle:2", "bundle:3"]
    assert json.loads(bundles.history_file.read_text().splitlines()[-1])["actor"] == "ana"


def test_a_history_line_cut_by_a_kill_is_skipped_and_the_next_line_starts_on_its_own(live_workspace):
    bundles = BundleStore(live_workspace.bundle_dir)
    with open(bundles.history_file, "a") as handle:
        handle.write('{"action": "publish", "num')  # a writer killed mid-line
    publish.set_state(live_workspace, "order_tracking.where", "disabled", actor="ana", reason="misroutes")
    assert [e["number"] for e in bundles.history()] == [1, 2, 3]
    assert bundles.history_file.read_text().splitlines()[2] == '{"action": "publish", "num'
