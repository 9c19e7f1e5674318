"""Event subscriptions and their delivery, over real HTTP, against Azurite and the simulator.

The app is served by the local host; its queue trigger runs in the local queue runner, polling
Azurite; callbacks go to a local https server standing in for Power Automate.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from azure.core.exceptions import ResourceNotFoundError

from function_app import app
from gateway.callbacks import CallbackHosts, CallbackSession
from gateway.delivery import EventDelivery, RetrySchedule, set_delivery
from gateway.event_store import delivery_message
from gateway.local_queues import QueueOptions, QueueTriggerRunner
from gateway.registry import app_functions
from gateway.storage import (
    DELIVERIES_TABLE,
    DELIVERY_QUEUE,
    EVENTS_TABLE,
    StorageClients,
    storage_clients,
)
from simulator import Simulator
from simulator.power_automate import CallbackServer, ConnectToAdapter

EVENT = "reseller-relationship-accepted-by-customer"
SUBSCRIBE = ["Events.Subscribe"]


@pytest.fixture(scope="module")
def storage(azurite: Any, service_env: dict[str, str]) -> StorageClients:
    """The app's storage clients on this session's Azurite (tables and queue created)."""
    return storage_clients()


@pytest.fixture(scope="module")
def callbacks() -> Iterator[CallbackServer]:
    server = CallbackServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def delivery(
    storage: StorageClients, callbacks: CallbackServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EventDelivery]:
    """The app's delivery, its callbacks routed to the local server, retrying after 1 s."""
    ca_file = callbacks.write_ca(str(tmp_path_factory.mktemp("callback-ca") / "ca.pem"))
    session = CallbackSession(CallbackHosts.parse([".logic.azure.com"]))
    session.mount("https://", ConnectToAdapter(callbacks.port, ca_file))
    found = EventDelivery(storage, session, schedule=RetrySchedule(delays=(1.0,), jitter=0.0))
    set_delivery(found)
    yield found
    set_delivery(None)


@pytest.fixture(scope="module")
def queue_runner(delivery: EventDelivery, storage: StorageClients) -> Iterator[None]:
    """The app's queue triggers, run as the Functions host runs them."""
    options = QueueOptions(max_polling_interval=0.5, visibility_timeout=0.0)
    runner = QueueTriggerRunner(app_functions(app).queues, storage, options).start()
    yield
    runner.stop()


@pytest.fixture
def events(queue_runner: None, callbacks: CallbackServer, api: requests.Session) -> CallbackServer:
    callbacks.reset()
    return callbacks


def user(sim: Simulator, scopes: list[str] = SUBSCRIBE) -> dict[str, str]:
    """Headers of a new user of the partner tenant."""
    token = sim.user_token(oid=str(uuid.uuid4()), scopes=scopes)
    return {"Authorization": f"Bearer {token}"}


