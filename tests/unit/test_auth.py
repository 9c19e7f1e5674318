"""Caller token validation and the cache of verified tokens."""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.auth import CallerAuthenticator, ForbiddenError
from partnercenter import SERVICE_USER, CallerTokenRejectedError, Settings

TENANT = "11111111-1111-1111-1111-111111111111"
CLIENT = "22222222-2222-2222-2222-222222222222"
SETTINGS = Settings.from_environ(
    {"AZURE_TENANT_ID": TENANT, "AZURE_CLIENT_ID": CLIENT, "AZURE_CLIENT_SECRET": "s3cret-value"}
)
CLIENT_APP = "33333333-3333-3333-3333-333333333333"
OTHER_APP = "44444444-4444-4444-4444-444444444444"
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
        "azp": CLIENT_APP,
        "iat": int(now),
        "exp": int(now) + 3600,
        **claims,
    }
    body = {name: value for name, value in body.items() if value is not None}  # None: left out
    return jwt.encode(body, KEY, algorithm="RS256", headers={"kid": "k1"})


def authenticator(
    keys: Keys, clock: list[float], size: int = 4096, settings: Settings = SETTINGS
) -> CallerAuthenticator:
    return CallerAuthenticator(
        settings,
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


# --- caller kinds: only Entra's app-only tokens are served as the service user ----------------


def app_claims(**claims: Any) -> dict[str, Any]:
    """An app-only token's claims: roles, no scp, oid = sub = the app's service principal."""
    principal = str(uuid.uuid4())
    return {"scp": None, "roles": ["Agreements.Read"], "oid": principal, "sub": principal, **claims}


def authenticate(**claims: Any) -> Any:
    now = time.time()
    return authenticator(Keys(), [now]).authenticate(f"Bearer {token(now, **claims)}")


def test_a_token_marked_app_only_is_an_app() -> None:
    caller = authenticate(**app_claims(idtyp="app"))
    assert caller.kind == "app"
    assert caller.principal() is SERVICE_USER
    assert caller.permissions == {"Agreements.Read"}


def test_without_idtyp_an_app_token_has_roles_no_scp_and_oid_equal_to_sub() -> None:
    assert authenticate(**app_claims()).kind == "app"


def test_a_user_token_with_app_roles_is_refused_not_served_as_the_service_user() -> None:
    user = str(uuid.uuid4())
    with pytest.raises(ForbiddenError, match="app roles held by a user"):
        authenticate(
            oid=user, sub="pairwise-subject", scp=None, roles=["Agreements.Read"], idtyp="user"
        )
    with pytest.raises(ForbiddenError):  # no idtyp: oid != sub says it is a user
        authenticate(oid=user, sub="pairwise-subject", scp=None, roles=["Agreements.Read"])


def test_an_app_only_token_with_scopes_or_without_roles_is_refused() -> None:
    with pytest.raises(ForbiddenError):
        authenticate(**app_claims(idtyp="app", scp="Agreements.Read"))
    with pytest.raises(ForbiddenError):  # no idtyp, no roles: nothing says it is an app
        authenticate(**app_claims(roles=None))
    with pytest.raises(ForbiddenError):
        authenticate(**app_claims(idtyp="app", scp=""))


def test_a_user_token_with_scopes_and_roles_is_the_user_with_its_scopes_only() -> None:
    caller = authenticate(scp="Agreements.Read", roles=["RelationshipRequest.Read"], idtyp="user")
    assert caller.kind == "user"
    assert caller.permissions == {"Agreements.Read"}


@pytest.mark.parametrize(
    "claims",
    [
        # v2 ID token: aud is the client id, no azp/scp, nonce from the sign-in request.
        {"aud": CLIENT, "azp": None, "nonce": "n-0S6_WzA2Mj", "ver": "2.0", "scp": None},
        # v2 ID token with the user's app roles and no nonce (no azp either).
        {"aud": CLIENT, "azp": None, "roles": ["Agreements.Read"], "ver": "2.0"},
        # v1 ID token of a hybrid flow: c_hash/at_hash, ver 1.0, no appid.
        {"aud": CLIENT, "azp": None, "c_hash": "LDktKdoQak3Pk0cnXxCltA", "ver": "1.0"},
        # Claims of an access token, plus at_hash: only ID tokens carry it.
        {"at_hash": "77QmUPtjPfzWtF2AnpK9RQ", "scp": "Agreements.Read"},
    ],
    ids=["v2-nonce", "v2-roles", "v1-c-hash", "at-hash"],
)
def test_id_tokens_are_refused_with_401(claims: dict[str, Any]) -> None:
    with pytest.raises(CallerTokenRejectedError, match="ID token"):
        authenticate(**claims)


@pytest.mark.parametrize("version", ["1.0", "2.0"])
def test_access_tokens_of_both_versions_are_not_id_tokens(version: str) -> None:
    client = {"azp": CLIENT_APP} if version == "2.0" else {"azp": None, "appid": CLIENT_APP}
    assert authenticate(ver=version, scp="Agreements.Read", **client).kind == "user"


def test_an_audience_list_is_refused_even_when_it_holds_ours() -> None:
    with pytest.raises(CallerTokenRejectedError, match="audience"):
        authenticate(aud=[f"api://{CLIENT}", "api://another-api"], scp="Agreements.Read")


# --- ALLOWED_CLIENT_APP_IDS ---------------------------------------------------------------------


def test_only_allowed_client_apps_may_call() -> None:
    now = time.time()
    settings = SETTINGS.model_copy(update={"allowed_client_app_ids": frozenset({CLIENT_APP})})
    auth = authenticator(Keys(), [now], settings=settings)
    assert auth.authenticate(f"Bearer {token(now)}").kind == "user"
    v1 = token(now, azp=None, appid=CLIENT_APP.upper(), ver="1.0")
    assert auth.authenticate(f"Bearer {v1}").kind == "user"
    for other in (token(now, azp=OTHER_APP), token(now, azp=None, appid=OTHER_APP)):
        with pytest.raises(ForbiddenError, match="not allowed"):
            auth.authenticate(f"Bearer {other}")


def test_any_app_of_the_tenant_may_call_when_none_is_listed() -> None:
    now = time.time()
    assert SETTINGS.allowed_client_app_ids == frozenset()
    caller = authenticator(Keys(), [now]).authenticate(f"Bearer {token(now, azp=OTHER_APP)}")
    assert caller.kind == "user"
