"""POST /api/events/partner-center, fed by the simulator's signed (and forged) deliveries."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
import requests

from gateway.storage import DELIVERY_QUEUE, StorageClients, set_storage_clients, storage_clients
from partnercenter import PartnerCenterEvent
from simulator import Simulator, SimulatorClient
from simulator._webhooks import FORGERIES

from ..connector.test_responses import assert_as_described
from .conftest import attempts_of, signed_headers, stored_event, wait_for

OPERATION = "ReceivePartnerCenterEvent"


def queued_ids() -> list[str]:
    """Event ids of the messages on the delivery queue (peeked, not taken)."""
    messages = storage_clients().queue(DELIVERY_QUEUE).peek_messages(max_messages=32)
    return [json.loads(m.content)["eventId"] for m in messages]


def fired_event(result: dict[str, object]) -> PartnerCenterEvent:
    assert result["delivered"], result
    body = result["body"]
    assert isinstance(body, str)
    return PartnerCenterEvent.from_json(body.encode())


def test_a_signed_event_is_stored_and_queued(registered: Simulator) -> None:
    customer = registered.accept_relationship()
    attempts = wait_for(
        lambda: attempts_of(registered, "reseller-relationship-accepted-by-customer"),
        what="the delivery",
    )
    assert attempts[0]["status"] == 200
    stored = list(
        storage_clients()
        .table("events")
        .query_entities("CustomerId eq @c", parameters={"c": customer})
    )
    assert len(stored) == 1
    entity = stored[0]
    assert entity["EventName"] == "reseller-relationship-accepted-by-customer"
    assert entity["ResourceUri"] == f"/v1/customers/{customer}"
    assert entity["ResourceName"] == "Customer"
    assert entity["Enqueued"] is True
    assert entity["ReceivedAt"].endswith("+00:00")
    assert entity["RowKey"] in queued_ids()


@pytest.mark.parametrize("forgery", sorted(FORGERIES))
def test_a_forged_delivery_is_refused_and_nothing_is_stored(
    registered: Simulator, forgery: str
) -> None:
    result = registered.webhooks.fire(
        "granular-admin-relationship-approved",
        resource_uri=f"/v1/customers/{registered.partner_id}/forged-{forgery}",
        forgery=forgery,
    )
    event = fired_event(result)
    attempts = wait_for(
        lambda: attempts_of(registered, "granular-admin-relationship-approved"),
        what="the forged delivery",
    )
    assert attempts[0]["status"] == 401
    assert stored_event(event.event_id) is None
    assert event.event_id not in queued_ids()


def test_the_refusal_is_a_problem_naming_the_check(
    registered: Simulator, api: requests.Session, receiver_url: str
) -> None:
    response = api.post(
        receiver_url,
        data=b'{"EventName":"test-created"}',
        headers={"Authorization": "Signature AAAA", "X-MS-Signature-Algorithm": "rsa-sha256"},
    )
    assert response.status_code == 401
    assert response.headers["Content-Type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["type"].endswith(":invalid-signature")
    assert "X-MS-Certificate-Url" in problem["detail"]
    assert response.headers["WWW-Authenticate"].startswith("Signature ")


def test_a_redelivery_is_stored_and_queued_once(registered: Simulator) -> None:
    customer = "0b0b0b0b-1c1c-4d2d-8e3e-4f4f4f4f4f4f"
    name = "indirect-reseller-relationship-accepted-by-customer"

    def fire(duplicates: int) -> PartnerCenterEvent:
        return fired_event(
            registered.webhooks.fire(
                name,
                resource_uri=f"/v1/customers/{customer}",
                resource_name="Customer",
                changed_at="2026-01-02T03:04:05.1234567Z",
                duplicates=duplicates,
            )
        )

    event = fire(1)
    wait_for(lambda: attempts_of(registered, name), what="the first delivery")
    again = fire(2)
    assert again.event_id == event.event_id
    attempts = wait_for(lambda: attempts_of(registered, name)[2:], what="the redeliveries")
    assert [a["status"] for a in attempts_of(registered, name)] == [200, 200, 200]
    assert attempts
    entity = stored_event(event.event_id)
    assert entity is not None
    assert entity["CustomerId"] == customer
    assert entity["ChangedAt"] == "2026-01-02T03:04:05.1234567Z"
    assert queued_ids().count(event.event_id) == 1


def test_simultaneous_duplicates_are_stored_once_and_queued(registered: Simulator) -> None:
    result = registered.webhooks.fire(
        "granular-admin-relationship-approved",
        resource_uri="/v1/customers/1c1c1c1c-2d2d-4e3e-8f4f-5a5a5a5a5a5a/gdap",
        duplicates=4,
    )
    event = fired_event(result)
    wait_for(
        lambda: attempts_of(registered, "granular-admin-relationship-approved")[3:],
        what="four deliveries",
    )
    statuses = [
        a["status"] for a in attempts_of(registered, "granular-admin-relationship-approved")
    ]
    assert statuses == [200] * 4
    rows = list(
        storage_clients()
        .table("events")
        .query_entities("RowKey eq @id", parameters={"id": event.event_id})
    )
    assert len(rows) == 1
    # At least once on the queue; more than once only if a delivery did not see another's mark.
    assert 1 <= queued_ids().count(event.event_id) <= 4


def test_the_ms_signature_header_form_is_accepted(registered: Simulator, receiver_url: str) -> None:
    registered.webhooks.register(receiver_url, ["test-created"], ms_signature_header=True)
    result = registered.webhooks.fire("test-created", resource_name="test")
    event = fired_event(result)
    attempts = wait_for(lambda: attempts_of(registered, "test-created"), what="the delivery")
    assert attempts[0]["status"] == 200
    assert stored_event(event.event_id) is not None


def _broken_storage(queue_only: bool, *, table_only: bool = False) -> StorageClients:
    """Clients whose queue (and, unless ``queue_only``, table) is a port nothing listens on;
    with ``table_only``, only the table is."""
    working = storage_clients().target
    closed = "http://127.0.0.1:9/devstoreaccount1"
    return StorageClients(
        replace(
            working,
            table_endpoint=working.table_endpoint if queue_only else closed,
            queue_endpoint=working.queue_endpoint if table_only else closed,
        )
    )


def test_an_event_queued_but_not_stored_is_a_5xx_and_stored_by_the_redelivery(
    registered: Simulator,
) -> None:
    """The message goes out first: when the row cannot be written, Partner Center gets a 503
    and delivers again; the event is then stored, and queued twice (the fan-out's claim makes
    the second message deliver nothing)."""
    name = "granular-admin-relationship-approved"
    set_storage_clients(_broken_storage(False, table_only=True))
    try:
        event = fired_event(
            registered.webhooks.fire(
                name, resource_uri="/v1/customers/4f4f4f4f-5a5a-4b6b-8c7c-8d8d8d8d8d8d/table"
            )
        )
        assert (
            wait_for(lambda: attempts_of(registered, name), what="a delivery")[0]["status"] == 503
        )
    finally:
        set_storage_clients(None)
    wait_for(
        lambda: [a for a in attempts_of(registered, name) if a["status"] == 200],
        what="a successful redelivery",
    )
    assert stored_event(event.event_id) is not None
    assert queued_ids().count(event.event_id) == 2


@pytest.mark.parametrize("queue_only", [False, True], ids=["storage-down", "queue-down"])
def test_a_storage_failure_is_a_5xx_and_the_redelivery_is_kept(
    registered: Simulator, queue_only: bool
) -> None:
    set_storage_clients(_broken_storage(queue_only))
    try:
        event = fired_event(
            registered.webhooks.fire(
                "granular-admin-relationship-approved",
                resource_uri=f"/v1/customers/2d2d2d2d-3e3e-4f4f-8a5a-6b6b6b6b6b6b/{queue_only}",
            )
        )
        first = wait_for(
            lambda: attempts_of(registered, "granular-admin-relationship-approved"),
            what="the first delivery",
        )
        assert first[0]["status"] == 503
    finally:
        # Storage is back (clients built again from AzureWebJobsStorage); Partner Center (the
        # simulator) retries the delivery.
        set_storage_clients(None)
    retried = wait_for(
        lambda: [
            a
            for a in attempts_of(registered, "granular-admin-relationship-approved")
            if a["status"] == 200
        ],
        what="a successful redelivery",
    )
    assert retried
    entity = stored_event(event.event_id)
    assert entity is not None
    assert entity["Enqueued"] is True
    assert queued_ids().count(event.event_id) == 1


def test_the_answers_are_as_the_definition_describes(
    registered: Simulator,
    api: requests.Session,
    receiver_url: str,
    definition: dict[str, Any],
) -> None:
    body = json.dumps(
        {
            "EventName": "test-created",
            "ResourceUri": "https://api.partnercenter.microsoft.com/webhooks/v1/registration/x",
            "ResourceName": "test",
            "AuditUri": None,
            "ResourceChangeUtcDate": "2026-03-01T10:00:00.0000000Z",
        }
    ).encode()
    ok = api.post(receiver_url, data=body, headers=signed_headers(registered, body))
    receipt = assert_as_described(definition, OPERATION, ok, 200)
    assert receipt == {
        "eventId": PartnerCenterEvent.from_json(body).event_id,
        "duplicate": False,
    }
    again = api.post(receiver_url, data=body, headers=signed_headers(registered, body))
    assert assert_as_described(definition, OPERATION, again, 200)["duplicate"] is True
    forged = api.post(receiver_url, data=body, headers=signed_headers(registered, body + b" "))
    assert_as_described(definition, OPERATION, forged, 401)


@pytest.mark.parametrize(
    ("body", "argument"),
    [
        (b"{not json", "not JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"ResourceUri": "/v1/customers/x", "ResourceChangeUtcDate": "2026"}', "EventName"),
        (b'{"EventName": "test-created", "ResourceChangeUtcDate": "2026"}', "ResourceUri"),
        (b'{"EventName": "test-created", "ResourceUri": "/x"}', "ResourceChangeUtcDate"),
        (b'{"EventName": 7, "ResourceUri": "/x", "ResourceChangeUtcDate": "2026"}', "EventName"),
        (
            b'{"EventName": "a b", "ResourceUri": "/x", "ResourceChangeUtcDate": "2026"}',
            "EventName",
        ),
    ],
)
def test_a_signed_but_invalid_payload_is_a_400(
    registered: Simulator,
    api: requests.Session,
    receiver_url: str,
    definition: dict[str, Any],
    body: bytes,
    argument: str,
) -> None:
    response = api.post(receiver_url, data=body, headers=signed_headers(registered, body))
    problem = assert_as_described(definition, OPERATION, response, 400)
    assert argument in problem["detail"]


def test_an_oversized_body_is_refused_before_any_signature_work(
    registered: Simulator, api: requests.Session, receiver_url: str
) -> None:
    body = b'{"EventName": "test-created", "Padding": "' + b"x" * 40_000 + b'"}'
    response = api.post(receiver_url, data=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert "larger than" in response.json()["detail"]


def test_the_control_plane_drives_webhooks(
    registered: Simulator, receiver_url: str, service_env: dict[str, str]
) -> None:
    """What a simulator in another process (benchmarks, soak) is driven with."""
    client = SimulatorClient(registered.partner_center_url, registered.ca_bundle)
    try:
        registration = client.register_webhook(
            receiver_url, ["reseller-relationship-accepted-by-customer"], retry_delay=0.05
        )
        assert registration["WebhookUrl"] == receiver_url
        customer = client.accept_relationship()
        wait_for(
            lambda: [a for a in client.webhook_attempts() if a["status"] == 200],
            what="the delivery",
        )
        rows = list(
            storage_clients()
            .table("events")
            .query_entities("CustomerId eq @c", parameters={"c": customer})
        )
        assert len(rows) == 1
        assert client.webhook_pending() == 0
        skipped = client.fire_event("invoice-ready")
        assert skipped == {"delivered": False, "reason": "invoice-ready is not registered"}
    finally:
        client.close()


def test_an_event_stored_but_never_queued_is_queued_by_its_redelivery(
    registered: Simulator, api: requests.Session, receiver_url: str
) -> None:
    """A row an earlier receiver wrote before failing to queue the event (``Enqueued`` false):
    the redelivery's message stays on the queue."""
    body = json.dumps(
        {
            "EventName": "granular-admin-relationship-approved",
            "ResourceUri": "/v1/customers/3e3e3e3e-4f4f-4a5a-8b6b-7c7c7c7c7c7c/gdap",
            "ResourceName": "GranularAdminRelationship",
            "AuditUri": None,
            "ResourceChangeUtcDate": "2026-04-05T06:07:08.0000000Z",
        }
    ).encode()
    event_id = PartnerCenterEvent.from_json(body).event_id
    storage_clients().table("events").create_entity(
        {"PartitionKey": "event", "RowKey": event_id, "Enqueued": False}
    )
    answer = api.post(receiver_url, data=body, headers=signed_headers(registered, body))
    assert answer.status_code == 200
    assert answer.json() == {"eventId": event_id, "duplicate": True}
    assert queued_ids().count(event_id) == 1
    message = storage_clients().queue(DELIVERY_QUEUE).peek_messages(max_messages=32)
    carried = [json.loads(m.content) for m in message]
    (ours,) = [m for m in carried if m["eventId"] == event_id]
    assert ours["event"]["EventName"] == "granular-admin-relationship-approved"
    assert ours["event"]["CustomerId"] == "3e3e3e3e-4f4f-4a5a-8b6b-7c7c7c7c7c7c"
