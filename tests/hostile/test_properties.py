"""Generated hostile input (hypothesis): ids, query parameters, correlation ids and raw paths.

Derandomized with a bounded number of examples, so CI runs the same cases every time. Each
answer is a 4xx problem or a correct 200, never a 5xx; the ``upstream`` fixture then checks that
Partner Center was only asked for the two operations and that nothing else was called.
"""

from __future__ import annotations

import uuid
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.host_request import host_query
from partnercenter import is_guid
from simulator import CUSTOMER_MCA, Simulator

from .conftest import RawHttp, RawResponse, assert_refused

FAST = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
AUTH = pytest.mark.parametrize("authenticated", [True, False], ids=["token", "no-token"])
AGREEMENT_TYPES = ("MicrosoftCustomerAgreement", "MicrosoftCloudAgreement", "all")
RESELLER_PARAMS = ("indirectResellerId", "indirectCloudSolutionProviderId")

hostile_text = st.one_of(
    st.text(max_size=60),
    st.sampled_from(
        [
            "..",
            "%2e%2e",
            "../relationship-request",
            "\x00",
            "\r\nX-Injected: 1",
            "' OR 1=1 --",
            '{"$ne": null}',
            "https://evil.example/",
            "@evil.example",
            "a" * 5000,
            CUSTOMER_MCA,
            CUSTOMER_MCA.upper(),
            "{" + CUSTOMER_MCA + "}",
            CUSTOMER_MCA + "\n",
            "*",
        ]
    ),
)


def token_for(sim: Simulator, authenticated: bool, name: str) -> str | None:
    """A user token (one user per property, so one token exchange), or none."""
    return sim.user_token(oid=str(uuid.uuid5(uuid.NAMESPACE_URL, name))) if authenticated else None


def expect(response: RawResponse, *, valid: bool, authenticated: bool) -> None:
    """200 for a valid request with a token; otherwise a 4xx problem."""
    if valid and authenticated:
        assert response.status == 200, response.body[:300]
        assert response.headers["content-type"].startswith("application/json")
    else:
        problem = assert_refused(response)
        if not valid:
            assert problem["status"] in (400, 401, 404), problem
        else:
            assert problem["status"] == 401


@AUTH
@FAST
@given(customer_id=hostile_text)
def test_customer_ids(
    customer_id: str, authenticated: bool, raw: RawHttp, fresh_sim: Simulator, upstream: list[str]
) -> None:
    token = token_for(fresh_sim, authenticated, "ids")
    target = f"/api/customers/{quote(customer_id, safe='')}/agreements".encode()
    response = raw.request(target, token=token)
    # A GUID is a valid id (customers the partner does not have are 404, still a 4xx).
    if is_guid(customer_id) and authenticated and response.status == 404:
        assert_refused(response)
        return
    expect(response, valid=is_guid(customer_id), authenticated=authenticated)


query_names = st.one_of(
    st.sampled_from(("type", "agreementType", *RESELLER_PARAMS)), st.text(max_size=20)
)
query_values = st.one_of(
    st.sampled_from((*AGREEMENT_TYPES, "*", "ALL", CUSTOMER_MCA, CUSTOMER_MCA.upper())),
    hostile_text,
)
query_pairs = st.lists(st.tuples(query_names, query_values), max_size=4)


@AUTH
@FAST
@given(pairs=query_pairs)
def test_agreement_query_parameters(
    pairs: list[tuple[str, str]],
    authenticated: bool,
    raw: RawHttp,
    fresh_sim: Simulator,
    upstream: list[str],
) -> None:
    token = token_for(fresh_sim, authenticated, "query")
    query = urlencode(pairs)
    target = f"/api/customers/{CUSTOMER_MCA}/agreements?{query}".encode()
    # What the function sees is what the Functions host passes on (empty values dropped, repeated
    # names joined); those rules have their own tests (tests/e2e/test_host_rules.py).
    params = host_query(query)
    valid = not params or (list(params) == ["type"] and params["type"] in AGREEMENT_TYPES)
    expect(raw.request(target, token=token), valid=valid, authenticated=authenticated)


@AUTH
@FAST
@given(pairs=query_pairs)
def test_relationship_query_parameters(
    pairs: list[tuple[str, str]],
    authenticated: bool,
    raw: RawHttp,
    fresh_sim: Simulator,
    upstream: list[str],
) -> None:
    token = token_for(fresh_sim, authenticated, "link")
    query = urlencode(pairs)
    params = host_query(query)
    valid = all(name in RESELLER_PARAMS and is_guid(value) for name, value in params.items())
    target = f"/api/relationship-request?{query}".encode()
    expect(raw.request(target, token=token), valid=valid, authenticated=authenticated)


header_values = st.one_of(
    st.text(
        alphabet=st.characters(
            codec="latin-1",
            min_codepoint=0x20,
            exclude_characters="".join(map(chr, range(0x7F, 0xA0))),  # DEL and C1 controls
        ),
        max_size=80,
    ),
    st.sampled_from(["'; DROP TABLE logs; --", '{"a": 1}', "a" * 5000, CUSTOMER_MCA + "x"]),
    st.uuids().map(str),
)


@AUTH
@FAST
@given(correlation_id=header_values)
def test_correlation_ids(
    correlation_id: str,
    authenticated: bool,
    raw: RawHttp,
    fresh_sim: Simulator,
    upstream: list[str],
) -> None:
    token = token_for(fresh_sim, authenticated, "cid")
    header = b"x-correlation-id: " + correlation_id.encode("latin-1") + b"\r\n"
    response = raw.request(b"/api/relationship-request", token=token, headers=header)
    stripped = correlation_id.strip(" \t")
    valid = stripped == "" or is_guid(stripped)
    expect(response, valid=valid, authenticated=authenticated)
    if valid and stripped:
        assert response.headers["x-correlation-id"] == stripped.lower()
    assert "x-injected" not in response.headers


SEGMENTS = (
    "api",
    "customers",
    "agreements",
    "relationship-request",
    CUSTOMER_MCA,
    "..",
    ".",
    "",
    "%2e%2e",
    "%2F",
    "%00",
    "%0d%0a",
    "%25",
    "%ff",
    "@evil.example",
    "evil.example:443",
    "http:",
    "?type=*",
    "#",
    ";x=1",
    "%E2%80%AE",
    "\\",
)


@AUTH
@FAST
@given(segments=st.lists(st.sampled_from(SEGMENTS), min_size=1, max_size=6))
def test_raw_paths(
    segments: list[str],
    authenticated: bool,
    raw: RawHttp,
    fresh_sim: Simulator,
    upstream: list[str],
) -> None:
    token = token_for(fresh_sim, authenticated, "paths")
    target = ("/api/" + "/".join(segments)).encode()
    response = raw.request(target, token=token)
    if response.status == 200:  # a real route after all: its proper answer
        assert authenticated
        assert response.headers["content-type"].startswith("application/json")
    else:
        assert_refused(response)
