"""Where the service user's refresh token lives, and the state of that consent.

Two stores: the plain ``PARTNER_CENTER_REFRESH_TOKEN`` setting (local use; read-only), or a Key
Vault secret (``KEY_VAULT_URL``) whose versions are the consent's history: the consent command
and the rotation each write a new version, with ``expires`` 90 days out and tags saying who
consented and when; the latest version is the one in use. Old versions are never disabled: a
refresh token stays valid after a newer one is issued, so an older version is a working fallback.

Key Vault clients are built on first use, never at import, and every call has a timeout.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeoutError
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal, Protocol
from urllib.parse import urlsplit

from ._config import CredentialKind, Settings
from ._errors import (
    CONSENT_COMMAND,
    AuthenticationError,
    ConfigurationError,
    ConsentStoreAccessDeniedError,
    ConsentStoreError,
    ServiceUserMfaRequiredError,
    ServiceUserNotConfiguredError,
)

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.keyvault.secrets import SecretClient, SecretProperties

logger = logging.getLogger("partnercenter.consent")

#: A refresh token dies 90 days after it was issued (AADSTS700082); so does its secret version.
CONSENT_LIFETIME = timedelta(days=90)
#: ``/api/health`` says ``expiring`` this long before the stored token dies.
EXPIRING_WITHIN = timedelta(days=14)
#: Key Vault calls: connecting, reading an answer, and retries (the SDK's own policy).
KEY_VAULT_CONNECT_TIMEOUT = 5.0
KEY_VAULT_READ_TIMEOUT = 10.0
KEY_VAULT_RETRIES = 2

#: Tags of a secret version (Key Vault tags are strings): who consented, when, how it was made.
TAG_CONSENTED_BY = "consentedBy"
TAG_CONSENTED_BY_UPN = "consentedByUpn"
TAG_CONSENTED_ON = "consentedOn"
TAG_MFA = "mfa"
TAG_ROTATED_ON = "rotatedOn"
TAG_SOURCE = "source"
_CONSENT_TAGS = (TAG_CONSENTED_BY, TAG_CONSENTED_BY_UPN, TAG_CONSENTED_ON, TAG_MFA)

WallClock = Callable[[], datetime]


def utc_now() -> datetime:
    """The current time in UTC (the default wall clock)."""
    return datetime.now(UTC)


class ConsentState(StrEnum):
    """The service user's consent as ``/api/health`` reports it."""

    OK = "ok"
    EXPIRING = "expiring"
    EXPIRED = "expired"
    NO_MFA = "no-mfa"
    MISSING = "missing"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class ConsentRecord:
    """What is known of a stored refresh token, never the token itself."""

    version: str | None = None
    created_on: datetime | None = None
    expires_on: datetime | None = None
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StoredRefreshToken:
    """A stored refresh token and its record."""

    token: str = field(repr=False)
    record: ConsentRecord


@dataclass(frozen=True)
class ConsentStatus:
    """The consent's state and when its stored token expires (when known)."""

    state: ConsentState
    expires_on: datetime | None = None


class RefreshTokenStore(Protocol):
    """Where the service user's refresh token is kept."""

    #: Where, for messages (no secret in it).
    location: str
    #: Whether new versions can be written (the consent command and rotation need it).
    writable: bool

    def read(self, *, timeout: float) -> StoredRefreshToken:
        """The latest refresh token; :class:`ServiceUserNotConfiguredError` if there is none."""
        ...

    def read_record(self, *, timeout: float) -> ConsentRecord:
        """The latest token's record, without its value."""
        ...

    def write(
        self, token: str, *, expires_on: datetime, tags: Mapping[str, str], timeout: float
    ) -> ConsentRecord:
        """Store ``token`` as the new latest version."""
        ...


