"""The fault matrix (``matrix.ROWS``) over real HTTP: `make run`'s host, real MSAL, the simulator.

Each row injects its faults, makes one call as a user (or an application) and checks both sides:
the caller's answer (status, problem type, detail, headers, time taken) and what the simulator
saw (Partner Center attempts and what it answered to each, one MS-RequestId and the caller's
correlation id on all of them, the caller's own identity, token requests by grant).
Run with ``-s`` to see the observed matrix.
"""

from __future__ import annotations

import secrets
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
import requests

import partnercenter._transport
from gateway.problems import PROBLEM_CONTENT_TYPE, PROBLEM_TYPE_BASE
from gateway.runtime import Runtime, set_runtime
from partnercenter import Settings
from simulator import CUSTOMER_ATTESTED, CUSTOMER_MCA, CUSTOMER_NEITHER, ApiRequest, Simulator

from ..conftest import sim_environ
from .conftest import Gateway, ServiceUser
from .matrix import (
    ATTEST_PATH,
    CLOSED_PORT_URL,
    DEFAULT_DEADLINE,
    EXPIRED_REFRESH_TOKEN,
    REPEAT_PATH,
    ROWS,
    STATUS_AGREEMENTS_PATH,
    STATUS_DIRECT_PATH,
    WRONG_SECRET,
    Row,
    bounds,
)

ALL_SCOPES = ["RelationshipRequest.Read", "Agreements.Read", "Agreements.ReadWrite"]
METADATA = ("GET", "/v1/agreements")
ADA = {"firstName": "Ada", "lastName": "Lovelace", "email": "ada@contoso.example"}
TANIA = {
    "firstName": "Tania",
    "lastName": "Carr",
    "email": "SomeEmail@example.com",
    "phoneNumber": "1234567890",
}


@dataclass(frozen=True)
class Route:
    """A gateway call of the matrix: the upstream request it counts as attempts, and the other
    upstream requests it may make."""

    path: str
    method: str
    upstream: tuple[str, str]
    also: frozenset[tuple[str, str]] = frozenset()
    body: dict[str, object] | None = None
    customer: str | None = None


ROUTES = {
    "agreements": Route(
        f"customers/{CUSTOMER_MCA}/agreements",
        "GET",
        ("GET", f"/v1/customers/{CUSTOMER_MCA}/agreements"),
    ),
    "relationship": Route(
        "relationship-request", "GET", ("GET", "/v1/customers/relationshiprequests")
    ),
    "attest": Route(
        f"customers/{CUSTOMER_NEITHER}/agreements",
        "POST",
        ("POST", ATTEST_PATH),
        frozenset({METADATA, ("GET", ATTEST_PATH)}),
        {"primaryContact": ADA},
        CUSTOMER_NEITHER,
    ),
    "attest-repeat": Route(
        f"customers/{CUSTOMER_ATTESTED}/agreements",
        "POST",
        ("POST", REPEAT_PATH),
        frozenset({METADATA, ("GET", REPEAT_PATH)}),
        {"primaryContact": TANIA},
        CUSTOMER_ATTESTED,
    ),
    "status-agreements": Route(
        f"customers/{CUSTOMER_ATTESTED}/mca-status",
        "GET",
        ("GET", STATUS_AGREEMENTS_PATH),
        frozenset({("GET", STATUS_DIRECT_PATH)}),
    ),
    "status-direct": Route(
        f"customers/{CUSTOMER_ATTESTED}/mca-status",
        "GET",
        ("GET", STATUS_DIRECT_PATH),
        frozenset({("GET", STATUS_AGREEMENTS_PATH)}),
    ),
}


@dataclass(frozen=True)
class Observed:
    row: Row
    status: int
    problem: str
    seconds: float
    attempts: int
    statuses: tuple[int, ...]
    grants: dict[str, int]


