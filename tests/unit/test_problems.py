"""What an error may tell a caller: upstream text bounded and redacted, headers always encodable."""

from __future__ import annotations

import pytest

from gateway.logs import configure_logging, register_secret
from gateway.problems import MAX_UPSTREAM_TEXT, problem_for
from partnercenter import (
    CallerTokenRejectedError,
    MfaRequiredError,
    NotFoundError,
    UpstreamError,
)

CORRELATION = "f7eaaec3-7dac-4868-b7c5-b3d81a9012a0"
JWT = (
    "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwczovL2FwaS5wYXJ0bmVyY2VudGVyIn0."
    "c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmU"
)


@pytest.fixture(autouse=True)
def redacting_logs() -> None:
    """The app's log redaction, as function_app installs it (5xx problems are logged)."""
    configure_logging()


def partner_center_404(description: str) -> NotFoundError:
    return NotFoundError(
        f"Partner Center answered 404: {description}",
        status=404,
        code="600039",
        description=description,
    )


def test_tokens_and_secrets_in_upstream_text_are_redacted_in_the_detail() -> None:
    register_secret("sim~leaked-client-secret-value")
    error = partner_center_404(
        f"Customer not found. token={JWT} Authorization: Bearer abcdefghijklmnop12345 "
        "client_secret=sim~leaked-client-secret-value"
    )
    detail = problem_for(error, CORRELATION).body.detail
    assert "Customer not found" in detail
    for leaked in (JWT[:40], "abcdefghijklmnop12345", "leaked-client-secret"):
        assert leaked not in detail
    assert "[redacted" in detail


def test_a_long_upstream_description_is_bounded() -> None:
    error = partner_center_404("x" * 500)
    detail = problem_for(error, CORRELATION).body.detail
    assert len(detail) <= MAX_UPSTREAM_TEXT + 1
    assert detail.endswith("…")


def test_the_remedy_is_kept_after_a_bounded_message() -> None:
    error = CallerTokenRejectedError("Entra ID refused the token request: " + "y" * 900)
    detail = problem_for(error, CORRELATION).body.detail
    assert detail.endswith(CallerTokenRejectedError.remedy)
    assert len(detail) <= MAX_UPSTREAM_TEXT + 1 + len(CallerTokenRejectedError.remedy) + 1


@pytest.mark.parametrize(
    "message",
    [
        "AADSTS50013: Assertion failed signature validation. ✓ 署名の検証に失敗しました",
        'Entra said "quoted" and back\\slash\r\nX-Injected: 1',
        "Zugriff verweigert: Überprüfung fehlgeschlagen — bitte erneut anmelden",
        f"AADSTS50013: the assertion {JWT} is not valid",
    ],
    ids=["non-latin-1", "quotes-crlf", "latin-1-and-dash", "jwt"],
)
def test_www_authenticate_is_always_a_valid_latin_1_header(message: str) -> None:
    for error in (CallerTokenRejectedError(message), MfaRequiredError(message)):
        header = problem_for(error, CORRELATION).headers["WWW-Authenticate"]
        header.encode("latin-1")  # http.server encodes header values as Latin-1
        assert header.isascii() and header.isprintable()
        assert header.startswith("Bearer error=")
        description = header.split('error_description="', 1)[1]
        assert description.endswith('"')
        assert '"' not in description[:-1] and "\\" not in description
        assert len(description) <= 201
        assert JWT[:40] not in header


def test_a_5xx_detail_is_bounded_and_redacted_too() -> None:
    error = UpstreamError(f"Partner Center answered 503: busy {JWT} " + "z" * 600, status=503)
    detail = problem_for(error, CORRELATION).body.detail
    assert JWT[:40] not in detail
    assert len(detail) <= MAX_UPSTREAM_TEXT + 1


def test_a_token_cut_short_by_an_upstream_length_limit_is_still_redacted() -> None:
    cut = JWT[:60]  # header and part of the claims: no signature left
    detail = problem_for(partner_center_404(f"Request carried {cut}"), CORRELATION).body.detail
    assert cut[:45] not in detail
    assert "[redacted-jwt]" in detail
