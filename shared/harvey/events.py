"""CloudEvents out to the Knative sink (K_SINK, injected by a SinkBinding).

Binary HTTP mode; K_CE_OVERRIDES (may be an empty string) adds extensions. With
HARVEY_EVENTS_SINK_TOKEN_FILE each send carries `Authorization: Bearer` with the token in
that file (a projected ServiceAccount token for the Broker's OIDC audience, which the Broker
requires once Knative's authentication-oidc is on). A failed send, or an unreadable token,
is logged and counted but never fails the caller: the audit row in PostgreSQL is the record
of truth, events are notifications.

Each thread keeps two HTTP/1.1 keep-alive connections per sink, used in turn (the sink is reached
directly, without the environment's proxies): a send is one request written in one piece on an open
connection, not a TCP handshake and a urllib opener per event. Its timeouts are kept by the kernel
(harvey.sockets): a Python socket timeout polls before every send and receive.

`emit(..., background=True)` (a feedback or intake request's event) writes the request and
returns; its reply is read before the same connection's next request, when `/metrics` is
scraped (if it has arrived), and at exit, and only then is the outcome logged and counted. A
request thread so never waits for the sink's answer, and at most one event per connection is
unanswered. A background sender thread measured worse: its every wake-up fought the request
threads for the interpreter lock (0.2× the sequential rate once it had a backlog).
"""

from __future__ import annotations

import atexit
import itertools
import json
import logging
import re
import select
import socket
import ssl
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from harvey import metrics, sockets
from harvey.config import get_settings

log = logging.getLogger("harvey.events")
# One line of visible ASCII (a JWT is): anything else could split the header, and http.client's
# error for a bad header value would quote the token.
_TOKEN = re.compile(rb"[\x21-\x7e]+")
# A sink answers events with a status and (almost) no body; a connection whose reply is longer is not reused.
_MAX_REPLY = 64 * 1024
# The failures of a request on a kept-alive connection that the sink closed while it was idle: the event never
# reached it, so it is sent once more on a new connection (a redelivery, if it did, keeps its id). A kernel
# receive timeout is a TimeoutError, never one of these.
_STALE_CONNECTION = (ConnectionResetError, BrokenPipeError)
_connections = threading.local()
# Kept-alive connections per thread and sink, used in turn: an event's reply then has the time of the next
# request to arrive before its connection is written again. With one, 4 % of feedback requests waited over
# 1 ms for the previous event's reply on the bench's two shared cores (bench_feedback: 0.70× → 0.78× the
# one-INSERT function with 8 clients, context switches per request down to the INSERT function's).
LINKS_PER_THREAD = 2


def overrides() -> dict[str, Any]:
    raw = get_settings().k_ce_overrides
    if not raw:
        return {}
    try:
        return dict(json.loads(raw).get("extensions") or {})
    except (ValueError, AttributeError):
        log.warning("ignoring malformed K_CE_OVERRIDES")
        return {}


def binary(
    event_type: str,
    data: dict[str, Any],
    *,
    subject: str | None = None,
    source: str | None = None,
    event_id: str | None = None,
) -> tuple[dict[str, str], bytes]:
    """The event in binary content mode: its attributes as `ce-` headers, its data as the JSON body.

    Built directly rather than through cloudevents' marshaller, which cost ≈90 µs per event, half of a
    feedback request's event send; tests hold the two equal (cloudevents parses what this writes).
    """
    headers = {
        "content-type": "application/json",
        "ce-specversion": "1.0",
        "ce-id": event_id or str(uuid.uuid4()),
        "ce-source": source or get_settings().event_source,
        "ce-type": event_type,
        "ce-time": datetime.now(UTC).isoformat(),
    }
    if subject:
        headers["ce-subject"] = subject
    headers.update({f"ce-{name}": str(value) for name, value in overrides().items()})
    return headers, json.dumps(data).encode("utf-8")


def parse_token(raw: bytes, origin: str) -> str:
    """The bearer token in `raw` (read from `origin`); a ValueError that never quotes it otherwise."""
    raw = raw.strip()
    if not _TOKEN.fullmatch(raw):
        raise ValueError(f"{origin} holds no bearer token (empty, or not one line of visible ASCII)")
    return raw.decode("ascii")


def read_token(path: Path) -> str:
    """The bearer token in `path`, read now: the kubelet rotates projected tokens in place.

    Raises OSError or ValueError; neither message contains the file's contents.
    """
    return parse_token(path.read_bytes(), str(path))


@dataclass
class _Unread:
    """An event written to the sink whose reply has not been read: enough to count it, or send it again."""

    event_type: str
    run_id: str | None
    request: _Request


@dataclass
class _Request:
    wire: bytes  # the whole HTTP/1.1 request: one write, one packet
    reused: bool = False  # written on a connection that had served a request before (it may have gone stale)