class SettingRefreshTokenStore:
    """The plain ``PARTNER_CENTER_REFRESH_TOKEN`` setting: read-only, expiry unknown."""

    location = "the PARTNER_CENTER_REFRESH_TOKEN setting"
    writable = False

    def __init__(self, token: str) -> None:
        self._token = token

    def read(self, *, timeout: float) -> StoredRefreshToken:
        """The setting's token."""
        return StoredRefreshToken(self._token, ConsentRecord())

    def read_record(self, *, timeout: float) -> ConsentRecord:
        """Nothing is known of a plain setting's token but that it is there."""
        return ConsentRecord()

    def write(
        self, token: str, *, expires_on: datetime, tags: Mapping[str, str], timeout: float
    ) -> ConsentRecord:
        """A setting cannot be written: the token must go to Key Vault."""
        raise ConfigurationError(
            "The service user's refresh token is a plain setting, which the app cannot update: "
            "set KEY_VAULT_URL so that the consent and its rotation are stored in Key Vault.",
            setting="KEY_VAULT_URL",
        )


def key_vault_credential(settings: Settings) -> TokenCredential:
    """The credential the app reaches Key Vault with: the managed identity in Azure (the one
    whose token is the app's federated credential), else the app's own client credential."""
    # Imported here: azure-identity costs import time that requests without Key Vault never need.
    from azure.identity import (  # noqa: PLC0415
        CertificateCredential,
        ClientSecretCredential,
        ManagedIdentityCredential,
    )

    timeouts: dict[str, Any] = {
        "connection_timeout": KEY_VAULT_CONNECT_TIMEOUT,
        "read_timeout": KEY_VAULT_READ_TIMEOUT,
        "retry_total": KEY_VAULT_RETRIES,
    }
    kind = settings.credential_kind
    if kind is CredentialKind.FEDERATED:
        return ManagedIdentityCredential(
            client_id=settings.azure_federated_identity_client_id, **timeouts
        )
    common: dict[str, Any] = {
        "authority": settings.azure_authority_host,
        "disable_instance_discovery": True,
        **timeouts,
    }
    if kind is CredentialKind.SECRET:
        assert settings.azure_client_secret is not None
        return ClientSecretCredential(
            settings.azure_tenant_id,
            settings.azure_client_id,
            settings.azure_client_secret.get_secret_value(),
            **common,
        )
    assert settings.azure_client_certificate_path is not None
    password = settings.azure_client_certificate_password
    return CertificateCredential(
        settings.azure_tenant_id,
        settings.azure_client_id,
        certificate_path=str(settings.azure_client_certificate_path),
        password=password.get_secret_value().encode() if password is not None else None,
        **common,
    )


def _record(properties: SecretProperties) -> ConsentRecord:
    return ConsentRecord(
        version=properties.version,
        created_on=properties.created_on,
        expires_on=properties.expires_on,
        tags=dict(properties.tags or {}),
    )


class KeyVaultRefreshTokenStore:
    """A Key Vault secret; its latest version is the token in use."""

    writable = True

    def __init__(self, vault_url: str, secret_name: str, credential: Callable[[], TokenCredential]):
        self._vault_url = vault_url
        self._secret_name = secret_name
        self._credential = credential
        self._client: SecretClient | None = None
        self._lock = threading.Lock()
        self.location = f"Key Vault secret '{secret_name}' of {vault_url}"

    def _secrets(self) -> SecretClient:
        client = self._client
        if client is not None:
            return client
        with self._lock:
            if self._client is None:
                from azure.keyvault.secrets import SecretClient  # noqa: PLC0415 - see above

                # Key Vault's challenge names the resource https://vault.azure.net; the SDK
                # checks that the vault's host is under that domain, which a local vault
                # (localhost) can never be.
                local = urlsplit(self._vault_url).hostname in ("localhost", "127.0.0.1", "::1")
                self._client = SecretClient(
                    self._vault_url,
                    self._credential(),
                    verify_challenge_resource=not local,
                    connection_timeout=KEY_VAULT_CONNECT_TIMEOUT,
                    read_timeout=KEY_VAULT_READ_TIMEOUT,
                    retry_total=KEY_VAULT_RETRIES,
                )
            return self._client

    def read(self, *, timeout: float) -> StoredRefreshToken:
        """The latest version's value and record."""
        with self._errors("read"):
            secret = self._secrets().get_secret(self._secret_name, **_per_call(timeout))
        if not secret.value:
            raise self._missing()
        return StoredRefreshToken(secret.value, _record(secret.properties))

    def read_record(self, *, timeout: float) -> ConsentRecord:
        """The latest version's record (the value is read too: Key Vault has no cheaper call
        for the latest version; it is dropped here)."""
        return self.read(timeout=timeout).record

    def write(
        self, token: str, *, expires_on: datetime, tags: Mapping[str, str], timeout: float
    ) -> ConsentRecord:
        """A new version, the latest from now on; older versions stay enabled."""
        with self._errors("write"):
            secret = self._secrets().set_secret(
                self._secret_name,
                token,
                expires_on=expires_on,
                tags=dict(tags),
                content_type="Partner Center refresh token (Secure Application Model)",
                **_per_call(timeout),
            )
        return _record(secret.properties)

    def _missing(self) -> ServiceUserNotConfiguredError:
        return ServiceUserNotConfiguredError(
            f"No service user has consented yet: {self.location} holds no refresh token."
        )

    def _errors(self, action: str) -> _KeyVaultErrors:
        return _KeyVaultErrors(self, action)