def subscribe(
    api: requests.Session, base_url: str, headers: dict[str, str], callback: str, event: str = EVENT
) -> str:
    answer = api.post(
        f"{base_url}/subscriptions",
        json={"eventName": event, "callbackUrl": callback},
        headers=headers,
    )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def store_event(
    storage: StorageClients,
    *,
    event: str = EVENT,
    customer: str | None = None,
    received_at: datetime | None = None,
    queued: bool = True,
) -> str:
    """Store an event and queue its delivery (unless not ``queued``), as earlier versions of
    the receiver did: ``{"eventId"}`` alone, the delivery reading the event from its row."""
    customer = customer or str(uuid.uuid4())
    payload = {
        "EventName": event,
        "ResourceUri": f"https://api.partnercenter.microsoft.com/v1/customers/{customer}",
        "ResourceName": "Customer",
        "AuditUri": None,
        "ResourceChangeUtcDate": datetime.now(UTC).isoformat(),
    }
    event_id = hashlib.sha256(
        json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()
    storage.table(EVENTS_TABLE).upsert_entity(
        {
            "PartitionKey": "event",
            "RowKey": event_id,
            "EventName": event,
            "ResourceUri": payload["ResourceUri"],
            "ResourceName": "Customer",
            "AuditUri": "",
            "ChangedAt": payload["ResourceChangeUtcDate"],
            "ReceivedAt": (received_at or datetime.now(UTC)).isoformat(),
            "CustomerId": customer,
            "Enqueued": True,
        }
    )
    if queued:
        storage.queue(DELIVERY_QUEUE).send_message(json.dumps({"eventId": event_id}))
    return event_id


def delivery_row(storage: StorageClients, event_id: str, subscription_id: str) -> Any:
    return storage.table(DELIVERIES_TABLE).get_entity(event_id, subscription_id)


# --- the subscriptions API -----------------------------------------------------------------


def test_subscribe_list_and_delete(
    api: requests.Session, base_url: str, sim: Simulator, events: CallbackServer
) -> None:
    headers = user(sim)
    answer = api.post(
        f"{base_url}/subscriptions",
        json={"eventName": EVENT, "callbackUrl": events.url("/workflows/a/run")},
        headers=headers,
    )
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert set(body) == {"id", "eventName", "createdAt"}
    assert body["eventName"] == EVENT
    assert answer.headers["Location"] == f"/api/subscriptions/{body['id']}"
    assert "callbackUrl" not in answer.text  # the URL carries the flow's signature

    listed = api.get(f"{base_url}/subscriptions", headers=headers).json()
    assert listed["count"] == 1 and listed["subscriptions"] == [body]

    deleted = api.delete(
        f"{base_url}{answer.headers['Location'].removeprefix('/api')}", headers=headers
    )
    assert deleted.status_code == 204 and deleted.content == b""
    assert api.get(f"{base_url}/subscriptions", headers=headers).json()["count"] == 0
    again = api.delete(f"{base_url}/subscriptions/{body['id']}", headers=headers)
    assert again.status_code == 404
    assert again.headers["Content-Type"].startswith("application/problem+json")


def test_one_user_cannot_see_or_delete_anothers_subscription(
    api: requests.Session, base_url: str, sim: Simulator, events: CallbackServer
) -> None:
    owner, other = user(sim), user(sim)
    subscription_id = subscribe(api, base_url, owner, events.url("/workflows/owned/run"))
    assert api.get(f"{base_url}/subscriptions", headers=other).json()["count"] == 0
    refused = api.delete(f"{base_url}/subscriptions/{subscription_id}", headers=other)
    assert refused.status_code == 404
    assert refused.json()["status"] == 404
    # An application is an owner of its own too, apart from every user.
    app_headers = {"Authorization": f"Bearer {sim.app_token(roles=SUBSCRIBE)}"}
    assert api.get(f"{base_url}/subscriptions", headers=app_headers).json()["count"] == 0
    assert (
        api.delete(f"{base_url}/subscriptions/{subscription_id}", headers=app_headers).status_code
        == 404
    )
    # The owner still has it.
    ids = [
        s["id"] for s in api.get(f"{base_url}/subscriptions", headers=owner).json()["subscriptions"]
    ]
    assert ids == [subscription_id]
    assert (
        api.delete(f"{base_url}/subscriptions/{subscription_id}", headers=owner).status_code == 204
    )


@pytest.mark.parametrize(
    "callback_url",
    [
        "https://169.254.169.254/metadata/identity/oauth2/token",
        "http://prod-07.westus.logic.azure.com/workflows/x",
        "https://prod-07.westus.logic.azure.com:8443/workflows/x",
        "https://prod-07.westus.logic.azure.com@evil.example/workflows/x",
        "https://evil.example/workflows/x",
        "https://localhost/workflows/x",
    ],
)
def test_a_disallowed_callback_url_is_refused(
    api: requests.Session, base_url: str, sim: Simulator, events: CallbackServer, callback_url: str
) -> None:
    headers = user(sim)
    answer = api.post(
        f"{base_url}/subscriptions",
        json={"eventName": EVENT, "callbackUrl": callback_url},
        headers=headers,
    )
    assert answer.status_code == 400, answer.text
    problem = answer.json()
    assert answer.headers["Content-Type"].startswith("application/problem+json")
    assert "callbackUrl" in problem["detail"]
    assert api.get(f"{base_url}/subscriptions", headers=headers).json()["count"] == 0


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"eventName": "customer-deleted", "callbackUrl": "x"}, 400, "eventName"),
        ({"callbackUrl": "https://prod-07.westus.logic.azure.com/w"}, 400, "eventName"),
        ({"eventName": EVENT}, 400, "callbackUrl"),
        (
            {"eventName": EVENT, "callbackUrl": "https://prod-07.westus.logic.azure.com/w", "x": 1},
            400,
            "'x'",
        ),
        ("not json", 400, "not valid JSON"),
        ([], 400, "JSON object"),
    ],
)
def test_bad_bodies_are_problems(
    api: requests.Session,
    base_url: str,
    sim: Simulator,
    events: CallbackServer,
    body: Any,
    status: int,
    says: str,
) -> None:
    data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    answer = api.post(
        f"{base_url}/subscriptions",
        data=data,
        headers={**user(sim), "Content-Type": "application/json"},
    )
    assert answer.status_code == status, answer.text
    assert says in answer.json()["detail"]


