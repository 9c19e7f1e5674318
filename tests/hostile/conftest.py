"""Raw HTTP against `make run`'s host, and the check that nothing unexpected went upstream."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests.adapters

from gateway.problems import PROBLEM_CONTENT_TYPE, PROBLEM_TYPE_BASE
from simulator import Simulator
from tests.e2e.conftest import base_url, service_env  # noqa: F401 - the host over real HTTP

#: The only Partner Center requests the gateway may ever make.
ALLOWED_UPSTREAM = re.compile(
    r"^/v1/customers/relationshiprequests$"
    r"|^/v1/agreements$"
    r"|^/v1/customers/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/"
    r"(agreements|directSignedMicrosoftCustomerAgreementStatus)$"
)


@dataclass(frozen=True)
class RawResponse:
    """An answer as the bytes came: ``status`` is None for an HTTP/0.9-style answer (no status
    line, which the HTTP server sends when it cannot even parse the request line)."""

    status: int | None
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class RawHttp:
    """Sends requests byte for byte, with no client normalising the path or the headers."""

    host: str
    port: int
    prefix: str

    def send(self, data: bytes, timeout: float = 15.0) -> RawResponse:
        """Send ``data`` as is; read until the server closes (it closes after every answer)."""
        with socket.create_connection((self.host, self.port), timeout=timeout) as conn:
            conn.sendall(data)
            chunks: list[bytes] = []
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        return parse_response(b"".join(chunks))

    def request(
        self,
        target: bytes,
        *,
        method: bytes = b"GET",
        token: str | None = None,
        headers: bytes = b"",
        host_header: bytes | None = None,
    ) -> RawResponse:
        """One request with ``target`` as the request target, exactly."""
        lines = [
            method + b" " + target + b" HTTP/1.1",
            b"Host: " + (host_header if host_header is not None else self.host.encode()),
        ]
        if token is not None:
            lines.append(b"Authorization: Bearer " + token.encode())
        lines.append(b"Connection: close")
        head = b"\r\n".join(lines) + b"\r\n" + headers
        return self.send(head + b"\r\n")


def parse_response(data: bytes) -> RawResponse:
    if not data.startswith(b"HTTP/"):
        return RawResponse(None, {}, data)
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("iso-8859-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return RawResponse(int(status_line.split(" ")[1]), headers, body)


@pytest.fixture(scope="session")
def raw(base_url: str) -> RawHttp:  # noqa: F811
    parts = urlsplit(base_url)
    assert parts.hostname and parts.port
    return RawHttp(parts.hostname, parts.port, parts.path)


def assert_refused(response: RawResponse, *, statuses: range = range(400, 500)) -> dict[str, Any]:
    """A 4xx problem+json answer, never a 5xx; returns the problem."""
    if response.status is None:  # HTTP/0.9 style: the problem is the whole answer
        body = response.json()
        assert body["status"] in statuses, body
        assert body["type"].startswith(PROBLEM_TYPE_BASE)
        return dict(body)
    assert response.status in statuses, (response.status, response.body[:300])
    assert response.headers["content-type"].startswith(PROBLEM_CONTENT_TYPE), response.headers
    body = response.json()
    assert body["status"] == response.status
    assert body["type"].startswith(PROBLEM_TYPE_BASE)
    assert body["title"] and body["detail"]
    assert body["correlationId"] == response.headers["x-correlation-id"]
    assert b"Traceback" not in response.body
    return dict(body)


@pytest.fixture
def upstream(fresh_sim: Simulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every URL the gateway sent a request to during the test. Afterwards: only the simulator
    was called, and Partner Center only ever for the two operations."""
    urls: list[str] = []
    send = requests.adapters.HTTPAdapter.send

    def recording(self: requests.adapters.HTTPAdapter, request: Any, **kwargs: Any) -> Any:
        urls.append(str(request.url))
        return send(self, request, **kwargs)

    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", recording)
    yield urls
    hosts = (fresh_sim.partner_center_url + "/", fresh_sim.authority_host + "/")
    strangers = [url for url in urls if not url.startswith(hosts)]
    assert not strangers, f"requests to another host: {strangers[:5]}"
    for url in urls:
        if url.startswith(fresh_sim.partner_center_url + "/"):
            assert ALLOWED_UPSTREAM.match(urlsplit(url).path), url
    seen = fresh_sim.stats.api_requests
    assert all(ALLOWED_UPSTREAM.match(r.path) for r in seen), [r.path for r in seen][:5]
    assert all(ALLOWED_UPSTREAM.match(path) for path in fresh_sim.stats.api_calls)
