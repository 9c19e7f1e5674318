"""End to end: the app's telemetry, exported by the Azure Monitor distro, arrives at a stand-in
for Application Insights ingestion (HTTPS, its own throwaway CA), with the correlation id and
without a secret.

The app runs in a child process (the distro configures process-wide providers) served by
`make run`'s host with APPLICATIONINSIGHTS_CONNECTION_STRING set; the child flushes its telemetry
when it exits, and the stand-in decodes what the exporter posted to ``/v2.1/track`` (gzip'd JSON
of the Application Insights "Breeze" schema: one envelope per item).
"""

from __future__ import annotations

import gzip
import http.server
import json
import os
import ssl
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import trustme

from simulator import CUSTOMER_MCA, Simulator

from ..conftest import repo_root, sim_environ

CHILD = """
import logging, sys, threading
logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
logging.getLogger("werkzeug").setLevel(logging.WARNING)  # as make run does
from function_app import app
from gateway.devserver import serve_app

server = serve_app(app, "127.0.0.1", 0)
threading.Thread(target=server.serve_forever, daemon=True).start()
print(server.server_port, flush=True)
sys.stdin.read()  # until the test closes it; leaving flushes the telemetry (atexit)
server.shutdown()
"""


class Ingestion(http.server.ThreadingHTTPServer):
    """Accepts whatever the exporter posts and keeps the decoded envelopes."""

    def __init__(self, context: ssl.SSLContext) -> None:
        super().__init__(("127.0.0.1", 0), _IngestionHandler)
        self.socket = context.wrap_socket(self.socket, server_side=True)
        self.envelopes: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.lock = threading.Lock()


class _IngestionHandler(http.server.BaseHTTPRequestHandler):
    server: Ingestion

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        text = body.decode()
        items: list[dict[str, Any]] = []
        if text.strip():
            try:
                parsed = json.loads(text)
                items = parsed if isinstance(parsed, list) else [parsed]
            except ValueError:
                items = [json.loads(line) for line in text.splitlines() if line.strip()]
        with self.server.lock:
            self.server.paths.append(self.path)
            if self.path.endswith("/track"):
                self.server.envelopes.extend(items)
        answer = json.dumps({"itemsReceived": len(items), "itemsAccepted": len(items)}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def ingestion(tmp_path: Path) -> Iterator[tuple[Ingestion, Path]]:
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    server = Ingestion(context)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    ca_file = tmp_path / "ingestion-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    try:
        yield server, ca_file
    finally:
        server.shutdown()
        thread.join(5)


def _by_type(envelopes: list[dict[str, Any]], base_type: str) -> list[dict[str, Any]]:
    return [
        e["data"]["baseData"] | {"tags": e["tags"]}
        for e in envelopes
        if e["data"]["baseType"] == base_type
    ]


def test_request_dependency_and_logs_reach_application_insights(
    ingestion: tuple[Ingestion, Path], fresh_sim: Simulator, tmp_path: Path
) -> None:
    server, ingestion_ca = ingestion
    bundle = tmp_path / "ca-bundle.pem"
    bundle.write_text(Path(fresh_sim.ca_bundle).read_text() + ingestion_ca.read_text())
    endpoint = f"https://127.0.0.1:{server.server_port}/"
    refresh_token = fresh_sim.refresh_token_for()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "PARTNER_CENTER_"))},
        **sim_environ(fresh_sim, PARTNER_CENTER_REFRESH_TOKEN=refresh_token),
        "REQUESTS_CA_BUNDLE": str(bundle),
        "APPLICATIONINSIGHTS_CONNECTION_STRING": (
            f"InstrumentationKey={uuid.uuid4()};IngestionEndpoint={endpoint};LiveEndpoint={endpoint}"
        ),
        # Nothing may leave this machine: no statsbeat to Microsoft's endpoints, no OneSettings.
        "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
        "APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED": "true",
        "TMPDIR": str(tmp_path),  # the exporter's retry storage
    }
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD],
        cwd=repo_root(),
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        port = int(child.stdout.readline())
        token = fresh_sim.user_token()
        correlation = str(uuid.uuid4())
        response = requests.get(
            f"http://127.0.0.1:{port}/api/customers/{CUSTOMER_MCA}/agreements?type=all",
            headers={"Authorization": f"Bearer {token}", "x-correlation-id": correlation},
            timeout=30,
        )
        assert response.status_code == 200, response.text
    finally:
        _, stderr = child.communicate(input="", timeout=120)
    assert child.returncode == 0, stderr[-3000:]

    envelopes = server.envelopes
    requests_seen = [
        r
        for r in _by_type(envelopes, "RequestData")
        if r.get("properties", {}).get("correlation_id") == correlation
    ]
    assert len(requests_seen) == 1, [e["data"]["baseType"] for e in envelopes]
    request = requests_seen[0]
    assert request["name"] == "GET /api/customers/{customerId}/agreements"
    assert request["responseCode"] == "200"
    operation = request["tags"]["ai.operation.id"]

    dependencies = [
        d
        for d in _by_type(envelopes, "RemoteDependencyData")
        if d["tags"]["ai.operation.id"] == operation
    ]
    names = {d["name"] for d in dependencies}
    # Application Insights names an HTTP dependency by its method and (templated) path.
    assert "GET /v1/customers/{id}/agreements" in names
    assert "POST /{tenant}/oauth2/v2.0/token" in names
    (partner_center,) = [d for d in dependencies if d["name"].startswith("GET /v1/")]
    assert partner_center["data"].endswith("/v1/customers/{id}/agreements")
    assert partner_center["resultCode"] == "200"
    assert partner_center["type"] == "HTTP"
    assert partner_center["properties"]["ms_correlation_id"] == correlation
    assert (
        partner_center["properties"]["ms_request_id"]
        == (fresh_sim.stats.api_requests[-1].headers["ms-requestid"])
    )
    assert partner_center["properties"]["attempts"] == "1"

    messages = [
        m
        for m in _by_type(envelopes, "MessageData")
        if m["tags"].get("ai.operation.id") == operation
    ]
    (served,) = [m for m in messages if m["message"].startswith("GET /api/customers/")]
    assert served["properties"]["status"] == "200"  # the record's fields, as custom dimensions
    for message in messages:
        assert message["message"].endswith(f"correlationId={correlation}")
        assert message["properties"]["correlation_id"] == correlation

    everything = json.dumps(envelopes)
    for secret in (token, fresh_sim.settings()["AZURE_CLIENT_SECRET"], refresh_token):
        assert secret not in everything
    assert "agreementType=" not in everything
