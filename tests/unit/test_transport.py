"""Retry policy, deadline, headers and error-body parsing of the transport."""

from __future__ import annotations

import json

import pytest
import requests
from urllib3.exceptions import MaxRetryError, NewConnectionError

from partnercenter import (
    BadRequestError,
    NotFoundError,
    PermissionDeniedError,
    ThrottledError,
    UnauthorizedError,
    UpstreamError,
    UpstreamTimeoutError,
    build_session,
)
from partnercenter._transport import (
    Deadline,
    RetryPolicy,
    SharedTrustAdapter,
    Transport,
    parse_error_body,
    parse_retry_after,
)

from .fakes import FakeClock, response, session_with

OK = json.dumps({"url": "https://example.test/x"})
CORRELATION = "7f1f0f53-8a4c-4a8e-9f0a-0e8a5f4c1d2e"


def make_transport(handler, *, attempts: int = 5, clock: FakeClock | None = None):
    clock = clock or FakeClock()
    session, adapter = session_with(handler)
    transport = Transport(
        session,
        "https://pc.test",
        locale="de-DE",
        application_name="TestApp",
        policy=RetryPolicy(max_attempts=attempts),
        clock=clock,
        sleep=clock.sleep,
        rng=lambda: 1.0,
    )
    return transport, adapter, clock


def call(transport, clock, seconds: float = 60.0):
    return transport.get(
        "/v1/customers/relationshiprequests",
        params={"a": "b"},
        token="tok",
        correlation_id=CORRELATION,
        deadline=Deadline(seconds, clock),
    )


def test_headers_sent() -> None:
    transport, adapter, clock = make_transport(lambda r: response(200, OK))
    _, request_id = call(transport, clock)
    headers = adapter.requests[0].headers
    assert headers["Authorization"] == "Bearer tok"
    assert headers["Accept"] == "application/json"
    assert headers["MS-Contract-Version"] == "v1"
    assert headers["X-Locale"] == "de-DE"
    assert headers["MS-PartnerCenter-Application"] == "TestApp"
    assert headers["MS-CorrelationId"] == CORRELATION
    assert headers["MS-RequestId"] == request_id
    assert adapter.requests[0].url == "https://pc.test/v1/customers/relationshiprequests?a=b"


def test_every_attempt_has_a_timeout_within_the_deadline() -> None:
    transport, adapter, clock = make_transport(lambda r: response(200, OK))
    call(transport, clock, seconds=2.0)
    connect, read = adapter.timeouts[0]
    assert 0 < connect <= 2.0
    assert 0 < read <= 2.0


def test_retry_keeps_request_id_and_honours_retry_after() -> None:
    answers = [response(429, b"", {"Retry-After": "7"}), response(503, b"busy"), response(200, OK)]
    transport, adapter, clock = make_transport(lambda r: answers.pop(0))
    _, request_id = call(transport, clock)
    ids = {r.headers["MS-RequestId"] for r in adapter.requests}
    assert ids == {request_id}
    assert len(adapter.requests) == 3
    assert clock.sleeps[0] == 7.0  # Retry-After, not the backoff
    assert clock.sleeps[1] == pytest.approx(1.0)  # backoff of the second attempt, rng=1


def test_retry_after_past_the_deadline_fails_at_once_with_the_advice() -> None:
    body = {"statusCode": 429, "message": "Rate limit is exceeded. Try again in 57 seconds."}
    transport, adapter, clock = make_transport(
        lambda r: response(429, json.dumps(body), {"Retry-After": "57"})
    )
    with pytest.raises(ThrottledError) as caught:
        call(transport, clock, seconds=30.0)
    assert caught.value.retry_after == 57.0
    assert caught.value.request_id is not None
    assert len(adapter.requests) == 1
    assert clock.sleeps == []


def test_throttle_message_gives_retry_after_when_the_header_is_missing() -> None:
    body = {"statusCode": 429, "message": "Rate limit is exceeded. Try again in 12 seconds."}
    answers = [response(429, json.dumps(body)), response(200, OK)]
    transport, _, clock = make_transport(lambda r: answers.pop(0))
    call(transport, clock)
    assert clock.sleeps == [12.0]


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_retryable_statuses_are_retried(status: int) -> None:
    answers = [response(status), response(200, OK)]
    transport, adapter, clock = make_transport(lambda r: answers.pop(0))
    call(transport, clock)
    assert len(adapter.requests) == 2


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, BadRequestError),
        (401, UnauthorizedError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (501, UpstreamError),
        (505, UpstreamError),
    ],
)
def test_final_statuses_are_not_retried(status: int, error: type[Exception]) -> None:
    transport, adapter, clock = make_transport(lambda r: response(status, b"{}"))
    with pytest.raises(error):
        call(transport, clock)
    assert len(adapter.requests) == 1


