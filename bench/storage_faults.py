"""A fault-injecting HTTP proxy in front of a storage endpoint (Azurite), for the events soak.

Each request is forwarded to the target; a share ``rate`` of them fail instead, half before the
storage sees them (503 Server Busy, as Azure Storage answers when throttling) and half after it
acted on them (the answer is lost and replaced by a 500), the harder case: the operation happened
but its caller cannot know it. Shared-key signatures do not cover the host or port, so the SDK's
requests pass through unchanged.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests

#: Hop-by-hop headers, never forwarded (RFC 9110 section 7.6.1), and lengths recomputed here.
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "content-length"}
)


class FaultyProxy:
    """Forwards to ``http://127.0.0.1:{target_port}``, failing a share ``rate`` of requests."""

    def __init__(self, target_port: int, rate: float, *, seed: int = 11) -> None:
        self.target = f"http://127.0.0.1:{target_port}"
        self.rate = rate
        self.faults: Counter[str] = Counter()
        self.requests = 0
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._session = requests.Session()
        self._session.trust_env = False
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> FaultyProxy:
        """Serve on a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()
        self._session.close()

    def _fault(self) -> str | None:
        with self._lock:
            self.requests += 1
            roll = self._random.random()
            if roll >= self.rate:
                return None
            kind = "before" if roll < self.rate / 2 else "after"
            self.faults[kind] += 1
            return kind

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length", "0") or 0)
                body = self.rfile.read(length) if length else b""
                fault = proxy._fault()
                if fault == "before":
                    self._reply(503, {"Content-Type": "application/xml"}, b"")
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                try:
                    upstream = proxy._session.request(
                        self.command,
                        proxy.target + self.path,
                        data=body,
                        headers=headers,
                        timeout=(5, 30),
                        allow_redirects=False,
                    )
                except requests.RequestException:
                    self._reply(502, {}, b"")
                    return
                if fault == "after":
                    self._reply(500, {"Content-Type": "application/xml"}, b"")
                    return
                kept = {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_BY_HOP}
                self._reply(upstream.status_code, kept, upstream.content)

            def _reply(self, status: int, headers: dict[str, str], body: bytes) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD" and body:
                    self.wfile.write(body)

            do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = do_MERGE = do_HEAD = _forward  # noqa: N815

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler
