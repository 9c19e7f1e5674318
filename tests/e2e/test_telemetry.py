"""Spans and logs of real requests through `make run`'s host, captured with OpenTelemetry's
in-memory exporters (the Azure Monitor half is shown end to end in test_telemetry_export.py)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from gateway.azure_monitor import OpenTelemetryTracer
from gateway.telemetry import install_tracer
from simulator import CUSTOMER_MCA, Fault, Simulator

from ..conftest import repo_root
from .test_api import bearer


@dataclass
class Captured:
    spans: InMemorySpanExporter
    logs: InMemoryLogRecordExporter

    def finished(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())

    def log_attributes(self) -> list[tuple[str, dict[str, Any]]]:
        found = []
        for item in self.logs.get_finished_logs():
            record = item.log_record
            found.append((str(record.body), dict(record.attributes or {})))
        return found


@pytest.fixture
def captured(fresh_runtime: None) -> Iterator[Captured]:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    logs = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]
    log_provider = LoggerProvider()
    log_provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
    handler = LoggingHandler(logger_provider=log_provider)
    loggers = [logging.getLogger(name) for name in ("gateway", "partnercenter")]
    for each in loggers:
        each.addHandler(handler)
    install_tracer(OpenTelemetryTracer(provider))
    try:
        yield Captured(spans, logs)
    finally:
        install_tracer(None)
        for each in loggers:
            each.removeHandler(handler)
        provider.shutdown()
        log_provider.shutdown()


def _all_text(captured: Captured) -> str:
    parts = [json.dumps(dict(span.attributes or {})) + span.name for span in captured.finished()]
    parts += [body + json.dumps(attrs, default=str) for body, attrs in captured.log_attributes()]
    return "\n".join(parts)


def test_request_and_dependency_spans(
    api: requests.Session,
    base_url: str,
    fresh_sim: Simulator,
    service_env: dict[str, str],
    captured: Captured,
) -> None:
    token = fresh_sim.user_token()
    correlation = str(uuid.uuid4())
    response = api.get(
        f"{base_url}/customers/{CUSTOMER_MCA}/agreements?type=MicrosoftCustomerAgreement",
        headers={**bearer(token), "x-correlation-id": correlation},
    )
    assert response.status_code == 200, response.text
    spans = captured.finished()
    (request,) = [s for s in spans if s.kind is SpanKind.SERVER]
    assert request.name == "GET /api/customers/{customerId}/agreements"
    assert request.attributes is not None
    assert request.attributes["correlation_id"] == correlation
    assert request.attributes["http.route"] == "/api/customers/{customerId}/agreements"
    assert request.attributes["http.response.status_code"] == 200

    clients = {s.name: s for s in spans if s.kind is SpanKind.CLIENT}
    partner_center = clients["Partner Center GET /v1/customers/{id}/agreements"]
    token_call = clients["Entra ID POST /{tenant}/oauth2/v2.0/token"]
    # The caller's token was checked with keys fetched from Entra ID: those calls are traced too.
    assert "Entra ID GET /{tenant}/discovery/v2.0/keys" in clients
    assert "Entra ID GET /{tenant}/v2.0/.well-known/openid-configuration" in clients
    for span in (partner_center, token_call):
        assert span.parent is not None
        assert span.parent.span_id == request.context.span_id
        assert span.context.trace_id == request.context.trace_id
    seen_upstream = fresh_sim.stats.api_requests[-1].headers
    attrs = partner_center.attributes
    assert attrs is not None
    assert attrs["ms_request_id"] == seen_upstream["ms-requestid"]
    assert attrs["ms_correlation_id"] == correlation
    assert attrs["correlation_id"] == correlation
    assert attrs["http.request.method"] == "GET"
    assert attrs["server.address"] in ("localhost", "127.0.0.1")
    assert attrs["url.template"] == "/v1/customers/{id}/agreements"
    assert attrs["http.response.status_code"] == 200
    assert attrs["attempts"] == 1
    assert token_call.attributes is not None
    assert token_call.attributes["http.response.status_code"] == 200

    # Never a token or a secret in any span or log; spans name routes, never a query or an id.
    text = _all_text(captured)
    for secret in (
        token,
        service_env["AZURE_CLIENT_SECRET"],
        service_env["PARTNER_CENTER_REFRESH_TOKEN"],
    ):
        assert secret not in text
    span_text = "".join(json.dumps(dict(s.attributes or {})) + s.name for s in spans)
    for part in ("agreementType", "MicrosoftCustomerAgreement", "?", CUSTOMER_MCA):
        assert part not in span_text


def test_retries_are_one_dependency_with_its_attempts(
    api: requests.Session, base_url: str, fresh_sim: Simulator, captured: Captured
) -> None:
    fresh_sim.faults.add(Fault(path="/v1/customers/", status=503, times=2))
    response = api.get(
        f"{base_url}/customers/{CUSTOMER_MCA}/agreements", headers=bearer(fresh_sim.user_token())
    )
    assert response.status_code == 200, response.text
    (call,) = [s for s in captured.finished() if s.name.startswith("Partner Center")]
    assert call.attributes is not None
    assert call.attributes["attempts"] == 3
    assert call.attributes["http.request.resend_count"] == 2
    assert call.status.status_code is not StatusCode.ERROR


def test_failed_dependency_and_answered_request(
    api: requests.Session, base_url: str, fresh_sim: Simulator, captured: Captured
) -> None:
    fresh_sim.faults.add(Fault(path="/v1/customers/", status=404))
    response = api.get(
        f"{base_url}/customers/{CUSTOMER_MCA}/agreements", headers=bearer(fresh_sim.user_token())
    )
    assert response.status_code == 404
    spans = captured.finished()
    (call,) = [s for s in spans if s.name.startswith("Partner Center")]
    assert call.status.status_code is StatusCode.ERROR
    (request,) = [s for s in spans if s.kind is SpanKind.SERVER]
    assert request.attributes is not None
    assert request.attributes["http.response.status_code"] == 404
    assert request.status.status_code is not StatusCode.ERROR  # the caller's 4xx, answered well


def test_log_records_carry_their_fields(
    api: requests.Session, base_url: str, fresh_sim: Simulator, captured: Captured
) -> None:
    correlation = str(uuid.uuid4())
    response = api.get(
        f"{base_url}/relationship-request",
        headers={**bearer(fresh_sim.user_token()), "x-correlation-id": correlation},
    )
    assert response.status_code == 200
    logs = captured.log_attributes()
    (line,) = [(body, attrs) for body, attrs in logs if body.startswith("GET /api/")]
    body, attrs = line
    assert attrs["correlation_id"] == correlation
    assert attrs["status"] == 200
    assert body.endswith(f"correlationId={correlation}")
    upstream = [attrs for body, attrs in logs if body.startswith("partner center GET")]
    assert upstream
    assert upstream[0]["ms_correlation_id"] == correlation
    assert upstream[0]["ms_request_id"]
    # Records carry their trace: App Insights shows them under the request's operation.
    spans = captured.finished()
    (request,) = [s for s in spans if s.kind is SpanKind.SERVER]
    for item in captured.logs.get_finished_logs():
        if "correlation_id" in (item.log_record.attributes or {}):
            assert item.log_record.trace_id == request.context.trace_id


NO_TELEMETRY_PROBE = """
import json, sys
import azure.functions as func
from function_app import app
from gateway.registry import http_functions

