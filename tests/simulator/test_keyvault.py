"""The simulator's Key Vault (secrets API) and its authorization-code flow, over TLS."""

from __future__ import annotations

import base64
import hashlib
import logging
import secrets
from collections.abc import Iterator
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.identity import ClientSecretCredential
from azure.keyvault.secrets import SecretClient

from simulator import Fault, Simulator

SECRET = "partner-center-refresh-token"
API = {"api-version": "7.5"}


@pytest.fixture
def vault(sim: Simulator) -> Iterator[Simulator]:
    sim.keyvault.clear()
    yield sim
    sim.keyvault.clear()


def _app_token(sim: Simulator, audience: str = "https://vault.azure.net") -> str:
    return sim.tokens.app_access_token(app_id=sim.client_id, audience=audience)


def _secrets(sim: Simulator) -> SecretClient:
    credential = ClientSecretCredential(
        sim.tenant_id,
        sim.client_id,
        sim.client_secret,
        authority=sim.authority_host,
        disable_instance_discovery=True,
    )
    return SecretClient(
        sim.key_vault_url, credential, verify_challenge_resource=False, retry_backoff_factor=0.1
    )


def test_an_unauthenticated_request_gets_the_challenge(
    vault: Simulator, http: requests.Session
) -> None:
    answer = http.get(f"{vault.key_vault_url}/secrets/{SECRET}", params=API, timeout=10)
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"] == (
        f'Bearer authorization="{vault.authority_host}/{vault.tenant_id}", '
        'resource="https://vault.azure.net"'
    )


def test_a_token_for_another_resource_is_refused(vault: Simulator, http: requests.Session) -> None:
    answer = http.get(
        f"{vault.key_vault_url}/secrets/{SECRET}",
        params=API,
        headers={"Authorization": f"Bearer {_app_token(vault, 'https://graph.microsoft.com')}"},
        timeout=10,
    )
    assert answer.status_code == 401


def test_api_version_is_required(vault: Simulator, http: requests.Session) -> None:
    answer = http.get(
        f"{vault.key_vault_url}/secrets/{SECRET}",
        headers={"Authorization": f"Bearer {_app_token(vault)}"},
        timeout=10,
    )
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "BadParameter"


def test_versions_expiry_and_tags_through_the_sdk(vault: Simulator) -> None:
    client = _secrets(vault)
    with pytest.raises(ResourceNotFoundError):
        client.get_secret(SECRET)
    first = client.set_secret(SECRET, "one", tags={"consentedBy": "x"})
    expires = vault.clock.now().replace(microsecond=0)
    second = client.set_secret(SECRET, "two", expires_on=expires)
    latest = client.get_secret(SECRET)
    assert (latest.value, latest.properties.version) == ("two", second.properties.version)
    assert latest.properties.expires_on == expires
    assert client.get_secret(SECRET, first.properties.version).properties.tags == {
        "consentedBy": "x"
    }
    listed = [p.version for p in client.list_properties_of_secret_versions(SECRET)]
    assert listed == [first.properties.version, second.properties.version]


def test_a_caller_without_the_role_is_refused(vault: Simulator) -> None:
    with pytest.raises(HttpResponseError) as caught:
        _secrets(vault).set_secret("another-secret", "value")
    assert caught.value.status_code == 403
    assert "ForbiddenByRbac" in str(caught.value)


def test_throttling_and_outages_are_retried_by_the_sdk(vault: Simulator) -> None:
    client = _secrets(vault)
    client.set_secret(SECRET, "value")
    vault.faults.add(
        Fault(target="keyvault", status=429, headers={"Retry-After": "1"}),
        Fault(target="keyvault", status=503),
    )
    assert client.get_secret(SECRET).value == "value"
    assert [status for _, _, status in vault.keyvault.requests[-3:]] == [429, 503, 200]


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _authorize(sim: Simulator, http: requests.Session, **extra: str) -> dict[str, list[str]]:
    params = {
        "client_id": sim.client_id,
        "response_type": "code",
        "redirect_uri": "http://localhost:8400",
        "scope": "https://api.partnercenter.microsoft.com/user_impersonation offline_access openid",
        "state": "s1",
        **extra,
    }
    answer = http.get(
        f"{sim.authority_host}/{sim.tenant_id}/oauth2/v2.0/authorize?{urlencode(params)}",
        allow_redirects=False,
        timeout=10,
    )
    assert answer.status_code == 302
    location = urlsplit(answer.headers["Location"])
    assert f"{location.scheme}://{location.netloc}" == "http://localhost:8400"
    return parse_qs(location.query)


def _redeem(sim: Simulator, http: requests.Session, code: str, verifier: str) -> requests.Response:
    return http.post(
        f"{sim.authority_host}/{sim.tenant_id}/oauth2/v2.0/token",
        data={
            "grant_type": "authorization_code",
            "client_id": sim.client_id,
            "client_secret": sim.client_secret,
            "code": code,
            "code_verifier": verifier,
            "redirect_uri": "http://localhost:8400",
            "scope": "https://api.partnercenter.microsoft.com/user_impersonation offline_access openid",
        },
        timeout=10,
    )


def test_the_code_flow_checks_pkce_and_redeems_a_code_once(
    sim: Simulator, http: requests.Session
) -> None:
    verifier = secrets.token_urlsafe(48)
    query = _authorize(sim, http, code_challenge=_s256(verifier), code_challenge_method="S256")
    assert query["state"] == ["s1"]
    code = query["code"][0]
    wrong = _redeem(sim, http, code, "not-the-verifier-" + verifier)
    assert wrong.status_code == 400 and "AADSTS501481" in wrong.json()["error_description"]
    again = _redeem(sim, http, code, verifier)
    assert again.status_code == 400 and "AADSTS54005" in again.json()["error_description"]
    query = _authorize(sim, http, code_challenge=_s256(verifier), code_challenge_method="S256")
    good = _redeem(sim, http, query["code"][0], verifier)
    assert good.status_code == 200
    assert {"access_token", "refresh_token", "id_token"} <= good.json().keys()


def test_the_code_flow_requires_pkce(sim: Simulator, http: requests.Session) -> None:
    query = _authorize(sim, http)
    assert query["error"] == ["invalid_request"]
    assert "code" not in query


def test_refresh_tokens_die_90_days_after_issue_on_the_simulator_clock() -> None:
    sim = Simulator()
    token = sim.refresh_token_for()
    sim.clock.advance(days=89)
    renewed = sim.refresh_token_for()
    assert sim.tokens.redeem(token) is not None
    sim.clock.advance(days=2)
    assert sim.tokens.redeem(token) is None
    assert sim.tokens.redeem(renewed) is not None
    with pytest.raises(ValueError, match="only moves forward"):
        sim.clock.advance(days=-1)


def test_the_apps_logging_keeps_the_sdks_per_request_lines_out(
    vault: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    """With the app's logging, a Key Vault read through azure-identity logs no URL-and-headers
    line per request (the SDK's HTTP logging policy) and no "token acquired" line."""
    from gateway.logs import QUIET_LOGGERS, configure_logging  # noqa: PLC0415

    levels = {name: logging.getLogger(name).level for name in QUIET_LOGGERS}
    configure_logging()
    try:
        client = _secrets(vault)
        client.set_secret(SECRET, "value")
        with caplog.at_level(logging.INFO):
            assert client.get_secret(SECRET).value == "value"
        noisy = [r for r in caplog.records if r.name.startswith(QUIET_LOGGERS)]
        assert noisy == []
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
