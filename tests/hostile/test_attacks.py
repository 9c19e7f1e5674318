"""Known attacks on ids, paths, query parameters, headers and hosts, sent byte for byte.

Every one is answered with a 4xx problem (never a 5xx, never an HTML page), with a valid token
and without one; Partner Center is only ever asked for the two operations, and nothing but the
simulator is ever called (the ``upstream`` fixture checks both after each test). A few are
legitimate requests in disguise (absolute-form targets, upper-case GUIDs): those may succeed.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from simulator import CUSTOMER_MCA, Simulator

from .conftest import RawHttp, assert_refused

MCA = CUSTOMER_MCA.encode()
AGREEMENTS = b"/api/customers/" + MCA + b"/agreements"
LINK = b"/api/relationship-request"
#: The GUID with its first eight digits in their full-width forms (U+FF10 to U+FF19).
FULLWIDTH_GUID = "".join(chr(0xFF10 + int(d)) for d in CUSTOMER_MCA[:8]) + CUSTOMER_MCA[8:]


@dataclass(frozen=True)
class Attack:
    category: str
    name: str
    target: bytes
    method: bytes = b"GET"
    headers: bytes = b""
    host_header: bytes | None = None
    #: A legitimate request in disguise: 200 is a correct answer (with a valid token).
    may_succeed: bool = False

    @property
    def id(self) -> str:
        return f"{self.category}:{self.name}"


def customer(raw_id: bytes) -> bytes:
    return b"/api/customers/" + raw_id + b"/agreements"


ATTACKS: tuple[Attack, ...] = (
    # --- customer ids ------------------------------------------------------------------------
    *(
        Attack("customer-id", name, customer(raw_id))
        for name, raw_id in (
            ("encoded-slash", b"%2F"),
            ("encoded-slashes-traversal", b"..%2F..%2Fv1%2Fcustomers"),
            ("dot-dot-encoded", b"%2e%2e"),
            ("dot-dot-double-encoded", b"%252e%252e"),
            ("overlong-utf8-dot", b"%c0%ae%c0%ae"),
            ("nul", b"%00"),
            ("guid-then-nul", MCA + b"%00"),
            ("guid-then-newline", MCA + b"%0A"),
            ("guid-then-crlf-header", MCA + b"%0D%0AX-Injected:%201"),
            ("guid-then-query", MCA + b"%3FagreementType=*"),
            ("guid-then-fragment", MCA + b"%23x"),
            ("guid-then-encoded-slash", MCA + b"%2F..%2F..%2Frelationshiprequests"),
            ("guid-in-braces", b"%7B" + MCA + b"%7D"),
            ("urn-uuid", b"urn:uuid:" + MCA),
            ("guid-with-spaces", b"%20" + MCA + b"%20"),
            ("rtl-override", b"%E2%80%AE" + MCA),
            ("fullwidth-digits", FULLWIDTH_GUID.encode()),
            ("raw-latin1-bytes", b"\xff\xfe"),
            ("emoji", b"%F0%9F%92%A5"),
            ("5000-characters", b"a" * 5000),
            ("5000-character-guid-prefix", MCA + b"0" * 5000),
            ("absolute-url", b"https:%2F%2Fevil.example%2Fv1"),
            ("at-evil-host", b"@evil.example"),
            ("guid-at-evil-host", MCA + b"@evil.example"),
            ("userinfo-trick", b"x:y@evil.example:443"),
            ("sql-injection", b"'%20OR%20'1'='1"),
            ("sql-injection-guid", MCA + b"';DROP%20TABLE%20customers;--"),
            ("json-injection", b"%7B%22$ne%22:null%7D"),
            ("backslashes", b"..%5C..%5Crelationship-request"),
            ("matrix-parameter", MCA + b";agreementType=*"),
            ("percent-garbage", b"%zz%"),
        )
    ),
    Attack("customer-id", "upper-case-guid", customer(MCA.upper()), may_succeed=True),
    # --- paths ---------------------------------------------------------------------------------
    *(
        Attack("path", name, target)
        for name, target in (
            ("dot-dot-after-route", AGREEMENTS + b"/../../relationship-request"),
            ("encoded-dot-dot", b"/api/%2e%2e/%2e%2e/etc/passwd"),
            ("trailing-dot-dot", b"/api/relationship-request/.."),
            ("double-slash", b"/api//customers/" + MCA + b"/agreements"),
            ("nul-in-route", b"/api/relationship%00-request"),
            ("matrix-parameter", LINK + b";jsessionid=1"),
            ("backslash", b"/api\\relationship-request"),
            ("scheme-relative", b"//evil.example/api/relationship-request"),
            ("asterisk", b"*"),
            ("space-in-path", b"/api/customers/ " + MCA + b"/agreements"),
            ("unknown-route", b"/api/customers/" + MCA + b"/subscriptions"),
        )
    ),
    # The Functions host (Kestrel) removes dot segments and matches routes whatever their case
    # before routing (gateway/host_request.py), as make run's host does: these are that route.
    *(
        Attack("path", name, target, may_succeed=True)
        for name, target in (
            ("dot-dot", b"/api/customers/../relationship-request"),
            ("dot-segment", b"/api/./relationship-request"),
            ("upper-case-route", b"/API/relationship-request"),
        )
    ),
    # %2F stays encoded, so it cannot split a segment (404); a target without its leading slash is
    # refused (400). The query models also take their field names (snake case).
    Attack(
        "path",
        "encoded-slash-route",
        b"/api/customers%2F" + MCA + b"%2Fagreements",
        may_succeed=True,
    ),
    Attack("path", "no-leading-slash", b"api/relationship-request", may_succeed=True),
    Attack("query", "snake-case-name", LINK + b"?indirect_reseller_id=" + MCA),
    # --- query parameters ----------------------------------------------------------------------
    *(
        Attack("query", name, target)
        for name, target in (
            ("duplicated-type", AGREEMENTS + b"?type=all&type=MicrosoftCustomerAgreement"),
            ("partner-center-wildcard", AGREEMENTS + b"?type=*"),
            ("partner-center-name", AGREEMENTS + b"?agreementType=*"),
            ("array-syntax", AGREEMENTS + b"?type[]=all"),
            ("nul-value", AGREEMENTS + b"?type=all%00"),
            ("nul-name", AGREEMENTS + b"?%00=1"),
            ("crlf-value", AGREEMENTS + b"?type=all%0D%0AX-Injected:%201"),
            ("sql-injection", AGREEMENTS + b"?type=%27%20OR%201=1%20--"),
            ("json-injection", AGREEMENTS + b"?type=%7B%22$ne%22:null%7D"),
            ("invalid-utf8", AGREEMENTS + b"?type=%ff%fe"),
            ("16k-value", AGREEMENTS + b"?type=" + b"x" * 16_000),
            ("1000-parameters", AGREEMENTS + b"?" + b"&".join(b"p%d=1" % i for i in range(1000))),
            ("70k-query", AGREEMENTS + b"?type=" + b"x" * 70_000),
            ("reseller-not-guid", LINK + b"?indirectResellerId=123"),
            ("reseller-at-evil-host", LINK + b"?indirectResellerId=@evil.example"),
            ("reseller-absolute-url", LINK + b"?indirectResellerId=https://evil.example/x"),
            ("reseller-guid-newline", LINK + b"?indirectResellerId=" + MCA + b"%0A"),
            ("reseller-guid-then-param", LINK + b"?indirectResellerId=" + MCA + b"%26x=1"),
            (
                "reseller-duplicated",
                LINK + b"?indirectResellerId=" + MCA + b"&indirectResellerId=" + MCA,
            ),
        )
    ),
    # --- headers --------------------------------------------------------------------------------
    *(
        Attack("header", name, LINK, headers=headers)
        for name, headers in (
            ("correlation-crlf-injection", b"x-correlation-id: a\r\nX-Injected: 1\r\n"),
            ("correlation-obs-fold", b"x-correlation-id: " + MCA + b"\r\n X-Injected: 1\r\n"),
            ("correlation-10k", b"x-correlation-id: " + b"a" * 10_000 + b"\r\n"),
            ("correlation-sql", b"x-correlation-id: '; DROP TABLE logs; --\r\n"),
            ("correlation-json", b'x-correlation-id: {"$ne": null}\r\n'),
            ("correlation-latin1", b"x-correlation-id: \xff\xfe\xfd\r\n"),
            ("correlation-nul", b"x-correlation-id: " + MCA + b"\x00\r\n"),
            (
                "correlation-duplicated",
                b"x-correlation-id: " + MCA + b"\r\nx-correlation-id: " + MCA + b"\r\n",
            ),
            ("correlation-guid-braces", b"x-correlation-id: {" + MCA + b"}\r\n"),
            ("authorization-duplicated", b"Authorization: Bearer eyJhbGciOiJub25lIn0.e30.\r\n"),
            ("header-70k", b"X-Big: " + b"a" * 70_000 + b"\r\n"),
            ("200-headers", b"".join(b"X-H%d: 1\r\n" % i for i in range(200))),
        )
    ),
    # --- hosts and absolute URLs -----------------------------------------------------------------
    Attack(
        "host", "absolute-form-evil-host", b"http://evil.example" + AGREEMENTS, may_succeed=True
    ),
    Attack(
        "host",
        "absolute-form-userinfo",
        b"http://127.0.0.1@evil.example" + AGREEMENTS,
        may_succeed=True,
    ),
    Attack("host", "host-header-evil", AGREEMENTS, host_header=b"evil.example", may_succeed=True),
    Attack(
        "host", "host-header-userinfo", AGREEMENTS, host_header=b"a@evil.example", may_succeed=True
    ),
    Attack("host", "absolute-form-unknown-route", b"https://evil.example/v1/customers"),
    # --- methods --------------------------------------------------------------------------------
    *(
        Attack("method", method.decode("latin-1"), AGREEMENTS, method=method)
        for method in (b"POST", b"PUT", b"DELETE", b"PATCH", b"OPTIONS", b"TRACE", b"CONNECT")
    ),
    Attack("method", "nul-in-method", LINK, method=b"G\x00ET"),
)


def assert_no_injection(response_headers: dict[str, str]) -> None:
    assert "x-injected" not in response_headers


@pytest.mark.parametrize("attack", ATTACKS, ids=[attack.id for attack in ATTACKS])
@pytest.mark.parametrize("authenticated", [True, False], ids=["token", "no-token"])
def test_attack_is_refused(
    attack: Attack,
    authenticated: bool,
    raw: RawHttp,
    fresh_sim: Simulator,
    upstream: list[str],
) -> None:
    token = fresh_sim.user_token() if authenticated else None
    response = raw.request(
        attack.target,
        method=attack.method,
        token=token,
        headers=attack.headers,
        host_header=attack.host_header,
    )
    assert_no_injection(response.headers)
    if attack.may_succeed and authenticated and response.status == 200:
        assert response.headers["content-type"].startswith("application/json")
        # At most one call: the relationship request link may already be cached.
        assert len(fresh_sim.stats.api_requests) <= 1
        return
    problem = assert_refused(response)
    if not authenticated and response.status not in (400, 404, 405, 414, 431):
        assert problem["status"] == 401
    if not authenticated:
        assert fresh_sim.stats.api_requests == []


@pytest.mark.parametrize(
    ("name", "request_bytes"),
    [
        ("garbage-request-line", b"GARBAGE\r\n\r\n"),
        ("three-words-garbage", b"GET / HTTP/1.1 trailing\r\nHost: x\r\n\r\n"),
        ("lf-only-line-endings", b"GET /api/customers/%00/agreements HTTP/1.1\nHost: x\n\n"),
        ("header-without-colon", b"GET /api/relationship-request HTTP/1.1\r\nHost x\r\n\r\n"),
    ],
)
def test_malformed_requests_are_refused(
    name: str, request_bytes: bytes, raw: RawHttp, upstream: list[str]
) -> None:
    assert_refused(raw.send(request_bytes))


@pytest.mark.parametrize(
    ("name", "request_bytes"),
    [
        (
            "body-shorter-than-content-length",
            b"GET " + LINK + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc",
        ),
        (
            "broken-chunked-body",
            b"GET " + LINK + b" HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        ),
        (
            "json-body-on-get",
            b"GET " + LINK + b' HTTP/1.1\r\nHost: x\r\nContent-Length: 13\r\n\r\n{"a": "b"}   ',
        ),
    ],
)
def test_unreadable_bodies_are_refused(
    name: str, request_bytes: bytes, raw: RawHttp, upstream: list[str]
) -> None:
    """The caller stops sending (half-close) before the announced body is complete."""
    import socket  # noqa: PLC0415

    with socket.create_connection((raw.host, raw.port), timeout=15) as conn:
        conn.sendall(request_bytes)
        conn.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    from .conftest import parse_response  # noqa: PLC0415

    assert_refused(parse_response(data))
