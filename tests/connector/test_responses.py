"""Real answers of the app, over HTTP against the simulator, match what the definition promises."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
import requests

from gateway.auth import Permission
from gateway.functions import OPERATIONS
from gateway.openapi import render
from gateway.operation_docs import OperationDoc
from simulator import (
    CUSTOMER_ATTESTED,
    CUSTOMER_ATTESTED_AND_DIRECT_SIGNED,
    CUSTOMER_DIRECT_SIGNED,
    CUSTOMER_MCA,
    CUSTOMER_NEITHER,
    CUSTOMER_NEW_TYPE,
    CUSTOMER_NO_AGREEMENTS,
    CUSTOMER_OLD_TEMPLATE,
    CUSTOMER_UNKNOWN,
    Fault,
    Simulator,
)

from ..conftest import repo_root
from .schemas import operation, response_spec, validator

ALL_SCOPES = [p.value for p in Permission]
#: Operations whose callers prove themselves otherwise than by a bearer token (their answers are
#: checked against the definition where they are tested: tests/webhooks).
NOT_CALLED_WITH_A_TOKEN = frozenset({"ReceivePartnerCenterEvent"})
SAMPLE_PATH_VALUES = {"customerId": CUSTOMER_MCA}
SUBSCRIBE = "WhenPartnerCenterEventOccurs"
#: A body for operations that take one.
SAMPLE_BODIES = {
    "AttestMcaAcceptance": {
        "primaryContact": {"firstName": "Ada", "lastName": "Lovelace", "email": "ada@x.example"}
    },
    SUBSCRIBE: {
        "eventName": "reseller-relationship-accepted-by-customer",
        "callbackUrl": "https://prod-07.westus.logic.azure.com/workflows/1/triggers/manual/run",
    },
}


def call(
    api: requests.Session,
    base_url: str,
    definition: dict[str, Any],
    operation_id: str,
    *,
    token: str | None,
    path_values: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    body: Any = None,
) -> requests.Response:
    """Call an operation of the definition, its path filled from sample values."""
    path, method, _ = operation(definition, operation_id)
    path = path.format(**{**SAMPLE_PATH_VALUES, **(path_values or {})})
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if body is None:
        body = SAMPLE_BODIES.get(operation_id)
    return api.request(method.upper(), base_url + path, params=query, headers=headers, json=body)


def assert_as_described(
    definition: dict[str, Any], operation_id: str, response: requests.Response, status: int
) -> Any:
    """The answer has the status, content type, headers and body the definition declares."""
    assert response.status_code == status, response.text
    spec = response_spec(definition, operation_id, status)
    if "schema" not in spec:
        assert response.content == b""
        for name in spec.get("headers", {}):
            assert name in response.headers, f"{operation_id} {status}: no {name} header"
        return None
    media_type = response.headers["Content-Type"].split(";")[0]
    assert media_type in definition["produces"]
    for name, header in spec.get("headers", {}).items():
        assert name in response.headers, f"{operation_id} {status}: no {name} header"
        if header["type"] == "integer":
            assert response.headers[name].isdigit()
    body = response.json()
    errors = sorted(validator(definition, spec["schema"]).iter_errors(body), key=str)
    assert not errors, f"{operation_id} {status}: {[e.message for e in errors]}\n{body}"
    return body


@pytest.mark.parametrize(
    "doc",
    [doc for doc in OPERATIONS if doc.operation_id not in NOT_CALLED_WITH_A_TOKEN],
    ids=lambda doc: doc.operation_id,
)
def test_every_operation_answers_as_described(
    api: requests.Session,
    base_url: str,
    fresh_sim: Simulator,
    azurite: Any,
    definition: dict[str, Any],
    doc: OperationDoc,
) -> None:
    token = fresh_sim.user_token(scopes=ALL_SCOPES)
    path_values = {}
    if doc.operation_id == "DeleteEventSubscription":
        created = call(
            api, base_url, definition, SUBSCRIBE, token=token, body=SAMPLE_BODIES[SUBSCRIBE]
        )
        path_values["subscriptionId"] = created.json()["id"]
    response = call(
        api, base_url, definition, doc.operation_id, token=token, path_values=path_values
    )
    # The sample attestation is a new one: 201 (the 200 of an existing one is tested below).
    status = 201 if doc.operation_id == "AttestMcaAcceptance" else doc.status
    assert_as_described(definition, doc.operation_id, response, status)


@pytest.mark.parametrize(
    "customer",
    [
        CUSTOMER_ATTESTED,
        CUSTOMER_DIRECT_SIGNED,
        CUSTOMER_ATTESTED_AND_DIRECT_SIGNED,
        CUSTOMER_NEITHER,
        CUSTOMER_OLD_TEMPLATE,
    ],
)
def test_mca_status_of_every_kind_is_described(
    api: requests.Session,
    base_url: str,
    fresh_sim: Simulator,
    definition: dict[str, Any],
    customer: str,
) -> None:
    response = call(
        api,
        base_url,
        definition,
        "GetMcaStatus",
        token=fresh_sim.user_token(),
        path_values={"customerId": customer},
    )
    assert_as_described(definition, "GetMcaStatus", response, 200)


def test_attestation_answers_are_described(
    api: requests.Session, base_url: str, fresh_sim: Simulator, definition: dict[str, Any]
) -> None:
    token = fresh_sim.user_token(scopes=["Agreements.ReadWrite"])
    first = call(api, base_url, definition, "AttestMcaAcceptance", token=token)
    assert_as_described(definition, "AttestMcaAcceptance", first, 201)
    again = call(api, base_url, definition, "AttestMcaAcceptance", token=token)
    assert_as_described(definition, "AttestMcaAcceptance", again, 200)
    bad = call(api, base_url, definition, "AttestMcaAcceptance", token=token, body={"x": 1})
    assert_as_described(definition, "AttestMcaAcceptance", bad, 400)
    fresh_sim.set_partner(indirect_reseller=True)
    other = {"primaryContact": {"firstName": "Bo", "lastName": "Li", "email": "bo@x.example"}}
    refused = call(api, base_url, definition, "AttestMcaAcceptance", token=token, body=other)
    body = assert_as_described(definition, "AttestMcaAcceptance", refused, 403)
    assert body["type"].endswith(":indirect-provider-must-attest")


@pytest.mark.parametrize("customer", [CUSTOMER_NO_AGREEMENTS, CUSTOMER_NEW_TYPE])
@pytest.mark.parametrize("agreement_type", ["all", "MicrosoftCloudAgreement"])
def test_agreements_of_every_shape_are_described(
    api: requests.Session,
    base_url: str,
    fresh_sim: Simulator,
    definition: dict[str, Any],
    customer: str,
    agreement_type: str,
) -> None:
    response = call(
        api,
        base_url,
        definition,
        "ListCustomerAgreements",
        token=fresh_sim.user_token(),
        path_values={"customerId": customer},
        query={"type": agreement_type},
    )
    assert_as_described(definition, "ListCustomerAgreements", response, 200)


def test_the_definition_is_served_without_a_token(
    api: requests.Session, base_url: str, definition: dict[str, Any]
) -> None:
    response = api.get(f"{base_url}/openapi.json")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.text == render(definition)


def test_the_definition_is_not_built_at_import() -> None:
    probe = (
        "import function_app\n"
        "from gateway.functions.openapi import served_definition\n"
        "assert served_definition.cache_info().currsize == 0\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=repo_root(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


# --- errors --------------------------------------------------------------------------------------


def test_invalid_request_is_described(
    api: requests.Session, base_url: str, fresh_sim: Simulator, definition: dict[str, Any]
) -> None:
    response = call(
        api,
        base_url,
        definition,
        "GetRelationshipRequestUrl",
        token=fresh_sim.user_token(),
        query={"indirectResellerId": "123"},
    )
    assert_as_described(definition, "GetRelationshipRequestUrl", response, 400)


def test_missing_token_is_described(
    api: requests.Session, base_url: str, fresh_sim: Simulator, definition: dict[str, Any]
) -> None:
    response = call(api, base_url, definition, "ListCustomerAgreements", token=None)
    assert_as_described(definition, "ListCustomerAgreements", response, 401)


@pytest.mark.parametrize(
    "operation_id",
    ["GetRelationshipRequestUrl", "ListCustomerAgreements", "GetMcaStatus", "AttestMcaAcceptance"],
)
def test_the_scope_the_definition_names_is_the_one_enforced(
    api: requests.Session,
    base_url: str,
    fresh_sim: Simulator,
    definition: dict[str, Any],
    operation_id: str,
) -> None:
    (requirement,) = operation(definition, operation_id)[2]["security"]
    (scope,) = requirement["oauth2"]
    others = [s for s in ALL_SCOPES if s != scope]
    response = call(
        api, base_url, definition, operation_id, token=fresh_sim.user_token(scopes=others)
    )
    body = assert_as_described(definition, operation_id, response, 403)
    assert scope in body["detail"]
    allowed = call(
        api, base_url, definition, operation_id, token=fresh_sim.user_token(scopes=[scope])
    )
    assert allowed.status_code == (201 if operation_id == "AttestMcaAcceptance" else 200), (
        allowed.text
    )


def test_unknown_customer_is_described(
    api: requests.Session, base_url: str, fresh_sim: Simulator, definition: dict[str, Any]
) -> None:
    response = call(
        api,
        base_url,
        definition,
        "ListCustomerAgreements",
        token=fresh_sim.user_token(),
        path_values={"customerId": CUSTOMER_UNKNOWN},
    )
    assert_as_described(definition, "ListCustomerAgreements", response, 404)


def test_throttling_is_described(
    api: requests.Session, base_url: str, fresh_sim: Simulator, definition: dict[str, Any]
) -> None:
    fresh_sim.faults.add(Fault.throttled(90))
    response = call(
        api, base_url, definition, "ListCustomerAgreements", token=fresh_sim.user_token()
    )
    body = assert_as_described(definition, "ListCustomerAgreements", response, 429)
    assert body["retryAfter"] == int(response.headers["Retry-After"])


def test_upstream_failure_is_described(
    api: requests.Session, base_url: str, fresh_sim: Simulator, definition: dict[str, Any]
) -> None:
    fresh_sim.faults.add(Fault(path="/v1/customers/", status=500, times=10))
    response = call(
        api, base_url, definition, "ListCustomerAgreements", token=fresh_sim.user_token()
    )
    assert_as_described(definition, "ListCustomerAgreements", response, 502)
