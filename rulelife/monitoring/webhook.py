"""The webhook sink: one POST per event that a receiver can trust and de-duplicate.

Headers of each request:

- ``Content-Type: application/json`` and ``User-Agent: rulelife/<version>``;
- ``Idempotency-Key`` and ``X-Rulelife-Event-Id``: the event's id, the same on
  every retry and every run, so a receiver that saw it already drops it;
- ``X-Rulelife-Event-Type``: e.g. ``rule.disabled``, ``ticket.opened``;
- with ``webhook_secret`` set, ``X-Rulelife-Timestamp`` (Unix seconds of this
  attempt) and ``X-Rulelife-Signature: sha256=<hex>``, the HMAC-SHA256 under
  the secret of ``<timestamp>.<body>``: the receiver recomputes it, compares
  in constant time and refuses an old timestamp (a replay).

What an answer means:

- 2xx: delivered.
- 408, 429, 5xx, no answer within ``timeout`` seconds (the whole request:
  connect, send, answer), a refused connection, or a redirect this sink does
  not follow: *transient*. Retried within the run (after ``Retry-After`` when
  the receiver sent one and it is at most ``max_wait`` seconds, else after a
  short backoff), then kept for the next run; a longer ``Retry-After`` is kept
  and not tried before that time.
- any other 4xx: *permanent*: the receiver will never take this body, so the
  event is dead-lettered and reported instead of retried every night.

Redirects: 307 and 308 (which keep the method and body) to the same scheme,
host and port are followed, three at most; any other redirect, and any
redirect to another host, is not (the event and its signature go only where
``webhook_url`` says). A proxy set in the environment is used as urllib
would use it.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import math
import socket
import ssl
import threading
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import urljoin, urlsplit

from rulelife._version import __version__
from rulelife.errors import ConfigError, DeliveryError
from rulelife.monitoring.events import Message

__all__ = ["WebhookSink", "signature"]

USER_AGENT = f"rulelife/{__version__}"
MAX_REDIRECTS = 3
_ERROR_SNIPPET = 200  # bytes of an error answer quoted in the delivery's last error


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Rulelife-Signature`` value of ``body`` sent at ``timestamp``.

    >>> signature("s3cret", "1767225600", b'{"id":"evt_1"}')
    'sha256=984b18335c7d70c4111de6d97f6a16829bc2d0a8ca429a7b240b691356b61467'
    """
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


