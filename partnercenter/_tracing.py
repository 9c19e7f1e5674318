"""Where the client reports its calls to Partner Center and Entra ID, for whoever traces them.

The client imports no tracing library: an application that wants dependency telemetry installs a
:data:`CallTracer` with :func:`set_call_tracer` (the gateway does when OpenTelemetry is on).
Without one, reporting a call costs a global read. A traced call carries what identifies it
(method, host, route template, status, attempts, request and correlation ids), never the query
string, a header or a token.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

from ._errors import Service

_GUID_SEGMENT = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)


@dataclass
class UpstreamCall:
    """One logical call (all its attempts) to Partner Center or Entra ID."""

    service: Service
    method: str
    scheme: str
    host: str
    port: int | None
    #: The path with its ids replaced: ``/v1/customers/{id}/agreements``, ``/{tenant}/oauth2/...``.
    route: str
    request_id: str | None = None
    correlation_id: str | None = None
    attempts: int = 0
    #: The last answer's status; None when no answer came (timeout, connection error).
    status: int | None = None


CallTracer = Callable[[UpstreamCall], AbstractContextManager[object]]

_tracer: CallTracer | None = None


def set_call_tracer(tracer: CallTracer | None) -> None:
    """Install ``tracer`` (None removes it). It wraps each call and reads the call's fields when
    the call ends; an exception leaving the call passes through it."""
    global _tracer  # noqa: PLW0603 - one tracer per process, like logging's handlers
    _tracer = tracer


def route_template(service: Service, path: str) -> str:
    """``path`` with the parts that vary per call replaced: GUID segments become ``{id}``, and
    an Entra ID path's first segment (the tenant) becomes ``{tenant}``."""
    segments = path.split("/")
    for index, segment in enumerate(segments):
        if service == "identity" and index == 1 and segment:
            segments[index] = "{tenant}"
        elif _GUID_SEGMENT.match(segment):
            segments[index] = "{id}"
    return "/".join(segments)


@contextmanager
def traced_call(
    service: Service,
    method: str,
    url: str,
    *,
    request_id: str | None = None,
    correlation_id: str | None = None,
) -> Iterator[UpstreamCall]:
    """Report one call: the body fills in ``attempts`` and ``status`` as it goes."""
    parts = urlsplit(url)
    call = UpstreamCall(
        service=service,
        method=method,
        scheme=parts.scheme,
        host=parts.hostname or "",
        port=parts.port,
        route=route_template(service, parts.path),
        request_id=request_id,
        correlation_id=correlation_id,
    )
    tracer = _tracer
    if tracer is None:
        yield call
        return
    with tracer(call):
        yield call
