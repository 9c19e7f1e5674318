"""The token cache (per caller token): reuse, renewal, single-flight, bounded memory, error mapping."""

from __future__ import annotations

import functools
import hashlib
import threading
import time

import pytest

from partnercenter import (
    SERVICE_USER,
    AuthenticationError,
    CallerTokenRejectedError,
    ConsentExpiredError,
    ConsentRequiredError,
    InvalidClientCredentialError,
    MfaRequiredError,
    OnBehalfOf,
    ServiceUserMfaRequiredError,
    TokenCache,
    UpstreamTimeoutError,
)
from partnercenter._tokens import AccessToken, auth_error_from_result, principal_key
from partnercenter._transport import Deadline

from .fakes import FakeClock


def test_hit_until_refresh_time_then_fetch_again() -> None:
    clock = FakeClock()
    cache = TokenCache(10, clock)
    fetched: list[int] = []

    def fetch() -> AccessToken:
        fetched.append(1)
        return AccessToken(f"token-{len(fetched)}", refresh_at=clock.now + 100)

    deadline = Deadline(60, clock)
    assert cache.get("alice", fetch, deadline) == "token-1"
    clock.now += 99
    assert cache.get("alice", fetch, deadline) == "token-1"
    clock.now += 1
    assert cache.get("alice", fetch, deadline) == "token-2"
    assert len(fetched) == 2


def test_users_never_share_a_token() -> None:
    cache = TokenCache(10)
    deadline = Deadline(60)
    for user in ("alice", "bob", "carol"):
        fetch = functools.partial(AccessToken, f"t-{user}", time.monotonic() + 60)
        assert cache.get(user, fetch, deadline) == f"t-{user}"
    assert cache.get("bob", lambda: AccessToken("other", 0), deadline) == "t-bob"


def test_concurrent_first_calls_make_one_request() -> None:
    cache = TokenCache(10)
    calls = 0
    release = threading.Event()
    lock = threading.Lock()

    def slow_fetch() -> AccessToken:
        nonlocal calls
        with lock:
            calls += 1
        release.wait(5)
        return AccessToken("shared", time.monotonic() + 3600)

    results: list[str] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(cache.get("alice", slow_fetch, Deadline(10)))
        )
        for _ in range(32)
    ]
    for thread in threads:
        thread.start()
    while cache.stats().waits < 31:
        time.sleep(0.001)
    release.set()
    for thread in threads:
        thread.join(5)
    assert calls == 1
    assert results == ["shared"] * 32


def test_waiters_get_the_leaders_error_and_the_next_call_tries_again() -> None:
    cache = TokenCache(10)
    release = threading.Event()

    def failing() -> AccessToken:
        release.wait(5)
        raise MfaRequiredError("mfa", aadsts=50076)

    errors: list[BaseException] = []

    def worker() -> None:
        try:
            cache.get("alice", failing, Deadline(10))
        except MfaRequiredError as err:
            errors.append(err)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    while cache.stats().waits < 3:
        time.sleep(0.001)
    release.set()
    for thread in threads:
        thread.join(5)
    assert len(errors) == 4
    assert cache.get("alice", lambda: AccessToken("ok", time.monotonic() + 60), Deadline(1)) == "ok"


def test_a_waiter_gives_up_at_its_deadline() -> None:
    cache = TokenCache(10)
    release = threading.Event()

    def late() -> AccessToken:
        release.wait(5)
        return AccessToken("late", time.monotonic() + 60)

    leader = threading.Thread(target=lambda: cache.get("alice", late, Deadline(10)))
    leader.start()
    while cache.stats().misses < 1:
        time.sleep(0.001)
    with pytest.raises(UpstreamTimeoutError):
        cache.get("alice", lambda: AccessToken("never", 0), Deadline(0.05))
    release.set()
    leader.join(5)


def test_cap_on_cached_users_holds_least_recently_used_evicted() -> None:
    clock = FakeClock()
    cache = TokenCache(3, clock)
    deadline = Deadline(60, clock)
    for user in ("a", "b", "c"):
        cache.get(user, functools.partial(AccessToken, user, clock.now + 100), deadline)
    cache.get("a", lambda: AccessToken("x", 0), deadline)  # a is now the most recent
    cache.get("d", lambda: AccessToken("d", clock.now + 100), deadline)
    assert len(cache) == 3
    stats = cache.stats()
    assert stats.evictions == 1
    refetched: list[str] = []

    def refetch() -> AccessToken:
        refetched.append("b")
        return AccessToken("b2", clock.now + 100)

    cache.get("b", refetch, deadline)
    assert refetched == ["b"]  # b was the one evicted
    assert cache.get("a", lambda: AccessToken("never", 0), deadline) == "a"  # c went instead
    assert len(cache) == 3


def test_cap_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        TokenCache(0)


@pytest.mark.parametrize(
    ("result", "obo", "error", "code"),
    [
        (
            {
                "error": "invalid_grant",
                "error_description": "AADSTS700082: The refresh token has expired",
                "error_codes": [700082],
            },
            False,
            ConsentExpiredError,
            700082,
        ),
        (
            {
                "error": "interaction_required",
                "error_description": "AADSTS50076: Due to a configuration change...",
                "error_codes": [50076],
            },
            True,
            MfaRequiredError,
            50076,
        ),
        (
            {
                "error": "interaction_required",
                "error_description": "AADSTS50078: Presented MFA expired",
                "error_codes": [50078],
            },
            False,
            ServiceUserMfaRequiredError,
            50078,
        ),
        (
            {
                "error": "invalid_client",
                "error_description": "AADSTS7000215: Invalid client secret provided.",
                "error_codes": [7000215],
            },
            True,
            InvalidClientCredentialError,
            7000215,
        ),
        (
            {
                "error": "invalid_grant",
                "error_description": "AADSTS500133: Assertion is not within its valid time range.",
            },
            True,
            CallerTokenRejectedError,
            500133,
        ),
        (
            {
                "error": "invalid_grant",
                "error_description": "AADSTS65001: The user or administrator has not consented",
                "error_codes": [65001],
            },
            True,
            ConsentRequiredError,
            65001,
        ),
        ({"error": "server_error"}, False, AuthenticationError, None),
    ],
)
def test_entra_errors_become_typed_errors(
    result, obo: bool, error: type[AuthenticationError], code: int | None
) -> None:
    mapped = auth_error_from_result(result, on_behalf_of=obo)
    assert type(mapped) is error
    assert mapped.aadsts == code
    assert mapped.remedy or error is AuthenticationError


def test_the_key_of_a_user_is_a_hash_of_the_exact_caller_token() -> None:
    tenant, oid = "11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222"
    mfa, password_only = "eyJ.mfa-sign-in.sig", "eyJ.password-sign-in.sig"
    key = principal_key(OnBehalfOf(mfa, tenant, oid))
    assert key == principal_key(OnBehalfOf(mfa, tenant, oid))
    assert key != principal_key(OnBehalfOf(password_only, tenant, oid))
    assert key[-1] == hashlib.sha256(mfa.encode()).hexdigest()
    assert mfa not in repr(key)
    assert principal_key(SERVICE_USER) == ("service-user",)
    assert principal_key(SERVICE_USER) != key
