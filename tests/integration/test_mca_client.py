"""The client's MCA operations through the real MSAL and requests, against the simulator."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from partnercenter import (
    SERVICE_USER,
    AgreementType,
    IndirectResellerError,
    InvalidArgumentError,
    McaAcceptance,
    NotFoundError,
    OnBehalfOf,
    PrimaryContact,
    UpstreamError,
)
from simulator import (
    CUSTOMER_ATTESTED,
    CUSTOMER_DIRECT_SIGNED,
    CUSTOMER_NEITHER,
    CUSTOMER_UNKNOWN,
    MCA_TEMPLATE_ID,
    Fault,
    Simulator,
)

ADA = PrimaryContact(first_name="Ada", last_name="Lovelace", email="ada@contoso.example")


def user(sim: Simulator) -> OnBehalfOf:
    oid = str(uuid.uuid4())
    return OnBehalfOf(sim.user_token(oid=oid), sim.tenant_id, oid)


def test_agreement_metadata(fresh_sim: Simulator, make_client) -> None:
    metadata = make_client().list_agreement_metadata(user(fresh_sim))
    assert [(i.template_id, i.kind) for i in metadata.items] == [
        (MCA_TEMPLATE_ID, "MicrosoftCustomerAgreement")
    ]
    everything = make_client().list_agreement_metadata(user(fresh_sim), AgreementType.ALL)
    assert len(everything.items) == 2


def test_direct_signed_status(fresh_sim: Simulator, make_client) -> None:
    client = make_client()
    assert client.get_direct_signed_mca_status(user(fresh_sim), CUSTOMER_DIRECT_SIGNED).is_signed
    assert not client.get_direct_signed_mca_status(user(fresh_sim), CUSTOMER_NEITHER).is_signed
    with pytest.raises(NotFoundError):
        client.get_direct_signed_mca_status(user(fresh_sim), CUSTOMER_UNKNOWN)


def test_mca_status_shares_one_correlation_id_and_token(fresh_sim: Simulator, make_client) -> None:
    correlation = str(uuid.uuid4())
    status = make_client().get_mca_status(
        user(fresh_sim), CUSTOMER_DIRECT_SIGNED, correlation_id=correlation
    )
    assert status.accepted and status.accepted_via is McaAcceptance.DIRECT_SIGNED
    reads = fresh_sim.stats.api_requests
    assert len(reads) == 2
    assert {r.headers["ms-correlationid"] for r in reads} == {correlation}
    assert len({r.headers["ms-requestid"] for r in reads}) == 2  # two logical requests
    assert fresh_sim.stats.token_requests["on_behalf_of"] == 1


def test_mca_status_raises_the_failing_reads_error(fresh_sim: Simulator, make_client) -> None:
    direct = f"/v1/customers/{CUSTOMER_ATTESTED}/directSignedMicrosoftCustomerAgreementStatus"
    fresh_sim.faults.add(Fault(path=direct, status=501))
    with pytest.raises(UpstreamError):
        make_client().get_mca_status(user(fresh_sim), CUSTOMER_ATTESTED)


def test_attestation_as_the_service_user(fresh_sim: Simulator, make_client) -> None:
    client = make_client(PARTNER_CENTER_REFRESH_TOKEN=fresh_sim.refresh_token_for())
    when = datetime(2024, 2, 29, 23, 30, tzinfo=UTC)
    made = client.create_customer_agreement(SERVICE_USER, CUSTOMER_NEITHER, ADA, date_agreed=when)
    assert made.created
    assert made.agreement.date_agreed == when
    again = client.create_customer_agreement(SERVICE_USER, CUSTOMER_NEITHER, ADA, date_agreed=when)
    assert not again.created and again.agreement == made.agreement


def test_attestation_refusals(fresh_sim: Simulator, make_client) -> None:
    client = make_client()
    with pytest.raises(InvalidArgumentError):
        client.create_customer_agreement(
            user(fresh_sim),
            CUSTOMER_NEITHER,
            ADA,
            date_agreed=datetime.now(UTC) + timedelta(days=1),
        )
    with pytest.raises(InvalidArgumentError):
        client.create_customer_agreement(user(fresh_sim), "not-a-guid", ADA)
    assert fresh_sim.stats.api_requests == []
    fresh_sim.set_partner(indirect_reseller=True)
    with pytest.raises(IndirectResellerError) as caught:
        client.create_customer_agreement(user(fresh_sim), CUSTOMER_NEITHER, ADA)
    assert caught.value.status == 403 and "indirect provider" in str(caught.value.remedy)
