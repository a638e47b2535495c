"""The reference service (examples/service.py) over real HTTP on 127.0.0.1: classify, log, health, reload, workers."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from rulelife.rules.definition import Rule
from rulelife.serving.bundle import BundleStore
from rulelife.serving.publish import publish_rules

SERVICE = Path(__file__).resolve().parents[2] / "examples" / "service.py"
HOURS = Rule(id="faq.hours", intent="faq", patterns=["opening hours"], owner="ds")
SALE = Rule(id="promotion.sale", intent="promotion", patterns=["summer sale"], owner="ds")


def call(url: str, body: dict | None = None) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture
def service(tmp_path):
    store = BundleStore(tmp_path / "bundles")
    publish_rules(store, [HOURS])
    procs = []

    def start(*extra: str) -> tuple[str, subprocess.Popen]:
        proc = subprocess.Popen([sys.executable, str(SERVICE), "--bundles", str(store.root), "--logs",
                                 str(tmp_path / "logs"), "--port", "0", *extra], stdout=subprocess.PIPE, text=True,
                                start_new_session=True)  # its own process group: teardown ends the workers too
        procs.append(proc)
        line = proc.stdout.readline()
        assert line.startswith("listening on "), line
        return line.split()[2], proc

    yield store, start
    for proc in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM, as a process manager stops a service: it must exit 0 with its log written."""
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0


def test_classify_log_health_and_reload(service, tmp_path):
    store, start = service
    url, proc = start("--poll", "3600")  # no poll in this test: /reload is what loads the new bundle
    status, rule = call(f"{url}/classify", {"text": "Opening hours?", "locale": "en-US", "query_id": "q-1"})
    assert status == 200
    assert (rule["source"], rule["intent"], rule["rule_id"], rule["bundle_version"]) == ("rule", "faq", "faq.hours", 1)
    status, model = call(f"{url}/classify", {"text": "summer sale", "query_id": "q-2"})
    assert (model["source"], model["intent"], model["bundle_version"]) == ("model", "unknown", 1)
    status, health = call(f"{url}/health")
    assert status == 200 and health["ok"] and health["bundle_version"] == 1 and health["polling"]

    publish_rules(store, [HOURS, SALE])
    status, reloaded = call(f"{url}/reload", {})
    assert status == 200 and reloaded["changed"] and reloaded["bundle_version"] == 2
    status, sale = call(f"{url}/classify", {"text": "summer sale", "query_id": "q-3"})
    assert (sale["source"], sale["rule_id"], sale["bundle_version"]) == ("rule", "promotion.sale", 2)
    assert call(f"{url}/classify", {"txt": "no text"})[0] == 400
    assert call(f"{url}/nothing")[0] == 404

    stop(proc)
    rows = sorted((row for path in (tmp_path / "logs").rglob("*.parquet") for row in pq.read_table(path).to_pylist()),
                  key=lambda row: row["query_id"])
    assert [(r["query_id"], r["rule_id"], r["bundle_version"], r["model_intent"]) for r in rows] == [
        ("q-1", "faq.hours", 1, None), ("q-2", None, 1, "unknown"), ("q-3", "promotion.sale", 2, None)]


def test_queries_share_one_keep_alive_connection_and_an_oversized_body_closes_it(service):
    _, start = service
    url, proc = start("--poll", "3600")
    host, port = url.split("//")[1].split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    answers, sockets = [], set()
    for n, text in enumerate(["opening hours", "summer sale", "opening hours please"]):
        connection.request("POST", "/classify", json.dumps({"text": text, "query_id": f"k-{n}"}))
        response = connection.getresponse()
        answers.append((response.version, json.loads(response.read())["source"]))
        sockets.add(id(connection.sock))
    assert answers == [(11, "rule"), (11, "model"), (11, "rule")]
    assert len(sockets) == 1  # one TCP connection for the three

    # A body announced too long is never read; none is sent here, so the server's close is clean.
    connection.putrequest("POST", "/classify")
    connection.putheader("Content-Length", str(64 << 10 | 1))
    connection.endheaders()
    response = connection.getresponse()
    assert (response.status, response.getheader("Connection")) == (413, "close")
    response.read()
    assert connection.sock is None  # closed, so the unread body cannot pass for the next request
    connection.close()
    stop(proc)



@pytest.mark.parametrize("announced", ["-1", "ten", "1e3", "0x10"])
def test_a_content_length_that_is_not_a_byte_count_is_refused_and_the_connection_closed(service, announced):
    # read(-1) would have waited for the client to hang up, holding a thread for as long as it liked.
    _, start = service
    url, proc = start("--poll", "3600")
    host, port = url.split("//")[1].split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    connection.putrequest("POST", "/classify")
    connection.putheader("Content-Length", announced)
    connection.endheaders()
    response = connection.getresponse()
    assert (response.status, response.getheader("Connection")) == (400, "close")
    assert "Content-Length must be a number of bytes" in json.loads(response.read())["error"]
    connection.close()
    assert call(f"{url}/classify", {"text": "opening hours"})[1]["rule_id"] == "faq.hours"  # the service goes on
    stop(proc)