@pytest.fixture(scope="module")
def observed() -> Iterator[list[Observed]]:
    """What each row did; printed as a table at the end of the module (visible with ``-s``)."""
    seen: list[Observed] = []
    yield seen
    if not seen:
        return
    lines = [
        "",
        "Fault matrix, observed:",
        "| row | status | problem | seconds | attempts (answers) | token requests |",
        "|---|---|---|---|---|---|",
    ]
    for o in seen:
        answers = ", ".join("dropped" if s == 0 else str(s) for s in o.statuses)
        grants = ", ".join(f"{n} {g}" for g, n in o.grants.items() if n) or "none"
        lines.append(
            f"| {o.row.id} | {o.status} | {o.problem or '-'} | {o.seconds:.2f} | "
            f"{o.attempts} ({answers}) | {grants} |"
        )
    print("\n".join(lines))


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def row_environ(row: Row, sim: Simulator, service_user: ServiceUser) -> dict[str, str]:
    """The service's settings for ``row``, placeholders filled in."""
    values = {
        CLOSED_PORT_URL: lambda: f"https://localhost:{closed_port()}",
        EXPIRED_REFRESH_TOKEN: lambda: sim.refresh_token_for(expired=True),
        WRONG_SECRET: lambda: "wrong~" + secrets.token_urlsafe(24),
    }
    overrides = {
        "PARTNER_CENTER_REFRESH_TOKEN": service_user.refresh_token,
        "PARTNER_CENTER_DEADLINE_SECONDS": DEFAULT_DEADLINE,
    }
    for name, value in row.env.items():
        overrides[name] = values[value]() if value in values else value
    return sim_environ(sim, **overrides)


def wait_for_attempts(
    sim: Simulator, at_least: int, counts: Callable[[ApiRequest], bool], timeout: float = 5.0
) -> list[ApiRequest]:
    """The simulator's Partner Center requests that ``counts``, once ``at_least`` have been
    recorded (a delayed request is recorded when its delay ends)."""
    ends = time.monotonic() + timeout
    while True:
        seen = [r for r in sim.stats.api_requests if counts(r)]
        if len(seen) >= at_least or time.monotonic() > ends:
            return seen
        time.sleep(0.05)


