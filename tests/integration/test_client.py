"""The Partner Center client through the real MSAL and requests, against the simulator over TLS."""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

import pytest

from partnercenter import (
    SERVICE_USER,
    AgreementType,
    BadResponseError,
    CallerMfaClaimMissingError,
    CallerTokenRejectedError,
    ConsentExpiredError,
    InvalidArgumentError,
    InvalidClientCredentialError,
    MfaRequiredError,
    NotFoundError,
    OnBehalfOf,
    PartnerCenterClient,
    ServiceUserNotConfiguredError,
    Settings,
    ThrottledError,
    UnauthorizedError,
    UpstreamError,
    UpstreamTimeoutError,
)
from partnercenter._transport import Deadline
from simulator import (
    CUSTOMER_CLOUD_ONLY,
    CUSTOMER_MCA,
    CUSTOMER_NEW_TYPE,
    CUSTOMER_NO_AGREEMENTS,
    CUSTOMER_UNKNOWN,
    Fault,
    Simulator,
)

from ..conftest import sim_environ

RELATIONSHIP_PATH = "/v1/customers/relationshiprequests"


def user(sim: Simulator, oid: str | None = None, **claims) -> OnBehalfOf:
    """A signed-in user of the partner tenant, as the gateway would pass them on."""
    oid = oid or str(uuid.uuid4())
    return OnBehalfOf(sim.user_token(oid=oid, **claims), sim.tenant_id, oid)


def test_relationship_request_on_behalf_of_the_user(fresh_sim: Simulator, make_client) -> None:
    client = make_client()
    alice = user(fresh_sim)
    correlation = str(uuid.uuid4())
    link = client.get_relationship_request(alice, correlation_id=correlation)
    assert link.url.startswith("https://")
    assert fresh_sim.partner_id in link.url
    [seen] = fresh_sim.stats.api_requests
    assert seen.subject == (fresh_sim.tenant_id, alice.object_id)
    assert seen.headers["ms-correlationid"] == correlation
    assert uuid.UUID(seen.headers["ms-requestid"])
    assert seen.headers["ms-contract-version"] == "v1"
    assert seen.headers["x-locale"] == "en-US"
    assert seen.headers["ms-partnercenter-application"] == "PartnerCenterGateway"
    assert seen.headers["accept"] == "application/json"
    assert fresh_sim.stats.token_requests.get("on_behalf_of") == 1


def test_indirect_ids_are_passed_through(fresh_sim: Simulator, make_client) -> None:
    client = make_client(RELATIONSHIP_REQUEST_CACHE_SECONDS="0")
    reseller = str(uuid.uuid4())
    link = client.get_relationship_request(user(fresh_sim), indirect_reseller_id=reseller)
    assert fresh_sim.stats.api_requests[0].query["indirectResellerId"] == [reseller]
    assert reseller in link.url


def test_relationship_request_is_cached_only_for_the_credentials_it_was_fetched_with(
    fresh_sim: Simulator, make_client
) -> None:
    client = make_client(PARTNER_CENTER_REFRESH_TOKEN=fresh_sim.refresh_token_for())
    alice = user(fresh_sim)
    first = client.get_relationship_request(alice)
    assert client.get_relationship_request(alice) == first
    assert fresh_sim.stats.api_calls.get(RELATIONSHIP_PATH) == 1
    # Another user, and another sign-in of the same user, are asked of Partner Center: it
    # decides who may read the link.
    client.get_relationship_request(user(fresh_sim))
    client.get_relationship_request(user(fresh_sim, alice.object_id))
    assert fresh_sim.stats.api_calls.get(RELATIONSHIP_PATH) == 3
    # The service user is one set of credentials, whichever app it serves.
    client.get_relationship_request(SERVICE_USER)
    client.get_relationship_request(SERVICE_USER)
    assert fresh_sim.stats.api_calls.get(RELATIONSHIP_PATH) == 4


