"""Caller authentication: Entra ID bearer tokens validated in code, permissions checked."""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

import jwt
import requests

from partnercenter import (
    SERVICE_USER,
    AuthenticationError,
    CallerTokenRejectedError,
    OnBehalfOf,
    PartnerCenterError,
    Principal,
    Settings,
    UpstreamError,
    UpstreamTimeoutError,
    is_guid,
    traced_call,
)

#: Longest token accepted; Entra tokens are a few KB.
MAX_TOKEN_LENGTH = 16_384
#: Clock skew tolerated on exp / nbf.
LEEWAY_SECONDS = 30
ALGORITHM = "RS256"
#: Verified tokens remembered (each a few KB) until they expire.
VERIFIED_CACHE_SIZE = 4096


class Permission(StrEnum):
    """What a caller may do: a delegated scope (``scp``) or an app role (``roles``)."""

    RELATIONSHIP_REQUEST_READ = "RelationshipRequest.Read"
    AGREEMENTS_READ = "Agreements.Read"
    AGREEMENTS_READ_WRITE = "Agreements.ReadWrite"
    EVENTS_SUBSCRIBE = "Events.Subscribe"


class ForbiddenError(AuthenticationError):
    """The caller is authenticated but lacks the permission the operation needs."""


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: a user (delegated scopes) or an application (app roles)."""

    kind: Literal["user", "app"]
    tenant_id: str
    object_id: str
    permissions: frozenset[str]
    token: str = field(repr=False)

    def require(self, permission: Permission) -> None:
        """Raise :class:`ForbiddenError` unless the caller holds ``permission``."""
        if permission.value not in self.permissions:
            where = "scope (scp)" if self.kind == "user" else "app role (roles)"
            raise ForbiddenError(
                f"The token lacks the {permission.value} permission.",
                remedy=f"Grant the {permission.value} {where} to the calling app, then get a new "
                "token.",
            )

    def principal(self) -> Principal:
        """Whom Partner Center is called for: this user, or the service user for an app."""
        if self.kind == "user":
            return OnBehalfOf(self.token, self.tenant_id, self.object_id)
        return SERVICE_USER


class SigningKeys:
    """The authority's signing keys from OIDC discovery and JWKS, cached.

    An unknown key id triggers a refresh, at most once per ``refresh_cooldown`` seconds, so
    forged key ids cannot make us hammer the identity provider. A failed fetch backs off too
    (``failure_backoff`` seconds, doubling up to ``refresh_cooldown``): meanwhile requests that
    would need a fetch fail at once, without waiting on the lock, instead of each fetching
    again and holding a worker thread for the length of the authority's outage.
    """

    def __init__(
        self,
        session: requests.Session,
        discovery_url: str,
        *,
        refresh_cooldown: float = 30.0,
        failure_backoff: float = 2.0,
        max_age: float = 86_400.0,
        timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._session = session
        self._discovery_url = discovery_url
        self._cooldown = refresh_cooldown
        self._failure_backoff = failure_backoff
        self._max_age = max_age
        self._timeout = timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: dict[str, Any] = {}
        self._fetched_at: float | None = None
        self._failures = 0
        self._retry_at = 0.0
        self._last_failure = ""

    def key_for(self, kid: str) -> Any | None:
        """The public key with id ``kid``, or None if the authority does not publish it.

        Raises :class:`UpstreamError` when the keys cannot be fetched, or while a failed fetch
        is backing off.
        """
        now = self._clock()
        if not self._stale(now):
            key = self._keys.get(kid)
            if key is not None:
                return key
        if self._due(kid, now):
            self._fail_fast(now)
        with self._lock:
            now = self._clock()
            if not self._due(kid, now):
                return self._keys.get(kid)
            self._fail_fast(now)  # a fetch this request waited on may just have failed
            try:
                keys = self._fetch()
            except PartnerCenterError as err:
                self._failures += 1
                backoff = self._failure_backoff * 2 ** min(self._failures - 1, 16)
                self._retry_at = now + min(self._cooldown, backoff)
                self._last_failure = err.message
                raise
            self._keys, self._fetched_at, self._failures = keys, now, 0
            return self._keys.get(kid)

    def _stale(self, now: float) -> bool:
        return self._fetched_at is None or now - self._fetched_at > self._max_age

    def _due(self, kid: str, now: float) -> bool:
        """Whether answering for ``kid`` needs a fetch: keys stale, or unknown and refreshable."""
        if self._stale(now):
            return True
        assert self._fetched_at is not None
        return kid not in self._keys and now - self._fetched_at >= self._cooldown

    def _fail_fast(self, now: float) -> None:
        if self._failures and now < self._retry_at:
            raise UpstreamError(
                f"{self._last_failure} Not tried again for "
                f"{max(1, math.ceil(self._retry_at - now))} s.",
                service="identity",
            )

    def _fetch(self) -> dict[str, Any]:
        jwks_uri = self._get_json(self._discovery_url).get("jwks_uri")
        if not isinstance(jwks_uri, str) or not jwks_uri.startswith("https://"):
            raise UpstreamError("Entra ID's OpenID configuration has no https jwks_uri.")
        keys: dict[str, Any] = {}
        for entry in self._get_json(jwks_uri).get("keys", []):
            if not isinstance(entry, dict) or entry.get("kty") != "RSA" or "kid" not in entry:
                continue
            try:
                keys[str(entry["kid"])] = jwt.PyJWK(entry, algorithm=ALGORITHM).key
            except jwt.PyJWTError:
                continue
        return keys

    def _get_json(self, url: str) -> dict[str, Any]:
        try:
            with traced_call("identity", "GET", url) as call:
                call.attempts = 1
                response = self._session.get(url, timeout=(self._timeout, self._timeout))
                call.status = response.status_code
            response.raise_for_status()
            data = response.json()
        except requests.Timeout:
            raise UpstreamTimeoutError(
                "Entra ID did not send its signing keys in time; tokens cannot be checked now.",
                service="identity",
            ) from None
        except (requests.RequestException, ValueError) as err:
            raise UpstreamError(
                "Could not get Entra ID's signing keys; tokens cannot be checked now "
                f"({type(err).__name__}).",
                service="identity",
            ) from None
        if not isinstance(data, dict):
            raise UpstreamError("Entra ID's key document is not a JSON object.", service="identity")
        return data


class CallerAuthenticator:
    """Validates bearer tokens issued by the partner tenant for this API."""

    def __init__(
        self,
        settings: Settings,
        keys: SigningKeys,
        *,
        cache_size: int = VERIFIED_CACHE_SIZE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._keys = keys
        self._clock = clock
        self._cache_size = cache_size
        self._verified: OrderedDict[str, tuple[Caller, float]] = OrderedDict()
        self._verified_lock = threading.Lock()
        self._tenant_id = settings.azure_tenant_id.lower()
        self._issuer = f"{settings.azure_authority_host}/{settings.azure_tenant_id}/v2.0"
        self._audiences = [settings.azure_client_id, f"api://{settings.azure_client_id}"]
        self._allowed_apps = settings.allowed_client_app_ids

    @classmethod
    def for_settings(cls, settings: Settings, session: requests.Session) -> CallerAuthenticator:
        """An authenticator whose keys come from the configured authority."""
        discovery = f"{settings.authority}/v2.0/.well-known/openid-configuration"
        return cls(settings, SigningKeys(session, discovery))

    def authenticate(self, authorization: str | None) -> Caller:
        """The caller behind an ``Authorization`` header, or :class:`CallerTokenRejectedError`.

        A token already verified is served from a small cache until it expires: callers such as
        Power Automate send the same token for an hour, and verifying it again costs more than
        the rest of the gateway's own work together.
        """
        token = _bearer(authorization)
        with self._verified_lock:
            hit = self._verified.get(token)
            if hit is not None and self._clock() < hit[1]:
                self._verified.move_to_end(token)
                return hit[0]
        caller, expires_at = self._verify(token)
        with self._verified_lock:
            self._verified[token] = (caller, expires_at)
            while len(self._verified) > self._cache_size:
                self._verified.popitem(last=False)
        return caller

    def _verify(self, token: str) -> tuple[Caller, float]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise _rejected("The bearer token is not a JWT.") from None
        if header.get("alg") != ALGORITHM:
            raise _rejected(f"Tokens must be signed with {ALGORITHM}.")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid or len(kid) > 256:
            raise _rejected("The token names no signing key.")
        key = self._keys.key_for(kid)
        if key is None:
            raise _rejected("The token was not signed by a key of the tenant's authority.")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self._audiences,
                issuer=self._issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iss", "aud", "tid", "oid"]},
            )
        except jwt.ExpiredSignatureError:
            raise _rejected("The token has expired.") from None
        except jwt.InvalidAudienceError:
            raise _rejected("The token is for another audience than this API.") from None
        except jwt.InvalidIssuerError:
            raise _rejected("The token was issued by another tenant or authority.") from None
        except jwt.InvalidSignatureError:
            raise _rejected("The token's signature is not valid.") from None
        except jwt.PyJWTError as err:
            raise _rejected(f"The token is not valid ({type(err).__name__}).") from None
        return self._caller(claims, token), float(claims["exp"])

    def _caller(self, claims: dict[str, Any], token: str) -> Caller:
        tenant_id, object_id = claims.get("tid"), claims.get("oid")
        if not is_guid(tenant_id) or not is_guid(object_id):
            raise _rejected("The token's tid and oid must be GUIDs.")
        if tenant_id.lower() != self._tenant_id:
            raise _rejected("The token was issued by another tenant.")
        if not isinstance(claims.get("aud"), str):
            # PyJWT accepts a list that merely contains our audience; Entra never issues one.
            raise _rejected("The token's audience must be this API alone, not a list.")
        if is_id_token(claims):
            raise _rejected(
                "This is an ID token, which proves a sign-in to an app; send an access token "
                "for this API instead."
            )
        self._check_client_app(claims)
        kind = caller_kind(claims)
        if kind == "user":
            scopes = str(claims["scp"]).split()
            return Caller("user", tenant_id.lower(), object_id.lower(), frozenset(scopes), token)
        roles = claims.get("roles")
        roles = roles if isinstance(roles, list) else []
        permissions = frozenset(role for role in roles if isinstance(role, str))
        return Caller("app", tenant_id.lower(), object_id.lower(), permissions, token)

    def _check_client_app(self, claims: dict[str, Any]) -> None:
        if not self._allowed_apps:
            return
        client_app = claims.get("azp") or claims.get("appid")
        if not isinstance(client_app, str) or client_app.lower() not in self._allowed_apps:
            raise ForbiddenError(
                "The app the token was issued to is not allowed to call this gateway.",
                remedy="Call through an allowed app, or ask the gateway's operator to add this "
                "app's client id to ALLOWED_CLIENT_APP_IDS.",
            )


#: Claims only ID tokens carry: the sign-in's nonce and the hashes binding it to a code or token.
_ID_TOKEN_CLAIMS = ("nonce", "at_hash", "c_hash")


def is_id_token(claims: dict[str, Any]) -> bool:
    """Whether verified ``claims`` are an OpenID Connect ID token rather than an access token.

    Entra's access tokens always name the client app the token was issued to (``azp`` in v2,
    ``appid`` in v1); ID tokens never do (their ``aud`` is that app), and only they carry
    ``nonce``, ``at_hash`` or ``c_hash``. An ID token can carry ``roles`` and our client id as
    ``aud``, so neither tells the two apart.
    """
    if any(name in claims for name in _ID_TOKEN_CLAIMS):
        return True
    return not any(isinstance(claims.get(name), str) for name in ("azp", "appid"))


def caller_kind(claims: dict[str, Any]) -> Literal["user", "app"]:
    """``user`` for a delegated token, ``app`` for an app-only token as Entra marks one.

    App-only means ``idtyp`` is ``app``; without ``idtyp`` (an optional claim), no ``scp``,
    ``roles`` present and ``oid`` equal to ``sub`` (an app's own service principal). Anything
    else without delegated scopes is refused: a user's token can carry app roles assigned to
    that user, and must never be served as the service user.
    """
    scopes, idtyp = claims.get("scp"), claims.get("idtyp")
    has_scopes = isinstance(scopes, str) and bool(scopes.strip())
    if idtyp == "app" and "scp" not in claims:
        return "app"
    roles_only = "scp" not in claims and isinstance(claims.get("roles"), list)
    if idtyp is None and roles_only and claims.get("oid") == claims.get("sub"):
        return "app"
    if has_scopes and idtyp in (None, "user"):
        return "user"
    raise ForbiddenError(
        "The token is neither a user token with delegated scopes (scp) nor an app-only token; "
        "app roles held by a user do not grant access.",
        remedy="Sign in and request this API's delegated scopes, or call as an application "
        "with a client-credentials token.",
    )


def _bearer(authorization: str | None) -> str:
    if not authorization:
        raise _rejected("Send a bearer token in the Authorization header.")
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise _rejected("The Authorization header must be 'Bearer <token>'.")
    if len(token) > MAX_TOKEN_LENGTH:
        raise _rejected("The bearer token is too long.")
    return token


def _rejected(message: str) -> CallerTokenRejectedError:
    return CallerTokenRejectedError(message)