def test_the_permission_is_required(
    api: requests.Session, base_url: str, sim: Simulator, events: CallbackServer
) -> None:
    headers = user(sim, scopes=["Agreements.Read"])
    answer = api.post(
        f"{base_url}/subscriptions",
        json={"eventName": EVENT, "callbackUrl": events.url("/w")},
        headers=headers,
    )
    assert answer.status_code == 403
    assert "Events.Subscribe" in answer.json()["detail"]
    assert api.get(f"{base_url}/subscriptions").status_code == 401


# --- delivery ---------------------------------------------------------------------------------


def test_an_event_reaches_every_subscribed_callback(
    api: requests.Session,
    base_url: str,
    sim: Simulator,
    storage: StorageClients,
    events: CallbackServer,
) -> None:
    first = subscribe(api, base_url, user(sim), events.url("/workflows/first/run"))
    subscribe(api, base_url, user(sim), events.url("/workflows/second/run"))
    subscribe(
        api,
        base_url,
        user(sim),
        events.url("/workflows/other-event/run"),
        event="granular-admin-relationship-approved",
    )
    customer = str(uuid.uuid4())
    event_id = store_event(storage, customer=customer)

    (got,) = events.wait_for("/workflows/first/run", 1)
    assert got.body == {
        "eventId": event_id,
        "eventName": EVENT,
        "customerId": customer,
        "resourceUri": f"https://api.partnercenter.microsoft.com/v1/customers/{customer}",
        "changedAt": got.body["changedAt"],
        "receivedAt": got.body["receivedAt"],
    }
    assert len(events.wait_for("/workflows/second/run", 1)) == 1
    drain(storage)
    assert events.received_on("/workflows/other-event/run") == []
    assert delivery_row(storage, event_id, first)["State"] == "delivered"


def test_a_failing_callback_is_retried_until_it_succeeds(
    api: requests.Session,
    base_url: str,
    sim: Simulator,
    storage: StorageClients,
    events: CallbackServer,
) -> None:
    path = "/workflows/flaky/run"
    subscription_id = subscribe(api, base_url, user(sim), events.url(path))
    events.script(path, [500, 503])
    event_id = store_event(storage)

    (got,) = events.wait_for(path, 1)
    assert got.body["eventId"] == event_id
    drain(storage)
    row = delivery_row(storage, event_id, subscription_id)
    assert row["State"] == "delivered" and row["Attempts"] == 3


def test_a_410_retires_the_subscription(
    api: requests.Session,
    base_url: str,
    sim: Simulator,
    storage: StorageClients,
    events: CallbackServer,
) -> None:
    path = "/workflows/deleted-flow/run"
    headers = user(sim)
    subscription_id = subscribe(api, base_url, headers, events.url(path))
    events.script(path, [410])
    event_id = store_event(storage)
    drain(storage)

    assert delivery_row(storage, event_id, subscription_id)["State"] == "retired"
    assert api.get(f"{base_url}/subscriptions", headers=headers).json()["count"] == 0
    later = store_event(storage)
    drain(storage)
    assert events.received_on(path) == []
    with pytest.raises(ResourceNotFoundError):
        delivery_row(storage, later, subscription_id)