def in_bounds(value: int, count: int | tuple[int, int]) -> bool:
    low, high = bounds(count)
    return low <= value <= high


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_fault(
    row: Row,
    gateway: Gateway,
    fresh_sim: Simulator,
    service_user: ServiceUser,
    monkeypatch: pytest.MonkeyPatch,
    observed: list[Observed],
) -> None:
    sim = fresh_sim
    if row.read_timeout is not None:
        monkeypatch.setattr(partnercenter._transport, "READ_TIMEOUT", row.read_timeout)
    user_oid = str(uuid.uuid4())
    token = (
        sim.app_token() if row.caller == "app" else sim.user_token(oid=user_oid, scopes=ALL_SCOPES)
    )
    subject = (sim.tenant_id, service_user.object_id if row.caller == "app" else user_oid)
    route = ROUTES[row.route]
    url = f"{gateway.url}/{route.path}"
    correlation, follow_up = str(uuid.uuid4()), str(uuid.uuid4())
    headers = {"Authorization": f"Bearer {token}", "x-correlation-id": correlation}
    http = requests.Session()
    http.trust_env = False
    set_runtime(Runtime.from_settings(Settings.from_environ(row_environ(row, sim, service_user))))
    try:
        if row.warm:
            warm = http.get(url, headers={"Authorization": headers["Authorization"]}, timeout=30)
            assert warm.status_code == 200, warm.text
            sim.reset()
        sim.faults.add(*row.faults)
        started = time.monotonic()
        response = http.request(route.method, url, headers=headers, json=route.body, timeout=30)
        seconds = time.monotonic() - started
        if row.then_served:
            # The request thread gave up with the deadline: it is not left waiting upstream...
            freed_by = time.monotonic() + 1.0
            while gateway.running() and time.monotonic() < freed_by:
                time.sleep(0.01)
            assert gateway.running() == 0, "a request thread is still busy after its answer"
            # ...and the next call is served at once.
            started_next = time.monotonic()
            following = http.get(
                url, headers={**headers, "x-correlation-id": follow_up}, timeout=30
            )
            assert following.status_code == 200, following.text
            assert time.monotonic() - started_next < 1.0
        for _ in range(row.repeat):
            started_again = time.monotonic()
            again = http.get(url, headers=headers, timeout=30)
            assert again.status_code == row.status, again.text
            assert time.monotonic() - started_again <= row.max_seconds
        faults_left = len(sim.faults)
    finally:
        set_runtime(None)
        http.close()

    low, _ = bounds(row.attempts)
    mine = wait_for_attempts(
        sim,
        low,
        lambda r: (
            r.headers.get("ms-correlationid") == correlation
            and (r.method, r.path) == route.upstream
        ),
    )
    grants = sim.stats.token_requests
    body = response.json() if response.content else {}
    observed.append(
        Observed(
            row,
            response.status_code,
            str(body.get("type", "")).removeprefix(PROBLEM_TYPE_BASE) if row.problem else "",
            seconds,
            len(mine),
            tuple(r.status for r in mine),
            grants,
        )
    )

    # --- what the caller got ----------------------------------------------------------------
    assert response.status_code == row.status, response.text
    assert response.status_code != 500, response.text
    assert "Traceback" not in response.text
    assert response.headers["x-correlation-id"] == correlation
    if row.problem is not None:
        assert response.headers["Content-Type"].startswith(PROBLEM_CONTENT_TYPE)
        assert body["type"] == PROBLEM_TYPE_BASE + row.problem, body
        assert body["status"] == row.status
        assert body["title"]
        assert body["correlationId"] == correlation
        for words in row.detail:
            assert words.lower() in body["detail"].lower(), body["detail"]
        for name, value in row.fields.items():
            assert body.get(name) == value, body
        if mine and "partnerCenterRequestId" in body:
            assert body["partnerCenterRequestId"] == mine[0].headers["ms-requestid"]
    else:
        assert response.headers["Content-Type"].startswith("application/json")
        if row.body_contains is not None:
            assert row.body_contains in response.text
        if row.created is not None:
            assert body["created"] is row.created, body
    for name, value in row.headers.items():
        assert response.headers.get(name) == value, dict(response.headers)
    for name, value in row.header_contains.items():
        assert value in response.headers.get(name, ""), dict(response.headers)
    assert row.min_seconds <= seconds <= row.max_seconds, f"answered in {seconds:.2f} s"

    # --- what the simulator saw ---------------------------------------------------------------
    everything = sim.stats.api_requests
    assert {r.headers.get("ms-correlationid") for r in everything} <= {correlation, follow_up}
    assert {r.subject for r in everything} <= {subject}, "called with another identity's token"
    assert in_bounds(len(mine), row.attempts), [r.status for r in mine]
    if row.statuses is not None:
        assert tuple(r.status for r in mine) == row.statuses
    assert len({r.headers["ms-requestid"] for r in mine}) <= 1, "a retry changed MS-RequestId"
    for request in everything:
        assert (request.method, request.path) in {route.upstream, *route.also}, request
        assert request.subject == subject, "called with another identity's token"
    if row.stored is not None:
        assert route.customer is not None
        assert len(sim.agreements.attestations_made(route.customer)) == row.stored
    for grant, count in row.grants.items():
        assert in_bounds(grants.get(grant, 0), count), grants
    if row.faults_left is not None:
        assert faults_left == row.faults_left, "the gateway fetched again instead of backing off"
    assert grants.get("client_credentials", 0) == 0, "an app-only token was requested"


def test_the_matrix_renders_as_markdown() -> None:
    from .matrix import render  # noqa: PLC0415

    table = render().splitlines()
    assert table[0].startswith("| # | Fault |")
    assert len(table) == len(ROWS) + 2
    assert len({row.id for row in ROWS}) == len(ROWS)
