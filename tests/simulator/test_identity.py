"""The identity provider through the real MSAL confidential client."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import msal
import pytest
import requests

from simulator import Simulator
from tests.simulator.conftest import PC_DEFAULT_SCOPE, PC_RESOURCE, PC_SCOPE

AppFactory = Callable[..., msal.ConfidentialClientApplication]


def _claims(token: str) -> dict[str, object]:
    claims: dict[str, object] = jwt.decode(token, options={"verify_signature": False})
    return claims


def test_discovery_document_and_jwks_validate_issued_tokens(
    sim: Simulator, http: requests.Session
) -> None:
    base = f"{sim.authority_host}/{sim.tenant_id}"
    config = http.get(f"{base}/v2.0/.well-known/openid-configuration").json()
    assert config["issuer"] == f"{base}/v2.0"
    assert config["token_endpoint"] == f"{base}/oauth2/v2.0/token"
    assert config["jwks_uri"] == f"{base}/discovery/v2.0/keys"
    assert config["id_token_signing_alg_values_supported"] == ["RS256"]

    token = sim.user_token()
    context = ssl.create_default_context(cafile=sim.ca_bundle)
    key = jwt.PyJWKClient(config["jwks_uri"], ssl_context=context).get_signing_key_from_jwt(token)
    claims = jwt.decode(token, key.key, algorithms=["RS256"], audience=sim.client_id)
    assert claims["iss"] == config["issuer"]
    assert claims["amr"] == ["pwd", "mfa"]
    assert claims["idtyp"] == "user"
    assert claims["scp"] == "RelationshipRequest.Read Agreements.Read Events.Subscribe"


def test_unknown_tenant_fails_discovery(sim: Simulator) -> None:
    with pytest.raises(ValueError, match="Unable to get authority configuration"):
        msal.ConfidentialClientApplication(
            sim.client_id,
            client_credential=sim.client_secret,
            authority=f"{sim.authority_host}/contoso.example",
            instance_discovery=False,
        )


def test_client_credentials_give_an_app_only_token(sim: Simulator, make_app: AppFactory) -> None:
    result = make_app().acquire_token_for_client([PC_DEFAULT_SCOPE])
    claims = _claims(result["access_token"])
    assert claims["aud"] == PC_RESOURCE
    assert claims["idtyp"] == "app"
    assert "scp" not in claims
    assert sim.stats.token_requests["client_credentials"] == 1


def test_bad_secret_is_invalid_client(make_app: AppFactory) -> None:
    result = make_app("not-the-secret").acquire_token_for_client([PC_DEFAULT_SCOPE])
    assert result["error"] == "invalid_client"
    assert result["error_description"].startswith("AADSTS7000215: ")
    assert result["error_codes"] == [7000215]
    assert {"timestamp", "trace_id", "correlation_id"} <= set(result)


def test_unknown_client_id_is_refused(sim: Simulator) -> None:
    app = msal.ConfidentialClientApplication(
        "00000000-0000-0000-0000-000000000001",
        client_credential=sim.client_secret,
        authority=f"{sim.authority_host}/{sim.tenant_id}",
        instance_discovery=False,
    )
    result = app.acquire_token_for_client([PC_DEFAULT_SCOPE])
    assert result["error"] == "unauthorized_client"
    assert result["error_codes"] == [700016]


def test_certificate_credential_with_thumbprint(sim: Simulator, make_app: AppFactory) -> None:
    pem = Path(sim.client_certificate_path).read_text()
    app = make_app({"private_key": pem, "thumbprint": sim.client_certificate_thumbprint})
    assert "access_token" in app.acquire_token_for_client([PC_DEFAULT_SCOPE])


def test_certificate_credential_with_public_certificate(
    sim: Simulator, make_app: AppFactory
) -> None:
    pem = Path(sim.client_certificate_path).read_text()
    app = make_app({"private_key": pem, "public_certificate": pem})  # PS256 with x5t#S256
    assert "access_token" in app.acquire_token_for_client([PC_DEFAULT_SCOPE])


def test_wrong_certificate_is_invalid_client(stranger: Simulator, make_app: AppFactory) -> None:
    pem = Path(stranger.client_certificate_path).read_text()
    app = make_app({"private_key": pem, "thumbprint": stranger.client_certificate_thumbprint})
    result = app.acquire_token_for_client([PC_DEFAULT_SCOPE])
    assert result["error"] == "invalid_client"
    assert result["error_codes"] == [700027]


def test_federated_credential(sim: Simulator, make_app: AppFactory) -> None:
    app = make_app({"client_assertion": sim.federated_assertion})  # a callable, as with MSI
    assert "access_token" in app.acquire_token_for_client([PC_DEFAULT_SCOPE])


def test_federated_assertion_of_another_identity_is_refused(
    sim: Simulator, make_app: AppFactory
) -> None:
    foreign = sim.tokens.federated_assertion("11111111-2222-3333-4444-555555555555")
    app = make_app({"client_assertion": lambda: foreign})
    result = app.acquire_token_for_client([PC_DEFAULT_SCOPE])
    assert result["error"] == "invalid_client"
    assert result["error_codes"] == [700213]


def test_on_behalf_of_keeps_the_user(sim: Simulator, make_app: AppFactory) -> None:
    oid = "2f0e9c1a-0000-4000-8000-000000000042"
    assertion = sim.user_token(oid=oid, name="Megan Bowen", mfa=True)
    result = make_app().acquire_token_on_behalf_of(assertion, [PC_SCOPE])
    claims = _claims(result["access_token"])
    original = _claims(assertion)
    assert claims["aud"] == PC_RESOURCE
    assert claims["scp"] == "user_impersonation"
    for name in ("oid", "tid", "sub", "name", "preferred_username", "amr"):
        assert claims[name] == original[name], name
    assert claims["oid"] == oid
    assert result["id_token_claims"]["oid"] == oid
    assert sim.stats.token_requests["on_behalf_of"] == 1


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"expires_in": -60}, 500133),
        ({"audience": "api://someone-else"}, 50013),
    ],
)
def test_on_behalf_of_refuses_bad_assertions(
    sim: Simulator, make_app: AppFactory, kwargs: dict[str, Any], code: int
) -> None:
    result = make_app().acquire_token_on_behalf_of(sim.user_token(**kwargs), [PC_SCOPE])
    assert result["error"] == "invalid_grant"
    assert result["error_codes"] == [code]


def test_on_behalf_of_refuses_an_app_token(sim: Simulator, make_app: AppFactory) -> None:
    result = make_app().acquire_token_on_behalf_of(sim.app_token(), [PC_SCOPE])
    assert result["error"] == "invalid_grant"


def test_refresh_token_then_silent(sim: Simulator, make_app: AppFactory) -> None:
    oid = "7d3c2b1a-0000-4000-8000-000000000007"
    app = make_app()
    result = app.acquire_token_by_refresh_token(sim.refresh_token_for(oid=oid), [PC_SCOPE])
    assert _claims(result["access_token"])["oid"] == oid
    accounts = app.get_accounts()
    assert [a["local_account_id"] for a in accounts] == [oid]
    silent = app.acquire_token_silent([PC_SCOPE], account=accounts[0])
    assert silent is not None
    assert silent["token_source"] == "cache"
    assert sim.stats.token_requests["refresh_token"] == 1


def test_refresh_returns_a_new_token_and_the_old_one_stays_valid(
    sim: Simulator, make_app: AppFactory
) -> None:
    app = make_app()
    old = sim.refresh_token_for()
    first = app.acquire_token_by_refresh_token(old, [PC_SCOPE])
    assert first["refresh_token"] != old
    assert "access_token" in app.acquire_token_by_refresh_token(old, [PC_SCOPE])
    assert "access_token" in app.acquire_token_by_refresh_token(first["refresh_token"], [PC_SCOPE])


def test_expired_and_unknown_refresh_tokens_are_refused(
    sim: Simulator, make_app: AppFactory
) -> None:
    for token in (sim.refresh_token_for(expired=True), "0.Asim.never-issued"):
        result = make_app().acquire_token_by_refresh_token(token, [PC_SCOPE])
        assert result["error"] == "invalid_grant"
        assert result["error_codes"] == [700082]
        assert "expired due to inactivity" in result["error_description"]


def test_mfa_less_refresh_token_gives_an_mfa_less_token(
    sim: Simulator, make_app: AppFactory
) -> None:
    result = make_app().acquire_token_by_refresh_token(sim.refresh_token_for(mfa=False), [PC_SCOPE])
    assert _claims(result["access_token"])["amr"] == ["pwd"]


def test_rotation_publishes_new_and_old_keys(sim: Simulator, http: requests.Session) -> None:
    jwks_uri = f"{sim.authority_host}/{sim.tenant_id}/discovery/v2.0/keys"
    before = jwt.get_unverified_header(sim.user_token())["kid"]
    sim.rotate_signing_key()
    after = jwt.get_unverified_header(sim.user_token())["kid"]
    kids = [key["kid"] for key in http.get(jwks_uri).json()["keys"]]
    assert after != before
    assert kids == [after, before]
    key = http.get(jwks_uri).json()["keys"][0]
    assert {"kid", "kty", "n", "e", "use", "alg", "x5t"} <= set(key)
    assert (key["use"], key["alg"]) == ("sig", "RS256")


def test_the_caller_tokens_an_attacker_or_a_careless_admin_can_produce(sim: Simulator) -> None:
    """User tokens with app roles, other client apps, password-only sign-ins, ID tokens and app
    tokens with or without ``idtyp``: each as Entra ID would issue it."""
    with_roles = _claims(sim.user_token(scopes=(), roles=["Agreements.Read"]))
    assert with_roles["roles"] == ["Agreements.Read"] and "scp" not in with_roles
    assert with_roles["idtyp"] == "user" and with_roles["oid"] != with_roles["sub"]

    other_app = "0bad0a11-5e7d-4c1a-9f2e-6d3c2b1a0f9e"
    assert _claims(sim.user_token(client_app_id=other_app))["azp"] == other_app
    assert _claims(sim.user_token(client_app_id=other_app))["appid"] == other_app
    assert _claims(sim.user_token(mfa=False))["amr"] == ["pwd"]

    id_token = _claims(sim.id_token(roles=["Agreements.Read"], nonce="n-1"))
    assert id_token["aud"] == sim.client_id
    assert id_token["roles"] == ["Agreements.Read"] and id_token["nonce"] == "n-1"
    assert not {"azp", "appid", "scp", "idtyp"} & set(id_token)

    app = _claims(sim.app_token())
    assert app["idtyp"] == "app" and app["oid"] == app["sub"] and "scp" not in app
    assert "idtyp" not in _claims(sim.app_token(idtyp=False))


def test_conditional_access_refuses_the_exchange_of_a_password_only_sign_in(
    sim: Simulator, make_app: AppFactory
) -> None:
    sim.require_mfa = True
    try:
        weak = make_app().acquire_token_on_behalf_of(sim.user_token(mfa=False), [PC_SCOPE])
        strong = make_app().acquire_token_on_behalf_of(sim.user_token(mfa=True), [PC_SCOPE])
    finally:
        sim.require_mfa = False
    assert weak["error"] == "invalid_grant" and 50076 in weak["error_codes"]
    assert "access_token" in strong
