"""A local stand-in for Power Automate's trigger callbacks: an https server that records what it
receives and answers as scripted, and the session adapter that routes callback hosts to it.

Callback URLs must be https on port 443 on an allowed host (``*.logic.azure.com``), which a test
or benchmark cannot bind; so the callbacks keep their real-looking URLs and the delivery session's
adapter connects to this server instead (like curl's ``--connect-to``), still verifying TLS
against the URL's host name with a certificate from a throwaway CA.
"""

from __future__ import annotations

import json
import random
import ssl
import threading
import time
from collections import defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import requests
import trustme
from requests.adapters import HTTPAdapter
from urllib3 import HTTPSConnectionPool

CALLBACK_HOST = "prod-07.westus.logic.azure.com"


@dataclass(frozen=True)
class Received:
    """One callback request as the server saw it."""

    path: str
    body: dict[str, Any]
    at: float


class CallbackServer:
    """An https server on 127.0.0.1 playing Power Automate's trigger endpoints.

    ``script(path, [500, 500])`` makes the next requests to ``path`` answer those statuses; after
    the script (or without one) it answers 202, as Power Automate does, except that a share
    ``failure_rate`` of unscripted requests answer 503 (counted in ``failures``).
    """

    def __init__(
        self, ca: trustme.CA | None = None, *, failure_rate: float = 0.0, seed: int = 5
    ) -> None:
        self.ca = ca or trustme.CA()
        self.failure_rate = failure_rate
        self.failures = 0
        self._random = random.Random(seed)  # noqa: S311 - which requests fail, not a secret
        self._lock = threading.Lock()
        self._scripts: dict[str, deque[int]] = defaultdict(deque)
        self.received: list[Received] = []
        self._arrived = threading.Condition(self._lock)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.issue_cert(CALLBACK_HOST, "*.westus.logic.azure.com").configure_cert(context)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> CallbackServer:
        """Serve on a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()

    def write_ca(self, path: str) -> str:
        """Write the CA certificate (PEM) that callers must trust to ``path``; returns it."""
        self.ca.cert_pem.write_to_path(path)
        return path

    def url(self, path: str) -> str:
        """The callback URL of ``path``, as Power Automate would hand it out."""
        return f"https://{CALLBACK_HOST}{path}?api-version=2016-06-01&sp=%2Ftriggers&sig=s3cr3t"

    def script(self, path: str, statuses: Iterable[int]) -> None:
        """Answer the next requests to ``path`` with ``statuses``, in order."""
        with self._lock:
            self._scripts[path].extend(statuses)

    def reset(self) -> None:
        """Forget scripts and received requests."""
        with self._lock:
            self._scripts.clear()
            self.received.clear()

    def received_on(self, path: str) -> list[Received]:
        """The requests answered 2xx on ``path`` so far."""
        with self._lock:
            return [r for r in self.received if r.path == path]

    def wait_for(self, path: str, count: int, timeout: float = 30.0) -> list[Received]:
        """The first ``count`` requests answered 2xx on ``path`` (waits for them)."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while True:
                found = [r for r in self.received if r.path == path]
                if len(found) >= count or time.monotonic() > deadline:
                    return found
                self._arrived.wait(0.1)

    def _answer(self, path: str, body: dict[str, Any]) -> int:
        with self._arrived:
            script = self._scripts.get(path)
            if script:
                status = script.popleft()
            elif self._random.random() < self.failure_rate:
                status = 503
                self.failures += 1
            else:
                status = 202
            if 200 <= status < 300:
                self.received.append(Received(path, body, time.time()))
                self._arrived.notify_all()
            return status

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            # Keep-alive, as Power Automate's endpoints: no TLS handshake per callback.
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = {"unparsed": raw.decode("utf-8", "replace")}
                status = server._answer(urlsplit(self.path).path, body)
                self.send_response(status)
                if 300 <= status < 400:
                    # Somewhere a delivery must never go: the instance metadata endpoint.
                    self.send_header("Location", "http://169.254.169.254/metadata/instance")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler


class ConnectToAdapter(HTTPAdapter):
    """Sends every https request to ``127.0.0.1:port``, keeping the URL's host for the TLS
    check (SNI and certificate name) and the ``Host`` header."""

    def __init__(self, port: int, ca_file: str) -> None:
        super().__init__()
        self._port = port
        self._ca_file = ca_file
        self._pools: dict[str, HTTPSConnectionPool] = {}
        self._pool_lock = threading.Lock()

    def get_connection_with_tls_context(
        self, request: requests.PreparedRequest, verify: Any, proxies: Any = None, cert: Any = None
    ) -> HTTPSConnectionPool:
        host = urlsplit(str(request.url)).hostname or ""
        with self._pool_lock:
            pool = self._pools.get(host)
            if pool is None:
                pool = HTTPSConnectionPool(
                    "127.0.0.1",
                    self._port,
                    maxsize=16,
                    ca_certs=self._ca_file,
                    cert_reqs="CERT_REQUIRED",
                    server_hostname=host,
                    assert_hostname=host,
                )
                self._pools[host] = pool
            return pool

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        """Keep the pool's own CA (requests would put its default bundle in its place)."""

    def add_headers(self, request: requests.PreparedRequest, **kwargs: Any) -> None:
        request.headers["Host"] = urlsplit(str(request.url)).hostname or ""

    def close(self) -> None:
        with self._pool_lock:
            for pool in self._pools.values():
                pool.close()
            self._pools.clear()
        super().close()
