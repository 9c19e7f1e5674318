"""Fault injection: what the simulator should do wrong, and for how many requests."""

from __future__ import annotations

import base64
import threading
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, Literal, get_args

Target = Literal["api", "token", "jwks", "discovery", "keyvault"]
BodyKind = Literal["seed-example", "html", "empty", "bom", "extra-fields", "new-enum", "truncated"]

TARGETS: frozenset[str] = frozenset(get_args(Target))
BODY_KINDS: frozenset[str] = frozenset(get_args(BodyKind))


@dataclass
class Fault:
    """One misbehaviour, served to the next ``times`` requests that match ``target`` and ``path``.

    ``status`` None keeps the status the simulator would have answered; ``body_kind`` mutates or
    replaces the body (see the module documentation of :mod:`simulator`). ``delay`` is waited first,
    then ``drop`` closes the connection without any response. ``commit_first`` handles the request
    for real before all that (its effects, such as a stored attestation, are kept): with ``drop``
    it is a connection lost after Partner Center committed.
    """

    target: Target = "api"
    path: str | None = None
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    body_kind: BodyKind | None = None
    delay: float = 0.0
    drop: bool = False
    times: int = 1
    commit_first: bool = False
    #: Only requests of this HTTP method (e.g. ``PUT``: Key Vault writes); None matches any.
    method: str | None = None

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ValueError(f"unknown fault target {self.target!r}; expected one of {TARGETS}")
        if self.body_kind is not None and self.body_kind not in BODY_KINDS:
            raise ValueError(f"unknown body_kind {self.body_kind!r}; expected one of {BODY_KINDS}")
        if self.times < 1:
            raise ValueError("times must be at least 1")
        if self.delay < 0:
            raise ValueError("delay must not be negative")

    def matches(self, target: str, path: str, method: str | None = None) -> bool:
        """Whether this fault applies to a request of ``target`` on ``path`` (with ``method``)."""
        return (
            self.target == target
            and (self.path is None or path.startswith(self.path))
            and (self.method is None or method is None or self.method.upper() == method.upper())
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable form (bytes bodies travel as ``body_base64``)."""
        data = asdict(self)
        if isinstance(self.body, bytes):
            data.pop("body")
            data["body_base64"] = base64.b64encode(self.body).decode("ascii")
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fault:
        """Rebuild a fault from :meth:`to_dict` output; unknown keys are an error."""
        values = dict(data)
        if "body_base64" in values:
            values["body"] = base64.b64decode(values.pop("body_base64"))
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        return cls(**values)

    @classmethod
    def throttled(
        cls,
        retry_after: int,
        shape: Literal["gateway", "documented"] = "gateway",
        times: int = 1,
        path: str | None = None,
    ) -> Fault:
        """A Partner Center 429 with ``Retry-After``.

        ``gateway`` is the API-management shape (``statusCode``/``message``); ``documented`` is
        Partner Center's own error shape.
        """
        body: dict[str, Any]
        if shape == "gateway":
            body = {
                "statusCode": 429,
                "message": f"Rate limit is exceeded. Try again in {retry_after} seconds.",
            }
        else:
            body = {
                "code": "429",
                "description": f"Too many requests. Retry after {retry_after} seconds.",
                "data": [],
                "source": "PartnerFD",
            }
        return cls(
            target="api",
            path=path,
            status=429,
            headers={"Retry-After": str(retry_after)},
            body=body,
            times=times,
        )

    @classmethod
    def partner_center_error(
        cls,
        status: int,
        code: int | str,
        description: str,
        shape: Literal["documented", "newer"] = "documented",
        retryable: bool = False,
        *,
        error_name: str | None = None,
        path: str | None = None,
        headers: Mapping[str, str] | None = None,
        times: int = 1,
    ) -> Fault:
        """A Partner Center error in the documented shape (string ``code``) or the newer one
        (numeric ``code``, ``message``, ``errorName``, ``isRetryable``, ``parameters``)."""
        body: dict[str, Any]
        if shape == "documented":
            body = {
                "code": str(code),
                "description": description,
                "data": [],
                "source": "PartnerFD",
            }
        else:
            body = {
                "code": int(code),
                "message": description,
                "description": description,
                "errorName": error_name or HTTPStatus(status).phrase.replace(" ", ""),
                "isRetryable": retryable,
                "parameters": {},
            }
        return cls(
            target="api",
            path=path,
            status=status,
            headers=dict(headers or {}),
            body=body,
            times=times,
        )

    @classmethod
    def aad_error(
        cls, error: str, aadsts: int, description: str, status: int = 400, times: int = 1
    ) -> Fault:
        """An Entra ID token-endpoint error (``AADSTS{n}: ...``) for target ``token``."""
        return cls(
            target="token",
            status=status,
            body=aad_error_body(error, aadsts, description),
            times=times,
        )


def aad_error_body(
    error: str, aadsts: int, description: str, correlation_id: str | None = None
) -> dict[str, Any]:
    """The JSON body Entra ID sends with a failed token request."""
    trace_id = str(uuid.uuid4())
    correlation_id = correlation_id or str(uuid.uuid4())
    timestamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    return {
        "error": error,
        "error_description": (
            f"AADSTS{aadsts}: {description} Trace ID: {trace_id} "
            f"Correlation ID: {correlation_id} Timestamp: {timestamp}"
        ),
        "error_codes": [aadsts],
        "timestamp": timestamp,
        "trace_id": trace_id,
        "correlation_id": correlation_id,
        "error_uri": f"https://login.microsoftonline.com/error?code={aadsts}",
    }


@dataclass
class _Pending:
    """A queued fault and its uses left (the Fault itself is never mutated)."""

    fault: Fault
    remaining: int


class FaultQueue:
    """Pending faults, served first-in first-out among those matching a request. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[_Pending] = []

    def add(self, *faults: Fault) -> None:
        """Queue ``faults`` after those already pending."""
        with self._lock:
            self._pending.extend(_Pending(fault, fault.times) for fault in faults)

    def take(self, target: str, path: str, method: str | None = None) -> Fault | None:
        """Use up one serving of the oldest fault matching the request, if any."""
        with self._lock:
            for entry in self._pending:
                if entry.fault.matches(target, path, method):
                    entry.remaining -= 1
                    if entry.remaining == 0:
                        self._pending.remove(entry)
                    return entry.fault
        return None

    def clear(self) -> None:
        """Forget every pending fault."""
        with self._lock:
            self._pending.clear()

    def __len__(self) -> int:
        """Number of faults with uses left."""
        with self._lock:
            return len(self._pending)
