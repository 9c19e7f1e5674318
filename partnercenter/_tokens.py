"""App+User tokens for Partner Center: on-behalf-of and the Secure Application Model.

MSAL does not cache on-behalf-of results and has no single-flight, so this module keeps its own
cache: bounded (least recently used evicted), one token request per key at a time, and keyed by a
hash of the caller's token (as MSAL.NET keys on-behalf-of results on the assertion's hash). A
Partner Center token therefore serves only the caller token it was exchanged for: not another
user, and not a weaker sign-in of the same user (a password-only token must not get what an
MFA-backed one was given, or Conditional Access is never evaluated for it).
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import msal
import requests

from ._config import CredentialKind, Settings
from ._errors import (
    AuthenticationError,
    CallerTokenRejectedError,
    ConfigurationError,
    ConsentExpiredError,
    ConsentRequiredError,
    ConsentStoreError,
    InvalidArgumentError,
    InvalidClientCredentialError,
    MfaRequiredError,
    PartnerCenterError,
    ServiceUserMfaRequiredError,
    ServiceUserNotConfiguredError,
    UpstreamError,
    UpstreamTimeoutError,
)
from ._ids import require_guid
from ._refresh_token_store import (
    ConsentState,
    RedeemedConsent,
    ServiceUserConsent,
    jwt_claims,
    refresh_token_store,
)
from ._tracing import UpstreamCall, traced_call
from ._transport import (
    CONNECT_TIMEOUT,
    READ_TIMEOUT,
    Clock,
    Deadline,
    RetryPolicy,
    Sleep,
    current_deadline,
    error_for_status,
    parse_retry_after,
)

logger = logging.getLogger("partnercenter.tokens")

#: MSAL treats a token as expired this long before it really expires; so do we.
EXPIRY_MARGIN = 300.0


@dataclass(frozen=True, slots=True)
class OnBehalfOf:
    """A signed-in user, represented by the token they called us with (already validated)."""

    assertion: str = field(repr=False)
    tenant_id: str
    object_id: str


@dataclass(frozen=True, slots=True)
class ServiceUser:
    """The consented service user of the Secure Application Model, for callers with no user."""


Principal = OnBehalfOf | ServiceUser
SERVICE_USER = ServiceUser()


def principal_key(principal: Principal) -> tuple[str, ...]:
    """What a result fetched with ``principal``'s credentials may be cached under.

    The service user is one key; a signed-in user is the SHA-256 of the exact token they called
    with, so a cached result serves only that token (never another user, nor another sign-in of
    the same user). The hash keeps the token itself out of the cache's keys.
    """
    if isinstance(principal, ServiceUser):
        return ("service-user",)
    digest = hashlib.sha256(principal.assertion.encode("utf-8")).hexdigest()
    return ("assertion", principal.tenant_id.lower(), digest)


class TokenProvider(Protocol):
    """Anything that hands out Partner Center App+User access tokens."""

    def get_token(self, principal: Principal, deadline: Deadline) -> str:
        """An access token for ``principal``, within ``deadline``."""
        ...


@dataclass(frozen=True, slots=True)
class AccessToken:
    """A token and the moment (on the cache's clock) it must be renewed."""

    token: str = field(repr=False)
    refresh_at: float


class _Flight:
    """One token request in progress; callers for the same user wait on it."""

    __slots__ = ("done", "error", "result")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: AccessToken | None = None
        self.error: BaseException | None = None


@dataclass
class CacheStats:
    """Counters of a :class:`TokenCache`."""

    hits: int = 0
    misses: int = 0
    waits: int = 0
    evictions: int = 0
    size: int = 0


class TokenCache:
    """Access tokens per key (see :func:`principal_key`): least recently used evicted past
    ``max_entries``, single-flight per key."""

    def __init__(self, max_entries: int, clock: Clock = time.monotonic) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._max = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[Hashable, AccessToken] = OrderedDict()
        self._flights: dict[Hashable, _Flight] = {}
        self._stats = CacheStats()

    def get(self, key: Hashable, fetch: Callable[[], AccessToken], deadline: Deadline) -> str:
        """The cached token for ``key``, or the one ``fetch`` gets (once, however many ask)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and self._clock() < entry.refresh_at:
                self._entries.move_to_end(key)
                self._stats.hits += 1
                return entry.token
            flight = self._flights.get(key)
            leader = flight is None
            if flight is None:
                flight = self._flights[key] = _Flight()
                self._stats.misses += 1
            else:
                self._stats.waits += 1
        if leader:
            return self._lead(key, flight, fetch)
        if not flight.done.wait(deadline.remaining()):
            raise UpstreamTimeoutError("The token request did not finish within the deadline.")
        if flight.error is not None:
            raise flight.error
        assert flight.result is not None
        return flight.result.token

    def _lead(self, key: Hashable, flight: _Flight, fetch: Callable[[], AccessToken]) -> str:
        try:
            result = fetch()
        except BaseException as err:
            flight.error = err
            raise
        else:
            flight.result = result
            with self._lock:
                self._entries[key] = result
                self._entries.move_to_end(key)
                while len(self._entries) > self._max:
                    self._entries.popitem(last=False)
                    self._stats.evictions += 1
            return result.token
        finally:
            with self._lock:
                del self._flights[key]
            flight.done.set()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def stats(self) -> CacheStats:
        """A snapshot of the counters."""
        with self._lock:
            return CacheStats(
                hits=self._stats.hits,
                misses=self._stats.misses,
                waits=self._stats.waits,
                evictions=self._stats.evictions,
                size=len(self._entries),
            )

    def clear(self) -> None:
        """Forget every cached token."""
        with self._lock:
            self._entries.clear()


class _DiscardingTokenCache(msal.TokenCache):  # type: ignore[misc]
    """MSAL's cache for on-behalf-of results: keeps nothing (our TokenCache does, bounded)."""

    def add(self, event: Mapping[str, Any], now: float | None = None) -> None:
        return None


class _NoHttpCache(dict[str, Any]):
    """Stops MSAL from replaying a throttled answer: its throttle key ignores the OBO assertion,
    so one user's 429 would block every user's exchange. Retries are ours (IdentityHttpClient)."""

    def __setitem__(self, key: str, value: Any) -> None:
        return None


class IdentityHttpClient:
    """The HTTP client MSAL uses: pooled, every call timed out within the current deadline, and
    429/5xx retried with the server's Retry-After."""

    def __init__(
        self,
        session: requests.Session,
        *,
        policy: RetryPolicy,
        default_deadline: float,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
    ) -> None:
        self._session = session
        self._policy = policy
        self._default_deadline = default_deadline
        self._clock = clock
        self._sleep = sleep

    def post(self, url: str, **kwargs: Any) -> requests.Response:
        """POST for MSAL (token requests)."""
        return self._send("POST", url, kwargs)

    def get(self, url: str, **kwargs: Any) -> requests.Response:
        """GET for MSAL (discovery)."""
        return self._send("GET", url, kwargs)

    def close(self) -> None:
        """Nothing to close: the session belongs to the client."""

    def _send(self, method: str, url: str, kwargs: dict[str, Any]) -> requests.Response:
        # MSAL sends its own client-request-id: Entra ID's correlation id for the call.
        sent_headers = kwargs.get("headers") or {}
        with traced_call(
            "identity", method, url, correlation_id=sent_headers.get("client-request-id")
        ) as call:
            return self._send_with_retries(method, url, kwargs, call)

    def _send_with_retries(
        self, method: str, url: str, kwargs: dict[str, Any], call: UpstreamCall
    ) -> requests.Response:
        deadline = current_deadline() or Deadline(self._default_deadline, self._clock)
        attempt = 0
        while True:
            attempt += 1
            call.attempts = attempt
            kwargs["timeout"] = (deadline.timeout(CONNECT_TIMEOUT), deadline.timeout(READ_TIMEOUT))
            failure: PartnerCenterError
            try:
                response = self._session.request(method, url, **kwargs)
            except requests.Timeout:
                failure = UpstreamTimeoutError(
                    "Entra ID did not answer the token request in time.", service="identity"
                )
            except requests.RequestException as err:
                failure = UpstreamError(
                    f"Could not reach Entra ID ({type(err).__name__}).", service="identity"
                )
            else:
                call.status = response.status_code
                call.request_id = response.headers.get("x-ms-request-id")
                if not self._policy.is_retryable(response.status_code):
                    return response
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                failure = error_for_status(
                    response.status_code,
                    response.content,
                    retry_after=retry_after,
                    request_id=None,
                    correlation_id=response.headers.get("client-request-id"),
                    service="identity",
                )
            delay = getattr(failure, "retry_after", None) or self._policy.backoff(attempt)
            if attempt >= self._policy.max_attempts or delay >= deadline.remaining():
                raise failure
            logger.warning(
                "token endpoint failed (%s); retry %d in %.2f s", failure, attempt, delay
            )
            self._sleep(delay)


_AADSTS = re.compile(r"AADSTS(\d+)")
_MFA_CODES = frozenset({50072, 50074, 50076, 50078, 50079})
_CONSENT_EXPIRED_CODES = frozenset({70008, 50173, 700081, 700082, 700084, 54005})
_CLIENT_CODES = frozenset({700016, 700023, 700024, 700027, 7000112, 7000215, 7000222, 7000229})
_ASSERTION_CODES = frozenset({50013, 500133, 500131, 50132, 50133, 50027})


def auth_error_from_result(result: Mapping[str, Any], *, on_behalf_of: bool) -> AuthenticationError:
    """The typed error for an MSAL error result, keeping the AADSTS number."""
    error = str(result.get("error") or "unknown_error")
    description = str(result.get("error_description") or "")
    codes = [c for c in result.get("error_codes") or [] if isinstance(c, int)]
    if not codes:
        codes = [int(m) for m in _AADSTS.findall(description)[:1]]
    aadsts = codes[0] if codes else None
    summary = description.splitlines()[0][:300] if description else error
    kwargs: dict[str, Any] = {
        "aadsts": aadsts,
        "error": error,
        "correlation_id": result.get("correlation_id"),
    }
    error_type: type[AuthenticationError]
    if aadsts in _MFA_CODES:
        error_type = MfaRequiredError if on_behalf_of else ServiceUserMfaRequiredError
    elif aadsts in _CONSENT_EXPIRED_CODES:
        error_type = ConsentExpiredError if not on_behalf_of else CallerTokenRejectedError
    elif aadsts == 65001 or error == "consent_required":
        error_type = ConsentRequiredError
    elif error in {"invalid_client", "unauthorized_client"} or aadsts in _CLIENT_CODES:
        error_type = InvalidClientCredentialError
    elif on_behalf_of and (aadsts in _ASSERTION_CODES or error == "invalid_grant"):
        error_type = CallerTokenRejectedError
    else:
        error_type = AuthenticationError
    return error_type(f"Entra ID refused the token request: {summary}", **kwargs)


def _certificate_credential(settings: Settings) -> dict[str, str]:
    path = settings.azure_client_certificate_path
    assert path is not None
    pem = path.read_text(encoding="utf-8")
    match = re.search(
        r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", pem, flags=re.DOTALL
    )
    if match is None or "PRIVATE KEY-----" not in pem:
        raise ConfigurationError(
            "AZURE_CLIENT_CERTIFICATE_PATH must be a PEM file with the certificate and its "
            "private key.",
            setting="AZURE_CLIENT_CERTIFICATE_PATH",
        )
    # With the certificate (and no SHA-1 thumbprint) MSAL signs with PS256 and x5t#S256.
    credential = {"private_key": pem, "public_certificate": match.group(0)}
    if settings.azure_client_certificate_password is not None:
        credential["passphrase"] = settings.azure_client_certificate_password.get_secret_value()
    return credential


def managed_identity_assertion(client_id: str, session: requests.Session) -> Callable[[], str]:
    """A federated credential: the managed identity's token for api://AzureADTokenExchange."""
    client = msal.ManagedIdentityClient(
        msal.UserAssignedManagedIdentity(client_id=client_id), http_client=session
    )

    def assertion() -> str:
        result = client.acquire_token_for_client(resource="api://AzureADTokenExchange")
        if "access_token" not in result:
            raise InvalidClientCredentialError(
                "The managed identity could not get a federated credential: "
                f"{result.get('error', 'unknown error')}.",
                error=str(result.get("error")),
            )
        return str(result["access_token"])

    return assertion


class MsalTokenProvider:
    """App+User tokens through MSAL: on-behalf-of per user, or the configured service user."""

    def __init__(
        self,
        settings: Settings,
        http_client: IdentityHttpClient,
        *,
        session: requests.Session,
        clock: Clock = time.monotonic,
        client_assertion: Callable[[], str] | None = None,
        consent: ServiceUserConsent | None = None,
    ) -> None:
        self._settings = settings
        self.consent = consent or ServiceUserConsent(refresh_token_store(settings))
        """The service user's refresh-token store and consent state."""
        self._http_client = http_client
        self._session = session
        self._clock = clock
        self._client_assertion = client_assertion
        self._scopes = [settings.partner_center_scope]
        self.cache = TokenCache(settings.token_cache_max_users, clock)
        self._apps: dict[str, msal.ConfidentialClientApplication] = {}
        self._apps_lock = threading.Lock()

    def get_token(self, principal: Principal, deadline: Deadline) -> str:
        """A Partner Center token for ``principal``: cached per caller token (or for the service
        user), fetched once at a time per key."""
        if isinstance(principal, ServiceUser):
            if self.consent.store is None:
                unresolved = "PARTNER_CENTER_REFRESH_TOKEN" in self._settings.unresolved_references
                raise ServiceUserNotConfiguredError(
                    "This caller has no user, and no service user is configured "
                    + (
                        "(PARTNER_CENTER_REFRESH_TOKEN is an unresolved Key Vault reference: "
                        "store the refresh token in Key Vault)."
                        if unresolved
                        else "(KEY_VAULT_URL or PARTNER_CENTER_REFRESH_TOKEN)."
                    )
                )
            return self.cache.get(principal_key(principal), self._redeem_refresh_token, deadline)
        tenant_id = require_guid(principal.tenant_id, "tenant_id")
        object_id = require_guid(principal.object_id, "object_id")
        claims = jwt_claims(principal.assertion)
        if (str(claims.get("tid", "")).lower(), str(claims.get("oid", "")).lower()) != (
            tenant_id,
            object_id,
        ):
            raise InvalidArgumentError(
                "The assertion does not belong to the given user.", argument="assertion"
            )
        return self.cache.get(
            principal_key(principal),
            lambda: self._exchange_on_behalf_of(principal.assertion),
            deadline,
        )

    def _exchange_on_behalf_of(self, assertion: str) -> AccessToken:
        result = self._app("obo").acquire_token_on_behalf_of(assertion, self._scopes)
        return self._access_token(result, on_behalf_of=True)

    def _redeem_refresh_token(self) -> AccessToken:
        """The service user's token. From Key Vault, the latest version is read at every renewal
        (so a rotation or a new consent takes effect without a restart); if Key Vault cannot be
        read, MSAL's copy of the newest token it redeemed still serves."""
        store = self.consent.store
        assert store is not None
        app = self._app("service-user")
        accounts = app.get_accounts()
        version: str | None = None
        result: Mapping[str, Any] | None = None
        if not store.writable and accounts:
            result = app.acquire_token_silent_with_error(self._scopes, account=accounts[0])
        if not result or "access_token" not in result:
            deadline = current_deadline()
            timeout = deadline.timeout(READ_TIMEOUT) if deadline else READ_TIMEOUT
            try:
                stored = store.read(timeout=timeout)
            except ConsentStoreError as err:
                if not accounts:
                    raise
                logger.warning("%s; using the refresh token redeemed last", err)
                result = app.acquire_token_silent_with_error(self._scopes, account=accounts[0])
            else:
                version = stored.record.version
                result = app.acquire_token_by_refresh_token(stored.token, self._scopes)
        try:
            token = self._access_token(result, on_behalf_of=False)
        except ServiceUserMfaRequiredError:
            self.consent.record_refusal(ConsentState.NO_MFA, version)
            raise
        except ConsentExpiredError:
            self.consent.record_refusal(ConsentState.EXPIRED, version)
            raise
        self.consent.record_success(version)
        return token

    def client_application(self, purpose: str) -> msal.ConfidentialClientApplication:
        """The app registration's MSAL client for ``purpose`` (one per purpose, built once):
        the same credential, authority, HTTP client and timeouts as every token request."""
        return self._app(purpose)

    def redeem_for_rotation(self, refresh_token: str) -> RedeemedConsent:
        """Redeem ``refresh_token`` for the new refresh token it gives (and who it is for)."""
        result = self._app("rotation").acquire_token_by_refresh_token(refresh_token, self._scopes)
        if not result or "access_token" not in result:
            raise auth_error_from_result(result or {}, on_behalf_of=False)
        return RedeemedConsent.from_result(result)

    def _access_token(self, result: Mapping[str, Any] | None, *, on_behalf_of: bool) -> AccessToken:
        if not result or "access_token" not in result:
            raise auth_error_from_result(result or {}, on_behalf_of=on_behalf_of)
        now = self._clock()
        expires_in = float(result.get("expires_in") or 0)
        refresh_in = result.get("refresh_in")
        lifetime = expires_in - EXPIRY_MARGIN if expires_in > 2 * EXPIRY_MARGIN else expires_in / 2
        if refresh_in:
            lifetime = min(lifetime, float(refresh_in))
        return AccessToken(token=str(result["access_token"]), refresh_at=now + lifetime)

    def _app(self, purpose: str) -> msal.ConfidentialClientApplication:
        # Built on first use, not at import: construction fetches the authority's metadata.
        app = self._apps.get(purpose)
        if app is not None:
            return app
        with self._apps_lock:
            app = self._apps.get(purpose)
            if app is None:
                app = self._apps[purpose] = self._build_app(purpose)
            return app

    def _build_app(self, purpose: str) -> msal.ConfidentialClientApplication:
        settings = self._settings
        credential: Any
        kind = settings.credential_kind
        if kind is CredentialKind.SECRET:
            assert settings.azure_client_secret is not None
            credential = settings.azure_client_secret.get_secret_value()
        elif kind is CredentialKind.CERTIFICATE:
            credential = _certificate_credential(settings)
        else:
            assertion = self._client_assertion
            if assertion is None:
                assert settings.azure_federated_identity_client_id is not None
                assertion = self._client_assertion = managed_identity_assertion(
                    settings.azure_federated_identity_client_id, self._session
                )
            credential = {"client_assertion": assertion}
        try:
            return msal.ConfidentialClientApplication(
                settings.azure_client_id,
                client_credential=credential,
                authority=settings.authority,
                instance_discovery=False,
                http_client=self._http_client,
                http_cache=_NoHttpCache(),
                # Only the service user's client keeps what it redeems (its newest refresh token
                # serves while Key Vault is unreachable); on-behalf-of results live in our
                # bounded TokenCache, and consent and rotation results go to the store.
                token_cache=(
                    msal.TokenCache() if purpose == "service-user" else _DiscardingTokenCache()
                ),
                app_name=settings.partner_center_application_name,
            )
        except ValueError as err:
            raise ConfigurationError(
                f"AZURE_AUTHORITY_HOST or AZURE_TENANT_ID does not name a usable authority: {err}",
                setting="AZURE_AUTHORITY_HOST",
            ) from None