class _Transient(Exception):
    """No usable answer this attempt; ``retry_after`` is what the receiver asked for, if anything."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class WebhookSink:
    """POSTs each event's JSON (or ``{"text": ...}`` for ``format="slack"``) to ``url``.

    Parameters
    ----------
    url
        ``http://`` or ``https://`` address of the receiver.
    attempts
        Requests per event per run before it is left for the next run.
    timeout
        Seconds one request may take in all.
    backoff
        Seconds before the second attempt, doubling after each.
    secret
        Signs each request (see the module docstring); None: unsigned.
    max_wait
        The longest ``Retry-After`` (seconds) waited for within a run.
    """

    name = "webhook"

    def __init__(self, url: str, *, attempts: int = 3, timeout: float = 10.0, backoff: float = 0.2,
                 secret: str | None = None, format: str = "json", max_wait: float = 30.0):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"webhook_url {url!r} is not an http:// or https:// address; fix it in rulelife.toml "
                              "or RULELIFE_WEBHOOK_URL")
        if format not in ("json", "slack"):
            raise ConfigError(f"webhook_format {format!r} is not one of json, slack")
        self.url = url
        self.attempts = attempts
        self.timeout = timeout
        self.backoff = backoff
        self.secret = secret
        self.format = format
        self.max_wait = max_wait

    def body(self, message: Message) -> bytes:
        data = {"text": message.summary} if self.format == "slack" else message.payload
        return json.dumps(data, default=str, ensure_ascii=False).encode()

    def deliver(self, message: Message) -> None:
        """Deliver ``message`` or raise :class:`~rulelife.errors.DeliveryError` (see the module docstring)."""
        body = self.body(message)
        last, wait = "", 0.0
        for attempt in range(self.attempts):
            try:
                status, detail = self._post(body, message)
            except _Transient as exc:
                last = str(exc)
                wait = exc.retry_after if exc.retry_after is not None else self.backoff * 2**attempt
            else:
                if 200 <= status < 300:
                    return
                raise DeliveryError(f"webhook {self.url} refused the event for good: HTTP {status}{detail}; "
                                    "fix the receiver, then `rulelife events retry`", permanent=True)
            if wait > self.max_wait:
                break  # the receiver asked for longer than a run waits: keep it until then
            if attempt + 1 < self.attempts:
                time.sleep(wait)
        # To the second, as the store keeps times, rounded up: never sooner than the receiver asked.
        retry_at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=math.ceil(wait) + 1) \
            if wait > self.max_wait else None
        tried = f"after {attempt + 1} attempt{'s' if attempt else ''}"
        later = f"; the receiver asked not to be called before {retry_at:%Y-%m-%d %H:%M:%S} UTC" if retry_at else ""
        raise DeliveryError(f"webhook {self.url} failed {tried}: {last}{later}", retry_at=retry_at)

    def _post(self, body: bytes, message: Message) -> tuple[int, str]:
        """One attempt, redirects included: the final status (2xx or a permanent 4xx) and a quote of
        the answer; raise :class:`_Transient` for anything worth trying again."""
        url = self.url
        for _ in range(MAX_REDIRECTS + 1):
            status, headers, snippet = self._request(url, body, self._headers(body, message))
            if status in (307, 308) and headers.get("location"):
                target = urljoin(url, headers["location"])
                if _origin(target) != _origin(url):
                    raise _Transient(f"HTTP {status} redirect to {urlsplit(target).netloc} not followed "
                                     "(only redirects to the same host are); point webhook_url at the final address")
                url = target
                continue
            detail = f": {snippet}" if snippet else ""
            if 300 <= status < 400:
                raise _Transient(f"HTTP {status} redirect not followed (it would turn the POST into a GET); "
                                 "point webhook_url at the final address")
            if status in (408, 429) or status >= 500:
                raise _Transient(f"HTTP {status}{detail}", _retry_after(headers.get("retry-after")))
            return status, detail
        raise _Transient(f"more than {MAX_REDIRECTS} redirects")

    def _headers(self, body: bytes, message: Message) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, "Idempotency-Key": message.uid,
                   "X-Rulelife-Event-Id": message.uid, "X-Rulelife-Event-Type": message.type}
        if self.secret:
            timestamp = str(int(time.time()))
            headers["X-Rulelife-Timestamp"] = timestamp
            headers["X-Rulelife-Signature"] = signature(self.secret, timestamp, body)
        return headers

    def _request(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str], str]:
        """POST once within ``timeout`` seconds in all: a watchdog shuts the socket of a receiver that
        hangs or trickles its answer (a socket timeout alone bounds each read, not their sum)."""
        parts = urlsplit(url)
        conn, target = self._connection(parts)
        expired = threading.Event()

        def stop() -> None:
            expired.set()
            if conn.sock is not None:
                try:
                    conn.sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

        watchdog = threading.Timer(self.timeout, stop)
        watchdog.daemon = True
        watchdog.start()
        try:
            conn.connect()
            if expired.is_set():
                raise TimeoutError
            conn.request("POST", target, body=body, headers=headers)
            response = conn.getresponse()
            answer = {k.lower(): v for k, v in response.getheaders()}
            snippet = "" if 200 <= response.status < 300 else response.read(_ERROR_SNIPPET).decode("utf-8", "replace")
            if expired.is_set():
                raise TimeoutError
            return response.status, answer, " ".join(snippet.split())
        except (OSError, http.client.HTTPException) as exc:
            if expired.is_set() or isinstance(exc, TimeoutError):
                raise _Transient(f"no answer within {self.timeout:g} s") from None
            raise _Transient(str(exc) or type(exc).__name__) from None
        finally:
            watchdog.cancel()
            conn.close()


    def _connection(self, parts) -> tuple[http.client.HTTPConnection, str]:
        """A connection for ``parts`` and the request target, through the environment's proxy
        (``https_proxy`` / ``http_proxy``, unless ``no_proxy`` names the host), as urllib would."""
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        proxy = urllib.request.getproxies().get(parts.scheme)
        via = urlsplit(proxy if "://" in proxy else f"http://{proxy}") \
            if proxy and not urllib.request.proxy_bypass(parts.hostname) else None
        if parts.scheme == "https":
            context = ssl.create_default_context()
            if via is None:
                return http.client.HTTPSConnection(parts.hostname, parts.port, timeout=self.timeout,
                                                   context=context), path
            conn = http.client.HTTPSConnection(via.hostname, via.port or 80, timeout=self.timeout, context=context)
            conn.set_tunnel(parts.hostname, parts.port or 443)  # CONNECT: the proxy sees no body or header
            return conn, path
        if via is None:
            return http.client.HTTPConnection(parts.hostname, parts.port, timeout=self.timeout), path
        return http.client.HTTPConnection(via.hostname, via.port or 80, timeout=self.timeout), parts.geturl()


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (seconds, or an HTTP date); None if absent or unreadable.

    >>> _retry_after("120"), _retry_after(None), _retry_after("soon")
    (120.0, None, None)
    """
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
