"""Who a token is and what a cached result may serve, over real HTTP against the simulator.

Each test is an attack of issue 10: a user token with app roles served as the service user, an
ID token taken for an access token, an audience list, a password-only sign-in served with an
MFA-backed sign-in's Partner Center token, a cached relationship link handed to a caller Partner
Center refuses, and an app of the tenant that was never allowed to call.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import requests

from gateway.runtime import Runtime, set_runtime
from partnercenter import Settings
from simulator import CUSTOMER_MCA, Fault, Simulator
from simulator.data import CALLER_APP_ID

from ..conftest import sim_environ
from .test_api import assert_problem, bearer

OTHER_APP_ID = "0bad0a11-5e7d-4c1a-9f2e-6d3c2b1a0f9e"
RELATIONSHIP = "/v1/customers/relationshiprequests"


def agreements(api: requests.Session, base_url: str, token: str) -> requests.Response:
    return api.get(
        f"{base_url}/customers/{CUSTOMER_MCA}/agreements", headers=bearer(token), timeout=20
    )


def relationship(api: requests.Session, base_url: str, token: str) -> requests.Response:
    return api.get(f"{base_url}/relationship-request", headers=bearer(token), timeout=20)


# --- 1. caller kinds, ID tokens, audience -----------------------------------------------------


def test_a_user_token_with_app_roles_never_reaches_partner_center_as_the_service_user(
    api: requests.Session, base_url: str, fresh_sim: Simulator, fresh_runtime: None
) -> None:
    # Entra puts app roles assigned to a user into that user's tokens; with no scp the old
    # gateway took it for an app token and called Partner Center as the service user.
    token = fresh_sim.user_token(scopes=(), roles=["Agreements.Read", "RelationshipRequest.Read"])
    for response in (agreements(api, base_url, token), relationship(api, base_url, token)):
        body = assert_problem(response, 403)
        assert "app roles held by a user" in body["detail"]
    assert fresh_sim.stats.api_requests == []
    assert sum(fresh_sim.stats.token_requests.values()) == 0


def test_a_user_token_with_scopes_and_roles_is_served_as_that_user(
    api: requests.Session, base_url: str, fresh_sim: Simulator, fresh_runtime: None
) -> None:
    oid = str(uuid.uuid4())
    token = fresh_sim.user_token(oid=oid, roles=["Agreements.Read"])
    assert agreements(api, base_url, token).status_code == 200
    assert [r.subject for r in fresh_sim.stats.api_requests] == [(fresh_sim.tenant_id, oid)]
    assert fresh_sim.stats.token_requests["refresh_token"] == 0


@pytest.mark.parametrize("idtyp", [True, False], ids=["idtyp-app", "no-idtyp"])
def test_app_only_tokens_are_served_as_the_service_user(
    api: requests.Session, base_url: str, fresh_sim: Simulator, fresh_runtime: None, idtyp: bool
) -> None:
    token = fresh_sim.app_token(idtyp=idtyp)
    assert agreements(api, base_url, token).status_code == 200
    assert fresh_sim.stats.token_requests["refresh_token"] == 1
    assert fresh_sim.stats.token_requests["on_behalf_of"] == 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"roles": ["Agreements.Read"]},
        {"nonce": "8f1c6a0e-sign-in-nonce"},
        {},
    ],
    ids=["with-roles", "with-nonce", "plain"],
)
def test_id_tokens_are_401_and_partner_center_is_not_called(
    api: requests.Session, base_url: str, fresh_sim: Simulator, kwargs: dict[str, object]
) -> None:
    token = fresh_sim.id_token(**kwargs)  # type: ignore[arg-type]
    body = assert_problem(agreements(api, base_url, token), 401)
    assert "ID token" in body["detail"]
    assert fresh_sim.stats.api_requests == []
    assert sum(fresh_sim.stats.token_requests.values()) == 0


def test_an_audience_list_is_401(
    api: requests.Session, base_url: str, fresh_sim: Simulator
) -> None:
    for audience in (
        [fresh_sim.client_id],
        [f"api://{fresh_sim.client_id}", "https://graph.microsoft.com"],
    ):
        token = fresh_sim.user_token(extra_claims={"aud": audience})
        response = agreements(api, base_url, token)
        body = assert_problem(response, 401)
        assert "audience" in body["detail"]
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert fresh_sim.stats.api_requests == []
    assert sum(fresh_sim.stats.token_requests.values()) == 0  # refused before any exchange


# --- 2. one Partner Center token per caller token ---------------------------------------------


def test_a_password_only_sign_in_never_gets_an_mfa_sign_ins_token(
    api: requests.Session, base_url: str, fresh_sim: Simulator, fresh_runtime: None
) -> None:
    oid = str(uuid.uuid4())
    strong = fresh_sim.user_token(oid=oid, mfa=True)
    weak = fresh_sim.user_token(oid=oid, mfa=False)
    assert agreements(api, base_url, strong).status_code == 200
    assert agreements(api, base_url, strong).status_code == 200  # cached for this token
    assert fresh_sim.stats.token_requests["on_behalf_of"] == 1

    # The weaker sign-in is exchanged on its own, so Entra ID and Partner Center judge it: the
    # simulated Partner Center, like the real one, refuses App+User tokens without MFA...
    response = agreements(api, base_url, weak)
    assert response.status_code != 200, response.text
    assert fresh_sim.stats.token_requests["on_behalf_of"] == 2
    assert "multi-factor authentication" in response.json()["detail"]

    # ...and a Conditional Access policy demanding MFA is evaluated for it at the exchange.
    fresh_sim.require_mfa = True
    response = agreements(api, base_url, fresh_sim.user_token(oid=oid, mfa=False))
    body = assert_problem(response, 401)
    assert body["entraCode"] == "AADSTS50076"
    assert response.headers["WWW-Authenticate"].startswith('Bearer error="insufficient_claims"')
    assert agreements(api, base_url, strong).status_code == 200  # still its own cached token
    assert fresh_sim.stats.token_requests["on_behalf_of"] == 3


def test_each_caller_token_of_a_user_gets_its_own_exchange(
    api: requests.Session, base_url: str, fresh_sim: Simulator, fresh_runtime: None
) -> None:
    oid = str(uuid.uuid4())
    first, second = fresh_sim.user_token(oid=oid), fresh_sim.user_token(oid=oid)
    for token in (first, second, first, second):
        assert agreements(api, base_url, token).status_code == 200
    assert fresh_sim.stats.token_requests["on_behalf_of"] == 2


# --- 3. the cached relationship link serves only the credentials it was fetched with ---------


def test_a_cached_link_is_not_handed_to_a_caller_partner_center_refuses(
    api: requests.Session, base_url: str, fresh_sim: Simulator, fresh_runtime: None
) -> None:
    admin, clerk = fresh_sim.user_token(), fresh_sim.user_token(name="Clerk Without Role")
    assert relationship(api, base_url, admin).status_code == 200
    assert relationship(api, base_url, admin).status_code == 200  # the admin's cached link
    assert len(fresh_sim.stats.api_requests) == 1

    fresh_sim.faults.add(
        Fault.partner_center_error(
            403, "2001", "User does not have the required role.", path=RELATIONSHIP
        )
    )
    response = relationship(api, base_url, clerk)
    assert_problem(response, 403)
    assert len(fresh_sim.stats.api_requests) == 2, "the clerk got the admin's cached link"


def test_app_callers_share_the_service_users_cached_link(
    api: requests.Session, base_url: str, fresh_sim: Simulator, fresh_runtime: None
) -> None:
    for token in (fresh_sim.app_token(), fresh_sim.app_token(app_id=OTHER_APP_ID)):
        assert relationship(api, base_url, token).status_code == 200
    assert len(fresh_sim.stats.api_requests) == 1  # both were served as the same service user


# --- 6. ALLOWED_CLIENT_APP_IDS -----------------------------------------------------------------


@pytest.fixture
def only_caller_app(fresh_sim: Simulator, service_env: dict[str, str]) -> Iterator[None]:
    """The gateway with ALLOWED_CLIENT_APP_IDS set to the simulator's caller app."""
    environ = sim_environ(
        fresh_sim,
        PARTNER_CENTER_REFRESH_TOKEN=service_env["PARTNER_CENTER_REFRESH_TOKEN"],
        ALLOWED_CLIENT_APP_IDS=f" {CALLER_APP_ID.upper()} ,",
    )
    set_runtime(Runtime.from_settings(Settings.from_environ(environ)))
    yield
    set_runtime(None)


