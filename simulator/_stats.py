"""Thread-safe counters of what the simulator was asked, for assertions and benchmarks."""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from typing import Any

# Grants counted from the start, so ``stats.token_requests["refresh_token"]`` is 0, not a KeyError.
GRANTS = ("client_credentials", "on_behalf_of", "refresh_token")
SERVERS = ("identity", "api")


@dataclass(frozen=True)
class ApiRequest:
    """One Partner Center request as the simulator saw it.

    ``headers`` have lower-case names and the bearer token replaced by ``Bearer <redacted>``;
    ``subject`` is (tid, oid) of the bearer token when it could be decoded; ``status`` is what the
    simulator answered (0 when the connection was dropped without an answer). ``started`` and
    ``finished`` are ``time.monotonic()`` when the request arrived and when its answer was ready
    (latency and fault delays included); ``body`` is the JSON body of a POST, if any.
    """

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    subject: tuple[str, str] | None
    scopes: str | None
    status: int
    started: float = 0.0
    finished: float = 0.0
    body: Any = None


class Stats:
    """Counters of token requests, Partner Center calls and accepted connections."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._token_requests: dict[str, int] = dict.fromkeys(GRANTS, 0)
        self._api_calls: dict[str, int] = {}
        self._api_requests: list[ApiRequest] = []
        self._connections: dict[str, int] = dict.fromkeys(SERVERS, 0)
        self._generation = 0

    @property
    def generation(self) -> int:
        """Bumped by every reset: a request that began before a reset is not recorded after it."""
        with self._lock:
            return self._generation

    @property
    def token_requests(self) -> dict[str, int]:
        """Token-endpoint requests by grant (a copy)."""
        with self._lock:
            return dict(self._token_requests)

    @property
    def api_calls(self) -> dict[str, int]:
        """Partner Center requests by path (a copy)."""
        with self._lock:
            return dict(self._api_calls)

    @property
    def api_requests(self) -> list[ApiRequest]:
        """Every Partner Center request, oldest first (a copy)."""
        with self._lock:
            return list(self._api_requests)

    @property
    def connections(self) -> dict[str, int]:
        """TCP connections that carried at least one counted request, by server (a copy)."""
        with self._lock:
            return dict(self._connections)

    def count_token_request(self, grant: str) -> None:
        """Count one token request for ``grant``."""
        with self._lock:
            self._token_requests[grant] = self._token_requests.get(grant, 0) + 1

    def record_api_request(self, request: ApiRequest, *, generation: int | None = None) -> None:
        """Record one answered (or dropped) Partner Center request.

        ``generation`` is :attr:`generation` when the request arrived: a request still delayed
        by a fault when a test resets the counters belongs to the test before, not the next one.
        """
        with self._lock:
            if generation is not None and generation != self._generation:
                return
            self._api_calls[request.path] = self._api_calls.get(request.path, 0) + 1
            self._api_requests.append(request)

    def count_connection(self, server: str) -> None:
        """Count one new connection to ``server`` (``identity`` or ``api``)."""
        with self._lock:
            self._connections[server] = self._connections.get(server, 0) + 1

    def as_dict(self) -> dict[str, Any]:
        """Everything as plain JSON-serialisable data (the control plane's ``GET /_sim/stats``)."""
        with self._lock:
            return {
                "token_requests": dict(self._token_requests),
                "api_calls": dict(self._api_calls),
                "api_requests": [asdict(request) for request in self._api_requests],
                "connections": dict(self._connections),
            }

    def reset(self) -> None:
        """Zero every counter."""
        with self._lock:
            self._token_requests = dict.fromkeys(GRANTS, 0)
            self._api_calls = {}
            self._api_requests = []
            self._connections = dict.fromkeys(SERVERS, 0)
            self._generation += 1
