"""The authority's signing keys: cached, refreshed for unknown key ids, and backed off on failure."""

from __future__ import annotations

import json
import threading

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.auth import SigningKeys
from partnercenter import UpstreamError

from .fakes import FakeClock, response, session_with

DISCOVERY = "https://login.example/tenant/v2.0/.well-known/openid-configuration"
JWKS = "https://login.example/tenant/discovery/v2.0/keys"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwks(kid: str) -> str:
    entry = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(KEY.public_key()))
    return json.dumps({"keys": [{**entry, "kid": kid, "use": "sig"}]})


class Authority:
    """Discovery and JWKS that can be made to fail; counts what was fetched."""

    def __init__(self) -> None:
        self.failing = False
        self.kid = "k1"
        self.fetches: list[str] = []

    def __call__(self, request: requests.PreparedRequest) -> requests.Response | Exception:
        self.fetches.append(str(request.url))
        if self.failing:
            return response(503, "busy")
        if request.url == DISCOVERY:
            return response(200, json.dumps({"jwks_uri": JWKS}))
        return response(200, jwks(self.kid))


def keys_for(authority: Authority, clock: FakeClock) -> SigningKeys:
    session, _ = session_with(authority)
    return SigningKeys(session, DISCOVERY, clock=clock)


def test_keys_are_fetched_once_and_an_unknown_kid_refreshes_at_most_once_per_cooldown() -> None:
    authority, clock = Authority(), FakeClock()
    keys = keys_for(authority, clock)
    assert keys.key_for("k1") is not None
    assert keys.key_for("forged") is None  # within the cooldown: no fetch
    assert len(authority.fetches) == 2
    clock.now += 31
    authority.kid = "k2"
    assert keys.key_for("k2") is not None  # rotated key found by a refresh
    assert len(authority.fetches) == 4


def test_after_a_failed_fetch_requests_fail_fast_without_fetching_until_the_backoff_ends() -> None:
    authority, clock = Authority(), FakeClock()
    keys = keys_for(authority, clock)
    authority.failing = True
    with pytest.raises(UpstreamError, match="signing keys"):
        keys.key_for("k1")
    assert len(authority.fetches) == 1
    for _ in range(50):
        with pytest.raises(UpstreamError, match="signing keys"):
            keys.key_for("k1")
    assert len(authority.fetches) == 1, "every request fetched the keys again"
    clock.now += 2.1  # the first backoff has passed: one new attempt, failing again
    with pytest.raises(UpstreamError):
        keys.key_for("k1")
    assert len(authority.fetches) == 2
    clock.now += 2.1  # the backoff doubled: still failing fast
    with pytest.raises(UpstreamError):
        keys.key_for("k1")
    assert len(authority.fetches) == 2
    clock.now += 2.0
    authority.failing = False
    assert keys.key_for("k1") is not None  # recovered: the backoff is forgotten
    assert len(authority.fetches) == 4
    authority.failing = True
    clock.now += 31
    with pytest.raises(UpstreamError):
        keys.key_for("unknown")  # a refresh for an unknown kid fails...
    assert keys.key_for("k1") is not None  # ...while the cached keys still serve


def test_the_backoff_is_capped() -> None:
    authority, clock = Authority(), FakeClock()
    keys = keys_for(authority, clock)
    authority.failing = True
    for _ in range(12):
        with pytest.raises(UpstreamError):
            keys.key_for("k1")
        clock.now += 30.0
    assert len(authority.fetches) == 12  # every 30 s at most, never longer


def test_requests_waiting_on_a_failing_fetch_do_not_fetch_again() -> None:
    authority, clock = Authority(), FakeClock()
    release = threading.Event()
    fetching = threading.Event()

    def slow_failure(request: requests.PreparedRequest) -> requests.Response | Exception:
        authority.fetches.append(str(request.url))
        fetching.set()
        release.wait(5)
        return response(503, "busy")

    session, _ = session_with(slow_failure)
    keys = SigningKeys(session, DISCOVERY, clock=clock)
    errors: list[Exception] = []

    def ask() -> None:
        try:
            keys.key_for("k1")
        except UpstreamError as err:
            errors.append(err)

    first = threading.Thread(target=ask)
    first.start()
    fetching.wait(5)
    waiters = [threading.Thread(target=ask) for _ in range(8)]
    for thread in waiters:
        thread.start()
    release.set()
    for thread in [first, *waiters]:
        thread.join(5)
    assert len(errors) == 9
    assert len(authority.fetches) == 1