class _KeyVaultErrors:
    """Turns the SDK's errors into this package's (never with a token in them)."""

    def __init__(self, store: KeyVaultRefreshTokenStore, action: str) -> None:
        self._store = store
        self._action = action

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> Literal[False]:
        if exc is None:
            return False
        from azure.core.exceptions import (  # noqa: PLC0415 - loaded with the client
            AzureError,
            ClientAuthenticationError,
            HttpResponseError,
            ResourceNotFoundError,
        )

        where = self._store.location
        if isinstance(exc, ResourceNotFoundError):
            raise self._store._missing() from None
        if isinstance(exc, ClientAuthenticationError):
            raise ConsentStoreError(
                f"Could not authenticate to Key Vault to {self._action} {where}: {_summary(exc)}",
                status=401,
            ) from None
        if isinstance(exc, HttpResponseError) and exc.status_code == 403:
            raise ConsentStoreAccessDeniedError(
                f"Key Vault refused to let the app {self._action} {where} (403).", status=403
            ) from None
        if isinstance(exc, HttpResponseError):
            raise ConsentStoreError(
                f"Key Vault failed to {self._action} {where} ({exc.status_code}): {_summary(exc)}",
                status=exc.status_code,
            ) from None
        if isinstance(exc, AzureError):
            raise ConsentStoreError(
                f"Key Vault could not be reached to {self._action} {where} ({type(exc).__name__})."
            ) from None
        return False


def _summary(error: Exception) -> str:
    message = str(getattr(error, "message", None) or error)
    return message.splitlines()[0][:300] if message else type(error).__name__


def _per_call(timeout: float) -> dict[str, Any]:
    """The SDK's per-call timeouts: the whole operation (retries included), then each socket."""
    seconds = max(0.1, timeout)
    return {
        "timeout": seconds,
        "connection_timeout": min(KEY_VAULT_CONNECT_TIMEOUT, seconds),
        "read_timeout": min(KEY_VAULT_READ_TIMEOUT, seconds),
    }


def refresh_token_store(settings: Settings) -> RefreshTokenStore | None:
    """The store the settings name: Key Vault when ``KEY_VAULT_URL`` is set, else the plain
    setting, else none (no service user)."""
    if settings.key_vault_url:
        return KeyVaultRefreshTokenStore(
            settings.key_vault_url,
            settings.partner_center_refresh_token_secret,
            lambda: key_vault_credential(settings),
        )
    if settings.partner_center_refresh_token is not None:
        return SettingRefreshTokenStore(settings.partner_center_refresh_token.get_secret_value())
    return None


# --- what a redemption gave -------------------------------------------------------------------


