"""The one place where errors become HTTP answers (RFC 9457 ``application/problem+json``)."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from partnercenter import (
    AuthenticationError,
    BadRequestError,
    BadResponseError,
    CallerTokenRejectedError,
    ConfigurationError,
    ConsentExpiredError,
    ConsentRequiredError,
    InvalidArgumentError,
    InvalidClientCredentialError,
    MfaRequiredError,
    NotFoundError,
    PartnerCenterError,
    PermissionDeniedError,
    ServiceUserNotConfiguredError,
    ThrottledError,
    UnauthorizedError,
    UpstreamError,
    UpstreamTimeoutError,
    WebhookSignatureError,
)

from .auth import ForbiddenError
from .schemas import Problem
from .storage import StorageUnavailableError

logger = logging.getLogger("gateway")

PROBLEM_TYPE_BASE = "urn:partnercenter-gateway:problem:"
PROBLEM_CONTENT_TYPE = "application/problem+json"


@dataclass(frozen=True)
class Kind:
    """A kind of problem: its status, its type slug and its title."""

    status: int
    slug: str
    title: str


INVALID_REQUEST = Kind(400, "invalid-request", "The request is not valid")
UNAUTHENTICATED = Kind(401, "unauthenticated", "A valid bearer token is required")
INVALID_SIGNATURE = Kind(401, "invalid-signature", "The delivery's signature is not valid")
MFA_REQUIRED = Kind(401, "mfa-required", "Multi-factor authentication is required")
FORBIDDEN = Kind(403, "forbidden", "The caller lacks a permission")
PARTNER_CENTER_FORBIDDEN = Kind(403, "partner-center-forbidden", "Partner Center refused the user")
NOT_FOUND = Kind(404, "not-found", "Not found")
METHOD_NOT_ALLOWED = Kind(405, "method-not-allowed", "Method not allowed")
THROTTLED = Kind(429, "throttled", "The call was throttled upstream")
INTERNAL = Kind(500, "internal-error", "Internal error")
UPSTREAM = Kind(502, "upstream-failure", "An upstream service failed")
BAD_RESPONSE = Kind(502, "bad-upstream-response", "Partner Center sent an unreadable answer")
NOT_CONFIGURED = Kind(503, "not-configured", "The gateway is not configured correctly")
STORAGE_UNAVAILABLE = Kind(503, "storage-unavailable", "The gateway's storage is unavailable")
CONSENT = Kind(503, "consent-needed", "The gateway's consent must be renewed")
TIMEOUT = Kind(504, "upstream-timeout", "Partner Center did not answer in time")

_KINDS: tuple[tuple[type[Exception], Kind], ...] = (
    # Order matters: the first matching class wins, subclasses before their bases.
    (InvalidArgumentError, INVALID_REQUEST),
    (BadRequestError, INVALID_REQUEST),
    (WebhookSignatureError, INVALID_SIGNATURE),
    (CallerTokenRejectedError, UNAUTHENTICATED),
    (MfaRequiredError, MFA_REQUIRED),
    (ForbiddenError, FORBIDDEN),
    (ServiceUserNotConfiguredError, FORBIDDEN),
    (UnauthorizedError, PARTNER_CENTER_FORBIDDEN),
    (PermissionDeniedError, PARTNER_CENTER_FORBIDDEN),
    (NotFoundError, NOT_FOUND),
    (ThrottledError, THROTTLED),
    (ConsentExpiredError, CONSENT),
    (ConsentRequiredError, CONSENT),
    (StorageUnavailableError, STORAGE_UNAVAILABLE),
    (InvalidClientCredentialError, NOT_CONFIGURED),
    (ConfigurationError, NOT_CONFIGURED),
    (UpstreamTimeoutError, TIMEOUT),
    (BadResponseError, BAD_RESPONSE),
    (UpstreamError, UPSTREAM),
    (AuthenticationError, UPSTREAM),
    (PartnerCenterError, UPSTREAM),
)


@dataclass(frozen=True)
class ProblemResponse:
    """A problem ready to send: status, headers and the body model."""

    status: int
    headers: Mapping[str, str]
    body: Problem


def kind_of(error: Exception) -> Kind:
    """The kind of problem an error is."""
    for error_type, kind in _KINDS:
        if isinstance(error, error_type):
            return kind
    return INTERNAL


def problem_for(error: Exception, correlation_id: str) -> ProblemResponse:
    """The HTTP answer for ``error``. Unexpected errors become a bare 500, logged in full."""
    kind = kind_of(error)
    if kind is INTERNAL:
        logger.exception("unexpected error", exc_info=error)
        return problem(
            kind, "An unexpected error occurred; quote the correlation id.", correlation_id
        )
    if kind.status >= 500:
        logger.warning("%s: %s", kind.slug, error)
    assert isinstance(error, PartnerCenterError)
    detail = error.message
    if error.remedy:
        detail = f"{detail} {error.remedy}"
    headers: dict[str, str] = {}
    retry_after: int | None = None
    if isinstance(error, ThrottledError) and error.retry_after is not None:
        retry_after = max(1, math.ceil(error.retry_after))
        headers["Retry-After"] = str(retry_after)
    if kind.status == 401:
        headers["WWW-Authenticate"] = _www_authenticate(error)
    return problem(
        kind,
        detail,
        correlation_id,
        headers=headers,
        partner_center_code=error.code if error.service == "partnercenter" else None,
        partner_center_request_id=error.request_id,
        entra_code=error.code if isinstance(error, AuthenticationError) else None,
        retry_after=retry_after,
    )


def problem(
    kind: Kind,
    detail: str,
    correlation_id: str,
    *,
    headers: Mapping[str, str] | None = None,
    **fields: Any,
) -> ProblemResponse:
    """A problem of ``kind`` with ``detail`` and any further :class:`Problem` fields."""
    if headers is None:
        headers = {"WWW-Authenticate": 'Bearer error="invalid_token"'} if kind.status == 401 else {}
    return ProblemResponse(
        kind.status,
        headers,
        Problem(
            type=PROBLEM_TYPE_BASE + kind.slug,
            title=kind.title,
            status=kind.status,
            detail=detail,
            correlation_id=correlation_id,
            **fields,
        ),
    )


def _www_authenticate(error: PartnerCenterError) -> str:
    reason = error.message.replace("\\", "").replace('"', "'")
    if isinstance(error, WebhookSignatureError):
        return f'Signature error="invalid_signature", error_description="{reason}"'
    if isinstance(error, MfaRequiredError):
        return f'Bearer error="insufficient_claims", error_description="{reason}"'
    return f'Bearer error="invalid_token", error_description="{reason}"'
