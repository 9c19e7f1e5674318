"""The registration command and the client's registration calls, against the simulator's
Partner Center and the app receiving its signed test event."""

from __future__ import annotations

import io
import json

import pytest
import requests

from gateway.webhooks import main
from partnercenter import (
    GATEWAY_EVENTS,
    SERVICE_USER,
    InvalidArgumentError,
    NotFoundError,
    PartnerCenterClient,
    ServiceUserMfaClaimMissingError,
    Settings,
    ThrottledError,
)
from simulator import Fault, Simulator

from .conftest import attempts_of


@pytest.fixture
def sim_for_registration(
    fresh_sim: Simulator, azurite: object, service_env: dict[str, str]
) -> Simulator:
    """The simulator with no registration, retrying failed deliveries quickly."""
    fresh_sim.webhooks.reset()
    fresh_sim.webhooks.retry_delay = 0.05
    return fresh_sim


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    status = main(list(argv), out=out)
    return status, out.getvalue()


def test_register_show_update_and_test(sim_for_registration: Simulator, receiver_url: str) -> None:
    sim = sim_for_registration
    status, output = run("show")
    assert status == 1
    assert "No webhook is registered" in output

    status, output = run("register", "--url", receiver_url)
    assert status == 0, output
    registration = json.loads(output)
    assert registration["WebhookUrl"] == receiver_url
    assert registration["WebhookEvents"] == list(GATEWAY_EVENTS)
    assert sim.webhooks.registration is not None
    assert sim.webhooks.registration["WebhookUrl"] == receiver_url

    status, output = run("register", "--url", receiver_url)
    assert status == 0
    assert output.startswith("Already registered")

    status, output = run("register", "--url", receiver_url, "--events", "test-created")
    assert status == 1
    assert "use `update`" in output

    status, output = run("update", "--url", receiver_url, "--events", "test-created,invoice-ready")
    assert status == 0, output
    assert json.loads(output)["WebhookEvents"] == ["test-created", "invoice-ready"]
    assert json.loads(run("show")[1])["SubscriberId"] == registration["SubscriberId"]

    status, output = run("test", "--wait", "30")
    assert status == 0, output
    assert "Arrived: event " in output
    assert attempts_of(sim, "test-created")[0]["status"] == 200


def test_a_test_event_the_receiver_refuses_is_reported(
    sim_for_registration: Simulator, receiver_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim = sim_for_registration
    assert run("register", "--url", receiver_url)[0] == 0
    # The receiver allows only another certificate host: every delivery is refused (401).
    from gateway.runtime import set_runtime  # noqa: PLC0415

    monkeypatch.setenv("WEBHOOK_CERTIFICATE_HOSTS", "3psostorageacct.blob.core.windows.net")
    set_runtime(None)
    try:
        status, output = run("test", "--wait", "1")
    finally:
        monkeypatch.undo()
        set_runtime(None)
    assert status == 1
    assert "did not arrive" in output
    assert "answered 401" in output
    assert all(a["status"] == 401 for a in attempts_of(sim, "test-created"))


def test_the_client_operations(sim_for_registration: Simulator, receiver_url: str) -> None:
    client = PartnerCenterClient(Settings.from_environ())
    try:
        with pytest.raises(NotFoundError):
            client.get_webhook_registration(SERVICE_USER)
        with pytest.raises(InvalidArgumentError):
            client.create_webhook_registration(SERVICE_USER, "http://example.com/hook")
        with pytest.raises(InvalidArgumentError):
            client.create_webhook_registration(SERVICE_USER, receiver_url, [])
        created = client.create_webhook_registration(SERVICE_USER, receiver_url)
        assert created.webhook_events == list(GATEWAY_EVENTS)
        assert created.subscriber_id
        assert client.get_webhook_registration(SERVICE_USER) == created
        correlation_id = client.send_webhook_test_event(SERVICE_USER)
        status = client.get_webhook_test_event_status(SERVICE_USER, correlation_id)
        assert status.correlation_id == correlation_id
        assert status.events[0].event_name == "test-created"
    finally:
        client.close()


def test_registration_api_takes_app_only_tokens(
    sim_for_registration: Simulator, receiver_url: str
) -> None:
    """Partner Center's registration API takes app-only tokens too (the simulator checks)."""
    token = sim_for_registration.tokens.app_access_token(
        app_id=sim_for_registration.client_id,
        audience="https://api.partnercenter.microsoft.com",
    )
    session = requests.Session()
    session.trust_env = False
    session.verify = sim_for_registration.ca_bundle
    url = f"{sim_for_registration.partner_center_url}/webhooks/v1/registration"
    headers = {"Authorization": f"Bearer {token}"}
    created = session.post(
        url, json={"WebhookUrl": receiver_url, "WebhookEvents": ["test-created"]}, headers=headers
    )
    assert created.status_code == 200, created.text
    assert session.get(url, headers=headers).json()["WebhookUrl"] == receiver_url
    conflict = session.post(
        url, json={"WebhookUrl": receiver_url, "WebhookEvents": ["test-created"]}, headers=headers
    )
    assert conflict.status_code == 409
    refused = session.put(
        url, json={"WebhookUrl": receiver_url, "WebhookEvents": ["nope"]}, headers=headers
    )
    assert refused.status_code == 400
    events = session.get(f"{url}/events", headers=headers).json()
    assert "reseller-relationship-accepted-by-customer" in events
    assert session.get(url).status_code == 401
    session.close()


def test_test_events_are_limited_to_two_a_minute(
    sim_for_registration: Simulator, receiver_url: str
) -> None:
    client = PartnerCenterClient(Settings.from_environ(), sleep=lambda _: None)
    try:
        client.create_webhook_registration(SERVICE_USER, receiver_url)
        client.send_webhook_test_event(SERVICE_USER)
        client.send_webhook_test_event(SERVICE_USER)
        with pytest.raises(ThrottledError) as caught:
            client.send_webhook_test_event(SERVICE_USER)
        assert caught.value.retry_after is not None
        assert 1 <= caught.value.retry_after <= 60
    finally:
        client.close()


def test_a_refusal_for_want_of_mfa_names_the_service_users_consent(
    sim_for_registration: Simulator,
) -> None:
    """The registration calls go through the client's token handling like every other call:
    Partner Center's 900421 says that the service user's consent lacks MFA."""
    sim_for_registration.faults.add(
        Fault.partner_center_error(
            401,
            900421,
            "The user is not MFA compliant.",
            shape="newer",
            error_name="Unauthorized",
            path="/webhooks/v1/registration",
        )
    )
    client = PartnerCenterClient(Settings.from_environ())
    try:
        with pytest.raises(ServiceUserMfaClaimMissingError) as caught:
            client.get_webhook_registration(SERVICE_USER)
        assert caught.value.code == "900421"
    finally:
        client.close()
