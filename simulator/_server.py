"""A threaded TLS HTTP/1.1 server with keep-alive, connection counting and connection drops.

Werkzeug's own ``WSGIRequestHandler.run_wsgi`` sends ``Connection: close`` on every response
(Werkzeug 3.1 disables keep-alive on purpose), so a client could never reuse a connection. The
handler here buffers each request and response body and sends ``Content-Length`` instead, which
lets ``http.server`` keep the connection open between requests, as Partner Center and Entra ID do.
"""

from __future__ import annotations

import io
import logging
import socket
import ssl
import sys
import threading
from contextlib import suppress
from typing import TYPE_CHECKING, Any

from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler

from simulator._stats import Stats

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication, WSGIEnvironment

_log = logging.getLogger("simulator")

# A client that connects and never completes the TLS handshake must not hold a thread forever.
_HANDSHAKE_TIMEOUT = 10.0
# How often serve_forever checks for shutdown: bounds how long stop() takes.
_POLL_INTERVAL = 0.05
# Framing is the server's job: never pass these through from the application.
_FRAMING_HEADERS = frozenset({"content-length", "transfer-encoding", "connection"})


class DropConnection(Exception):  # noqa: N818 - an instruction to the server, not an error
    """Raised by an application to close the TCP connection without sending any response."""


class _Handler(WSGIRequestHandler):
    """Runs one connection: TLS handshake in this thread, then keep-alive request handling."""

    protocol_version = "HTTP/1.1"
    server: SimServer

    def setup(self) -> None:
        raw: socket.socket = self.request
        # Headers and body are separate writes: without NODELAY, Nagle plus delayed ACKs would
        # add ~40 ms to every reused-connection request.
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        raw.settimeout(_HANDSHAKE_TIMEOUT)
        # Handshaking here rather than in accept() keeps one slow client from stalling the
        # accept loop; wrap_socket closes the socket itself when the handshake fails.
        self.request = self.server.tls.wrap_socket(raw, server_side=True)
        self.request.settimeout(None)
        self._counted = False
        self.server.track(self.request)
        super().setup()

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.untrack(self.connection)
            self.connection.close()

    def run_wsgi(self) -> None:
        environ = self.make_environ()
        body = _read_body(environ)
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        environ.pop("wsgi.input_terminated", None)
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        path: str = environ["PATH_INFO"]
        if not self._counted and self.server.counts(path):
            self._counted = True
            self.server.stats.count_connection(self.server.name)
        try:
            status, headers, payload = _call(self.server.app, environ)
        except DropConnection:
            self.close_connection = True
            with suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        except Exception:
            _log.exception("simulator %s failed on %s %s", self.server.name, self.command, path)
            status, headers, payload = "500 Internal Server Error", [], b""
            self.close_connection = True
        self._respond(environ["REQUEST_METHOD"], status, headers, payload)

    def _respond(
        self, method: str, status: str, headers: list[tuple[str, str]], payload: bytes
    ) -> None:
        code_text, _, reason = status.partition(" ")
        code = int(code_text)
        self.send_response(code, reason)
        for name, value in headers:
            if name.lower() not in _FRAMING_HEADERS:
                self.send_header(name, value)
        bodyless = code < 200 or code in (204, 304)
        if not bodyless:
            self.send_header("Content-Length", str(len(payload)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if payload and method != "HEAD" and not bodyless:
            self.wfile.write(payload)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Quiet: tests and benchmarks must not drown in access logs."""

    def log(self, type: str, message: str, *args: Any) -> None:
        """Quiet: TLS and disconnect noise is expected from a test double."""


def _read_body(environ: WSGIEnvironment) -> bytes:
    """The whole request body, so the next request on the connection starts at a clean read."""
    stream = environ["wsgi.input"]
    if environ.get("wsgi.input_terminated"):  # chunked: Werkzeug's de-chunking reader
        data: bytes = stream.read()
        return data
    length = int(environ.get("CONTENT_LENGTH") or 0)
    return stream.read(length) if length > 0 else b""


def _call(
    app: WSGIApplication, environ: WSGIEnvironment
) -> tuple[str, list[tuple[str, str]], bytes]:
    """Run a WSGI application to completion and return its status, headers and body."""
    started: list[tuple[str, list[tuple[str, str]]]] = []
    chunks: list[bytes] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        started[:] = [(status, headers)]
        return chunks.append

    result = app(environ, start_response)
    try:
        chunks.extend(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    status, headers = started[0]
    return status, headers, b"".join(chunks)


class SimServer(ThreadedWSGIServer):
    """One simulator endpoint (``identity`` or ``api``) serving ``app`` over TLS in a daemon
    thread. Connections are counted in ``stats`` when they carry their first request whose path
    does not start with ``uncounted_prefix`` (the control plane)."""

    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        app: WSGIApplication,
        *,
        tls: ssl.SSLContext,
        stats: Stats,
        uncounted_prefix: str | None = None,
    ) -> None:
        try:
            super().__init__(host, port, app, handler=_Handler)
        except SystemExit as exc:  # Werkzeug prints the reason and exits on a busy port
            raise OSError(f"simulator {name}: cannot listen on {host}:{port}") from exc
        # Werkzeug reads ssl_context only to report the https scheme; the handler wraps sockets.
        self.ssl_context = tls
        self.tls = tls
        self.name = name
        self.stats = stats
        self._uncounted_prefix = uncounted_prefix
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        self._thread = threading.Thread(
            target=self.serve_forever,
            kwargs={"poll_interval": _POLL_INTERVAL},
            name=f"simulator-{name}",
            daemon=True,
        )

    def counts(self, path: str) -> bool:
        """Whether a request on ``path`` counts in the statistics."""
        return self._uncounted_prefix is None or not path.startswith(self._uncounted_prefix)

    def track(self, connection: socket.socket) -> None:
        """Remember an open connection, so that stop() can close it."""
        with self._open_lock:
            self._open.add(connection)

    def untrack(self, connection: socket.socket) -> None:
        """Forget a closed connection."""
        with self._open_lock:
            self._open.discard(connection)

    def start(self) -> None:
        """Serve in the background."""
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting, end idle keep-alive connections and release the port."""
        self.shutdown()
        with self._open_lock:
            connections = list(self._open)
        for connection in connections:
            # The TCP-level shutdown wakes the handler thread blocked in recv(); it closes the
            # socket itself, so no descriptor is closed under another thread's feet.
            with suppress(OSError):
                socket.socket.shutdown(connection, socket.SHUT_RDWR)
        self.server_close()
        self._thread.join(timeout=5)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Ignore network errors (failed handshakes, resets, sockets closed by stop())."""
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)
