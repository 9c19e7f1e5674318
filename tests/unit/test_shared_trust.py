"""One TLS context for all of a session's connections: the CA bundle is loaded once, and
certificates are still verified (chain and host name) on every connection."""

from __future__ import annotations

import http.server
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import trustme
from urllib3.util.ssl_ import create_urllib3_context

from partnercenter import build_session
from partnercenter._transport import SharedTrustAdapter

Server = Callable[[trustme.CA, str], str]


class _Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def tls_server() -> Iterator[Server]:
    """Starts HTTPS servers on 127.0.0.1 (ephemeral ports) with a certificate from ``ca`` for
    ``name``; returns each one's base URL."""
    servers: list[http.server.HTTPServer] = []

    def start(ca: trustme.CA, name: str) -> str:
        server = http.server.HTTPServer(("127.0.0.1", 0), _Ok)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ca.issue_cert(name).configure_cert(context)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"https://127.0.0.1:{server.server_address[1]}/"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def trusted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> trustme.CA:
    """A CA whose bundle is REQUESTS_CA_BUNDLE."""
    ca = trustme.CA()
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    return ca


def test_connections_to_several_hosts_share_one_context(
    trusted: trustme.CA, tls_server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = tls_server(trusted, "127.0.0.1"), tls_server(trusted, "127.0.0.1")
    session = build_session(4)
    built: list[object] = []

    def counting(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        built.append(args)
        return create_urllib3_context(*args, **kwargs)

    # What urllib3 calls when a connection has no context given: a new one, with the bundle.
    monkeypatch.setattr("urllib3.connection.create_urllib3_context", counting)
    for url in (first, second, first):
        assert session.get(url, timeout=5).text == "ok"
    assert built == []  # no connection made a context (and loaded the bundle) of its own
    adapter = session.get_adapter(first)
    assert isinstance(adapter, SharedTrustAdapter)
    assert len(adapter.poolmanager.pools) == 2


def test_a_certificate_from_another_ca_is_refused(trusted: trustme.CA, tls_server: Server) -> None:
    stranger = tls_server(trustme.CA(), "127.0.0.1")
    with pytest.raises(requests.exceptions.SSLError, match="CERTIFICATE_VERIFY_FAILED"):
        build_session(4).get(stranger, timeout=5)


def test_a_certificate_for_another_host_is_refused(trusted: trustme.CA, tls_server: Server) -> None:
    elsewhere = tls_server(trusted, "elsewhere.example")
    session = build_session(4)
    with pytest.raises(requests.exceptions.SSLError, match=r"match|mismatch"):
        session.get(elsewhere, timeout=5)
    # The trusted CA's certificate for the right host still passes on the same session.
    assert session.get(tls_server(trusted, "127.0.0.1"), timeout=5).text == "ok"
