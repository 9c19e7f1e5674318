"""The Partner Center endpoints: authorization, the two operations and their errors."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
import requests

from simulator import (
    CUSTOMER_CLOUD_ONLY,
    CUSTOMER_MCA,
    CUSTOMER_NEW_TYPE,
    CUSTOMER_NO_AGREEMENTS,
    CUSTOMER_UNKNOWN,
    CUSTOMERS,
    Simulator,
)
from simulator.data import AGREEMENTS
from tests.simulator.conftest import PC_RESOURCE, PC_SCOPE


def _get(
    sim: Simulator, http: requests.Session, token: str, path: str, **headers: str
) -> requests.Response:
    return http.get(
        sim.partner_center_url + path, headers={"Authorization": f"Bearer {token}", **headers}
    )


def _agreements(
    sim: Simulator, http: requests.Session, token: str, customer: str, query: str = ""
) -> requests.Response:
    return _get(sim, http, token, f"/v1/customers/{customer}/agreements{query}")


def test_relationship_request_url(sim: Simulator, http: requests.Session, pc_token: str) -> None:
    response = _get(sim, http, pc_token, "/v1/customers/relationshiprequests")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert response.json() == {
        "url": "https://admin.microsoft.com/Adminportal/Home?invType=ResellerRelationship"
        f"&partnerId={sim.partner_id}&msppId=0&DAP=false#/BillingAccounts/partner-invitation",
        "attributes": {"objectType": "RelationshipRequest"},
    }


def test_relationship_request_reflects_the_indirect_provider(
    sim: Simulator, http: requests.Session, pc_token: str
) -> None:
    provider = str(uuid.uuid4())
    path = f"/v1/customers/relationshiprequests?indirectCloudSolutionProviderId={provider}"
    url = _get(sim, http, pc_token, path).json()["url"]
    assert f"&indirectCSPId={provider}&DAP=false#/BillingAccounts/partner-invitation" in url


@pytest.mark.parametrize("name", ["indirectResellerId", "indirectCloudSolutionProviderId"])
def test_relationship_request_refuses_a_bad_guid(
    sim: Simulator, http: requests.Session, pc_token: str, name: str
) -> None:
    response = _get(sim, http, pc_token, f"/v1/customers/relationshiprequests?{name}=nope")
    assert response.status_code == 400
    assert response.json()["source"] == "PartnerFD"


def test_default_agreement_type_is_the_cloud_agreement_trap(
    sim: Simulator, http: requests.Session, pc_token: str
) -> None:
    body = _agreements(sim, http, pc_token, CUSTOMER_MCA).json()
    assert [item["type"] for item in body["items"]] == ["MicrosoftCloudAgreement"]
    assert body["totalCount"] == 1


def test_mca_confirmations_of_the_seed_document(
    sim: Simulator, http: requests.Session, pc_token: str
) -> None:
    query = "?agreementType=MicrosoftCustomerAgreement"
    body = _agreements(sim, http, pc_token, CUSTOMER_MCA, query).json()
    assert body["totalCount"] == 2
    assert [item["dateAgreed"] for item in body["items"]] == [
        "2019-08-26T00:00:00",
        "2019-08-27T00:00:00",
    ]
    first = body["items"][0]
    assert first["primaryContact"] == {
        "firstName": "Tania",
        "lastName": "Carr",
        "email": "SomeEmail@example.com",
        "phoneNumber": "1234567890",
    }
    assert first["templateId"] == "aaaabbbb-0000-cccc-1111-dddd2222eeee"
    assert first["agreementLink"] == "https://aka.ms/customeragreement"
    assert first["attributes"] == {"objectType": "Agreement"}
    assert uuid.UUID(first["userId"])
    assert body["links"]["self"] == {
        "uri": f"/customers/{CUSTOMER_MCA}/agreements?agreementType=MicrosoftCustomerAgreement",
        "method": "GET",
        "headers": [],
    }
    assert body["attributes"] == {"objectType": "Collection"}


def test_star_returns_every_agreement_including_unknown_types(
    sim: Simulator, http: requests.Session, pc_token: str
) -> None:
    assert (
        _agreements(sim, http, pc_token, CUSTOMER_MCA, "?agreementType=*").json()["totalCount"] == 3
    )
    items = _agreements(sim, http, pc_token, CUSTOMER_NEW_TYPE, "?agreementType=*").json()["items"]
    assert [item["type"] for item in items] == [
        "MicrosoftCustomerAgreement",
        "MicrosoftPartnerAgreementV3",
    ]
    assert items[1]["versionRank"] == 3  # unknown extra fields come along


@pytest.mark.parametrize(
    ("customer", "count"), [(CUSTOMER_CLOUD_ONLY, 1), (CUSTOMER_NO_AGREEMENTS, 0)]
)
def test_other_fixed_customers(
    sim: Simulator, http: requests.Session, pc_token: str, customer: str, count: int
) -> None:
    body = _agreements(sim, http, pc_token, customer, "?agreementType=*").json()
    assert body["totalCount"] == count


def test_generated_customers_are_deterministic() -> None:
    assert len(CUSTOMERS) == 200
    assert CUSTOMERS[0] == str(
        uuid.uuid5(uuid.UUID("5d1c3c9e-7a52-4bd4-9a56-1f0ad0b1e5c7"), "customer-0")
    )
    assert {len(AGREEMENTS[c]) for c in CUSTOMERS} == {0, 1, 2, 3}


@pytest.mark.parametrize(
    ("customer", "query", "status"),
    [
        (CUSTOMER_UNKNOWN, "?agreementType=*", 404),
        ("not-a-guid", "?agreementType=*", 400),
        (CUSTOMER_MCA, "?agreementType=MicrosoftPartnerAgreementV3", 400),
        (CUSTOMER_MCA, "?agreementType=", 400),
    ],
)
def test_agreement_errors(
    sim: Simulator, http: requests.Session, pc_token: str, customer: str, query: str, status: int
) -> None:
    response = _agreements(sim, http, pc_token, customer, query)
    assert response.status_code == status
    body = response.json()
    assert set(body) == {"code", "description", "data", "source"}
    assert isinstance(body["code"], str)


def test_on_behalf_of_token_from_msal_is_accepted(
    sim: Simulator, http: requests.Session, make_app: Callable[..., Any]
) -> None:
    result = make_app().acquire_token_on_behalf_of(sim.user_token(), [PC_SCOPE])
    response = _get(sim, http, result["access_token"], "/v1/customers/relationshiprequests")
    assert response.status_code == 200


def test_app_only_token_is_refused(sim: Simulator, http: requests.Session) -> None:
    token = sim.app_token(audience=PC_RESOURCE)
    response = _agreements(sim, http, token, CUSTOMER_MCA)
    assert response.status_code == 403
    assert "App+User" in response.json()["description"]


def test_token_without_mfa_is_refused(sim: Simulator, http: requests.Session) -> None:
    token = sim.user_token(audience=PC_RESOURCE, scopes=["user_impersonation"], mfa=False)
    response = _agreements(sim, http, token, CUSTOMER_MCA)
    assert response.status_code == 401
    assert "MFA" in response.json()["description"]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"audience": PC_RESOURCE, "expires_in": -5},
        {},  # a token for the gateway, not for Partner Center
    ],
)
def test_invalid_tokens_are_refused(
    sim: Simulator, http: requests.Session, kwargs: dict[str, Any]
) -> None:
    response = _agreements(sim, http, sim.user_token(**kwargs), CUSTOMER_MCA)
    assert response.status_code == 401


def test_missing_or_forged_token_is_refused(
    sim: Simulator, stranger: Simulator, http: requests.Session
) -> None:
    url = f"{sim.partner_center_url}/v1/customers/relationshiprequests"
    assert http.get(url).status_code == 401
    forged = stranger.user_token(
        audience=PC_RESOURCE, scopes=["user_impersonation"], issuer="https://forged.example"
    )
    response = http.get(url, headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("OAuth realm=")


def test_request_and_correlation_ids_are_echoed(
    sim: Simulator, http: requests.Session, pc_token: str
) -> None:
    request_id, correlation_id = str(uuid.uuid4()), str(uuid.uuid4())
    response = _get(
        sim,
        http,
        pc_token,
        "/v1/customers/relationshiprequests",
        **{"MS-RequestId": request_id, "MS-CorrelationId": correlation_id},
    )
    assert response.headers["MS-RequestId"] == request_id
    assert response.headers["MS-CorrelationId"] == correlation_id
    assert response.headers["MS-CV"]
    assert response.headers["MS-ServerId"]
    fresh = _get(sim, http, pc_token, "/v1/customers/relationshiprequests")
    assert uuid.UUID(fresh.headers["MS-RequestId"])
    assert uuid.UUID(fresh.headers["MS-CorrelationId"])
