"""Caller authentication: Entra ID bearer tokens validated in code, permissions checked."""

from __future__ import annotations

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
    Principal,
    Settings,
    UpstreamError,
    UpstreamTimeoutError,
    is_guid,
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
    forged key ids cannot make us hammer the identity provider.
    """

    def __init__(
        self,
        session: requests.Session,
        discovery_url: str,
        *,
        refresh_cooldown: float = 30.0,
        max_age: float = 86_400.0,
        timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._session = session
        self._discovery_url = discovery_url
        self._cooldown = refresh_cooldown
        self._max_age = max_age
        self._timeout = timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: dict[str, Any] = {}
        self._fetched_at: float | None = None

    def key_for(self, kid: str) -> Any | None:
        """The public key with id ``kid``, or None if the authority does not publish it."""
        if not self._stale():
            key = self._keys.get(kid)
            if key is not None:
                return key
        with self._lock:
            now = self._clock()
            unknown_and_due = (
                kid not in self._keys
                and self._fetched_at is not None
                and now - self._fetched_at >= self._cooldown
            )
            if self._stale() or unknown_and_due:
                self._keys = self._fetch()
                self._fetched_at = now
            return self._keys.get(kid)

    def _stale(self) -> bool:
        return self._fetched_at is None or self._clock() - self._fetched_at > self._max_age

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
            response = self._session.get(url, timeout=(self._timeout, self._timeout))
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
        scopes, roles = claims.get("scp"), claims.get("roles")
        if isinstance(scopes, str) and scopes.strip():
            return Caller(
                "user", tenant_id.lower(), object_id.lower(), frozenset(scopes.split()), token
            )
        permissions = (
            frozenset(r for r in roles if isinstance(r, str))
            if isinstance(roles, list)
            else frozenset()
        )
        return Caller("app", tenant_id.lower(), object_id.lower(), permissions, token)


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
