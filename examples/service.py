"""A reference chatbot service around rulelife, on the standard library alone.

    python examples/service.py --bundles my-workspace/bundles --logs my-workspace/logs [--port 8080] [--workers 2]

Endpoints (JSON):

- ``POST /classify`` ``{"text": ..., "locale": ..., "query_id": ...}``: a rule
  answers, or the model does (a rule answer in the shadow sample calls the
  model too); one query-log row is written either way. The answer says which.
- ``GET /health``: the runtime's :meth:`~rulelife.RuleClassifier.health` and the
  log writer's, for a readiness probe (status 200 while a bundle is served;
  ``"ok": false`` says a publish was refused or ``CURRENT`` is damaged).
- ``POST /reload``: load a newly published bundle now, without waiting for the
  poll.

Each process serves at most ``--max-connections`` connections at once (a
thread each; one more is answered 503 with ``Retry-After``) and closes a
connection silent for ``--idle-timeout`` seconds.

``--workers N`` forks N worker processes after the classifier is loaded and
its poll started, sharing one listening socket: the shape of gunicorn
``--preload``. Each worker polls on its own and writes its own log files.
``call_model`` is where your intent model goes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import struct
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from rulelife import QueryLogWriter, RuleClassifier

MAX_BODY = 64 << 10  # bytes a request may send: the classifier bounds text length, this bounds the read


def call_model(text: str, locale: str | None) -> tuple[str, float]:
    """Your intent model: its answer and confidence. This stand-in knows nothing."""
    return "unknown", 0.0


class Handler(BaseHTTPRequestHandler):
    classifier: RuleClassifier
    writer: QueryLogWriter
    # Keep-alive (every answer has a Content-Length): a chatbot front end reuses its connections,
    # and a new TCP connection per query would cost more than classifying it. Without Nagle's
    # delay a small answer leaves at once instead of waiting for the client's ACK.
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    # Seconds a connection may stay silent (idle between requests, or a request sent slowly) before it is
    # closed: each open connection holds a thread, so a client must not be able to keep them forever.
    idle_timeout = 30.0

    def setup(self) -> None:
        super().setup()
        # The kernel keeps the time (SO_RCVTIMEO): a read that waits longer fails, and the stream reads it
        # as the end of the input. A socket timeout would cost a poll() before every read: 22% of throughput.
        seconds, fraction = divmod(self.idle_timeout, 1.0)
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO,
                                   struct.pack("ll", int(seconds), int(fraction * 1e6)))

    def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
        if self.path == "/classify":
            body = self._body()
            if body is not None:
                self._classify(body)
        elif self.path == "/reload":
            changed = self.classifier.refresh()
            self._send(200, {"changed": changed, **self.classifier.health().to_dict()})
        else:
            self._send(404, {"error": f"no such endpoint: POST {self.path}"})

    def do_GET(self) -> None:  # noqa: N802
        if self.path == "/health":
            self._send(200, {**self.classifier.health().to_dict(), "log": self.writer.health(), "pid": os.getpid()})
        else:
            self._send(404, {"error": f"no such endpoint: GET {self.path}"})

    def _body(self) -> dict | None:
        announced = (self.headers.get("Content-Length") or "0").strip()
        if not announced.isascii() or not announced.isdigit():  # read(-1) would wait for the client to hang up
            self.close_connection = True  # where this body ends is unknown: the connection cannot go on
            self._send(400, {"error": f"Content-Length must be a number of bytes, got {announced[:40]!r}"})
            return None
        length = int(announced)
        if length > MAX_BODY:
            self.close_connection = True  # the unread body would be taken for the next request
            self._send(413, {"error": f"a request body may hold {MAX_BODY} bytes"})
            return None
        data = self.rfile.read(length) if length else b""
        if data is None or len(data) < length:  # the client went silent mid-body (idle timeout) or hung up
            self.close_connection = True
            self._send(408, {"error": f"the body stopped short of its Content-Length ({length} bytes)"})
            return None
        try:
            body = json.loads(data or b"{}")
            if not isinstance(body, dict) or not isinstance(body.get("text"), str):
                raise ValueError
        except ValueError:
            self._send(400, {"error": 'send a JSON object {"text": ..., "locale": ..., "query_id": ...}'})
            return None
        return body

    def _classify(self, body: dict) -> None:
        text, locale = body["text"], body.get("locale")
        query_id = str(body.get("query_id") or uuid.uuid4().hex)
        decision = self.classifier.decide(text, locale=locale, query_id=query_id)
        match = decision.match
        intent = confidence = None
        if match is None or match.shadow:  # the model answers, or is asked anyway to keep the rule measured
            intent, confidence = call_model(text, locale)
        self.writer.write(decision, query_id=query_id, text=text, locale=locale, model_intent=intent,
                          model_confidence=confidence)
        answer = {"query_id": query_id, "bundle_version": decision.bundle_version, "shadow": decision.shadow}
        if match is not None:
            answer |= {"intent": match.intent, "source": "rule", "rule_id": match.rule_id}
        else:
            answer |= {"intent": intent, "source": "model", "rule_id": None}
        self._send(200, answer)

    def _send(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (the stdlib's name)
        pass  # the query log is the record; an access log would repeat it


class Server(ThreadingHTTPServer):
    """A thread a connection, at most ``max_connections`` at once: one more is answered 503 and closed.

    The 503 is sent as the connection is accepted. A client that already sent
    its request may see the close as a reset instead; either way it retries.
    """

    _BUSY = json.dumps({"error": "the service is at its connection limit; retry in a moment"}).encode()

    def __init__(self, address: tuple[str, int], handler: type[Handler], max_connections: int):
        super().__init__(address, handler)
        self._slots = threading.BoundedSemaphore(max_connections)

    def process_request(self, request, client_address) -> None:
        if not self._slots.acquire(blocking=False):  # a flood of connections must not become a flood of threads
            with contextlib.suppress(OSError):
                request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                                b"Retry-After: 1\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s"
                                % (len(self._BUSY), self._BUSY))
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)  # starts the connection's thread
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


def make_server(classifier: RuleClassifier, writer: QueryLogWriter, host: str, port: int, *,
                idle_timeout: float = Handler.idle_timeout, max_connections: int = 256) -> Server:
    handler = type("BoundHandler", (Handler,), {"classifier": classifier, "writer": writer,
                                                "idle_timeout": idle_timeout})
    return Server((host, port), handler, max_connections)


def serve(server: Server, writer: QueryLogWriter) -> None:
    """Serve until SIGTERM or SIGINT, then write the buffered log rows."""
    def stop(*_) -> None:
        threading.Thread(target=server.shutdown).start()  # shutdown() waits for serve_forever: not from it

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.serve_forever()
    server.server_close()
    writer.close()


def _stop_when_orphaned(parent: int, server: Server) -> None:
    """A worker whose parent died (SIGKILL, the OOM killer) stops, writing its log, rather than linger."""
    while os.getppid() == parent:
        time.sleep(1.0)
    server.shutdown()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundles", required=True, help="the workspace's bundle folder (holds CURRENT)")
    parser.add_argument("--logs", required=True, help="the workspace's log folder, which the nightly reads")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080, help="0: any free port (printed)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes forked after loading")
    parser.add_argument("--poll", type=float, default=30.0, help="seconds between looks at CURRENT")
    parser.add_argument("--idle-timeout", type=float, default=Handler.idle_timeout,
                        help="seconds a connection may stay silent before it is closed")
    parser.add_argument("--max-connections", type=int, default=256,
                        help="connections served at once by a process (a thread each); more are answered 503")
    args = parser.parse_args(argv)
    if args.max_connections < 1:
        parser.error(f"--max-connections must be 1 or more, got {args.max_connections}")

    classifier = RuleClassifier.from_store(args.bundles)
    classifier.start_polling(args.poll)  # a forked worker starts its own
    writer = QueryLogWriter(args.logs, classifier=classifier)  # a forked worker writes its own files
    server = make_server(classifier, writer, args.host, args.port, idle_timeout=args.idle_timeout,
                         max_connections=args.max_connections)
    print(f"listening on http://{args.host}:{server.server_address[1]} with {args.workers} worker(s)", flush=True)
    if args.workers <= 1:
        serve(server, writer)
        return 0
    # The workers share one listening socket: a connection wakes them all and one accepts it. A blocking
    # accept() would leave the others waiting for the next connection, deaf to SIGTERM until one came;
    # non-blocking, their accept() fails at once (socketserver ignores it) and they go back to waiting.
    server.socket.setblocking(False)
    parent = os.getpid()
    children = []
    for _ in range(args.workers):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                threading.Thread(target=_stop_when_orphaned, args=(parent, server), daemon=True).start()
                serve(server, writer)
                code = 0
            finally:
                os._exit(code)
        children.append(pid)
    classifier.stop_polling()  # the workers poll; this process only waits for a signal
    stopping = threading.Event()
    for name in (signal.SIGTERM, signal.SIGINT):
        signal.signal(name, lambda *_: stopping.set())
    while not stopping.wait(0.5):
        pass
    for pid in children:
        os.kill(pid, signal.SIGTERM)
    for pid in children:
        os.waitpid(pid, 0)
    writer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
