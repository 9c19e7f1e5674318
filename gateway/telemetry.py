"""Telemetry for Application Insights: on only when ``APPLICATIONINSIGHTS_CONNECTION_STRING`` is
set.

Each request served by :func:`gateway.http.serve` is a span (its correlation id and route
template), each call to Partner Center or Entra ID a dependency span (reported by the client
through ``partnercenter.traced_call``), and log records go out with their fields as custom
dimensions. The OpenTelemetry half lives in ``gateway/azure_monitor.py``: it is imported on the
first request only when the connection string is set, so without it no OpenTelemetry package is
ever imported (cold start pays nothing).

In Azure (Flex Consumption) the Functions host's own telemetry is OpenTelemetry too (host.json
``telemetryMode: OpenTelemetry``) and the worker hands each invocation the host's trace context
(app setting ``PYTHON_ENABLE_OPENTELEMETRY=true``), so the host's request and the app's spans and
logs share one operation id. See the README's "Telemetry" section.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

import azure.functions as func

from partnercenter import UpstreamCall, set_call_tracer

CONNECTION_STRING_SETTING = "APPLICATIONINSIGHTS_CONNECTION_STRING"


@dataclass
class ServedRequest:
    """One request to the API, as its span shows it."""

    method: str
    #: The function's route template under the route prefix: ``/api/customers/{customerId}/...``.
    route: str
    correlation_id: str
    status: int | None = None


class Tracer(Protocol):
    """What the OpenTelemetry half provides: a span around a request and around an upstream call."""

    def request(self, served: ServedRequest) -> AbstractContextManager[object]:
        """A server span for ``served``; its status is read when the block ends."""

    def upstream_call(self, call: UpstreamCall) -> AbstractContextManager[object]:
        """A client (dependency) span for ``call``."""


_lock = threading.Lock()
_decided = False
_tracer: Tracer | None = None


def install_tracer(tracer: Tracer | None) -> None:
    """Use ``tracer`` for request and dependency spans from now on (None turns them off)."""
    with _lock:
        _install(tracer)


def _install(tracer: Tracer | None) -> None:
    global _tracer, _decided  # noqa: PLW0603 - one telemetry pipeline per process
    _tracer = tracer
    _decided = True
    set_call_tracer(tracer.upstream_call if tracer is not None else None)


def configure_telemetry(environ: Mapping[str, str] | None = None) -> bool:
    """Turn telemetry on if the connection string is set (once per process); whether it is on."""
    if not _decided:
        with _lock:
            if not _decided:
                env = os.environ if environ is None else environ
                _install(_start(env.get(CONNECTION_STRING_SETTING, "").strip()))
    return _tracer is not None


def _start(connection_string: str) -> Tracer | None:
    if not connection_string:
        return None
    # Imported here, and only here: this is what pulls OpenTelemetry in.
    from .azure_monitor import start_azure_monitor  # noqa: PLC0415

    return start_azure_monitor(connection_string)


@contextmanager
def request_span(req: func.HttpRequest, correlation_id: str) -> Iterator[ServedRequest]:
    """Wrap the serving of ``req``; the block sets ``status`` on what it yields."""
    configure_telemetry()
    served = ServedRequest(req.method.upper(), route_template(req), correlation_id)
    tracer = _tracer
    if tracer is None:
        yield served
        return
    with tracer.request(served):
        yield served


def route_template(req: func.HttpRequest) -> str:
    """The route template ``req`` matched, rebuilt from its path and route parameters.

    The Functions host does not hand the template to the function; each path segment that
    equals a route parameter's value becomes ``{name}`` (each name once, from the left).
    """
    path = urlsplit(req.url).path or "/"
    remaining = {value: name for name, value in req.route_params.items() if value}
    segments = []
    for segment in path.split("/"):
        name = remaining.pop(segment, None)
        segments.append("{" + name + "}" if name is not None else segment)
    return "/".join(segments)