def test_a_partner_center_token_serves_only_the_caller_token_it_was_exchanged_for(
    fresh_sim: Simulator, make_client
) -> None:
    client = make_client()
    oid = str(uuid.uuid4())
    strong, weak = user(fresh_sim, oid, mfa=True), user(fresh_sim, oid, mfa=False)
    client.list_customer_agreements(strong, CUSTOMER_MCA)
    client.list_customer_agreements(strong, CUSTOMER_MCA)
    assert fresh_sim.stats.token_requests["on_behalf_of"] == 1
    with pytest.raises(CallerMfaClaimMissingError, match="multi-factor"):
        client.list_customer_agreements(weak, CUSTOMER_MCA)
    assert fresh_sim.stats.token_requests["on_behalf_of"] == 2


@pytest.mark.parametrize(
    ("requested", "sent"),
    [
        (AgreementType.ALL, "*"),
        (AgreementType.MICROSOFT_CUSTOMER_AGREEMENT, "MicrosoftCustomerAgreement"),
        (AgreementType.MICROSOFT_CLOUD_AGREEMENT, "MicrosoftCloudAgreement"),
    ],
)
def test_the_agreement_type_is_always_sent(
    fresh_sim: Simulator, make_client, requested: AgreementType, sent: str
) -> None:
    client = make_client()
    client.list_customer_agreements(user(fresh_sim), CUSTOMER_MCA, requested)
    [seen] = fresh_sim.stats.api_requests
    assert seen.query["agreementType"] == [sent]


def test_default_lists_every_type_not_just_the_cloud_agreement(
    fresh_sim: Simulator, make_client
) -> None:
    client = make_client()
    agreements = client.list_customer_agreements(user(fresh_sim), CUSTOMER_MCA)
    types = sorted(a.type for a in agreements.items)
    assert types.count("MicrosoftCustomerAgreement") == 2
    assert "MicrosoftCloudAgreement" in types
    mca = [a for a in agreements.items if a.type == "MicrosoftCustomerAgreement"]
    assert {a.date_agreed.isoformat() for a in mca if a.date_agreed} == {
        "2019-08-26T00:00:00+00:00",
        "2019-08-27T00:00:00+00:00",
    }


def test_agreement_variants(fresh_sim: Simulator, make_client) -> None:
    client = make_client()
    alice = user(fresh_sim)
    assert client.list_customer_agreements(alice, CUSTOMER_NO_AGREEMENTS).items == []
    only_mca = client.list_customer_agreements(
        alice, CUSTOMER_CLOUD_ONLY, AgreementType.MICROSOFT_CUSTOMER_AGREEMENT
    )
    assert only_mca.items == []
    new = client.list_customer_agreements(alice, CUSTOMER_NEW_TYPE)
    assert {a.type for a in new.items} >= {"MicrosoftCustomerAgreement"}
    assert any(a.type not in {t.value for t in AgreementType} for a in new.items)


def test_unknown_customer_is_not_found(fresh_sim: Simulator, make_client) -> None:
    client = make_client()
    with pytest.raises(NotFoundError) as caught:
        client.list_customer_agreements(user(fresh_sim), CUSTOMER_UNKNOWN)
    assert caught.value.status == 404
    assert caught.value.code
    assert caught.value.request_id == fresh_sim.stats.api_requests[0].headers["ms-requestid"]


@pytest.mark.parametrize(
    "bad", ["", "x", "../customers", "14876998-c0dc-46e6-9d0c-65a57a6c32e", "%2e%2e"]
)
def test_ids_are_validated_before_any_request(fresh_sim: Simulator, make_client, bad: str) -> None:
    client = make_client()
    with pytest.raises(InvalidArgumentError):
        client.list_customer_agreements(user(fresh_sim), bad)
    with pytest.raises(InvalidArgumentError):
        client.get_relationship_request(user(fresh_sim), indirect_reseller_id=bad)
    with pytest.raises(InvalidArgumentError):
        client.list_customer_agreements(user(fresh_sim), CUSTOMER_MCA, "MicrosoftPartnerAgreement")
    assert fresh_sim.stats.api_requests == []
    assert sum(fresh_sim.stats.token_requests.values()) == 0


