"""Statistics: what was asked, by whom, over how many connections."""

from __future__ import annotations

from collections.abc import Callable

import jwt
import msal
import requests

from simulator import CUSTOMER_MCA, ApiRequest, Simulator
from tests.simulator.conftest import PC_DEFAULT_SCOPE


def test_api_request_is_recorded_with_subject_and_redaction(
    sim: Simulator, http: requests.Session, pc_token: str
) -> None:
    path = f"/v1/customers/{CUSTOMER_MCA}/agreements"
    http.get(
        sim.partner_center_url + path,
        params={"agreementType": "MicrosoftCustomerAgreement"},
        headers={"Authorization": f"Bearer {pc_token}", "MS-RequestId": "r-1"},
    )
    claims = jwt.decode(pc_token, options={"verify_signature": False})
    [request] = sim.stats.api_requests
    assert isinstance(request, ApiRequest)
    assert (request.method, request.path, request.status) == ("GET", path, 200)
    assert request.query == {"agreementType": ["MicrosoftCustomerAgreement"]}
    assert request.headers["authorization"] == "Bearer <redacted>"
    assert request.headers["ms-requestid"] == "r-1"
    assert request.subject == (claims["tid"], claims["oid"])
    assert request.scopes == "user_impersonation"
    assert sim.stats.api_calls == {path: 1}
    assert pc_token not in str(sim.stats.as_dict())


def test_keep_alive_reuses_one_connection(
    sim: Simulator, http: requests.Session, pc_token: str
) -> None:
    url = f"{sim.partner_center_url}/v1/customers/relationshiprequests"
    for _ in range(5):
        response = http.get(url, headers={"Authorization": f"Bearer {pc_token}"})
        assert response.status_code == 200
        assert response.headers.get("Connection", "").lower() != "close"
    assert sim.stats.connections["api"] == 1
    with requests.Session() as other:
        other.verify = sim.ca_bundle
        other.get(url, headers={"Authorization": f"Bearer {pc_token}"})
    assert sim.stats.connections["api"] == 2


def test_token_requests_and_identity_connections(
    sim: Simulator, make_app: Callable[..., msal.ConfidentialClientApplication]
) -> None:
    app = make_app()  # discovery: one connection, reused for the token requests
    for _ in range(3):
        app.acquire_token_for_client([PC_DEFAULT_SCOPE])  # MSAL caches: one request
        app.acquire_token_by_refresh_token(sim.refresh_token_for(), [PC_DEFAULT_SCOPE])
    assert sim.stats.token_requests == {
        "client_credentials": 1,
        "on_behalf_of": 0,
        "refresh_token": 3,
    }
    assert sim.stats.connections["identity"] == 1


def test_reset_zeroes_everything(sim: Simulator, http: requests.Session, pc_token: str) -> None:
    http.get(
        f"{sim.partner_center_url}/v1/customers/relationshiprequests",
        headers={"Authorization": f"Bearer {pc_token}"},
    )
    assert sim.stats.api_requests
    sim.reset()
    assert sim.stats.as_dict() == {
        "token_requests": {"client_credentials": 0, "on_behalf_of": 0, "refresh_token": 0},
        "api_calls": {},
        "api_requests": [],
        "connections": {"identity": 0, "api": 0},
    }
