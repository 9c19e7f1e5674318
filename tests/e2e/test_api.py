"""Every route and every error of the HTTP API, over real HTTP, real MSAL and the simulator."""

from __future__ import annotations

import base64
import json
import logging
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from gateway.runtime import Runtime, set_runtime
from partnercenter import Settings
from simulator import (
    CUSTOMER_MCA,
    CUSTOMER_NEW_TYPE,
    CUSTOMER_NO_AGREEMENTS,
    CUSTOMER_UNKNOWN,
    Fault,
    Simulator,
)

from ..conftest import sim_environ

PROBLEM = "application/problem+json"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_problem(response: requests.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith(PROBLEM)
    body = response.json()
    assert body["status"] == status
    assert body["type"].startswith("urn:partnercenter-gateway:problem:")
    assert body["title"] and body["detail"]
    assert body["correlationId"] == response.headers["x-correlation-id"]
    assert "Traceback" not in response.text
    return body


# --- the routes -------------------------------------------------------------------------


def test_relationship_request(api: requests.Session, base_url: str, fresh_sim: Simulator) -> None:
    response = api.get(f"{base_url}/relationship-request", headers=bearer(fresh_sim.user_token()))
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json() == {"url": response.json()["url"]}
    assert fresh_sim.partner_id in response.json()["url"]


def test_agreements_of_one_type(api: requests.Session, base_url: str, fresh_sim: Simulator) -> None:
    response = api.get(
        f"{base_url}/customers/{CUSTOMER_MCA}/agreements",
        params={"type": "MicrosoftCustomerAgreement"},
        headers=bearer(fresh_sim.user_token()),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["customerId"] == CUSTOMER_MCA
    assert body["count"] == 2 == len(body["agreements"])
    first = body["agreements"][0]
    assert first["type"] == "MicrosoftCustomerAgreement"
    assert first["dateAgreed"] == "2019-08-26T00:00:00Z"
    assert set(first) == {"type", "dateAgreed", "templateId", "agreementLink", "primaryContact"}
    assert set(first["primaryContact"]) == {"firstName", "lastName", "email", "phoneNumber"}
    assert fresh_sim.stats.api_requests[-1].query["agreementType"] == ["MicrosoftCustomerAgreement"]


def test_agreements_default_to_all(
    api: requests.Session, base_url: str, fresh_sim: Simulator
) -> None:
    response = api.get(
        f"{base_url}/customers/{CUSTOMER_MCA}/agreements", headers=bearer(fresh_sim.user_token())
    )
    assert response.status_code == 200
    types = {a["type"] for a in response.json()["agreements"]}
    assert types == {"MicrosoftCustomerAgreement", "MicrosoftCloudAgreement"}
    assert fresh_sim.stats.api_requests[-1].query["agreementType"] == ["*"]


def test_no_agreements_is_an_empty_list(
    api: requests.Session, base_url: str, fresh_sim: Simulator
) -> None:
    response = api.get(
        f"{base_url}/customers/{CUSTOMER_NO_AGREEMENTS}/agreements?type=all",
        headers=bearer(fresh_sim.user_token()),
    )
    assert response.status_code == 200
    assert response.json() == {"customerId": CUSTOMER_NO_AGREEMENTS, "count": 0, "agreements": []}


def test_new_agreement_types_are_served(
    api: requests.Session, base_url: str, fresh_sim: Simulator
) -> None:
    response = api.get(
        f"{base_url}/customers/{CUSTOMER_NEW_TYPE}/agreements",
        headers=bearer(fresh_sim.user_token()),
    )
    assert response.status_code == 200
    assert len({a["type"] for a in response.json()["agreements"]}) >= 2


def test_health_needs_no_token_and_calls_nothing(
    api: requests.Session, base_url: str, fresh_sim: Simulator, service_env: dict[str, str]
) -> None:
    response = api.get(f"{base_url}/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["configured"] is True
    assert body["credential"] == "secret" and body["serviceUser"] is True
    for secret in (service_env["AZURE_CLIENT_SECRET"], service_env["PARTNER_CENTER_REFRESH_TOKEN"]):
        assert secret not in response.text
    assert fresh_sim.stats.api_requests == []
    assert sum(fresh_sim.stats.token_requests.values()) == 0


def test_health_says_what_is_missing(
    api: requests.Session, base_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AZURE_CLIENT_ID")
    body = api.get(f"{base_url}/health").json()
    assert body["configured"] is False
    assert "AZURE_CLIENT_ID" in body["problem"]


def test_correlation_id_is_kept_and_sent_upstream(
    api: requests.Session, base_url: str, fresh_sim: Simulator
) -> None:
    correlation = str(uuid.uuid4())
    response = api.get(
        f"{base_url}/customers/{CUSTOMER_MCA}/agreements",
        headers={**bearer(fresh_sim.user_token()), "x-correlation-id": correlation},
    )
    assert response.headers["x-correlation-id"] == correlation
    assert fresh_sim.stats.api_requests[-1].headers["ms-correlationid"] == correlation


def test_a_new_correlation_id_when_none_is_sent(api: requests.Session, base_url: str) -> None:
    response = api.get(f"{base_url}/health")
    assert uuid.UUID(response.headers["x-correlation-id"])


# --- caller authentication ----------------------------------------------------------------


def _tampered(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["oid"] = str(uuid.uuid4())
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


def _alg_none(token: str) -> str:
    header, payload, _ = token.split(".")
    head = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    head["alg"] = "none"
    unsigned = base64.urlsafe_b64encode(json.dumps(head).encode()).rstrip(b"=").decode()
    return f"{unsigned}.{payload}."


@pytest.mark.parametrize(
    ("make_token", "reason"),
    [
        (lambda sim: None, "bearer token"),
        (lambda sim: "not-a-jwt", "not a JWT"),
        (lambda sim: sim.user_token(expires_in=-600), "expired"),
        (lambda sim: sim.user_token(audience="api://someone-else"), "audience"),
        (lambda sim: sim.user_token(issuer="https://login.example/evil/v2.0"), "issued"),
        (lambda sim: sim.user_token(tid=str(uuid.uuid4())), "issued"),
        (lambda sim: _tampered(sim.user_token()), "signature"),
        (lambda sim: _alg_none(sim.user_token()), "RS256"),
        (lambda sim: "x" * 20000, "too long"),
    ],
    ids=[
        "missing",
        "garbage",
        "expired",
        "audience",
        "issuer",
        "tenant",
        "tampered",
        "alg-none",
        "huge",
    ],
)
def test_bad_tokens_are_401(
    api: requests.Session, base_url: str, fresh_sim: Simulator, make_token, reason: str
) -> None:
    token = make_token(fresh_sim)
    headers = bearer(token) if token else {}
    response = api.get(f"{base_url}/customers/{CUSTOMER_MCA}/agreements", headers=headers)
    body = assert_problem(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert reason.lower() in body["detail"].lower()
    assert fresh_sim.stats.api_requests == []


def test_missing_permission_is_403(
    api: requests.Session, base_url: str, fresh_sim: Simulator
) -> None:
    token = fresh_sim.user_token(scopes=["Agreements.Read"])
    body = assert_problem(api.get(f"{base_url}/relationship-request", headers=bearer(token)), 403)
    assert "RelationshipRequest.Read" in body["detail"]
    app = fresh_sim.app_token(roles=["RelationshipRequest.Read"])
    body = assert_problem(
        api.get(f"{base_url}/customers/{CUSTOMER_MCA}/agreements", headers=bearer(app)), 403
    )
    assert "Agreements.Read" in body["detail"]


def test_app_token_uses_the_service_user(
    api: requests.Session, base_url: str, fresh_sim: Simulator, fresh_runtime: None
) -> None:
    app = fresh_sim.app_token()
    for _ in range(3):
        response = api.get(f"{base_url}/customers/{CUSTOMER_MCA}/agreements", headers=bearer(app))
        assert response.status_code == 200, response.text
    assert fresh_sim.stats.token_requests.get("refresh_token") == 1
    assert fresh_sim.stats.token_requests.get("on_behalf_of", 0) == 0


def test_app_token_without_service_user_is_403(
    api: requests.Session, base_url: str, fresh_sim: Simulator
) -> None:
    set_runtime(Runtime.from_settings(Settings.from_environ(sim_environ(fresh_sim))))
    try:
        response = api.get(
            f"{base_url}/customers/{CUSTOMER_MCA}/agreements", headers=bearer(fresh_sim.app_token())
        )
    finally:
        set_runtime(None)
    body = assert_problem(response, 403)
    assert "PARTNER_CENTER_REFRESH_TOKEN" in body["detail"]


# --- request validation -------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "customers/not-a-guid/agreements",
        f"customers/{CUSTOMER_MCA}/agreements?type=MicrosoftPartnerAgreement",
        f"customers/{CUSTOMER_MCA}/agreements?type=*",
        f"customers/{CUSTOMER_MCA}/agreements?tpye=all",
        f"customers/{CUSTOMER_MCA}/agreements?type=all&type=all",
        "relationship-request?indirectResellerId=123",
        f"relationship-request?indirectResellerId={CUSTOMER_MCA}&indirectResellerId={CUSTOMER_MCA}",
    ],
)
def test_bad_parameters_are_400(
    api: requests.Session, base_url: str, fresh_sim: Simulator, path: str
) -> None:
    response = api.get(f"{base_url}/{path}", headers=bearer(fresh_sim.user_token()))
    assert_problem(response, 400)
    assert fresh_sim.stats.api_requests == []


def test_bad_correlation_id_is_400(
    api: requests.Session, base_url: str, fresh_sim: Simulator
) -> None:
    response = api.get(
        f"{base_url}/relationship-request",
        headers={**bearer(fresh_sim.user_token()), "x-correlation-id": "'; DROP TABLE"},
    )
    body = assert_problem(response, 400)
    assert "x-correlation-id" in body["detail"]


def test_unknown_route_and_method(api: requests.Session, base_url: str) -> None:
    assert_problem(api.get(f"{base_url}/nothing-here"), 404)
    response = api.post(f"{base_url}/relationship-request", data=b"{}")
    assert_problem(response, 405)
    assert "GET" in response.headers["Allow"]


# --- upstream failures ----------------------------------------------------------------------


def test_unknown_customer_is_404(
    api: requests.Session, base_url: str, fresh_sim: Simulator
) -> None:
    response = api.get(
        f"{base_url}/customers/{CUSTOMER_UNKNOWN}/agreements",
        headers=bearer(fresh_sim.user_token()),
    )
    body = assert_problem(response, 404)
    assert body["partnerCenterCode"]
    assert (
        body["partnerCenterRequestId"] == fresh_sim.stats.api_requests[-1].headers["ms-requestid"]
    )


def test_throttled_past_the_deadline_is_429_with_retry_after(
    api: requests.Session, base_url: str, fresh_sim: Simulator
) -> None:
    fresh_sim.faults.add(Fault.throttled(90))
    response = api.get(
        f"{base_url}/customers/{CUSTOMER_MCA}/agreements", headers=bearer(fresh_sim.user_token())
    )
    body = assert_problem(response, 429)
    assert response.headers["Retry-After"] == "90"
    assert body["retryAfter"] == 90


def test_upstream_failure_is_502(
    api: requests.Session, base_url: str, fresh_sim: Simulator
) -> None:
    fresh_sim.faults.add(Fault(path="/v1/customers/", status=500, times=10))
    response = api.get(
        f"{base_url}/customers/{CUSTOMER_MCA}/agreements", headers=bearer(fresh_sim.user_token())
    )
    assert_problem(response, 502)


def test_not_implemented_upstream_is_not_retried(
    api: requests.Session, base_url: str, fresh_sim: Simulator
) -> None:
    fresh_sim.faults.add(Fault(path="/v1/customers/", status=501))
    response = api.get(
        f"{base_url}/customers/{CUSTOMER_MCA}/agreements", headers=bearer(fresh_sim.user_token())
    )
    assert_problem(response, 502)
    assert len(fresh_sim.stats.api_requests) == 1


def test_malformed_upstream_body_is_502(
    api: requests.Session, base_url: str, fresh_sim: Simulator
) -> None:
    fresh_sim.faults.add(Fault(path="/v1/customers/", body_kind="seed-example", status=200))
    response = api.get(
        f"{base_url}/customers/{CUSTOMER_MCA}/agreements", headers=bearer(fresh_sim.user_token())
    )
    assert_problem(response, 502)


def test_deadline_passed_is_504(api: requests.Session, base_url: str, fresh_sim: Simulator) -> None:
    env = sim_environ(fresh_sim, PARTNER_CENTER_DEADLINE_SECONDS="1.5")
    set_runtime(Runtime.from_settings(Settings.from_environ(env)))
    fresh_sim.faults.add(Fault(path="/v1/customers/", delay=4.0, times=3))
    try:
        response = api.get(
            f"{base_url}/customers/{CUSTOMER_MCA}/agreements",
            headers=bearer(fresh_sim.user_token()),
        )
    finally:
        set_runtime(None)
    assert_problem(response, 504)


def test_expired_service_user_consent_is_503_with_the_remedy(
    api: requests.Session, base_url: str, fresh_sim: Simulator
) -> None:
    env = sim_environ(
        fresh_sim, PARTNER_CENTER_REFRESH_TOKEN=fresh_sim.refresh_token_for(expired=True)
    )
    set_runtime(Runtime.from_settings(Settings.from_environ(env)))
    try:
        response = api.get(
            f"{base_url}/customers/{CUSTOMER_MCA}/agreements", headers=bearer(fresh_sim.app_token())
        )
    finally:
        set_runtime(None)
    body = assert_problem(response, 503)
    assert body["entraCode"] == "AADSTS700082"
    assert "consent" in body["detail"].lower()


# --- many users at once ---------------------------------------------------------------------


def test_many_users_at_once_never_share_a_token(
    api: requests.Session, base_url: str, fresh_sim: Simulator, fresh_runtime: None
) -> None:
    users = [str(uuid.uuid4()) for _ in range(16)]
    tokens = {oid: fresh_sim.user_token(oid=oid) for oid in users}
    jobs = [oid for oid in users for _ in range(6)]

    def call(oid: str) -> tuple[str, str]:
        correlation = str(uuid.uuid4())
        response = requests.get(
            f"{base_url}/customers/{CUSTOMER_MCA}/agreements",
            headers={**bearer(tokens[oid]), "x-correlation-id": correlation},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        return correlation, oid

    with ThreadPoolExecutor(24) as pool:
        expected = dict(pool.map(call, jobs))
    seen = {r.headers["ms-correlationid"]: r.subject for r in fresh_sim.stats.api_requests}
    for correlation, oid in expected.items():
        assert seen[correlation] == (fresh_sim.tenant_id, oid)
    assert fresh_sim.stats.token_requests["on_behalf_of"] == len(users)


# --- logs -----------------------------------------------------------------------------------


def test_logs_carry_the_correlation_id_and_no_secret(
    api: requests.Session,
    base_url: str,
    fresh_sim: Simulator,
    service_env: dict[str, str],
    caplog: pytest.LogCaptureFixture,
    fresh_runtime: None,
) -> None:
    caplog.set_level(logging.DEBUG)
    token = fresh_sim.user_token()
    correlation = str(uuid.uuid4())
    fresh_sim.faults.add(Fault(path="/v1/customers/", status=503))
    response = api.get(
        f"{base_url}/customers/{CUSTOMER_MCA}/agreements",
        headers={**bearer(token), "x-correlation-id": correlation},
    )
    assert response.status_code == 200
    api.get(f"{base_url}/relationship-request", headers=bearer(fresh_sim.app_token()))
    records = [r for r in caplog.records if r.name.startswith(("gateway", "partnercenter"))]
    mine = [r for r in records if getattr(r, "correlation_id", None) == correlation]
    assert any("partner center GET" in r.getMessage() for r in mine)
    assert any("-> 200" in r.getMessage() for r in mine)
    # Only the message text reaches Application Insights through the Functions host: it names
    # the request too, whatever the logger (MSAL's and urllib3's records of the call included).
    in_request = [r for r in caplog.records if correlation in str(r.__dict__)]
    assert {r.name for r in in_request} >= {"gateway", "partnercenter", "msal.telemetry"}
    for record in in_request:
        assert record.getMessage().endswith(f"correlationId={correlation}"), record.getMessage()
    secrets = [
        token,
        service_env["AZURE_CLIENT_SECRET"],
        service_env["PARTNER_CENTER_REFRESH_TOKEN"],
    ]
    for record in caplog.records:
        text = record.getMessage() + str(record.__dict__)
        for secret in secrets:
            assert secret not in text


def test_health_names_an_unresolved_refresh_token_reference(
    api: requests.Session, base_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "PARTNER_CENTER_REFRESH_TOKEN",
        "@Microsoft.KeyVault(SecretUri=https://kv.vault.azure.net/secrets/partner-center-refresh-token/)",
    )
    body = api.get(f"{base_url}/health").json()
    assert body["configured"] is True
    assert body["serviceUser"] is False
    assert "PARTNER_CENTER_REFRESH_TOKEN" in body["problem"]