def test_a_silent_connection_is_closed_after_the_idle_timeout(service):
    _, start = service
    url, proc = start("--poll", "3600", "--idle-timeout", "0.5")
    host, port = url.split("//")[1].split(":")
    silent = socket.create_connection((host, int(port)), timeout=30)
    half = socket.create_connection((host, int(port)), timeout=30)
    half.sendall(b"POST /classify HTTP/1.1\r\nContent-Length: 20\r\n\r\n{\"te")  # and no more
    began = time.monotonic()

    def until_closed(connection: socket.socket) -> bytes:
        received = b""
        while chunk := connection.recv(4096):
            received += chunk
        return received

    assert until_closed(silent) == b""  # closed by the server, not by this client's 30 s
    answer = until_closed(half)
    assert answer.startswith(b"HTTP/1.1 408 ") and b"stopped short of its Content-Length (20 bytes)" in answer
    assert time.monotonic() - began < 10
    silent.close()
    half.close()
    assert call(f"{url}/classify", {"text": "opening hours"})[1]["rule_id"] == "faq.hours"
    stop(proc)



def test_a_connection_over_the_limit_is_answered_503_and_a_freed_slot_serves_again(service):
    _, start = service
    url, proc = start("--poll", "3600", "--max-connections", "2")
    host, port = url.split("//")[1].split(":")
    held = [http.client.HTTPConnection(host, int(port), timeout=30) for _ in range(2)]
    for connection in held:  # answered, and kept open: each holds a slot
        connection.request("GET", "/health")
        assert connection.getresponse().read()
    # The answer comes at accept, before a request: sent nothing, this client reads it whole, then the close.
    third = socket.create_connection((host, int(port)), timeout=30)
    answer = b""
    while chunk := third.recv(4096):
        answer += chunk
    head, body = answer.split(b"\r\n\r\n")
    assert head.split(b"\r\n")[0] == b"HTTP/1.1 503 Service Unavailable" and b"Retry-After: 1" in head
    assert "connection limit" in json.loads(body)["error"]
    third.close()
    held.pop().close()  # the server's thread sees the close and frees its slot
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status, answer = call(f"{url}/classify", {"text": "opening hours"})
        if status == 200:
            break
        time.sleep(0.05)
    assert (status, answer["rule_id"]) == (200, "faq.hours")
    held.pop().close()
    stop(proc)


def test_forked_workers_each_pick_up_a_publish(service):
    store, start = service
    url, proc = start("--workers", "2", "--poll", "0.05")
    publish_rules(store, [HOURS, SALE])
    seen: dict[int, int] = {}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (len(seen) == 2 and set(seen.values()) == {2}):
        health = call(f"{url}/health")[1]
        seen[health["pid"]] = health["bundle_version"]
    assert len(seen) == 2 and set(seen.values()) == {2}  # two workers, each polling on its own
    assert call(f"{url}/classify", {"text": "summer sale"})[1]["rule_id"] == "promotion.sale"
    stop(proc)



def workers_of(url: str) -> set[int]:
    pids: set[int] = set()
    deadline = time.monotonic() + 60
    while len(pids) < 2 and time.monotonic() < deadline:
        pids.add(call(f"{url}/health")[1]["pid"])
    assert len(pids) == 2
    return pids


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


def test_every_worker_stops_on_sigterm_though_it_was_woken_for_connections_another_accepted(service):
    # Workers share the listening socket, so each connection wakes both and one accepts it. A blocking accept
    # left the other waiting for a connection that never came, and SIGTERM did not stop it (one run in six).
    _, start = service
    for _ in range(3):
        url, proc = start("--workers", "2", "--poll", "3600")
        workers_of(url)  # a dozen connections or so, each accepted by one worker of the two
        stop(proc)


def test_workers_stop_and_write_their_log_when_the_parent_is_killed(service, tmp_path):
    _, start = service
    url, proc = start("--workers", "2", "--poll", "3600")
    pids = workers_of(url)
    assert call(f"{url}/classify", {"text": "opening hours", "query_id": "orphan-1"})[1]["rule_id"] == "faq.hours"
    proc.kill()  # SIGKILL: the parent cannot pass anything on
    proc.wait()
    deadline = time.monotonic() + 30
    while any(map(alive, pids)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(map(alive, pids))
    rows = [row for path in (tmp_path / "logs").rglob("*.parquet") for row in pq.read_table(path).to_pylist()]
    assert [row["query_id"] for row in rows] == ["orphan-1"]


def test_a_connection_limit_below_one_is_refused_before_anything_loads(tmp_path):
    done = subprocess.run([sys.executable, str(SERVICE), "--bundles", str(tmp_path / "none"), "--logs",
                           str(tmp_path / "logs"), "--max-connections", "0"], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 2
    assert "--max-connections must be 1 or more, got 0" in done.stderr
    assert not (tmp_path / "logs").exists()
