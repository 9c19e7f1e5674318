"""The three ways of making the workload's calls, and what is measured while they run.

Runs inside a worker process (:mod:`bench.worker`), one (mode, concurrency) pair per process, so
each run starts cold (empty token cache, no pooled connection) and its memory is its own.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol
from unittest import mock

import azure.functions as func
import msal
import requests
from requests.adapters import HTTPAdapter

from gateway.logs import current_correlation_id
from partnercenter import PartnerCenterClient, Principal
from partnercenter._transport import Deadline

from .workload import Call

Prepared = Callable[[], bool]
"""One call, ready to run: returns whether it succeeded."""


class Driver(Protocol):
    """Makes the workload's calls one way."""

    def prepare(self, call: Call, correlation_id: str) -> Prepared:
        """Everything a call needs that its caller would have ready (request objects, headers),
        so that only the call itself is timed."""
        ...

    def close(self) -> None:
        """Release what the driver holds."""
        ...


# --- upstream time of gateway requests --------------------------------------------------------


@dataclass
class Upstream:
    """Time one gateway request spent on upstream services, and what it sent."""

    seconds: float = 0.0
    api_sends: int = 0
    token_seconds: float = 0.0
    token_sends: int = 0

    @property
    def total(self) -> float:
        """Seconds spent waiting on Entra ID or Partner Center (token acquisition included)."""
        return self.seconds + self.token_seconds

    @property
    def api_only(self) -> bool:
        """One upstream call and a cached token: the request the configured API latency is for.

        A token-cache hit costs microseconds, a token request or a wait for another request's
        token at least one round trip: 1 ms tells them apart.
        """
        return self.api_sends == 1 and self.token_sends == 0 and self.token_seconds < 0.001


class UpstreamTimer:
    """Attributes upstream time to each gateway request by its correlation id.

    The gateway serves each request in a correlation scope, so time spent inside
    ``requests.Session.send`` (the round trip and the HTTP client's own work, the JWKS fetch
    included) is charged to that request, and so is time inside the token provider's
    ``get_token`` (an exchange, or the wait for another request's exchange of the same user:
    single-flight). Latency minus this is the gateway's own overhead.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spent: dict[str, Upstream] = {}
        self._local = threading.local()

    def take(self, correlation_id: str) -> Upstream:
        """What the request with ``correlation_id`` spent upstream (forgotten afterwards)."""
        with self._lock:
            return self._spent.pop(correlation_id, Upstream())

    def _entry(self, correlation_id: str) -> Upstream:
        # Called under the lock.
        entry = self._spent.get(correlation_id)
        if entry is None:
            entry = self._spent[correlation_id] = Upstream()
        return entry

    @contextmanager
    def installed(self, client: PartnerCenterClient) -> Iterator[None]:
        """Time upstream calls of ``client`` (the gateway's) while in this context."""
        original_send = requests.Session.send
        timer = self

        def send(session: requests.Session, request: Any, **kwargs: Any) -> requests.Response:
            correlation_id = current_correlation_id()
            if correlation_id is None:  # not a gateway request (the HTTP mode's own client)
                return original_send(session, request, **kwargs)
            if getattr(timer._local, "in_token", False):  # timed as token acquisition
                with timer._lock:
                    timer._entry(correlation_id).token_sends += 1
                return original_send(session, request, **kwargs)
            started = time.perf_counter()
            try:
                return original_send(session, request, **kwargs)
            finally:
                elapsed = time.perf_counter() - started
                with timer._lock:
                    entry = timer._entry(correlation_id)
                    entry.seconds += elapsed
                    entry.api_sends += 1

        tokens = client.tokens
        client.tokens = _TimedTokens(tokens, self)
        try:
            with mock.patch.object(requests.Session, "send", send):
                yield
        finally:
            client.tokens = tokens

    def _token_started(self) -> None:
        self._local.in_token = True

    def _token_finished(self, correlation_id: str | None, elapsed: float) -> None:
        self._local.in_token = False
        if correlation_id is not None:
            with self._lock:
                self._entry(correlation_id).token_seconds += elapsed


class _TimedTokens:
    """The gateway's token provider, timed."""

    def __init__(self, inner: Any, timer: UpstreamTimer) -> None:
        self._inner = inner
        self._timer = timer

    def get_token(self, principal: Principal, deadline: Deadline) -> str:
        correlation_id = current_correlation_id()
        self._timer._token_started()
        started = time.perf_counter()
        try:
            token: str = self._inner.get_token(principal, deadline)
            return token
        finally:
            self._timer._token_finished(correlation_id, time.perf_counter() - started)


# --- memory -----------------------------------------------------------------------------------

_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    """This process's resident set size (Linux)."""
    with open("/proc/self/statm", "rb") as statm:
        return int(statm.read().split()[1]) * _PAGE


class PeakRss:
    """The peak resident set size while in this context, sampled every 5 ms, minus the size on
    entry: memory the run needed on top of what was loaded before it."""

    def __init__(self) -> None:
        self.start = self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, rss_bytes())

    def __enter__(self) -> PeakRss:
        self.start = self.peak = rss_bytes()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())

    @property
    def delta(self) -> int:
        """Bytes above the size on entry at the peak."""
        return self.peak - self.start


# --- the drivers ------------------------------------------------------------------------------


def _bearer(token: str, correlation_id: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "x-correlation-id": correlation_id}


