"""MCA status and attestation over real HTTP: `make run`'s host, real MSAL, the simulator."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import requests

from simulator import (
    CUSTOMER_ATTESTED,
    CUSTOMER_ATTESTED_AND_DIRECT_SIGNED,
    CUSTOMER_CLOUD_ONLY,
    CUSTOMER_DIRECT_SIGNED,
    CUSTOMER_NEITHER,
    CUSTOMER_OLD_TEMPLATE,
    CUSTOMER_UNKNOWN,
    CUSTOMERS,
    MCA_TEMPLATE_ID,
    OLD_MCA_TEMPLATE_ID,
    ApiRequest,
    Fault,
    Simulator,
)

from .test_api import assert_problem, bearer

READ_WRITE = ["Agreements.ReadWrite"]
ADA = {"firstName": "Ada", "lastName": "Lovelace", "email": "ada@contoso.example"}
TANIA = {
    "firstName": "Tania",
    "lastName": "Carr",
    "email": "SomeEmail@example.com",
    "phoneNumber": "1234567890",
}
METADATA = "/v1/agreements"


def status_of(api: requests.Session, base_url: str, sim: Simulator, customer: str) -> Any:
    response = api.get(
        f"{base_url}/customers/{customer}/mca-status", headers=bearer(sim.user_token())
    )
    assert response.status_code == 200, response.text
    return response.json()


def attest(
    api: requests.Session,
    base_url: str,
    sim: Simulator,
    customer: str,
    body: Any,
    *,
    token: str | None = None,
    **headers: str,
) -> requests.Response:
    token = token or sim.user_token(scopes=READ_WRITE)
    return api.post(
        f"{base_url}/customers/{customer}/agreements",
        json=body,
        headers={**bearer(token), **headers},
        timeout=30,
    )


def posts(sim: Simulator, customer: str) -> list[ApiRequest]:
    path = f"/v1/customers/{customer}/agreements"
    return [r for r in sim.stats.api_requests if r.method == "POST" and r.path == path]


# --- status: each acceptedVia ---------------------------------------------------------------


def test_status_partner_attestation_uses_the_latest(
    api: requests.Session, base_url: str, fresh_sim: Simulator
) -> None:
    body = status_of(api, base_url, fresh_sim, CUSTOMER_ATTESTED)
    assert body == {
        "customerId": CUSTOMER_ATTESTED,
        "accepted": True,
        "acceptedVia": "partnerAttestation",
        "dateAgreed": "2019-08-27T00:00:00Z",  # the later of its two attestations
        "primaryContact": TANIA,
        "templateId": MCA_TEMPLATE_ID,
    }
    reads = {
        (r.path, tuple(r.query.get("agreementType", []))) for r in fresh_sim.stats.api_requests
    }
    assert reads == {
        (f"/v1/customers/{CUSTOMER_ATTESTED}/agreements", ("MicrosoftCustomerAgreement",)),
        (f"/v1/customers/{CUSTOMER_ATTESTED}/directSignedMicrosoftCustomerAgreementStatus", ()),
    }


def test_status_direct_signed(api: requests.Session, base_url: str, fresh_sim: Simulator) -> None:
    body = status_of(api, base_url, fresh_sim, CUSTOMER_DIRECT_SIGNED)
    assert body == {
        "customerId": CUSTOMER_DIRECT_SIGNED,
        "accepted": True,
        "acceptedVia": "directSigned",
        "dateAgreed": None,
        "primaryContact": None,
        "templateId": None,
    }


def test_status_both_prefers_the_attestation(
    api: requests.Session, base_url: str, fresh_sim: Simulator
) -> None:
    body = status_of(api, base_url, fresh_sim, CUSTOMER_ATTESTED_AND_DIRECT_SIGNED)
    assert body["accepted"] is True
    assert body["acceptedVia"] == "partnerAttestation"
    assert body["dateAgreed"] == "2022-04-12T00:00:00Z"
    assert body["primaryContact"]["email"] == "megan@contoso.example"


@pytest.mark.parametrize("customer", [CUSTOMER_NEITHER, CUSTOMER_CLOUD_ONLY])
def test_status_not_accepted(
    api: requests.Session, base_url: str, fresh_sim: Simulator, customer: str
) -> None:
    body = status_of(api, base_url, fresh_sim, customer)
    assert body == {
        "customerId": customer,
        "accepted": False,
        "acceptedVia": None,
        "dateAgreed": None,
        "primaryContact": None,
        "templateId": None,
    }


def test_status_under_an_old_template_still_counts(
    api: requests.Session, base_url: str, fresh_sim: Simulator
) -> None:
    body = status_of(api, base_url, fresh_sim, CUSTOMER_OLD_TEMPLATE)
    assert body["accepted"] is True and body["acceptedVia"] == "partnerAttestation"
    assert body["templateId"] == OLD_MCA_TEMPLATE_ID
    assert body["dateAgreed"] == "2019-11-04T00:00:00Z"


def test_status_of_an_unknown_customer_is_404(
    api: requests.Session, base_url: str, fresh_sim: Simulator
) -> None:
    response = api.get(
        f"{base_url}/customers/{CUSTOMER_UNKNOWN}/mca-status",
        headers=bearer(fresh_sim.user_token()),
    )
    body = assert_problem(response, 404)
    assert body["partnerCenterCode"] == "600039"


def test_status_is_a_failure_when_one_read_fails(
    api: requests.Session, base_url: str, fresh_sim: Simulator
) -> None:
    path = f"/v1/customers/{CUSTOMER_ATTESTED}/directSignedMicrosoftCustomerAgreementStatus"
    fresh_sim.faults.add(Fault(path=path, status=501, times=5))
    response = api.get(
        f"{base_url}/customers/{CUSTOMER_ATTESTED}/mca-status",
        headers=bearer(fresh_sim.user_token()),
    )
    assert_problem(response, 502)  # not the attestation the other read found


def test_status_reads_run_concurrently(
    api: requests.Session, base_url: str, fresh_sim: Simulator
) -> None:
    """Both Partner Center reads overlap in time: the status costs the slower read, not the sum.

    Shown from the simulator's own log of when each read arrived and was answered (no timing
    threshold: the machine is shared), with the figures printed against their sum.
    """
    token = fresh_sim.user_token()
    status_of(api, base_url, fresh_sim, CUSTOMER_ATTESTED)  # tokens and keys cached
    fresh_sim.reset()
    fresh_sim.set_latency(api=0.3)
    direct = f"/v1/customers/{CUSTOMER_ATTESTED}/directSignedMicrosoftCustomerAgreementStatus"
    fresh_sim.faults.add(Fault(path=direct, delay=0.3))  # the slower read: 0.6 s
    correlation = str(uuid.uuid4())
    started = time.monotonic()
    response = api.get(
        f"{base_url}/customers/{CUSTOMER_ATTESTED}/mca-status",
        headers={**bearer(token), "x-correlation-id": correlation},
    )
    took = time.monotonic() - started
    assert response.status_code == 200, response.text
    reads = [
        r for r in fresh_sim.stats.api_requests if r.headers["ms-correlationid"] == correlation
    ]
    assert sorted(r.path.rsplit("/", 1)[1] for r in reads) == [
        "agreements",
        "directSignedMicrosoftCustomerAgreementStatus",
    ]
    first, second = sorted(reads, key=lambda r: r.started)
    # The second read arrived before the first was answered: they overlapped.
    assert second.started < first.finished
    durations = [r.finished - r.started for r in reads]
    print(
        f"\nMCA status over HTTP: {took * 1000:.0f} ms; reads {durations[0] * 1000:.0f} ms and "
        f"{durations[1] * 1000:.0f} ms (slower {max(durations) * 1000:.0f} ms, sum "
        f"{sum(durations) * 1000:.0f} ms); overlap "
        f"{(min(first.finished, second.finished) - second.started) * 1000:.0f} ms"
    )


# --- attestation ----------------------------------------------------------------------------


def test_attestation_created_then_idempotent(
    api: requests.Session, base_url: str, fresh_sim: Simulator
) -> None:
    created = attest(api, base_url, fresh_sim, CUSTOMER_NEITHER, {"primaryContact": ADA})
    assert created.status_code == 201, created.text
    assert created.headers["Location"] == f"/api/customers/{CUSTOMER_NEITHER}/agreements"
    body = created.json()
    assert body["created"] is True
    assert body["customerId"] == CUSTOMER_NEITHER
    assert body["type"] == "MicrosoftCustomerAgreement"
    assert body["templateId"] == MCA_TEMPLATE_ID
    assert body["primaryContact"] == {**ADA, "phoneNumber": None}
    sent = posts(fresh_sim, CUSTOMER_NEITHER)[0].body
    assert sent["type"] == "MicrosoftCustomerAgreement"
    assert sent["templateId"] == MCA_TEMPLATE_ID
    assert sent["primaryContact"] == ADA
    agreed = datetime.fromisoformat(sent["dateAgreed"].replace("Z", "+00:00"))
    assert sent["dateAgreed"].endswith("Z")
    assert abs(datetime.now(UTC) - agreed) < timedelta(minutes=1)  # the default: now, in UTC

    again = attest(api, base_url, fresh_sim, CUSTOMER_NEITHER, {"primaryContact": ADA})
    assert again.status_code == 200, again.text
    assert "Location" not in again.headers
    assert again.json() == {**body, "created": False}
    assert len(fresh_sim.agreements.attestations_made(CUSTOMER_NEITHER)) == 1
    status = status_of(api, base_url, fresh_sim, CUSTOMER_NEITHER)
    assert status["accepted"] is True and status["acceptedVia"] == "partnerAttestation"


def test_repeating_an_existing_attestation_is_200(
    api: requests.Session, base_url: str, fresh_sim: Simulator
) -> None:
    response = attest(api, base_url, fresh_sim, CUSTOMER_ATTESTED, {"primaryContact": TANIA})
    assert response.status_code == 200, response.text
    assert response.json()["created"] is False
    assert response.json()["dateAgreed"] == "2019-08-27T00:00:00Z"
    assert [r.status for r in posts(fresh_sim, CUSTOMER_ATTESTED)] == [400]  # 600061


@pytest.mark.parametrize("lost", ["dropped", "timed-out"])
def test_retried_post_after_a_lost_response(
    api: requests.Session,
    base_url: str,
    fresh_sim: Simulator,
    monkeypatch: pytest.MonkeyPatch,
    lost: str,
) -> None:
    """Partner Center committed, the answer was lost: one agreement, one request id, a 201."""
    path = f"/v1/customers/{CUSTOMER_NEITHER}/agreements"
    if lost == "dropped":
        fresh_sim.faults.add(Fault(path=path, drop=True, commit_first=True))
    else:
        monkeypatch.setattr("partnercenter._transport.READ_TIMEOUT", 0.5)
        fresh_sim.faults.add(Fault(path=path, delay=1.0, commit_first=True))
    response = attest(api, base_url, fresh_sim, CUSTOMER_NEITHER, {"primaryContact": ADA})
    assert response.status_code == 201, response.text
    assert response.json()["created"] is True
    assert len(fresh_sim.agreements.attestations_made(CUSTOMER_NEITHER)) == 1
    ends = time.monotonic() + 5
    while len(posts(fresh_sim, CUSTOMER_NEITHER)) < 2 and time.monotonic() < ends:
        time.sleep(0.05)  # a delayed attempt is logged when its delay ends
    attempts = posts(fresh_sim, CUSTOMER_NEITHER)
    assert len(attempts) == 2
    assert len({r.headers["ms-requestid"] for r in attempts}) == 1
    assert sorted(r.status for r in attempts) == sorted([0 if lost == "dropped" else 201, 400])


def test_future_date_is_refused_without_an_upstream_call(
    api: requests.Session, base_url: str, fresh_sim: Simulator, fresh_runtime: None
) -> None:
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    response = attest(
        api, base_url, fresh_sim, CUSTOMER_NEITHER, {"primaryContact": ADA, "dateAgreed": tomorrow}
    )
    body = assert_problem(response, 400)
    assert "future" in body["detail"] and "dateAgreed" in body["detail"]
    assert fresh_sim.stats.api_requests == []
    assert sum(fresh_sim.stats.token_requests.values()) == 0


def test_an_offset_is_converted_to_utc(
    api: requests.Session, base_url: str, fresh_sim: Simulator
) -> None:
    # Ahead of UTC, "now" local time is in the future in UTC: the PowerShell module's 600002 trap.
    ahead = datetime.now(UTC).astimezone(timezone(timedelta(hours=9, minutes=30)))
    response = attest(
        api,
        base_url,
        fresh_sim,
        CUSTOMER_NEITHER,
        {"primaryContact": ADA, "dateAgreed": "2024-05-01T10:00:00+02:00"},
    )
    assert response.status_code == 201, response.text
    assert response.json()["dateAgreed"] == "2024-05-01T08:00:00Z"
    assert posts(fresh_sim, CUSTOMER_NEITHER)[0].body["dateAgreed"] == "2024-05-01T08:00:00Z"
    other = {**ADA, "email": "ada@fabrikam.example"}
    local_now = attest(
        api,
        base_url,
        fresh_sim,
        CUSTOMER_NEITHER,
        {"primaryContact": other, "dateAgreed": ahead.isoformat()},
    )
    assert local_now.status_code == 201, local_now.text


def test_template_looked_up_once_per_partner_and_refreshed_on_rejection(
    api: requests.Session, base_url: str, fresh_sim: Simulator, fresh_runtime: None
) -> None:
    customers = list(CUSTOMERS[:8])
    token = fresh_sim.user_token(scopes=READ_WRITE)
    with ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(
                lambda c: (
                    attest(
                        api, base_url, fresh_sim, c, {"primaryContact": ADA}, token=token
                    ).status_code
                ),
                customers,
            )
        )
    assert set(answers) <= {200, 201}
    assert fresh_sim.stats.api_calls.get(METADATA) == 1  # 8 concurrent first calls, one lookup

    rotated = fresh_sim.rotate_mca_template()  # Microsoft publishes a new template version
    response = attest(api, base_url, fresh_sim, CUSTOMER_NEITHER, {"primaryContact": ADA})
    assert response.status_code == 201, response.text
    assert response.json()["templateId"] == rotated
    assert fresh_sim.stats.api_calls.get(METADATA) == 2  # refreshed once
    tried = posts(fresh_sim, CUSTOMER_NEITHER)
    assert [(r.body["templateId"], r.status) for r in tried] == [
        (MCA_TEMPLATE_ID, 400),
        (rotated, 201),
    ]
    again = attest(api, base_url, fresh_sim, CUSTOMER_ATTESTED, {"primaryContact": ADA})
    assert again.status_code == 201
    assert fresh_sim.stats.api_calls.get(METADATA) == 2  # the refreshed id is cached


def test_indirect_reseller_is_told_its_provider_must_attest(
    api: requests.Session, base_url: str, fresh_sim: Simulator
) -> None:
    fresh_sim.set_partner(indirect_reseller=True)
    response = attest(api, base_url, fresh_sim, CUSTOMER_NEITHER, {"primaryContact": ADA})
    body = assert_problem(response, 403)
    assert body["type"].endswith(":indirect-provider-must-attest")
    assert "indirect provider" in body["detail"]
    assert len(posts(fresh_sim, CUSTOMER_NEITHER)) == 1  # a refusal is not retried


def test_unknown_customer_attestation_is_404(
    api: requests.Session, base_url: str, fresh_sim: Simulator
) -> None:
    response = attest(api, base_url, fresh_sim, CUSTOMER_UNKNOWN, {"primaryContact": ADA})
    assert_problem(response, 404)


# --- the new permission ---------------------------------------------------------------------


def test_attestation_needs_agreements_read_write(
    api: requests.Session, base_url: str, fresh_sim: Simulator
) -> None:
    readers = fresh_sim.user_token(scopes=["Agreements.Read", "RelationshipRequest.Read"])
    response = attest(
        api, base_url, fresh_sim, CUSTOMER_NEITHER, {"primaryContact": ADA}, token=readers
    )
    body = assert_problem(response, 403)
    assert body["type"].endswith(":forbidden")
    assert "Agreements.ReadWrite" in body["detail"]
    app_reader = fresh_sim.app_token(roles=["Agreements.Read"])
    assert (
        attest(
            api, base_url, fresh_sim, CUSTOMER_NEITHER, {"primaryContact": ADA}, token=app_reader
        ).status_code
        == 403
    )
    assert fresh_sim.stats.api_requests == []
    app_writer = fresh_sim.app_token(roles=READ_WRITE)
    allowed = attest(
        api, base_url, fresh_sim, CUSTOMER_NEITHER, {"primaryContact": ADA}, token=app_writer
    )
    assert allowed.status_code == 201, allowed.text  # served as the service user


def test_status_needs_agreements_read(
    api: requests.Session, base_url: str, fresh_sim: Simulator
) -> None:
    writer_only = fresh_sim.user_token(scopes=READ_WRITE)
    response = api.get(
        f"{base_url}/customers/{CUSTOMER_ATTESTED}/mca-status", headers=bearer(writer_only)
    )
    body = assert_problem(response, 403)
    assert "Agreements.Read " in body["detail"]


# --- bad bodies -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"{not json", "not valid JSON"),
        (b"", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"primaryContact": {"firstName": "A", "lastName": "B"}}', "primaryContact.email"),
        (b'{"contact": {}}', "Unknown field 'contact'"),
        (b"{}", "'primaryContact' is required"),
        (
            b'{"primaryContact": {"firstName": "A", "lastName": "B", "email": "a@b.co", "x": 1}}',
            "Unknown field 'primaryContact.x'",
        ),
        (
            b'{"primaryContact": {"firstName": "' + b"A" * 101 + b'", "lastName": "B", '
            b'"email": "a@b.co"}}',
            "longer than 100",
        ),
        (
            b'{"primaryContact": {"firstName": "A", "lastName": "B", "email": "not-an-email"}}',
            "primaryContact.email' is not valid",
        ),
        (
            b'{"primaryContact": {"firstName": "A", "lastName": "B", "email": "a@b.co", '
            b'"phoneNumber": "call me"}}',
            "phoneNumber' is not valid",
        ),
        (
            b'{"primaryContact": {"firstName": "<b>", "lastName": "B", "email": "a@b.co"}}',
            "firstName' is not valid",
        ),
        (
            b'{"primaryContact": {"firstName": "A", "lastName": "B", "email": "a@b.co"}, '
            b'"dateAgreed": "yesterday"}',
            "dateAgreed",
        ),
        (
            b'{"primaryContact": {"firstName": "A", "lastName": "B", "email": "a@b.co"}, '
            b'"type": "MicrosoftCloudAgreement"}',
            "Unknown field 'type'",
        ),
    ],
)
def test_bad_bodies_are_refused_before_any_upstream_call(
    api: requests.Session, base_url: str, fresh_sim: Simulator, body: bytes, says: str
) -> None:
    response = api.post(
        f"{base_url}/customers/{CUSTOMER_NEITHER}/agreements",
        data=body,
        headers={
            **bearer(fresh_sim.user_token(scopes=READ_WRITE)),
            "Content-Type": "application/json",
        },
    )
    problem = assert_problem(response, 400)
    assert says in problem["detail"], problem["detail"]
    assert fresh_sim.stats.api_requests == []


def test_a_body_that_is_not_json_by_type_is_refused(
    api: requests.Session, base_url: str, fresh_sim: Simulator
) -> None:
    response = api.post(
        f"{base_url}/customers/{CUSTOMER_NEITHER}/agreements",
        data=b"primaryContact=Ada",
        headers={
            **bearer(fresh_sim.user_token(scopes=READ_WRITE)),
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    assert "application/json" in assert_problem(response, 400)["detail"]


# --- relationship request: dualRoleIndirectRelationship ------------------------------------


def test_dual_role_is_passed_through_and_cached_apart(
    api: requests.Session, base_url: str, fresh_sim: Simulator, fresh_runtime: None
) -> None:
    token = bearer(fresh_sim.user_token())
    url = f"{base_url}/relationship-request"
    dual = api.get(url, params={"dualRoleIndirectRelationship": "true"}, headers=token)
    assert dual.status_code == 200, dual.text
    assert "dualRoleIndirectRelationship=true" in dual.json()["url"]
    assert fresh_sim.stats.api_requests[-1].query["dualRoleIndirectRelationship"] == ["true"]
    plain = api.get(url, headers=token)
    assert "dualRoleIndirectRelationship" not in plain.json()["url"]
    assert plain.json()["url"].startswith("https://admin.microsoft.com/Adminportal/Home?")
    again = api.get(url, params={"dualRoleIndirectRelationship": "true"}, headers=token)
    assert again.json() == dual.json()
    assert len(fresh_sim.stats.api_requests) == 2  # one per distinct link, then cached
    bad = api.get(url, params={"dualRoleIndirectRelationship": "maybe"}, headers=token)
    assert_problem(bad, 400)


@pytest.mark.parametrize("kind", ["empty", "truncated", "html"])
def test_a_recorded_attestation_with_an_unreadable_answer_is_still_201(
    api: requests.Session, base_url: str, fresh_sim: Simulator, kind: str
) -> None:
    path = f"/v1/customers/{CUSTOMER_NEITHER}/agreements"
    fresh_sim.faults.add(Fault(path=path, body_kind=kind))  # type: ignore[arg-type]
    response = attest(api, base_url, fresh_sim, CUSTOMER_NEITHER, {"primaryContact": ADA})
    assert response.status_code == 201, response.text
    assert response.json()["primaryContact"]["email"] == ADA["email"]
    assert len(fresh_sim.agreements.attestations_made(CUSTOMER_NEITHER)) == 1