def jwt_claims(token: str) -> dict[str, Any]:
    """The payload of a JWT, not verified (it came straight from the token endpoint over TLS);
    empty when unreadable."""
    try:
        payload = token.split(".")[1]
        data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError, binascii.Error):
        return {}
    return data if isinstance(data, dict) else {}


@dataclass(frozen=True)
class RedeemedConsent:
    """What a token response (authorization code or refresh token) gave for the service user."""

    refresh_token: str = field(repr=False)
    #: The Partner Center access token's ``amr`` contains ``mfa``.
    mfa: bool
    object_id: str | None
    upn: str | None

    @classmethod
    def from_result(cls, result: Mapping[str, Any]) -> RedeemedConsent:
        """Read an MSAL success result; it must carry a refresh token (``offline_access``)."""
        refresh_token = result.get("refresh_token")
        if not isinstance(refresh_token, str) or not refresh_token:
            raise AuthenticationError(
                "Entra ID returned no refresh token: the request must include offline_access.",
                error="no_refresh_token",
            )
        access = jwt_claims(str(result.get("access_token", "")))
        identity = result.get("id_token_claims") or {}
        amr = access.get("amr") or identity.get("amr") or ()
        return cls(
            refresh_token=refresh_token,
            mfa="mfa" in amr,
            object_id=str(identity.get("oid") or access.get("oid") or "") or None,
            upn=str(
                identity.get("preferred_username")
                or access.get("upn")
                or access.get("unique_name")
                or ""
            )
            or None,
        )

    def require_mfa(self) -> None:
        """Refuse a consent whose sign-in did not use MFA: Partner Center would refuse it."""
        if not self.mfa:
            raise ServiceUserMfaRequiredError(
                "The service user's sign-in did not use multi-factor authentication (the token's "
                "amr has no 'mfa'), so Partner Center would refuse it; it was not stored."
            )


def consent_tags(consent: RedeemedConsent, now: datetime) -> dict[str, str]:
    """The tags of a version written by a new consent."""
    tags = {TAG_CONSENTED_ON: now.isoformat(timespec="seconds"), TAG_SOURCE: "consent"}
    tags[TAG_MFA] = "true" if consent.mfa else "false"
    if consent.object_id:
        tags[TAG_CONSENTED_BY] = consent.object_id
    if consent.upn:
        tags[TAG_CONSENTED_BY_UPN] = consent.upn
    return tags


def rotation_tags(
    previous: Mapping[str, str], consent: RedeemedConsent, now: datetime
) -> dict[str, str]:
    """The tags of a version written by a rotation: who consented, and when, carried over (or
    read from the ID token when an operator stored the token by hand), plus when it rotated."""
    tags = {name: previous[name] for name in _CONSENT_TAGS if name in previous}
    if TAG_CONSENTED_BY not in tags and consent.object_id:
        tags[TAG_CONSENTED_BY] = consent.object_id
    if TAG_CONSENTED_BY_UPN not in tags and consent.upn:
        tags[TAG_CONSENTED_BY_UPN] = consent.upn
    tags[TAG_MFA] = "true" if consent.mfa else "false"
    tags[TAG_ROTATED_ON] = now.isoformat(timespec="seconds")
    tags[TAG_SOURCE] = "rotation"
    return tags


# --- the consent's state ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Refusal:
    state: ConsentState
    version: str | None


