"""Attacks on the trust boundary, byte for byte: tokens that are not what they claim, upstream
text that tries to become a header, and bodies meant to exhaust the host.

Partner Center is never called for a refused token, and no token is ever requested for one.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from simulator import CUSTOMER_MCA, Fault, Simulator

from .conftest import RawHttp, assert_refused

AGREEMENTS = b"/api/customers/" + CUSTOMER_MCA.encode() + b"/agreements"

TOKENS: tuple[tuple[str, Callable[[Simulator], str], int], ...] = (
    (
        "user-with-app-roles-and-no-scp",
        lambda sim: sim.user_token(scopes=(), roles=["Agreements.Read"]),
        403,
    ),
    (
        "user-with-app-roles-no-idtyp",
        lambda sim: sim.user_token(
            scopes=(), roles=["Agreements.Read"], extra_claims={"idtyp": None}
        ),
        403,
    ),
    (
        "app-marked-token-with-scp",
        lambda sim: sim.user_token(extra_claims={"idtyp": "app"}),
        403,
    ),
    ("id-token", lambda sim: sim.id_token(), 401),
    ("id-token-with-roles", lambda sim: sim.id_token(roles=["Agreements.Read"]), 401),
    ("id-token-with-nonce", lambda sim: sim.id_token(nonce="abc123"), 401),
    (
        "id-token-for-api-uri",
        lambda sim: sim.id_token(audience=f"api://{sim.client_id}", roles=["Agreements.Read"]),
        401,
    ),
    (
        "audience-list",
        lambda sim: sim.user_token(extra_claims={"aud": [sim.client_id, "api://x"]}),
        401,
    ),
    (
        "audience-list-of-one",
        lambda sim: sim.user_token(extra_claims={"aud": [f"api://{sim.client_id}"]}),
        401,
    ),
    (
        "app-token-audience-list",
        lambda sim: sim.user_token(
            scopes=(), roles=["Agreements.Read"], extra_claims={"aud": [sim.client_id]}
        ),
        401,
    ),
)


@pytest.mark.parametrize(
    ("name", "make_token", "status"), TOKENS, ids=[name for name, _, _ in TOKENS]
)
def test_tokens_that_are_not_what_they_claim_are_refused(
    name: str,
    make_token: Callable[[Simulator], str],
    status: int,
    raw: RawHttp,
    fresh_sim: Simulator,
    upstream: list[str],
) -> None:
    problem = assert_refused(raw.request(AGREEMENTS, token=make_token(fresh_sim)))
    assert problem["status"] == status, problem
    assert fresh_sim.stats.api_requests == []
    assert sum(fresh_sim.stats.token_requests.values()) == 0


@pytest.mark.parametrize(
    "description",
    [
        "Bad assertion\r\nSet-Cookie: session=stolen",
        "Bad assertion\nX-Injected: 1",
        'Bad assertion", error="evil',
        "Bad assertion \u2028 Set-Cookie: a=b \u0085 X-Other: 1",
        "Ungültige Assertion — 署名が無効です ✓",
    ],
    ids=["crlf", "lf", "quote-breakout", "unicode-line-separators", "non-latin-1"],
)
def test_upstream_text_cannot_become_a_header(
    description: str, raw: RawHttp, fresh_sim: Simulator, upstream: list[str]
) -> None:
    fresh_sim.faults.add(Fault.aad_error("invalid_grant", 50013, description))
    response = raw.request(AGREEMENTS, token=fresh_sim.user_token())
    assert_refused(response)
    assert response.status == 401
    assert "set-cookie" not in response.headers and "x-injected" not in response.headers
    header = response.headers["www-authenticate"]
    assert header.isascii() and header.isprintable()
    assert header.count('error="') == 1


@pytest.mark.parametrize(
    ("name", "headers", "body", "status"),
    [
        ("declared-200-mib", b"Content-Length: 209715200\r\n", b"", 413),
        ("declared-20-digit-length", b"Content-Length: 99999999999999999999\r\n", b"", 413),
        (
            "chunked-past-the-limit",
            b"Transfer-Encoding: chunked\r\n",
            b"100000\r\n" + b"z" * 0x100000 + b"\r\n" + b"10\r\n" + b"z" * 16 + b"\r\n",
            413,
        ),
        (
            "chunked-and-content-length",
            b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n",
            b"100000\r\n" + b"z" * 0x100000 + b"\r\n" + b"10\r\n" + b"z" * 16 + b"\r\n",
            413,
        ),
        ("chunk-size-overflow", b"Transfer-Encoding: chunked\r\n", b"f" * 40 + b"\r\n", 413),
        ("negative-length", b"Content-Length: -1\r\n", b"", 401),
    ],
    ids=[
        "declared-200-mib",
        "declared-20-digit-length",
        "chunked-past-the-limit",
        "chunked-and-content-length",
        "chunk-size-overflow",
        "negative-length",
    ],
)
def test_bodies_meant_to_exhaust_the_host_are_refused(
    name: str,
    headers: bytes,
    body: bytes,
    status: int,
    raw: RawHttp,
    fresh_sim: Simulator,
    upstream: list[str],
) -> None:
    head = b"GET " + AGREEMENTS + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n" + headers + b"\r\n"
    response = raw.send(head + body)
    problem = assert_refused(response)
    assert problem["status"] == status, problem
    assert fresh_sim.stats.api_requests == []
