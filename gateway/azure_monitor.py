"""The OpenTelemetry half of ``gateway/telemetry.py``: spans, and the Azure Monitor distro.

Imported only when telemetry is on. Span attributes follow the OpenTelemetry HTTP semantic
conventions (``http.request.method``, ``http.route``, ``url.template``, ``server.address``,
``http.response.status_code``, ``http.request.resend_count``) plus the ids an operator searches
by: ``correlation_id`` (the request's), ``ms_request_id`` and ``ms_correlation_id`` (Partner
Center's). URLs are templated (``/v1/customers/{id}/agreements``): never a query string, an id
in a path, a header, a token or a secret.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
from opentelemetry.trace import SpanKind, Status, StatusCode

from partnercenter import UpstreamCall

from .logs import current_correlation_id

if TYPE_CHECKING:  # telemetry.py imports this module when telemetry is turned on
    from .telemetry import ServedRequest

logger = logging.getLogger("gateway.telemetry")

INSTRUMENTATION_NAME = "partnercenter-gateway"

#: The distro's automatic instrumentations we turn off. requests, urllib and urllib3 would record
#: every call with its full URL, query string included, beside our own dependency spans; the web
#: frameworks and database drivers are not used here.
DISABLED_INSTRUMENTATIONS = (
    "requests",
    "urllib",
    "urllib3",
    "django",
    "fastapi",
    "flask",
    "psycopg2",
)

#: Loggers whose records describe the telemetry pipeline itself: exporting them would feed it.
_PIPELINE_LOGGERS = ("azure.core", "azure.monitor", "azure.identity")

_SERVICE_NAMES = {"partnercenter": "Partner Center", "identity": "Entra ID"}


class OpenTelemetryTracer:
    """Request and dependency spans through an OpenTelemetry tracer provider."""

    def __init__(self, provider: trace.TracerProvider | None = None) -> None:
        self._tracer = trace.get_tracer(INSTRUMENTATION_NAME, tracer_provider=provider)

    @contextmanager
    def request(self, served: ServedRequest) -> Iterator[object]:
        """A server span named ``GET /api/customers/{customerId}/agreements``."""
        attributes = {
            "http.request.method": served.method,
            "http.route": served.route,
            "url.template": served.route,
            "correlation_id": served.correlation_id,
        }
        with self._tracer.start_as_current_span(
            f"{served.method} {served.route}", kind=SpanKind.SERVER, attributes=attributes
        ) as span:
            yield span
            if served.status is not None:
                span.set_attribute("http.response.status_code", served.status)
                # A server span fails on 5xx only: a 4xx is the caller's error, answered well.
                if served.status >= 500:
                    span.set_status(Status(StatusCode.ERROR))

    @contextmanager
    def upstream_call(self, call: UpstreamCall) -> Iterator[object]:
        """A client span named ``Partner Center GET /v1/customers/{id}/agreements``."""
        who = _SERVICE_NAMES.get(call.service, call.service)
        address = call.host if call.port is None else f"{call.host}:{call.port}"
        attributes: dict[str, str | int] = {
            "http.request.method": call.method,
            "server.address": call.host,
            "url.template": call.route,
            # The URL with its ids templated and no query: Application Insights names the
            # dependency from its path and shows it as the call's data.
            "url.full": f"{call.scheme}://{address}{call.route}",
        }
        if call.port is not None:
            attributes["server.port"] = call.port
        correlation_id = current_correlation_id()
        if correlation_id is not None:
            attributes["correlation_id"] = correlation_id
        with self._tracer.start_as_current_span(
            f"{who} {call.method} {call.route}", kind=SpanKind.CLIENT, attributes=attributes
        ) as span:
            try:
                yield span
            finally:
                _finish_upstream(span, call)


def _finish_upstream(span: trace.Span, call: UpstreamCall) -> None:
    span.set_attribute("attempts", call.attempts)
    if call.attempts > 1:
        span.set_attribute("http.request.resend_count", call.attempts - 1)
    if call.request_id is not None:
        span.set_attribute("ms_request_id", call.request_id)
    if call.correlation_id is not None:
        span.set_attribute("ms_correlation_id", call.correlation_id)
    if call.status is not None:
        span.set_attribute("http.response.status_code", call.status)
    if call.status is None or call.status >= 400:
        span.set_status(Status(StatusCode.ERROR))


def start_azure_monitor(connection_string: str) -> OpenTelemetryTracer:
    """Export to Application Insights through the Azure Monitor distro (once per process).

    Where the Functions worker has already configured the distro (``PYTHON_APPLICATIONINSIGHTS_
    ENABLE_TELEMETRY``, or ``PYTHON_ENABLE_OPENTELEMETRY`` on workers up to 4.34: the worker calls
    ``configure_azure_monitor`` itself before loading the app), its pipeline is kept and only the
    HTTP client instrumentations it turned on are turned off.
    """
    if isinstance(trace.get_tracer_provider(), SdkTracerProvider):
        _uninstrument_http_clients()
    else:
        # Imported here: the distro is only needed when no one has configured OpenTelemetry yet.
        from azure.monitor.opentelemetry import configure_azure_monitor  # noqa: PLC0415

        disabled = {name: {"enabled": False} for name in DISABLED_INSTRUMENTATIONS}
        configure_azure_monitor(
            connection_string=connection_string,
            # The root logger: gateway, partnercenter, MSAL; the exporter authenticates with
            # APPLICATIONINSIGHTS_AUTHENTICATION_STRING (local auth is off on the component).
            logger_name="",
            instrumentation_options=disabled,
            # Every request: the distro's default (5 traces a second, no budget at start) drops
            # the first requests of each new instance. OTEL_TRACES_SAMPLER still overrides it.
            sampling_ratio=1.0,
            enable_live_metrics=False,
            enable_performance_counters=False,
        )
    for name in _PIPELINE_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    logger.info("telemetry: exporting to Application Insights through OpenTelemetry")
    return OpenTelemetryTracer()


def _uninstrument_http_clients() -> None:
    # Imported here: present only as the distro's dependencies.
    from opentelemetry.instrumentation.requests import RequestsInstrumentor  # noqa: PLC0415
    from opentelemetry.instrumentation.urllib import URLLibInstrumentor  # noqa: PLC0415
    from opentelemetry.instrumentation.urllib3 import URLLib3Instrumentor  # noqa: PLC0415

    for instrumentor in (RequestsInstrumentor(), URLLibInstrumentor(), URLLib3Instrumentor()):
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()
