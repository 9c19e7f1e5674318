"""Minting the simulator's tokens and keeping its refresh tokens."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from simulator._clock import SimClock
from simulator._crypto import KeyRing, b64url, pairwise_subject
from simulator._http import guid
from simulator.data import derived_guid

FEDERATION_AUDIENCE = "api://AzureADTokenExchange"
#: A refresh token dies this long after it was issued (Entra ID's AADSTS700082).
REFRESH_TOKEN_LIFETIME = 90 * 86400


@dataclass(frozen=True)
class UserIdentity:
    """Who a delegated token is for; on-behalf-of and refresh grants carry it over unchanged."""

    oid: str
    tid: str
    sub: str
    name: str
    upn: str
    amr: tuple[str, ...]

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any]) -> UserIdentity:
        """The identity of a verified user access token."""
        upn = str(claims.get("preferred_username") or claims.get("upn") or "")
        return cls(
            oid=str(claims["oid"]),
            tid=str(claims["tid"]),
            sub=str(claims.get("sub") or claims["oid"]),
            name=str(claims.get("name", "")),
            upn=upn,
            amr=tuple(claims.get("amr") or ()),
        )

    def claims(self) -> dict[str, Any]:
        """The identity claims of an access or ID token."""
        return {
            "oid": self.oid,
            "tid": self.tid,
            "sub": self.sub,
            "name": self.name,
            "preferred_username": self.upn,
            "upn": self.upn,
            "amr": list(self.amr),
        }


def amr(mfa: bool) -> tuple[str, ...]:
    """Authentication methods of a password sign-in, with or without a second factor."""
    return ("pwd", "mfa") if mfa else ("pwd",)


def default_upn(name: str) -> str:
    """A user principal name derived from a display name."""
    local = ".".join(name.lower().split()) or "user"
    return f"{local}@partner.onmicrosoft.com"


@dataclass(frozen=True)
class _RefreshGrant:
    identity: UserIdentity
    expired: bool
    #: When it was issued, on the simulator's clock.
    issued_at: float


class TokenIssuer:
    """Signs every token the simulator hands out and remembers the refresh tokens it issued."""

    def __init__(
        self,
        keys: KeyRing,
        *,
        client_id: str,
        tenant_id: str,
        authority_host: Callable[[], str],
        lifetime: int,
        clock: SimClock | None = None,
    ) -> None:
        self.keys = keys
        self.clock = clock or SimClock()
        """The clock refresh tokens age on (tests move it forward)."""
        self._client_id = client_id
        self._tenant_id = tenant_id
        self._authority_host = authority_host
        self.lifetime = lifetime
        self._lock = threading.Lock()
        self._refresh: dict[str, _RefreshGrant] = {}

    def issuer(self, tid: str) -> str:
        """The v2.0 issuer of tenant ``tid``."""
        return f"{self._authority_host()}/{tid}/v2.0"

    @staticmethod
    def _times(expires_in: int) -> dict[str, int]:
        now = int(time.time())
        # An already-expired token was also issued in the past, so iat/nbf <= exp still holds.
        issued = now if expires_in > 0 else now + expires_in - 3600
        return {"iat": issued, "nbf": issued, "exp": now + expires_in}

    def user_access_token(
        self,
        identity: UserIdentity,
        *,
        audience: str,
        scp: str,
        azp: str,
        issuer: str | None = None,
        expires_in: int | None = None,
        extra_claims: Mapping[str, Any] | None = None,
    ) -> str:
        """A delegated (App+User) access token."""
        claims: dict[str, Any] = {
            "aud": audience,
            "iss": issuer or self.issuer(identity.tid),
            **self._times(self.lifetime if expires_in is None else expires_in),
            **identity.claims(),
            "azp": azp,
            "appid": azp,
            "azpacr": "1",
            **({"scp": scp} if scp else {}),
            "idtyp": "user",
            "ver": "2.0",
            "uti": b64url(secrets.token_bytes(16)),
        }
        claims.update(extra_claims or {})
        return self.keys.sign(claims)

    def app_access_token(
        self,
        *,
        app_id: str,
        audience: str,
        roles: Sequence[str] = (),
        tid: str | None = None,
        issuer: str | None = None,
        expires_in: int | None = None,
        idtyp: bool = True,
    ) -> str:
        """An application-only access token; ``oid`` and ``sub`` are the app's service principal;
        ``idtyp`` (an optional claim in Entra) is ``app`` unless left out."""
        tid = tid or self._tenant_id
        principal = derived_guid(f"service-principal-{app_id}")
        claims: dict[str, Any] = {
            "aud": audience,
            "iss": issuer or self.issuer(tid),
            **self._times(self.lifetime if expires_in is None else expires_in),
            "oid": principal,
            "sub": principal,
            "tid": tid,
            "azp": app_id,
            "appid": app_id,
            "azpacr": "1",
            "ver": "2.0",
            "uti": b64url(secrets.token_bytes(16)),
        }
        if idtyp:
            claims["idtyp"] = "app"
        if roles:
            claims["roles"] = list(roles)
        return self.keys.sign(claims)

    def id_token(
        self,
        identity: UserIdentity,
        *,
        roles: Sequence[str] = (),
        nonce: str | None = None,
        audience: str | None = None,
    ) -> str:
        """An OpenID Connect ID token for the gateway's app registration (or ``audience``):
        ``aud`` is that app, no ``azp``/``scp``; the user's app ``roles`` and the sign-in's
        ``nonce`` when given."""
        claims: dict[str, Any] = {
            "aud": audience or self._client_id,
            "iss": self.issuer(identity.tid),
            **self._times(self.lifetime),
            "oid": identity.oid,
            "tid": identity.tid,
            "sub": identity.sub,
            "name": identity.name,
            "preferred_username": identity.upn,
            "ver": "2.0",
            "uti": b64url(secrets.token_bytes(16)),
        }
        if roles:
            claims["roles"] = list(roles)
        if nonce is not None:
            claims["nonce"] = nonce
        return self.keys.sign(claims)

    def federated_assertion(self, managed_identity_client_id: str) -> str:
        """A managed identity's token for ``api://AzureADTokenExchange``."""
        claims: dict[str, Any] = {
            "aud": FEDERATION_AUDIENCE,
            "iss": self.issuer(self._tenant_id),
            **self._times(3600),
            "sub": managed_identity_client_id,
            "oid": managed_identity_client_id,
            "azp": managed_identity_client_id,
            "appid": managed_identity_client_id,
            "tid": self._tenant_id,
            "idtyp": "app",
            "ver": "2.0",
        }
        return self.keys.sign(claims)

    def new_refresh_token(self, identity: UserIdentity, *, expired: bool = False) -> str:
        """An opaque refresh token for ``identity``, valid for :data:`REFRESH_TOKEN_LIFETIME` on
        :attr:`clock`; an ``expired`` one is refused on redemption."""
        token = f"0.Asim.{secrets.token_urlsafe(48)}"
        with self._lock:
            self._refresh[token] = _RefreshGrant(identity, expired, self.clock.time())
        return token

    def redeem(self, token: str) -> UserIdentity | None:
        """The identity behind a valid refresh token; None if unknown, expired, or older than
        :data:`REFRESH_TOKEN_LIFETIME`.

        Redeeming does not revoke the token: like Entra ID, old refresh tokens stay usable.
        """
        with self._lock:
            grant = self._refresh.get(token)
        if grant is None or grant.expired:
            return None
        if self.clock.time() - grant.issued_at > REFRESH_TOKEN_LIFETIME:
            return None
        return grant.identity

    def refresh_token_issued_at(self, token: str) -> float | None:
        """When a refresh token was issued (on :attr:`clock`); None if unknown."""
        with self._lock:
            grant = self._refresh.get(token)
        return None if grant is None else grant.issued_at


def new_identity(
    *, oid: str | None, tid: str, name: str, upn: str | None, mfa: bool, sub_for: str
) -> UserIdentity:
    """A user identity with defaults: random ``oid``, UPN from the name, per-app ``sub``."""
    oid = oid or guid()
    return UserIdentity(
        oid=oid,
        tid=tid,
        sub=pairwise_subject(oid, sub_for),
        name=name,
        upn=upn or default_upn(name),
        amr=amr(mfa),
    )
