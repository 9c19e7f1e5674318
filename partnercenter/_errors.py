"""The one error hierarchy of the Partner Center client.

    PartnerCenterError
    ├── ConfigurationError             a setting is missing or wrong
    ├── InvalidArgumentError           bad input, refused before any network call
    ├── AuthenticationError            no App+User token could be had
    │   ├── CallerTokenRejectedError   the caller's own token was refused for the exchange
    │   ├── MfaRequiredError           AADSTS50076 / 50078 / 50079: the user must sign in with MFA
    │   ├── ConsentExpiredError        AADSTS700082 and kin: the stored refresh token is dead
    │   │   └── ServiceUserMfaRequiredError  the stored service user signed in without MFA
    │   ├── ConsentRequiredError       AADSTS65001: admin consent is missing
    │   ├── InvalidClientCredentialError  invalid_client: the app's own credential is wrong
    │   └── ServiceUserNotConfiguredError  an app caller, and no service user is configured
    ├── ApiError                       an HTTP error answer (Partner Center or the token endpoint)
    │   ├── BadRequestError            400
    │   ├── UnauthorizedError          401: Partner Center refused the App+User token
    │   ├── PermissionDeniedError      403
    │   ├── NotFoundError              404
    │   ├── ThrottledError             429, with the server's Retry-After
    │   └── UpstreamError              5xx, other statuses, connections that failed
    ├── UpstreamTimeoutError           the call's deadline passed
    ├── BadResponseError               a success answer whose body is not what we expect
    └── WebhookSignatureError          a webhook delivery not proven to come from Partner Center

Every error carries the Partner Center request and correlation ids, and never a token.
"""

from __future__ import annotations

from typing import Any, Literal

Service = Literal["partnercenter", "identity"]


class PartnerCenterError(Exception):
    """Base of every error this package raises."""

    #: What the operator or caller can do about it, where there is something to do.
    remedy: str | None = None

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        description: str | None = None,
        request_id: str | None = None,
        correlation_id: str | None = None,
        service: Service = "partnercenter",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.description = description
        self.request_id = request_id
        self.correlation_id = correlation_id
        self.service = service

    def __str__(self) -> str:
        prefix = f"Request {self.request_id}: " if self.request_id else ""
        return f"{prefix}{self.message}"


class ConfigurationError(PartnerCenterError):
    """A setting is missing or invalid; ``setting`` names it."""

    def __init__(self, message: str, *, setting: str) -> None:
        super().__init__(message)
        self.setting = setting


class InvalidArgumentError(PartnerCenterError):
    """An argument was refused before any request was made; ``argument`` names it."""

    def __init__(self, message: str, *, argument: str) -> None:
        super().__init__(message, status=400)
        self.argument = argument


class AuthenticationError(PartnerCenterError):
    """No App+User token could be obtained; ``aadsts`` keeps Entra's error number."""

    def __init__(
        self,
        message: str,
        *,
        aadsts: int | None = None,
        error: str | None = None,
        remedy: str | None = None,
        correlation_id: str | None = None,
    ) -> None:
        super().__init__(
            message,
            code=f"AADSTS{aadsts}" if aadsts is not None else error,
            correlation_id=correlation_id,
            service="identity",
        )
        self.aadsts = aadsts
        self.error = error
        if remedy is not None:
            self.remedy = remedy


class CallerTokenRejectedError(AuthenticationError):
    """Entra ID refused to exchange the caller's token (expired, wrong audience, revoked)."""

    remedy = "Sign in again and call with a fresh token for this API."


class MfaRequiredError(AuthenticationError):
    """Partner Center requires multi-factor authentication for App+User calls."""

    remedy = "Sign in with multi-factor authentication, then call again."


class ConsentExpiredError(AuthenticationError):
    """The stored refresh token is expired or revoked."""

    remedy = (
        "Run the one-time consent again for the service user and store the new refresh token "
        "in PARTNER_CENTER_REFRESH_TOKEN."
    )


class ServiceUserMfaRequiredError(ConsentExpiredError):
    """The stored service user's sign-in lacks MFA (AADSTS50076 and kin): no caller can fix that
    by signing in again; only a new consent, with MFA, can."""

    remedy = (
        "Run the one-time consent again, signing in with multi-factor authentication, and store "
        "the new refresh token in PARTNER_CENTER_REFRESH_TOKEN."
    )


class ConsentRequiredError(AuthenticationError):
    """The app has no consent for Partner Center's user_impersonation permission."""

    remedy = "Grant admin consent for the app's Partner Center user_impersonation permission."


class InvalidClientCredentialError(AuthenticationError):
    """The app registration's own credential (secret, certificate, federation) was refused."""

    remedy = (
        "Fix the client credential: AZURE_CLIENT_SECRET, AZURE_CLIENT_CERTIFICATE_PATH or "
        "the managed identity's federated credential on the app registration."
    )


class ServiceUserNotConfiguredError(AuthenticationError):
    """An application caller asked for data, but no service user refresh token is configured."""

    remedy = (
        "Set PARTNER_CENTER_REFRESH_TOKEN (Secure Application Model) to serve callers that have "
        "no user, or call with a user token."
    )


class ApiError(PartnerCenterError):
    """An HTTP error answer; ``status`` is the upstream status."""


class BadRequestError(ApiError):
    """400 from Partner Center."""


class UnauthorizedError(ApiError):
    """401 from Partner Center: the App+User token was refused (expired, no MFA claim...)."""


class PermissionDeniedError(ApiError):
    """403 from Partner Center: the user lacks a role for this operation."""


class NotFoundError(ApiError):
    """404 from Partner Center: no such customer (or resource)."""


class ThrottledError(ApiError):
    """429: throttled past the call's deadline; ``retry_after`` is the server's advice."""

    def __init__(self, message: str, *, retry_after: float | None = None, **fields: Any) -> None:
        super().__init__(message, status=429, **fields)
        self.retry_after = retry_after


class UpstreamError(ApiError):
    """Partner Center (or Entra ID) failed: 5xx, an unexpected status, or no connection."""


class UpstreamTimeoutError(PartnerCenterError):
    """The call's deadline passed before an answer came."""


class BadResponseError(PartnerCenterError):
    """A success status whose body is not the JSON we expect."""


class WebhookSignatureError(PartnerCenterError):
    """A webhook delivery failed a signature check; ``check`` names which one (never a secret)."""

    def __init__(self, message: str, *, check: str) -> None:
        super().__init__(message, status=401)
        self.check = check


__all__ = [
    "ApiError",
    "AuthenticationError",
    "BadRequestError",
    "BadResponseError",
    "CallerTokenRejectedError",
    "ConfigurationError",
    "ConsentExpiredError",
    "ConsentRequiredError",
    "InvalidArgumentError",
    "InvalidClientCredentialError",
    "MfaRequiredError",
    "NotFoundError",
    "PartnerCenterError",
    "PermissionDeniedError",
    "ServiceUserMfaRequiredError",
    "ServiceUserNotConfiguredError",
    "ThrottledError",
    "UnauthorizedError",
    "UpstreamError",
    "UpstreamTimeoutError",
    "WebhookSignatureError",
]
