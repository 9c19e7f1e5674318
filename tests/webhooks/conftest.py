"""Partner Center webhooks over real HTTP: the simulator delivers signed events to the app served
by the local host, which stores them in Azurite."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from gateway.storage import DELIVERY_QUEUE, EVENTS_TABLE, storage_clients
from simulator import Simulator
from simulator.azurite import Azurite

# The end-to-end fixtures (the app served over HTTP against the simulator), shared, not copied.
from ..connector.conftest import definition
from ..e2e.conftest import api, base_url, service_env

__all__ = ["api", "base_url", "definition", "service_env"]

#: How long a test waits for the simulator's deliveries: a bound, not a speed target.
WAIT_SECONDS = 30.0
#: Every event the simulator can fire, registered for in these tests.
EVENTS = [
    "test-created",
    "reseller-relationship-accepted-by-customer",
    "indirect-reseller-relationship-accepted-by-customer",
    "granular-admin-relationship-approved",
]


@pytest.fixture
def receiver_url(base_url: str) -> str:
    """The webhook URL of the app under test."""
    return f"{base_url}/events/partner-center"


@pytest.fixture
def registered(
    fresh_sim: Simulator,
    azurite: Azurite,
    receiver_url: str,
    service_env: dict[str, str],
) -> Iterator[Simulator]:
    """The simulator with the app's receiver registered, retrying failed deliveries quickly, and
    an empty delivery queue (what the test queues is all there is to peek at)."""
    storage_clients().queue(DELIVERY_QUEUE).clear_messages()
    fresh_sim.webhooks.retry_delay = 0.05
    fresh_sim.webhooks.register(receiver_url, EVENTS)
    yield fresh_sim
    fresh_sim.webhooks.reset()


def wait_for(condition: Callable[[], Any], *, what: str, timeout: float = WAIT_SECONDS) -> Any:
    """Poll ``condition`` until it returns something truthy; fail naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def attempts_of(sim: Simulator, event_name: str) -> list[dict[str, Any]]:
    """The simulator's delivery attempts of ``event_name``."""
    return [a for a in sim.webhooks.attempts() if a["eventName"] == event_name]


def stored_event(event_id: str) -> dict[str, Any] | None:
    """The ``events`` entity of ``event_id``, or None."""
    from azure.core.exceptions import ResourceNotFoundError  # noqa: PLC0415

    try:
        return dict(storage_clients().table(EVENTS_TABLE).get_entity("event", event_id))
    except ResourceNotFoundError:
        return None


def signed_headers(sim: Simulator, body: bytes) -> dict[str, str]:
    """The headers of a genuine Partner Center delivery of ``body`` (the simulator's key)."""
    signature = sim.webhooks.signer.key.sign(body, padding.PKCS1v15(), hashes.SHA256())
    return {
        "Authorization": "Signature " + base64.b64encode(signature).decode(),
        "X-MS-Certificate-Url": sim.webhooks.certificate_url(),
        "X-MS-Signature-Algorithm": "rsa-sha256",
        "Content-Type": "application/json",
    }