class _Link:
    """One thread's kept-alive HTTP/1.1 connection to one sink, and the event on it still waiting for its reply.

    Written on the socket directly, not through http.client: a sink's exchange is one POST and a status line
    with an empty body, and http.client's generic path (headers and body in two writes, the reply's headers
    through the email parser) cost 113 µs of CPU per event against 35 µs for this, measured side by side
    against a loopback sink (h11 took 118 µs)."""

    def __init__(self, url: str, timeout: float) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("an event sink must be an absolute http(s) URL")
        self.address = (parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
        self.tls = parts.scheme == "https"
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.head = f"POST {target} HTTP/1.1\r\nHost: {parts.netloc.rpartition('@')[2]}\r\n"
        self.timeout = timeout
        self.sock: socket.socket | None = None
        self.received = b""  # read past the last reply (nothing, from a sink that answers one request at a time)
        self.owner = threading.current_thread()
        self.lock = threading.Lock()  # the owner's sends against a /metrics scrape or the exit reading the reply
        self.unread: _Unread | None = None

    def request(self, headers: dict[str, str], body: bytes) -> _Request:
        lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        if lines.count("\n") != len(headers) or lines.count("\r") != len(headers):
            raise ValueError("an event header holds a line break")  # would split the request
        return _Request(f"{self.head}Content-Length: {len(body)}\r\n{lines}\r\n".encode("latin-1") + body)

    def write(self, request: _Request) -> None:
        """The request, without its reply. A stale kept-alive connection (the sink closed it while idle) is
        reopened once; any other failure closes the connection (half a request may be on it)."""
        request.reused = self.sock is not None
        if self.sock is None:
            self._connect()
        try:
            self._socket().sendall(request.wire)
        except _STALE_CONNECTION:
            self.close()
            if not request.reused:
                raise
            self._connect()
            request.reused = False
            self._socket().sendall(request.wire)
        except BaseException:
            self.close()
            raise

    def reply(self, request: _Request) -> int:
        """The status answering `request`. On a stale kept-alive connection the reply fails at once (the event
        never arrived): it is sent once more on a new connection, keeping its id. A failure, or a reply longer
        than a sink sends, closes the connection; the next request opens a new one."""
        try:
            return self._status()
        except _STALE_CONNECTION:
            if not request.reused:
                raise
        self.write(request)
        return self._status()

    def settle(self) -> None:
        """Read the reply of the unread event, if any, and log and count its outcome. Call with `lock` held."""
        sent, self.unread = self.unread, None
        if sent is None:
            return
        try:
            status = self.reply(sent.request)
        except Exception as exc:  # noqa: BLE001 - never fail a request for a notification
            _outcome(sent.event_type, sent.run_id, error=str(exc))
        else:
            _outcome(sent.event_type, sent.run_id, status=status)

    def answered(self) -> bool:
        """The unread event's reply has arrived (reading it will not wait)."""
        return self.sock is not None and bool(self.received or select.select([self.sock], [], [], 0)[0])

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.sock, self.received = None, b""

    def _status(self) -> int:
        """Read one reply: its status, its body skipped. The connection stays open only for an HTTP/1.1 reply
        with a Content-Length and no `Connection: close`."""
        try:
            head = self._read_head()
            status_line, *lines = head.split(b"\r\n")
            version, _, rest = status_line.partition(b" ")
            if not version.startswith(b"HTTP/1.") or not rest[:3].isdigit():
                raise ConnectionError("the sink's reply is not HTTP/1.x")
            fields = {}
            for line in lines:
                name, _, value = line.partition(b":")
                fields[name.strip().lower()] = value.strip().lower()
            length = fields.get(b"content-length", b"")
            self._skip(int(length) if length.isdigit() else _MAX_REPLY + 1)
        except BaseException:
            self.close()
            raise
        if version != b"HTTP/1.1" or b"transfer-encoding" in fields or fields.get(b"connection") == b"close":
            self.close()
        return int(rest[:3])

    def _read_head(self) -> bytes:
        while b"\r\n\r\n" not in self.received:
            if len(self.received) > _MAX_REPLY:
                raise ConnectionError("the sink's reply headers are too long")
            self.received += self._recv()
        head, _, self.received = self.received.partition(b"\r\n\r\n")
        return head

    def _skip(self, length: int) -> None:
        """Skip a body of `length` bytes; past _MAX_REPLY the connection is closed instead of read on."""
        if length > _MAX_REPLY:
            self.close()
            return
        while len(self.received) < length:
            self.received += self._recv()
        self.received = self.received[length:]

    def _recv(self) -> bytes:
        try:
            chunk = self._socket().recv(_MAX_REPLY)
        except (BlockingIOError, ssl.SSLWantReadError):  # the kernel's receive timeout
            raise TimeoutError(f"the sink did not answer within {self.timeout:g} s") from None
        if not chunk:
            raise ConnectionResetError("the sink closed the connection without answering")
        return chunk

    def _socket(self) -> socket.socket:
        if self.sock is None:
            raise ConnectionResetError("the connection to the sink is closed")
        return self.sock

    def _connect(self) -> None:
        """Connect within the timeout, then leave the socket blocking with the same timeout on every send and
        receive kept by the kernel (harvey.sockets)."""
        sock = sockets.connect_tcp(*self.address, self.timeout)
        if self.tls:  # the system's trust store, read when connecting (SSL_CERT_FILE may name a bundle)
            try:
                sock = ssl.create_default_context().wrap_socket(sock, server_hostname=self.address[0])
            except BaseException:
                sock.close()
                raise
        self.sock, self.received = sock, b""


_links: list[_Link] = []  # every thread's, so that a scrape and the exit can read their replies
_links_lock = threading.Lock()


def _link(url: str, timeout: float) -> _Link:
    """This thread's next link to the sink at `url`, in turn among its LINKS_PER_THREAD. New links also settle
    and forget the links of threads that have ended (a server with a thread per request), so they stay as
    many as the live threads' own."""
    kept: dict[tuple, itertools.cycle] | None = getattr(_connections, "kept", None)
    if kept is None:
        kept = _connections.kept = {}
    key = (url, timeout)
    if key not in kept:
        links = [_Link(url, timeout) for _ in range(LINKS_PER_THREAD)]
        with _links_lock:
            ended = [old for old in _links if not old.owner.is_alive()]
            _links[:] = [old for old in _links if old.owner.is_alive()] + links
        for old in ended:
            with old.lock:
                old.settle()
                old.close()
        kept[key] = itertools.cycle(links)
    return next(kept[key])


def send(headers: dict[str, str], body: bytes, url: str, timeout: float = 5.0, token: str | None = None) -> int:
    """POST one binary-mode event (see `binary`), with `Authorization: Bearer token` when given, on this thread's
    keep-alive connection to the sink, and wait for the reply; returns the HTTP status (raises on network
    errors)."""
    if token:
        headers = {**headers, "Authorization": f"Bearer {token}"}
    link = _link(url, timeout)
    request = link.request(headers, body)
    with link.lock:
        link.settle()
        link.write(request)
        return link.reply(request)


def _outcome(event_type: str, run_id: str | None, *, status: int | None = None, error: str | None = None) -> bool:
    """Log a failure and count the outcome of one event; True when the sink took it."""
    ok = status is not None and 200 <= status < 300
    if error is not None:
        log.error("event send failed", extra={"type": event_type, "run_id": run_id, "error": error})
    elif not ok:
        log.error("event rejected by sink", extra={"type": event_type, "run_id": run_id, "status": status})
    metrics.EVENTS_EMITTED.labels(type=event_type, outcome="sent" if ok else "failed").inc()
    return ok


def emit(
    event_type: str,
    data: dict[str, Any],
    *,
    subject: str | None = None,
    run_id: str | None = None,
    background: bool = False,
) -> bool:
    """Best-effort emit to K_SINK; False when there is no sink or the send failed.

    `background`: the request is written and this returns True without waiting for the reply, which is read,
    logged and counted later (see the module docstring).
    """
    settings = get_settings()
    sink, token_file = settings.k_sink, settings.events_sink_token_file
    if not sink:
        metrics.EVENTS_EMITTED.labels(type=event_type, outcome="no_sink").inc()
        return False
    try:
        token = read_token(token_file) if token_file else None
    except (OSError, ValueError) as exc:
        log.error(
            "event not sent: sink token unreadable", extra={"type": event_type, "run_id": run_id, "error": str(exc)}
        )
        metrics.EVENTS_EMITTED.labels(type=event_type, outcome="failed").inc()
        return False
    headers, body = binary(event_type, data, subject=subject)
    try:
        if not background:
            return _outcome(event_type, run_id, status=send(headers, body, sink, token=token))
        if token:
            headers["Authorization"] = f"Bearer {token}"
        link = _link(sink, 5.0)
        request = link.request(headers, body)
        with link.lock:
            link.settle()
            link.write(request)
            link.unread = _Unread(event_type, run_id, request)
    except Exception as exc:  # noqa: BLE001 - never fail the request for a notification
        return _outcome(event_type, run_id, error=str(exc))
    return True


def settle_answered() -> None:
    """Count the outcome of every unread event whose reply has arrived, without waiting for any (before
    /metrics is read, so that a failure shows there even if no other event follows)."""
    with _links_lock:
        links = list(_links)
    for link in links:
        if link.unread is not None and link.lock.acquire(blocking=False):
            try:
                if link.unread is not None and link.answered():
                    link.settle()
            finally:
                link.lock.release()


@atexit.register
def drain() -> bool:
    """Read every unread reply (at exit: a pod scaling down), each within its send timeout; True when every
    link could be read (none was busy for longer than that)."""
    with _links_lock:
        links = list(_links)
    done = True
    for link in links:
        if link.lock.acquire(timeout=link.timeout):
            try:
                link.settle()
            finally:
                link.lock.release()
        else:
            done = False
    return done