def test_persistent_failure_stops_after_max_attempts() -> None:
    transport, adapter, clock = make_transport(lambda r: response(502, b"<html/>"), attempts=3)
    with pytest.raises(UpstreamError) as caught:
        call(transport, clock)
    assert caught.value.status == 502
    assert len(adapter.requests) == 3


def test_backoff_never_passes_the_deadline() -> None:
    transport, adapter, clock = make_transport(lambda r: response(503), attempts=10)
    start = clock.now
    with pytest.raises(UpstreamError):
        call(transport, clock, seconds=5.0)
    assert clock.now - start < 5.0
    assert len(adapter.requests) >= 3


def test_connection_errors_are_retried_then_reported() -> None:
    transport, adapter, clock = make_transport(
        lambda r: requests.ConnectionError("refused"), attempts=3
    )
    with pytest.raises(UpstreamError) as caught:
        call(transport, clock)
    assert "Could not reach Partner Center" in str(caught.value)
    assert len(adapter.requests) == 3


def test_read_timeout_with_no_time_left_is_a_timeout() -> None:
    clock = FakeClock()

    def silent(request):
        clock.now += 10.0  # the whole deadline goes by waiting
        return requests.ReadTimeout("read timed out")

    transport, adapter, _ = make_transport(silent, clock=clock)
    with pytest.raises(UpstreamTimeoutError):
        call(transport, clock, seconds=10.0)
    assert len(adapter.requests) == 1


def test_documented_error_shape() -> None:
    body = b'{"code": "600008", "description": "Customer not found", "data": [], "source": "PartnerFD"}'
    info = parse_error_body(body)
    assert (info.code, info.description) == ("600008", "Customer not found")


def test_newer_error_shape_with_numeric_code() -> None:
    body = json.dumps(
        {
            "code": 600061,
            "message": "Already confirmed",
            "description": "The agreement was already confirmed",
            "errorName": "AgreementAlreadyConfirmed",
            "isRetryable": False,
            "parameters": {},
        }
    ).encode()
    info = parse_error_body(body)
    assert info.code == "600061"
    assert info.description == "The agreement was already confirmed"
    assert info.retryable is False


def test_gateway_throttling_shape() -> None:
    body = b'{"statusCode": 429, "message": "Rate limit is exceeded. Try again in 57 seconds."}'
    info = parse_error_body(body)
    assert info.code == "429"
    assert info.retry_after == 57.0
    assert info.description is not None and "Rate limit" in info.description


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"", None),
        (
            b"<html><head><title>502 Bad Gateway</title></head><body>x</body></html>",
            "502 Bad Gateway",
        ),
        (b'\xef\xbb\xbf{"code": "1", "description": "with BOM"}', "with BOM"),
        (b"plain text failure", "plain text failure"),
        (b"[1, 2]", "[1, 2]"),
        (b"\xff\xfe garbage", "\ufffd\ufffd garbage"),
    ],
)
def test_other_bodies_fall_back_to_text(body: bytes, expected: str | None) -> None:
    assert parse_error_body(body).description == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("5", 5.0), ("0.5", 0.5), ("-3", 0.0), ("soon", None), (None, None), ("nan", None)],
)
def test_retry_after_values(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value) == expected


def test_retry_after_http_date() -> None:
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now=1445412500.0) == 10.0