class ServiceUserConsent:
    """The service user's store, plus what the app learnt using it (a refusal for lack of MFA or
    an expired token), for ``/api/health``. Reading the store for health is cached for
    ``status_ttl`` seconds and waits at most ``status_timeout``: health stays quick."""

    def __init__(
        self,
        store: RefreshTokenStore | None,
        *,
        wall_clock: WallClock = utc_now,
        status_ttl: float = 30.0,
        status_timeout: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.wall_clock = wall_clock
        self._ttl = status_ttl
        self._timeout = status_timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._refusal: _Refusal | None = None
        self._in_use: str | None = None
        self._cached: tuple[float, ConsentRecord | BaseException] | None = None
        self._pending: Future[ConsentRecord] | None = None
        self._executor: ThreadPoolExecutor | None = None

    def record_success(self, version: str | None) -> None:
        """The token of ``version`` was redeemed. An ``expired`` refusal is over; a ``no-mfa``
        one too if this is another version (redeeming works without MFA; Partner Center then
        refuses the token, so the same version stays refused)."""
        with self._lock:
            self._in_use = version
            refusal = self._refusal
            if refusal is not None and (
                refusal.state is not ConsentState.NO_MFA or refusal.version != version
            ):
                self._refusal = None

    def record_refusal(self, state: ConsentState, version: str | None = None) -> None:
        """The token of ``version`` (default: the one last used) was refused for ``state``."""
        with self._lock:
            self._refusal = _Refusal(state, version if version is not None else self._in_use)

    def forget(self) -> None:
        """Drop the cached record (after writing a new version)."""
        with self._lock:
            self._cached = None

    def status(self) -> ConsentStatus:
        """The consent's state now; never raises, never waits long."""
        if self.store is None:
            return ConsentStatus(ConsentState.MISSING)
        found = self._record()
        with self._lock:
            refusal = self._refusal
        if isinstance(found, ServiceUserNotConfiguredError):
            return ConsentStatus(ConsentState.MISSING)
        if isinstance(found, BaseException):
            return ConsentStatus(ConsentState.UNKNOWN)
        expires = found.expires_on
        if refusal is not None and refusal.version in (None, found.version):
            return ConsentStatus(refusal.state, expires)
        return ConsentStatus(self._state_of(found), expires)

    def _state_of(self, record: ConsentRecord) -> ConsentState:
        expires = record.expires_on
        now = self.wall_clock()
        if record.tags.get(TAG_MFA) == "false":
            state = ConsentState.NO_MFA
        elif expires is None:
            state = ConsentState.UNKNOWN
        elif expires <= now:
            state = ConsentState.EXPIRED
        elif expires - now <= EXPIRING_WITHIN:
            state = ConsentState.EXPIRING
        else:
            state = ConsentState.OK
        return state

    def _record(self) -> ConsentRecord | BaseException:
        store = self.store
        assert store is not None
        with self._lock:
            cached = self._cached
            if cached is not None and self._clock() - cached[0] < self._ttl:
                return cached[1]
            pending = self._pending
            started = pending is None
            if pending is None:
                if self._executor is None:
                    self._executor = ThreadPoolExecutor(1, thread_name_prefix="consent-status")
                pending = self._pending = self._executor.submit(
                    store.read_record, timeout=self._timeout
                )
        if started:
            # Outside the lock: a read that has already finished runs the callback right here.
            pending.add_done_callback(self._done)
        try:
            return pending.result(timeout=self._timeout)
        except FutureTimeoutError:
            return TimeoutError("the consent store did not answer in time")
        except Exception as err:
            return err

    def _done(self, future: Future[ConsentRecord]) -> None:
        error = future.exception()
        if error is not None and not isinstance(error, ServiceUserNotConfiguredError):
            logger.warning("could not read the service user's consent for health: %s", error)
        with self._lock:
            self._pending = None
            self._cached = (self._clock(), future.result() if error is None else error)


def consent_again_hint(location: str) -> str:
    """The fix an operator needs when the consent cannot be renewed automatically."""
    return (
        f"Consent again for the service user, signing in with multi-factor authentication: "
        f"{CONSENT_COMMAND} stores a new refresh token in {location}."
    )


__all__ = [
    "CONSENT_LIFETIME",
    "EXPIRING_WITHIN",
    "ConsentRecord",
    "ConsentState",
    "ConsentStatus",
    "KeyVaultRefreshTokenStore",
    "RedeemedConsent",
    "RefreshTokenStore",
    "ServiceUserConsent",
    "SettingRefreshTokenStore",
    "StoredRefreshToken",
    "WallClock",
    "consent_tags",
    "key_vault_credential",
    "refresh_token_store",
    "rotation_tags",
    "utc_now",
]
