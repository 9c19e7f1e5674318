"""`make run`'s host bounds what one request may cost: body size, time, threads.

Each test starts its own host with small limits, so none of them waits long.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests

from function_app import app
from gateway.devserver import LimitedWSGIServer, RequestLimits, serve_app
from simulator import CUSTOMER_MCA
from tests.hostile.conftest import RawHttp, RawResponse, parse_response

LIMIT = 64 * 1024
#: A route that takes GET: before the limits, its body was read whole before authentication.
AGREEMENTS = f"/api/customers/{CUSTOMER_MCA}/agreements".encode()


@dataclass
class Host:
    server: LimitedWSGIServer
    raw: RawHttp
    busy: int = 0
    peak: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/api"


@pytest.fixture
def host(request: pytest.FixtureRequest, service_env: dict[str, str]) -> Iterator[Host]:
    """A host with small limits (override with ``@pytest.mark.parametrize('limits', ...)``)."""
    limits = getattr(request, "param", None) or RequestLimits(
        max_body_bytes=LIMIT, idle_seconds=0.5, request_seconds=1.5, max_threads=4
    )
    server = serve_app(app, "127.0.0.1", 0, limits=limits)
    served = Host(server, RawHttp("127.0.0.1", server.server_port, "/api"))
    lock = threading.Lock()
    handle = server.process_request_thread

    def counted(conn: object, address: object) -> None:
        with lock:
            served.busy += 1
            served.peak = max(served.peak, served.busy)
        try:
            handle(conn, address)  # type: ignore[arg-type]
        finally:
            with lock:
                served.busy -= 1

    server.process_request_thread = counted  # type: ignore[method-assign,assignment]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served
    server.shutdown()
    server.server_close()
    thread.join(5)


def head(path: bytes, *headers: bytes, method: bytes = b"GET") -> bytes:
    lines = [method + b" " + path + b" HTTP/1.1", b"Host: 127.0.0.1", *headers]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def exchange(host: Host, data: bytes, timeout: float = 10.0) -> RawResponse:
    """Send ``data`` and read the answer, without sending anything more."""
    with socket.create_connection(("127.0.0.1", host.server.server_port), timeout=timeout) as conn:
        conn.sendall(data)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return parse_response(b"".join(chunks))


def assert_too_large(response: RawResponse) -> None:
    assert response.status == 413, response
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == 413 and str(LIMIT) in body["detail"]
    assert body["type"] == "urn:partnercenter-gateway:problem:request-too-large"


def test_a_declared_oversized_body_is_refused_before_it_is_sent(host: Host) -> None:
    # 200 MiB announced and never sent: answered at once, nothing read.
    response = exchange(host, head(AGREEMENTS, b"Content-Length: 209715200"))
    assert_too_large(response)


def test_an_oversized_body_sent_whole_gets_its_413(host: Host) -> None:
    url = f"{host.url}/customers/{CUSTOMER_MCA}/agreements"
    response = requests.get(url, data=b"x" * (LIMIT * 8), timeout=30)
    assert response.status_code == 413
    assert response.json()["status"] == 413


def test_an_oversized_chunked_body_is_refused_while_reading(host: Host) -> None:
    chunk = b"%x\r\n%s\r\n" % (16384, b"y" * 16384)
    data = head(AGREEMENTS, b"Transfer-Encoding: chunked") + chunk * 8  # no last chunk
    assert_too_large(exchange(host, data))


def test_bodies_within_the_limit_reach_the_app(host: Host) -> None:
    sized = head(b"/api/health", b"Content-Length: 5") + b"hello"
    assert exchange(host, sized).status == 200
    chunked = head(b"/api/health", b"Transfer-Encoding: chunked")
    response = exchange(host, chunked + b"5\r\nhello\r\n0\r\n\r\n")
    assert response.status == 200, response
    assert response.json()["status"] in ("ok", "misconfigured")


def test_broken_chunked_framing_is_400(host: Host) -> None:
    data = head(b"/api/health", b"Transfer-Encoding: chunked") + b"zz\r\nhello\r\n0\r\n\r\n"
    response = exchange(host, data)
    assert response.status == 400
    assert response.json()["status"] == 400


def test_an_idle_connection_is_closed(host: Host) -> None:
    with socket.create_connection(("127.0.0.1", host.server.server_port), timeout=20) as conn:
        assert conn.recv(1024) == b""  # closed by the host, not by our 20 s timeout


def test_a_body_that_stops_coming_gets_408(host: Host) -> None:
    # Ten bytes announced, three sent, the connection left open: answered, not held.
    response = exchange(host, head(AGREEMENTS, b"Content-Length: 10") + b"abc")
    assert response.status == 408, response
    body = response.json()
    assert body["type"] == "urn:partnercenter-gateway:problem:request-timeout"


def test_a_slow_sender_is_cut_off_at_the_request_deadline(host: Host) -> None:
    request = head(b"/api/health", b"X-Padding: " + b"p" * 400)
    sent = 0
    with socket.create_connection(("127.0.0.1", host.server.server_port), timeout=20) as conn:
        try:
            for byte in request:  # one byte every 20 ms: each within the idle timeout
                conn.sendall(bytes([byte]))
                sent += 1
                time.sleep(0.02)
        except OSError:
            pass  # the host closed the connection under us
    assert sent < len(request), "the whole trickled request was accepted"


@pytest.mark.parametrize(
    "host",
    [RequestLimits(max_body_bytes=LIMIT, idle_seconds=5, request_seconds=10, max_threads=2)],
    indirect=True,
)
def test_request_threads_are_bounded(host: Host) -> None:
    # Six clients connect and hold their connections open; at most two are being served.
    conns = [
        socket.create_connection(("127.0.0.1", host.server.server_port), timeout=20)
        for _ in range(6)
    ]
    try:
        while host.busy < 2:
            time.sleep(0.01)
        for conn in conns:  # now each sends its request: all are answered, two at a time
            conn.sendall(head(b"/api/health", b"Connection: close"))
        for conn in conns:
            chunks = []
            while chunk := conn.recv(65536):
                chunks.append(chunk)
            assert parse_response(b"".join(chunks)).status == 200
    finally:
        for conn in conns:
            conn.close()
    assert host.peak == 2