class InProcessDriver:
    """The gateway's HTTP functions called directly, as the Functions host calls them."""

    def __init__(self, tokens: Sequence[str], handlers: Mapping[str, Any]) -> None:
        self._tokens = tokens
        self._handlers = handlers

    def prepare(self, call: Call, correlation_id: str) -> Prepared:
        headers = _bearer(self._tokens[call.user], correlation_id)
        if call.kind == "relationship-request":
            handler = self._handlers["GetRelationshipRequestUrl"]
            request = func.HttpRequest(
                "GET", "http://localhost/api/relationship-request", headers=headers, body=b""
            )
        else:
            handler = self._handlers["ListCustomerAgreements"]
            request = func.HttpRequest(
                "GET",
                f"http://localhost/api/customers/{call.customer_id}/agreements",
                headers=headers,
                params={"type": call.agreement_type},
                route_params={"customerId": call.customer_id},
                body=b"",
            )

        def run() -> bool:
            response: func.HttpResponse = handler(request)
            return response.status_code == 200

        return run

    def close(self) -> None:
        """Nothing to release: the runtime belongs to the gateway."""


class HttpDriver:
    """The gateway over HTTP through ``make run``'s host, called by a client with its own pool."""

    def __init__(self, tokens: Sequence[str], base_url: str, pool_size: int) -> None:
        self._tokens = tokens
        self._base_url = base_url
        self._session = requests.Session()
        self._session.trust_env = False  # local traffic: no proxy, no CA override
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=pool_size, max_retries=0)
        self._session.mount("http://", adapter)

    def prepare(self, call: Call, correlation_id: str) -> Prepared:
        headers = _bearer(self._tokens[call.user], correlation_id)
        if call.kind == "relationship-request":
            url, params = f"{self._base_url}/relationship-request", {}
        else:
            url = f"{self._base_url}/customers/{call.customer_id}/agreements"
            params = {"type": call.agreement_type}

        def run() -> bool:
            response = self._session.get(url, params=params, headers=headers, timeout=60)
            return response.status_code == 200

        return run

    def close(self) -> None:
        """Close the client's pool."""
        self._session.close()


#: The delegated scope the samples ask for.
PARTNER_CENTER_SCOPE = "https://api.partnercenter.microsoft.com/user_impersonation"
#: The gateway sends ``*`` to Partner Center for its ``all``.
_PARTNER_CENTER_TYPES = {"all": "*"}


class BaselineDriver:
    """What documentation samples and typical scripts do, once per call: build a
    ``ConfidentialClientApplication`` (which fetches the authority's metadata), exchange the
    user's token on behalf of the user, and call Partner Center with ``requests.get`` (a new
    session, so a new TLS connection, closed afterwards)."""

    def __init__(self, tokens: Sequence[str], settings: Mapping[str, str]) -> None:
        self._tokens = tokens
        self._client_id = settings["AZURE_CLIENT_ID"]
        self._secret = settings["AZURE_CLIENT_SECRET"]
        self._authority = f"{settings['AZURE_AUTHORITY_HOST']}/{settings['AZURE_TENANT_ID']}"
        self._api = settings["PARTNER_CENTER_API_URL"]

    def prepare(self, call: Call, correlation_id: str) -> Prepared:
        assertion = self._tokens[call.user]
        if call.kind == "relationship-request":
            url, params = f"{self._api}/v1/customers/relationshiprequests", {}
        else:
            url = f"{self._api}/v1/customers/{call.customer_id}/agreements"
            kind = call.agreement_type
            params = {"agreementType": _PARTNER_CENTER_TYPES.get(kind, kind)}

        def run() -> bool:
            app = msal.ConfidentialClientApplication(
                self._client_id,
                client_credential=self._secret,
                authority=self._authority,
                # Needed for a local authority only; login.microsoftonline.com needs no flag.
                instance_discovery=False,
            )
            result = app.acquire_token_on_behalf_of(assertion, scopes=[PARTNER_CENTER_SCOPE])
            if "access_token" not in result:
                return False
            response = requests.get(
                url,
                params=params,
                headers={
                    "Authorization": f"Bearer {result['access_token']}",
                    "Accept": "application/json",
                    "MS-RequestId": str(uuid.uuid4()),
                    "MS-CorrelationId": correlation_id,
                },
                timeout=60,
            )
            response.json()
            return response.status_code == 200

        return run

    def close(self) -> None:
        """Nothing pooled to release: that is the point of the baseline."""


# --- running ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One call's latency and, for the gateway, its upstream time."""

    seconds: float
    ok: bool
    upstream: Upstream | None


def run_calls(
    driver: Driver,
    calls: Sequence[Call],
    concurrency: int,
    timer: UpstreamTimer | None,
) -> tuple[list[Sample], float]:
    """Make ``calls`` from ``concurrency`` threads; the samples in call order and the wall time."""
    prepared = []
    for call in calls:
        correlation_id = str(uuid.uuid4())
        prepared.append((driver.prepare(call, correlation_id), correlation_id))

    def one(item: tuple[Prepared, str]) -> Sample:
        run, correlation_id = item
        started = time.perf_counter()
        try:
            ok = run()
        except Exception:  # a failed call is counted, not fatal to the benchmark
            ok = False
        elapsed = time.perf_counter() - started
        return Sample(elapsed, ok, timer.take(correlation_id) if timer is not None else None)

    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="bench") as pool:
        started = time.perf_counter()
        samples = list(pool.map(one, prepared))
        wall = time.perf_counter() - started
    return samples, wall