def test_32_concurrent_first_calls_of_one_user_make_one_token_request(
    fresh_sim: Simulator, make_client
) -> None:
    fresh_sim.set_latency(token=0.2)
    client = make_client()
    alice = user(fresh_sim)
    barrier = threading.Barrier(32)

    def call(_: int) -> int:
        barrier.wait()
        return client.list_customer_agreements(alice, CUSTOMER_MCA).total_count

    with ThreadPoolExecutor(32) as pool:
        counts = list(pool.map(call, range(32)))
    assert counts == [counts[0]] * 32
    assert fresh_sim.stats.token_requests.get("on_behalf_of") == 1
    assert len(fresh_sim.stats.api_requests) == 32


def test_one_users_token_never_serves_another(fresh_sim: Simulator, make_client) -> None:
    client = make_client()
    users = [user(fresh_sim) for _ in range(12)]
    jobs = [u for u in users for _ in range(4)]

    def call(principal: OnBehalfOf) -> tuple[str, str]:
        correlation = str(uuid.uuid4())
        client.list_customer_agreements(principal, CUSTOMER_MCA, correlation_id=correlation)
        return correlation, principal.object_id

    with ThreadPoolExecutor(16) as pool:
        expected = dict(pool.map(call, jobs))
    seen = {r.headers["ms-correlationid"]: r.subject for r in fresh_sim.stats.api_requests}
    assert len(seen) == len(jobs)
    for correlation, object_id in expected.items():
        assert seen[correlation] == (fresh_sim.tenant_id, object_id)
    assert fresh_sim.stats.token_requests.get("on_behalf_of") == len(users)


def test_an_assertion_must_belong_to_the_named_user(fresh_sim: Simulator, make_client) -> None:
    client = make_client()
    alice = user(fresh_sim)
    mallory = OnBehalfOf(alice.assertion, fresh_sim.tenant_id, str(uuid.uuid4()))
    with pytest.raises(InvalidArgumentError):
        client.list_customer_agreements(mallory, CUSTOMER_MCA)


def test_the_cap_on_cached_users_holds(fresh_sim: Simulator, make_client) -> None:
    client = make_client(TOKEN_CACHE_MAX_USERS="3")
    users = [user(fresh_sim) for _ in range(5)]
    for principal in users:
        client.list_customer_agreements(principal, CUSTOMER_MCA)
    cache = client.tokens.cache
    assert len(cache) == 3
    assert cache.stats().evictions == 2
    client.list_customer_agreements(users[-1], CUSTOMER_MCA)  # still cached
    assert fresh_sim.stats.token_requests["on_behalf_of"] == 5
    client.list_customer_agreements(users[0], CUSTOMER_MCA)  # evicted: exchanged again
    assert fresh_sim.stats.token_requests["on_behalf_of"] == 6


def test_a_token_is_renewed_before_it_expires(fresh_sim: Simulator) -> None:
    offset = [0.0]
    client = PartnerCenterClient(
        Settings.from_environ(sim_environ(fresh_sim)), clock=lambda: time.monotonic() + offset[0]
    )
    alice = user(fresh_sim)
    try:
        client.list_customer_agreements(alice, CUSTOMER_MCA)
        offset[0] = 3600 - 300 - 5  # inside the lifetime less MSAL's five-minute margin
        client.list_customer_agreements(alice, CUSTOMER_MCA)
        assert fresh_sim.stats.token_requests["on_behalf_of"] == 1
        offset[0] = 3600 - 300 + 5  # past it
        client.list_customer_agreements(alice, CUSTOMER_MCA)
        assert fresh_sim.stats.token_requests["on_behalf_of"] == 2
    finally:
        client.close()


def test_service_user_refresh_token_redeemed_once_then_cached(
    fresh_sim: Simulator, make_client
) -> None:
    client = make_client(PARTNER_CENTER_REFRESH_TOKEN=fresh_sim.refresh_token_for())
    for _ in range(5):
        client.list_customer_agreements(SERVICE_USER, CUSTOMER_MCA)
    assert fresh_sim.stats.token_requests.get("refresh_token") == 1
    assert fresh_sim.stats.token_requests.get("on_behalf_of", 0) == 0
    subjects = {r.subject for r in fresh_sim.stats.api_requests}
    assert len(subjects) == 1