for function in http_functions(app):
    route = {"customerId": "14876998-c0dc-46e6-9d0c-65a57a6c32ec"}
    req = func.HttpRequest("GET", "http://localhost/api/" + function.route, headers={},
                           params={}, route_params=route, body=b"")
    function.handler(req)
loaded = sorted(m for m in sys.modules if m.startswith(("opentelemetry", "azure.monitor")))
print(json.dumps(loaded))
"""


def test_nothing_of_opentelemetry_is_imported_without_a_connection_string() -> None:
    env = {k: v for k, v in os.environ.items() if k != "APPLICATIONINSIGHTS_CONNECTION_STRING"}
    done = subprocess.run(
        [sys.executable, "-c", NO_TELEMETRY_PROBE],
        cwd=repo_root(),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def test_host_json_puts_the_host_on_opentelemetry() -> None:
    # With the host's telemetry in OpenTelemetry too, the host's request and the app's spans and
    # logs correlate (the worker passes the host's trace context on: PYTHON_ENABLE_OPENTELEMETRY).
    host = json.loads((repo_root() / "host.json").read_text())
    assert host["telemetryMode"] == "OpenTelemetry"


WORKER_CONFIGURED_PROBE = """
import json
from azure.monitor.opentelemetry import configure_azure_monitor
from opentelemetry.instrumentation.requests import RequestsInstrumentor
from gateway.azure_monitor import start_azure_monitor

connection_string = "InstrumentationKey=00000000-0000-0000-0000-000000000001;IngestionEndpoint=https://127.0.0.1:9/"
# What the Python worker (up to 4.34, PYTHON_ENABLE_OPENTELEMETRY) does before loading the app.
configure_azure_monitor(connection_string=connection_string, enable_live_metrics=False)
before = RequestsInstrumentor().is_instrumented_by_opentelemetry
start_azure_monitor(connection_string)
print(json.dumps([before, RequestsInstrumentor().is_instrumented_by_opentelemetry]))
"""


def test_a_pipeline_the_worker_configured_is_kept_without_url_recording() -> None:
    env = {
        **os.environ,
        "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
        "APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED": "true",
    }
    done = subprocess.run(
        [sys.executable, "-c", WORKER_CONFIGURED_PROBE],
        cwd=repo_root(),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    # The worker's distro records every requests call with its full URL: turned off.
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [True, False]