def test_a_duplicate_event_is_delivered_once(
    api: requests.Session,
    base_url: str,
    sim: Simulator,
    storage: StorageClients,
    events: CallbackServer,
) -> None:
    path = "/workflows/dedup/run"
    subscribe(api, base_url, user(sim), events.url(path))
    event_id = store_event(storage)
    events.wait_for(path, 1)
    # The same message again and again (a redelivery, or the host retrying after a crash).
    for _ in range(3):
        storage.queue(DELIVERY_QUEUE).send_message(json.dumps({"eventId": event_id}))
    drain(storage)
    assert [r.body["eventId"] for r in events.received_on(path)] == [event_id]


def carried_event(storage: StorageClients, event_id: str) -> dict[str, Any]:
    """The event's fields as the receiver's queue message carries them."""
    row = storage.table(EVENTS_TABLE).get_entity("event", event_id)
    return json.loads(delivery_message(event_id, row))["event"]


def test_two_messages_of_one_event_at_once_call_each_flow_once(
    api: requests.Session,
    base_url: str,
    sim: Simulator,
    storage: StorageClients,
    events: CallbackServer,
    delivery: EventDelivery,
) -> None:
    paths = [f"/workflows/race-{n}/run" for n in range(3)]
    ids = [subscribe(api, base_url, user(sim), events.url(path)) for path in paths]
    event_id = store_event(storage, queued=False)
    fields = carried_event(storage, event_id)
    start = threading.Barrier(4)

    def handle(message_id: str) -> None:
        start.wait()
        delivery.handle(json.dumps({"eventId": event_id, "event": fields}), message_id)

    threads = [threading.Thread(target=handle, args=(f"message-{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for path in paths:
        assert [r.body["eventId"] for r in events.received_on(path)] == [event_id]
    assert {delivery_row(storage, event_id, i)["State"] for i in ids} == {"delivered"}
    assert delivery_row(storage, event_id, "fan-out")["Message"].startswith("message-")


def test_a_message_handed_out_again_makes_the_deliveries_it_had_claimed(
    api: requests.Session,
    base_url: str,
    sim: Simulator,
    storage: StorageClients,
    events: CallbackServer,
    delivery: EventDelivery,
) -> None:
    path = "/workflows/after-a-crash/run"
    subscription_id = subscribe(api, base_url, user(sim), events.url(path))
    event_id = store_event(storage, queued=False)
    # A host claimed the deliveries with message "m-1", then died before calling the flow.
    storage.table(DELIVERIES_TABLE).create_entity(
        {"PartitionKey": event_id, "RowKey": "fan-out", "Message": "m-1"}
    )
    body = json.dumps({"eventId": event_id, "event": carried_event(storage, event_id)})
    delivery.handle(body, "m-2")  # another message of the event: not its delivery to make
    assert events.received_on(path) == []
    delivery.handle(body, "m-1")  # the same message, handed out again
    assert [r.body["eventId"] for r in events.received_on(path)] == [event_id]
    assert delivery_row(storage, event_id, subscription_id)["State"] == "delivered"
    delivery.handle(body, "m-1")  # and once delivered, never again
    assert len(events.received_on(path)) == 1


def test_a_subscription_made_after_a_fan_out_gets_the_next_event(
    api: requests.Session,
    base_url: str,
    sim: Simulator,
    storage: StorageClients,
    events: CallbackServer,
) -> None:
    first = "/workflows/early/run"
    subscribe(api, base_url, user(sim), events.url(first))
    store_event(storage)
    events.wait_for(first, 1)
    # The fan-out read the subscriptions of the event name; a new one must not be missed.
    later = "/workflows/late/run"
    subscribe(api, base_url, user(sim), events.url(later))
    event_id = store_event(storage)
    (got,) = events.wait_for(later, 1)
    assert got.body["eventId"] == event_id


def test_a_delivery_is_given_up_24_hours_after_the_event(
    api: requests.Session,
    base_url: str,
    sim: Simulator,
    storage: StorageClients,
    events: CallbackServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = "/workflows/down-for-a-day/run"
    subscription_id = subscribe(api, base_url, user(sim), events.url(path))
    events.script(path, [503] * 5)
    almost_a_day_ago = datetime.now(UTC) - timedelta(hours=24) + timedelta(seconds=0.5)
    event_id = store_event(storage, received_at=almost_a_day_ago)
    drain(storage)

    row = delivery_row(storage, event_id, subscription_id)
    assert row["State"] == "gave-up" and row["Attempts"] == 1
    assert any(
        r.levelname == "WARNING" and "gave up" in r.getMessage() and event_id in r.getMessage()
        for r in caplog.records
    )
    # The callback URL's signature is never in the gateway's own log lines.
    assert not [
        r for r in caplog.records if r.name.startswith("gateway") and "s3cr3t" in r.getMessage()
    ]


def test_a_redirect_is_not_followed(
    api: requests.Session,
    base_url: str,
    sim: Simulator,
    storage: StorageClients,
    events: CallbackServer,
) -> None:
    path = "/workflows/redirecting/run"
    subscription_id = subscribe(api, base_url, user(sim), events.url(path))
    events.script(path, [302])
    event_id = store_event(storage)
    events.wait_for(path, 1)
    drain(storage)
    row = delivery_row(storage, event_id, subscription_id)
    assert row["State"] == "delivered" and row["Attempts"] == 2


def drain(storage: StorageClients, timeout: float = 30.0) -> None:
    """Wait until the delivery queue holds no message, visible or not (all were processed)."""
    queue = storage.queue(DELIVERY_QUEUE)
    deadline = time.monotonic() + timeout
    while queue.get_queue_properties().approximate_message_count:
        assert time.monotonic() < deadline, "the delivery queue did not drain"
        time.sleep(0.1)


# --- end to end: Partner Center's signed delivery to the subscribed callback -------------------


@pytest.fixture
def webhook(base_url: str, sim: Simulator, events: CallbackServer) -> Iterator[Simulator]:
    """The simulator's Partner Center with the gateway's receiver registered."""
    sim.webhooks.retry_delay = 0.05
    sim.webhooks.register(
        f"{base_url}/events/partner-center",
        ["reseller-relationship-accepted-by-customer", "granular-admin-relationship-approved"],
    )
    yield sim
    sim.webhooks.reset()


def test_a_customer_accepting_reaches_the_subscribed_flow(
    api: requests.Session,
    base_url: str,
    webhook: Simulator,
    storage: StorageClients,
    events: CallbackServer,
) -> None:
    path = "/workflows/on-acceptance/run"
    subscribe(api, base_url, user(webhook), events.url(path))
    customer = webhook.webhooks.accept_relationship()

    (got,) = events.wait_for(path, 1)
    assert got.body["eventName"] == EVENT
    assert got.body["customerId"] == customer
    assert got.body["resourceUri"].endswith(f"/v1/customers/{customer}")
    stored = storage.table(EVENTS_TABLE).get_entity("event", got.body["eventId"])
    assert stored["EventName"] == EVENT
    assert got.body["receivedAt"] and got.body["changedAt"]


def test_a_duplicated_delivery_reaches_the_flow_once(
    api: requests.Session,
    base_url: str,
    webhook: Simulator,
    storage: StorageClients,
    events: CallbackServer,
) -> None:
    path = "/workflows/once/run"
    subscribe(
        api, base_url, user(webhook), events.url(path), event="granular-admin-relationship-approved"
    )
    webhook.webhooks.fire(
        "granular-admin-relationship-approved",
        resource_uri="/v1/customers/2f0c8a52-9f3d-4d3c-9a1e-7f6b5c4d3e2a/relationships/x",
        resource_name="GranularAdminRelationship",
        duplicates=3,
    )
    events.wait_for(path, 1)
    deadline = time.monotonic() + 30
    while (
        webhook.webhooks.pending()
        or len([a for a in webhook.webhooks.attempts() if a["status"] == 200]) < 3
    ):
        assert time.monotonic() < deadline, "the duplicates were not all delivered"
        time.sleep(0.05)
    drain(storage)
    received = events.received_on(path)
    assert len(received) == 1
    assert received[0].body["customerId"] == "2f0c8a52-9f3d-4d3c-9a1e-7f6b5c4d3e2a"