def test_no_service_user_configured(fresh_sim: Simulator, make_client) -> None:
    client = make_client()
    with pytest.raises(ServiceUserNotConfiguredError) as caught:
        client.list_customer_agreements(SERVICE_USER, CUSTOMER_MCA)
    assert "PARTNER_CENTER_REFRESH_TOKEN" in str(caught.value)


def test_expired_refresh_token_says_re_consent(fresh_sim: Simulator, make_client) -> None:
    client = make_client(PARTNER_CENTER_REFRESH_TOKEN=fresh_sim.refresh_token_for(expired=True))
    with pytest.raises(ConsentExpiredError) as caught:
        client.list_customer_agreements(SERVICE_USER, CUSTOMER_MCA)
    assert caught.value.aadsts == 700082
    assert "consent" in (caught.value.remedy or "").lower()


def test_certificate_credential(fresh_sim: Simulator, make_client) -> None:
    client = make_client(
        AZURE_CLIENT_SECRET="", AZURE_CLIENT_CERTIFICATE_PATH=fresh_sim.client_certificate_path
    )
    client.list_customer_agreements(user(fresh_sim), CUSTOMER_MCA)
    assert fresh_sim.stats.token_requests["on_behalf_of"] == 1


def test_federated_credential_without_any_secret(fresh_sim: Simulator) -> None:
    env = sim_environ(
        fresh_sim,
        AZURE_CLIENT_SECRET="",
        AZURE_FEDERATED_IDENTITY_CLIENT_ID=fresh_sim.managed_identity_client_id,
    )
    client = PartnerCenterClient(
        Settings.from_environ(env), client_assertion=fresh_sim.federated_assertion
    )
    try:
        client.list_customer_agreements(user(fresh_sim), CUSTOMER_MCA)
    finally:
        client.close()
    assert fresh_sim.stats.token_requests["on_behalf_of"] == 1


def test_wrong_client_secret_says_fix_configuration(fresh_sim: Simulator, make_client) -> None:
    client = make_client(AZURE_CLIENT_SECRET="wrong-secret-value")
    with pytest.raises(InvalidClientCredentialError) as caught:
        client.list_customer_agreements(user(fresh_sim), CUSTOMER_MCA)
    assert caught.value.aadsts == 7000215
    assert "wrong-secret-value" not in str(caught.value)


def test_expired_caller_token_is_rejected_by_the_exchange(
    fresh_sim: Simulator, make_client
) -> None:
    client = make_client()
    with pytest.raises(CallerTokenRejectedError):
        client.list_customer_agreements(user(fresh_sim, expires_in=-600), CUSTOMER_MCA)


@pytest.mark.parametrize("aadsts", [50076, 50078])
def test_mfa_required(fresh_sim: Simulator, make_client, aadsts: int) -> None:
    fresh_sim.faults.add(
        Fault.aad_error(
            "interaction_required", aadsts, "Due to a configuration change you must use MFA"
        )
    )
    client = make_client()
    with pytest.raises(MfaRequiredError) as caught:
        client.list_customer_agreements(user(fresh_sim), CUSTOMER_MCA)
    assert caught.value.aadsts == aadsts


def test_partner_center_refuses_a_token_without_mfa(fresh_sim: Simulator, make_client) -> None:
    client = make_client()
    with pytest.raises(UnauthorizedError):
        client.list_customer_agreements(user(fresh_sim, mfa=False), CUSTOMER_MCA)


def test_token_endpoint_503_is_retried(fresh_sim: Simulator, make_client) -> None:
    fresh_sim.faults.add(Fault(target="token", status=503, headers={"Retry-After": "0"}))
    client = make_client()
    client.list_customer_agreements(user(fresh_sim), CUSTOMER_MCA)
    assert fresh_sim.stats.token_requests["on_behalf_of"] == 2


