"""A CloudEvents sink on 127.0.0.1 for tests: records what it receives, answers scripted statuses."""

from __future__ import annotations

import json
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Sink:
    """An HTTP server on 127.0.0.1 that records CloudEvents and answers with scripted statuses.

    With `held=True` every answer waits for `release` (up to 10 s): a slow broker. With `keep_alive=True` it
    speaks HTTP/1.1 and keeps connections open, as a Broker ingress does; `close_idle()` then closes them
    as a sink does with a connection idle for too long. With `tls=(certificate, key)` it speaks HTTPS."""

    def __init__(self, *, held: bool = False, keep_alive: bool = False, tls: tuple[str, str] | None = None) -> None:
        self.release = threading.Event()
        if not held:
            self.release.set()
        self.events: list[dict] = []
        self.headers: list[dict[str, str]] = []  # each request's headers, in the order of `events`
        self.statuses: list[int] = []  # answered in order, then 202
        self.connections: list[socket.socket] = []  # every connection accepted, in order
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if keep_alive else "HTTP/1.0"

            def setup(self) -> None:
                sink.connections.append(self.request)
                super().setup()

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                event = {k[3:].lower(): v for k, v in self.headers.items() if k.lower().startswith("ce-")}
                event["data"] = json.loads(body) if body else None
                sink.events.append(event)
                sink.headers.append(dict(self.headers.items()))
                sink.release.wait(10)
                self.send_response(sink.statuses.pop(0) if sink.statuses else 202)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        scheme = "http"
        if tls is not None:  # (certificate, key) files: an HTTPS sink
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def types(self) -> list[str]:
        return [event["type"] for event in self.events]

    def close_idle(self) -> None:
        for connection in self.connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # closed already

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