def test_backoff_grows_and_is_capped() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=4.0)
    delays = [policy.backoff(n, rng=lambda: 1.0) for n in range(1, 7)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert policy.backoff(3, rng=lambda: 0.0) == 1.0  # jitter keeps at least half


def test_session_reads_the_environment_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/custom-ca.pem")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "login.example")
    session = build_session(8, ["https://pc.example/", "https://login.example"])
    assert session.trust_env is False
    assert session.verify is True
    adapter = session.get_adapter("https://pc.example/")
    assert isinstance(adapter, SharedTrustAdapter)
    assert adapter.bundle == "/etc/custom-ca.pem"
    assert session.proxies == {"https://pc.example": "http://proxy.internal:3128"}


def test_session_verifies_with_requests_default_bundle_without_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    session = build_session(8)
    assert session.verify is True
    adapter = session.get_adapter("https://pc.example/")
    assert isinstance(adapter, SharedTrustAdapter)
    assert adapter.bundle == requests.utils.DEFAULT_CA_BUNDLE_PATH


# --- POST: retried only when Partner Center cannot have acted, or when a repeat is recognisable --

BODY = {"type": "MicrosoftCustomerAgreement"}


def post(transport, clock, *, replay_safe: bool = False, seconds: float = 60.0):
    return transport.post(
        "/v1/customers/c/agreements",
        body=BODY,
        token="tok",
        correlation_id=CORRELATION,
        deadline=Deadline(seconds, clock),
        replay_safe=replay_safe,
    )


def _new_connection_failure() -> requests.ConnectionError:
    reason = NewConnectionError(None, "Failed to establish a new connection: refused")  # type: ignore[arg-type]
    return requests.ConnectionError(MaxRetryError(None, "/x", reason))  # type: ignore[arg-type]


def test_post_sends_json_and_one_request_id() -> None:
    answers = [response(429, b"", {"Retry-After": "1"}), response(201, OK)]
    transport, adapter, clock = make_transport(lambda r: answers.pop(0))
    sent = post(transport, clock)
    assert sent.response.status_code == 201
    assert sent.attempts == 2 and sent.replayed is False
    assert {r.headers["MS-RequestId"] for r in adapter.requests} == {sent.request_id}
    assert all(r.method == "POST" for r in adapter.requests)
    assert json.loads(adapter.requests[0].body) == BODY
    assert adapter.requests[0].headers["Content-Type"] == "application/json"


@pytest.mark.parametrize(
    ("first", "retried"),
    [
        (lambda: response(429, b""), True),
        (lambda: response(503, b"", {"Retry-After": "2"}), True),
        (lambda: requests.ConnectTimeout("connect timed out"), True),
        (_new_connection_failure, True),
        (lambda: response(503, b""), False),
        (lambda: response(500, b""), False),
        (lambda: response(502, b""), False),
        (lambda: requests.ReadTimeout("read timed out"), False),
        (lambda: requests.ConnectionError("Connection aborted: RemoteDisconnected"), False),
    ],
)
def test_post_is_retried_only_when_partner_center_cannot_have_acted(first, retried: bool) -> None:
    answers = [first(), response(201, OK)]
    transport, adapter, clock = make_transport(lambda r: answers.pop(0))
    if retried:
        assert post(transport, clock).replayed is False
        assert len(adapter.requests) == 2
    else:
        with pytest.raises((UpstreamError, UpstreamTimeoutError)):
            post(transport, clock)
        assert len(adapter.requests) == 1


@pytest.mark.parametrize(
    "first",
    [
        lambda: response(500, b""),
        lambda: requests.ReadTimeout("read timed out"),
        lambda: requests.ConnectionError("Connection aborted: RemoteDisconnected"),
    ],
)
def test_replay_safe_post_is_retried_after_an_ambiguous_failure(first) -> None:
    answers = [first(), response(201, OK)]
    transport, adapter, clock = make_transport(lambda r: answers.pop(0))
    sent = post(transport, clock, replay_safe=True)
    assert sent.replayed is True
    assert len({r.headers["MS-RequestId"] for r in adapter.requests}) == 1


def test_the_answer_to_a_replay_says_so() -> None:
    already = json.dumps({"code": 600061, "errorName": "PartnerConfirmedAgreementAlreadyExists"})
    answers = [requests.ReadTimeout("lost"), response(400, already)]
    transport, _, clock = make_transport(lambda r: answers.pop(0))
    with pytest.raises(BadRequestError) as caught:
        post(transport, clock, replay_safe=True)
    assert caught.value.code == "600061"
    assert caught.value.replayed is True
    first_time = make_transport(lambda r: response(400, already))
    with pytest.raises(BadRequestError) as plain:
        post(first_time[0], first_time[2], replay_safe=True)
    assert plain.value.replayed is False


def test_retry_after_of_a_503_is_honoured() -> None:
    answers = [response(503, b"", {"Retry-After": "3"}), response(200, OK)]
    transport, _, clock = make_transport(lambda r: answers.pop(0))
    call(transport, clock)
    assert clock.sleeps == [3.0]
