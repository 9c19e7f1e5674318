"""The simulator's MCA endpoints: agreement metadata, attestation, direct-signing status, link."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from simulator import (
    CUSTOMER_ATTESTED,
    CUSTOMER_ATTESTED_AND_DIRECT_SIGNED,
    CUSTOMER_DIRECT_SIGNED,
    CUSTOMER_NEITHER,
    CUSTOMER_OLD_TEMPLATE,
    CUSTOMER_UNKNOWN,
    MCA_TEMPLATE_ID,
    OLD_MCA_TEMPLATE_ID,
    Fault,
    Simulator,
    SimulatorClient,
)

CONTACT = {"firstName": "Ada", "lastName": "Lovelace", "email": "ada@contoso.example"}


def _call(
    sim: Simulator, http: requests.Session, token: str, method: str, path: str, body: Any = None
) -> requests.Response:
    return http.request(
        method,
        sim.partner_center_url + path,
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )


def _attestation(template: str = MCA_TEMPLATE_ID, **changes: Any) -> dict[str, Any]:
    body = {
        "primaryContact": CONTACT,
        "templateId": template,
        "dateAgreed": "2024-05-01T09:30:00Z",
        "type": "MicrosoftCustomerAgreement",
    }
    body.update(changes)
    return body


def test_metadata_lists_the_current_mca_template(
    sim: Simulator, http: requests.Session, pc_token: str
) -> None:
    path = "/v1/agreements?agreementType=MicrosoftCustomerAgreement"
    body = _call(sim, http, pc_token, "GET", path).json()
    assert body["totalCount"] == 1
    (item,) = body["items"]
    assert item["templateId"] == MCA_TEMPLATE_ID
    assert item["agreementType"] == "MicrosoftCustomerAgreement"
    assert isinstance(item["versionRank"], int)
    rotated = sim.rotate_mca_template()
    again = _call(sim, http, pc_token, "GET", path).json()
    assert again["items"][0]["templateId"] == rotated != MCA_TEMPLATE_ID


def test_metadata_defaults_to_the_cloud_agreement(
    sim: Simulator, http: requests.Session, pc_token: str
) -> None:
    body = _call(sim, http, pc_token, "GET", "/v1/agreements").json()
    assert [i["agreementType"] for i in body["items"]] == ["MicrosoftCloudAgreement"]


@pytest.mark.parametrize(
    ("customer", "signed"),
    [
        (CUSTOMER_DIRECT_SIGNED, True),
        (CUSTOMER_ATTESTED_AND_DIRECT_SIGNED, True),
        (CUSTOMER_ATTESTED, False),
        (CUSTOMER_NEITHER, False),
    ],
)
def test_direct_signed_status(
    sim: Simulator, http: requests.Session, pc_token: str, customer: str, signed: bool
) -> None:
    path = f"/v1/customers/{customer}/directSignedMicrosoftCustomerAgreementStatus"
    response = _call(sim, http, pc_token, "GET", path)
    assert response.status_code == 200
    assert response.json()["isSigned"] is signed


def test_direct_signed_status_of_an_unknown_customer(
    sim: Simulator, http: requests.Session, pc_token: str
) -> None:
    path = f"/v1/customers/{CUSTOMER_UNKNOWN}/directSignedMicrosoftCustomerAgreementStatus"
    response = _call(sim, http, pc_token, "GET", path)
    assert response.status_code == 404
    assert response.json()["code"] == "600039"


def test_old_template_customer(sim: Simulator, http: requests.Session, pc_token: str) -> None:
    path = (
        f"/v1/customers/{CUSTOMER_OLD_TEMPLATE}/agreements?agreementType=MicrosoftCustomerAgreement"
    )
    (item,) = _call(sim, http, pc_token, "GET", path).json()["items"]
    assert item["templateId"] == OLD_MCA_TEMPLATE_ID
    assert item["dateAgreed"].startswith("2019-")


def test_attestation_is_stored_then_repeated_with_600061(
    sim: Simulator, http: requests.Session, pc_token: str
) -> None:
    path = f"/v1/customers/{CUSTOMER_NEITHER}/agreements"
    created = _call(sim, http, pc_token, "POST", path, _attestation())
    assert created.status_code == 201, created.text
    assert created.json()["dateAgreed"] == "2024-05-01T09:30:00"
    assert created.json()["primaryContact"] == CONTACT
    listed = _call(sim, http, pc_token, "GET", path + "?agreementType=MicrosoftCustomerAgreement")
    assert listed.json()["totalCount"] == 1
    repeat = _call(sim, http, pc_token, "POST", path, _attestation())
    assert repeat.status_code == 400
    assert repeat.json()["code"] == 600061
    assert repeat.json()["errorName"] == "PartnerConfirmedAgreementAlreadyExists"
    assert repeat.json()["isRetryable"] is False
    changed = {**CONTACT, "phoneNumber": "+1 425 555 0100"}
    assert _call(sim, http, pc_token, "POST", path, _attestation(primaryContact=changed)).ok
    assert len(sim.agreements.attestations_made(CUSTOMER_NEITHER)) == 2
    assert sim.stats.api_requests[0].body == _attestation()
    sim.reset()
    assert sim.agreements.attestations_made(CUSTOMER_NEITHER) == ()


def test_attestation_refusals(sim: Simulator, http: requests.Session, pc_token: str) -> None:
    path = f"/v1/customers/{CUSTOMER_NEITHER}/agreements"
    future = (datetime.now(UTC) + timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    too_late = _call(sim, http, pc_token, "POST", path, _attestation(dateAgreed=future))
    assert (too_late.status_code, too_late.json()["code"]) == (400, "600002")
    old = _call(sim, http, pc_token, "POST", path, _attestation(OLD_MCA_TEMPLATE_ID))
    assert old.status_code == 400 and OLD_MCA_TEMPLATE_ID in old.json()["description"]
    unknown = f"/v1/customers/{CUSTOMER_UNKNOWN}/agreements"
    assert _call(sim, http, pc_token, "POST", unknown, _attestation()).status_code == 404
    sim.set_partner(indirect_reseller=True)
    refused = _call(sim, http, pc_token, "POST", path, _attestation())
    assert refused.status_code == 403 and "indirect provider" in refused.json()["description"]
    assert sim.agreements.attestations_made(CUSTOMER_NEITHER) == ()


def test_drop_after_commit_stores_the_attestation(
    sim: Simulator, http: requests.Session, pc_token: str
) -> None:
    path = f"/v1/customers/{CUSTOMER_NEITHER}/agreements"
    sim.faults.add(Fault(path=path, drop=True, commit_first=True))
    with pytest.raises(requests.ConnectionError):
        _call(sim, http, pc_token, "POST", path, _attestation())
    assert len(sim.agreements.attestations_made(CUSTOMER_NEITHER)) == 1
    assert [r.status for r in sim.stats.api_requests] == [0]


def test_request_log_has_timing(sim: Simulator, http: requests.Session, pc_token: str) -> None:
    sim.set_latency(api=0.05)
    _call(sim, http, pc_token, "GET", "/v1/customers/relationshiprequests")
    (request,) = sim.stats.api_requests
    assert request.finished - request.started >= 0.05


def test_dual_role_link(sim: Simulator, http: requests.Session, pc_token: str) -> None:
    path = "/v1/customers/relationshiprequests?dualRoleIndirectRelationship=true"
    url = _call(sim, http, pc_token, "GET", path).json()["url"]
    assert url.startswith(
        "https://admin.microsoft.com/Adminportal/Home?invType=ResellerRelationship"
    )
    assert "&dualRoleIndirectRelationship=true&DAP=false#/" in url
    bad = _call(sim, http, pc_token, "GET", path.replace("true", "maybe"))
    assert bad.status_code == 400


def test_control_plane_drives_the_agreements(sim: Simulator) -> None:
    client = SimulatorClient(sim.partner_center_url, sim.ca_bundle)
    try:
        rotated = client.rotate_mca_template()
        assert sim.agreements.mca_template_id == rotated
        client.set_partner(indirect_reseller=True)
        assert sim.agreements.indirect_reseller is True
    finally:
        client.close()
