"""Response helpers shared by the identity provider and Partner Center applications."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from typing import Any

from werkzeug.wrappers import Response

from simulator._faults import Fault
from simulator._server import DropConnection
from simulator.data import SEED_EXAMPLE_BODY

JSON_TYPE = "application/json; charset=utf-8"
_BOM = b"\xef\xbb\xbf"
_HTML_PAGE = (
    "<!DOCTYPE html>\n<html><head><title>{status} - Web server received an invalid response"
    "</title></head>\n<body><h1>Server Error</h1><h2>{status} - Web server received an invalid "
    "response while acting as a gateway or proxy server.</h2>\n<p>There is a problem with the page"
    " you are looking for, and it cannot be displayed.</p></body></html>\n"
)
# Fields an API might add tomorrow: clients must ignore them.
_EXTRA_FIELDS: dict[str, Any] = {"futureField": "added by a newer API version", "futureFlag": True}


def guid() -> str:
    """A new random GUID string."""
    return str(uuid.uuid4())


def is_guid(value: str) -> bool:
    """Whether ``value`` parses as a GUID."""
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def json_response(status: int, body: Any) -> Response:
    """A JSON response with Partner Center's and Entra ID's content type."""
    return Response(json.dumps(body), status=status, content_type=JSON_TYPE)


def pause(stop: threading.Event, seconds: float) -> None:
    """Sleep ``seconds``; if the simulator stops meanwhile, drop the connection at once (the
    server is going away, so answering late would only make shutdown slower and racier)."""
    if seconds > 0 and stop.wait(seconds):
        raise DropConnection


def _add_fields(value: Any) -> Any:
    if isinstance(value, dict):
        return {**{k: _add_fields(v) for k, v in value.items()}, **_EXTRA_FIELDS}
    if isinstance(value, list):
        return [_add_fields(v) for v in value]
    return value


def _add_new_enum(value: Any) -> Any:
    """Append an agreement of a never-seen type to an agreements collection."""
    if isinstance(value, dict) and isinstance(value.get("items"), list):
        strange = {
            "primaryContact": {"firstName": "Nova", "lastName": "Ng", "email": "nova@example.com"},
            "templateId": "0f0f0f0f-1e1e-2d2d-3c3c-4b4b4b4b4b4b",
            "dateAgreed": "2031-01-01T00:00:00",
            "type": "MicrosoftQuantumAgreement",
            "agreementLink": "https://aka.ms/quantumagreement",
            "userId": "7a7a7a7a-8b8b-4c9c-9d0d-1e1e1e1e1e1e",
            "attributes": {"objectType": "Agreement"},
        }
        items = [*value["items"], strange]
        return {**value, "items": items, "totalCount": len(items)}
    return value


def _mutate(kind: str, response: Response) -> None:
    data = response.get_data()
    if kind == "empty":
        response.set_data(b"")
    elif kind == "html":
        response.set_data(_HTML_PAGE.format(status=response.status_code).encode())
        response.content_type = "text/html; charset=utf-8"
    elif kind == "bom":
        response.set_data(_BOM + data)
    elif kind == "truncated":
        response.set_data(data[: len(data) // 2])
    elif kind in ("extra-fields", "new-enum"):
        try:
            parsed = json.loads(data)
        except ValueError:  # not JSON (e.g. already an error page): nothing to extend
            return
        changed = _add_fields(parsed) if kind == "extra-fields" else _add_new_enum(parsed)
        response.set_data(json.dumps(changed).encode())


def apply_fault(
    fault: Fault,
    real: Callable[[], Response],
    *,
    stop: threading.Event,
    default_body: Callable[[int], Any],
) -> Response:
    """Serve ``fault`` instead of (or on top of) the real response ``real()``.

    Order: ``commit_first`` handles the request for real (its answer is used when ``status`` is
    None); wait ``delay``; ``drop`` closes the connection; the base response is the real one when
    ``status`` is None, else ``status`` with ``body`` (``default_body(status)`` when body is None);
    ``body_kind`` then replaces or mutates the body; ``headers`` are added last.
    """
    if fault.commit_first:
        committed = real()
        real = lambda: committed  # noqa: E731 - the request must not be handled twice
    pause(stop, fault.delay)
    if fault.drop:
        raise DropConnection
    if fault.body_kind == "seed-example":
        response = Response(status=fault.status or 200, content_type=JSON_TYPE)
        response.set_data(SEED_EXAMPLE_BODY.encode())
    elif fault.status is None:
        response = real()
        if fault.body is not None:
            _set_body(response, fault.body)
    else:
        response = Response(status=fault.status, content_type=JSON_TYPE)
        body = default_body(fault.status) if fault.body is None else fault.body
        if body is not None:
            _set_body(response, body)
    if fault.body_kind is not None and fault.body_kind != "seed-example":
        _mutate(fault.body_kind, response)
    for name, value in fault.headers.items():
        response.headers[name] = value
    return response


def _set_body(response: Response, body: Any) -> None:
    if isinstance(body, bytes):
        response.set_data(body)
    elif isinstance(body, str):
        response.set_data(body.encode())
    else:
        response.set_data(json.dumps(body).encode())
        response.content_type = JSON_TYPE
