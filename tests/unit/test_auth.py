"""Caller token validation and the cache of verified tokens."""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.auth import CallerAuthenticator
from partnercenter import CallerTokenRejectedError, Settings

TENANT = "11111111-1111-1111-1111-111111111111"
CLIENT = "22222222-2222-2222-2222-222222222222"
SETTINGS = Settings.from_environ(
    {"AZURE_TENANT_ID": TENANT, "AZURE_CLIENT_ID": CLIENT, "AZURE_CLIENT_SECRET": "s3cret-value"}
)
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


class Keys:
    """The authority's keys: one, and a count of look-ups (each a verification)."""

    def __init__(self) -> None:
        self.lookups = 0

    def key_for(self, kid: str) -> Any:
        self.lookups += 1
        return KEY.public_key() if kid == "k1" else None


def token(now: float, **claims: Any) -> str:
    body = {
        "aud": f"api://{CLIENT}",
        "iss": f"https://login.microsoftonline.com/{TENANT}/v2.0",
        "tid": TENANT,
        "oid": str(uuid.uuid4()),
        "scp": "Agreements.Read",
        "iat": int(now),
        "exp": int(now) + 3600,
        **claims,
    }
    return jwt.encode(body, KEY, algorithm="RS256", headers={"kid": "k1"})


def authenticator(keys: Keys, clock: list[float], size: int = 4096) -> CallerAuthenticator:
    return CallerAuthenticator(
        SETTINGS,
        keys,  # type: ignore[arg-type]
        cache_size=size,
        clock=lambda: clock[0],
    )


def test_a_verified_token_is_not_verified_again_until_it_expires() -> None:
    now = time.time()
    clock, keys = [now], Keys()
    auth = authenticator(keys, clock)
    bearer = f"Bearer {token(now)}"
    first = auth.authenticate(bearer)
    assert auth.authenticate(bearer) is first
    assert keys.lookups == 1
    clock[0] = now + 3601  # past exp on the cache's clock: verified again (and PyJWT decides)
    auth.authenticate(bearer)
    assert keys.lookups == 2


def test_rejected_tokens_are_not_remembered() -> None:
    now = time.time()
    keys = Keys()
    auth = authenticator(keys, [now])
    bad = f"Bearer {token(now, aud='api://other')}"
    for _ in range(2):
        with pytest.raises(CallerTokenRejectedError):
            auth.authenticate(bad)
    assert keys.lookups == 2


def test_the_cache_is_bounded() -> None:
    now = time.time()
    keys = Keys()
    auth = authenticator(keys, [now], size=2)
    bearers = [f"Bearer {token(now)}" for _ in range(3)]
    for bearer in bearers:
        auth.authenticate(bearer)
    auth.authenticate(bearers[0])  # evicted: verified again
    assert keys.lookups == 4
    auth.authenticate(bearers[2])  # still remembered
    assert keys.lookups == 4


def test_each_token_is_its_own_caller() -> None:
    now = time.time()
    auth = authenticator(Keys(), [now])
    alice, bob = token(now), token(now)
    assert (
        auth.authenticate(f"Bearer {alice}").object_id
        != auth.authenticate(f"Bearer {bob}").object_id
    )