def test_a_retry_keeps_its_request_id(fresh_sim: Simulator, make_client) -> None:
    fresh_sim.faults.add(Fault(path="/v1/customers/", status=503, body="<html>down</html>"))
    client = make_client()
    client.list_customer_agreements(user(fresh_sim), CUSTOMER_MCA)
    first, second = fresh_sim.stats.api_requests
    assert first.status == 503 and second.status == 200
    assert first.headers["ms-requestid"] == second.headers["ms-requestid"]
    assert first.headers["ms-correlationid"] == second.headers["ms-correlationid"]


@pytest.mark.parametrize("shape", ["gateway", "documented"])
def test_retry_after_is_honoured(
    fresh_sim: Simulator, make_client, shape: Literal["gateway", "documented"]
) -> None:
    fresh_sim.faults.add(Fault.throttled(1, shape=shape))
    client = make_client()
    alice = user(fresh_sim)
    client.tokens.get_token(alice, Deadline(10))  # the exchange is not what is timed
    started = time.monotonic()
    client.list_customer_agreements(alice, CUSTOMER_MCA)
    assert time.monotonic() - started >= 1.0
    assert [r.status for r in fresh_sim.stats.api_requests] == [429, 200]


def test_retry_after_past_the_deadline_fails_at_once(fresh_sim: Simulator, make_client) -> None:
    fresh_sim.faults.add(Fault.throttled(90))
    client = make_client(PARTNER_CENTER_DEADLINE_SECONDS="10")
    started = time.monotonic()
    with pytest.raises(ThrottledError) as caught:
        client.list_customer_agreements(user(fresh_sim), CUSTOMER_MCA)
    assert time.monotonic() - started < 5
    assert caught.value.retry_after == 90
    assert len(fresh_sim.stats.api_requests) == 1


def test_silent_upstream_ends_at_the_deadline(fresh_sim: Simulator, make_client) -> None:
    fresh_sim.faults.add(Fault(path="/v1/customers/", delay=5.0, times=5))
    client = make_client(PARTNER_CENTER_DEADLINE_SECONDS="1.5")
    started = time.monotonic()
    with pytest.raises(UpstreamTimeoutError):
        client.list_customer_agreements(user(fresh_sim), CUSTOMER_MCA)
    assert time.monotonic() - started < 3


def test_dropped_connection_is_retried(fresh_sim: Simulator, make_client) -> None:
    fresh_sim.faults.add(Fault(path="/v1/customers/", drop=True))
    client = make_client()
    assert client.list_customer_agreements(user(fresh_sim), CUSTOMER_MCA).total_count >= 1


def test_persistent_failure_is_an_upstream_error(fresh_sim: Simulator, make_client) -> None:
    fresh_sim.faults.add(Fault(path="/v1/customers/", status=502, times=10))
    client = make_client(PARTNER_CENTER_MAX_ATTEMPTS="3")
    with pytest.raises(UpstreamError) as caught:
        client.list_customer_agreements(user(fresh_sim), CUSTOMER_MCA)
    assert caught.value.status == 502
    assert len(fresh_sim.stats.api_requests) == 3


@pytest.mark.parametrize("kind", ["seed-example", "html", "empty", "truncated"])
def test_unreadable_bodies_are_bad_responses(fresh_sim: Simulator, make_client, kind: Any) -> None:
    fresh_sim.faults.add(Fault(path="/v1/customers/", body_kind=kind, status=200))
    client = make_client()
    with pytest.raises(BadResponseError):
        client.list_customer_agreements(user(fresh_sim), CUSTOMER_MCA)


@pytest.mark.parametrize("kind", ["bom", "extra-fields", "new-enum"])
def test_tolerated_bodies_are_served(fresh_sim: Simulator, make_client, kind: Any) -> None:
    fresh_sim.faults.add(Fault(path="/v1/customers/", body_kind=kind))
    client = make_client()
    assert client.list_customer_agreements(user(fresh_sim), CUSTOMER_MCA).items


def test_connections_are_pooled(fresh_sim: Simulator, make_client) -> None:
    client = make_client(RELATIONSHIP_REQUEST_CACHE_SECONDS="0")
    alice = user(fresh_sim)
    for _ in range(10):
        client.list_customer_agreements(alice, CUSTOMER_MCA)
    assert fresh_sim.stats.connections["api"] == 1