def test_only_the_allowed_client_apps_may_call(
    api: requests.Session, base_url: str, fresh_sim: Simulator, only_caller_app: None
) -> None:
    assert agreements(api, base_url, fresh_sim.user_token()).status_code == 200
    assert agreements(api, base_url, fresh_sim.app_token()).status_code == 200
    calls = len(fresh_sim.stats.api_requests)
    for token in (
        fresh_sim.user_token(client_app_id=OTHER_APP_ID),
        fresh_sim.app_token(app_id=OTHER_APP_ID),
        fresh_sim.user_token(extra_claims={"azp": None, "appid": OTHER_APP_ID, "ver": "1.0"}),
    ):
        body = assert_problem(agreements(api, base_url, token), 403)
        assert "not allowed" in body["detail"]
    assert len(fresh_sim.stats.api_requests) == calls


def test_any_app_of_the_tenant_may_call_by_default_and_health_says_so(
    api: requests.Session,
    base_url: str,
    fresh_sim: Simulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token = fresh_sim.user_token(client_app_id=OTHER_APP_ID)
    assert agreements(api, base_url, token).status_code == 200
    assert api.get(f"{base_url}/health").json()["anyClientApp"] is True
    monkeypatch.setenv("ALLOWED_CLIENT_APP_IDS", CALLER_APP_ID)
    assert api.get(f"{base_url}/health").json()["anyClientApp"] is False
    monkeypatch.setenv("ALLOWED_CLIENT_APP_IDS", "not-a-client-id")
    body = api.get(f"{base_url}/health").json()
    assert body["configured"] is False and "ALLOWED_CLIENT_APP_IDS" in body["problem"]


# --- 5. upstream text reaches callers bounded and redacted -------------------------------------


def test_a_non_latin_1_entra_message_still_gets_an_answer_with_a_valid_header(
    api: requests.Session, base_url: str, fresh_sim: Simulator, fresh_runtime: None
) -> None:
    # Before: http.server could not encode the header, and the local host sent nothing at all.
    fresh_sim.faults.add(
        Fault.aad_error(
            "invalid_grant",
            50013,
            "Assertion failed signature validation. ✓ 署名の検証に失敗しました — “réessayez”",
        )
    )
    response = agreements(api, base_url, fresh_sim.user_token())
    body = assert_problem(response, 401)
    header = response.headers["WWW-Authenticate"]
    assert header.isascii() and header.startswith('Bearer error="invalid_token"')
    assert "Assertion failed signature validation" in header
    assert "署名" in body["detail"]  # the JSON body keeps the text as Entra wrote it


def test_tokens_in_partner_center_descriptions_are_redacted_and_bounded(
    api: requests.Session, base_url: str, fresh_sim: Simulator
) -> None:
    leaked = fresh_sim.user_token(name="Somebody Else")
    description = f"Customer was not found. Request carried {leaked} " + "padding " * 80
    fresh_sim.faults.add(Fault.partner_center_error(404, "600039", description[:500]))
    response = agreements(api, base_url, fresh_sim.user_token())
    body = assert_problem(response, 404)
    assert "Customer was not found" in body["detail"]
    # Partner Center's 500-character limit cut the token: its header and claims are still hidden.
    assert leaked[:60] not in response.text
    assert "[redacted-jwt]" in body["detail"]
    assert len(body["detail"]) <= 301
