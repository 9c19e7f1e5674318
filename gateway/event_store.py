"""The event store: Partner Center events kept in table ``events`` and queued for delivery.

An event is stored (PartitionKey ``event``, RowKey its content-derived id) and put on queue
``event-deliveries`` before the receiver answers 200: once Partner Center has its 200, the event
is durable and its delivery to subscribers is the queue function's job. A redelivered event has
the same id, so it is stored once and queued again only if queuing it failed the first time.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from partnercenter import PartnerCenterEvent

from .storage import DELIVERY_QUEUE, EVENTS_TABLE, StorageClients, storage_errors

logger = logging.getLogger("gateway.events")

EVENT_PARTITION = "event"
#: Pauses while a concurrent delivery of the same event queues it (about a second in all).
DUPLICATE_WAITS = (0.05, 0.1, 0.2, 0.3, 0.4)


@dataclass(frozen=True)
class RecordedEvent:
    """What recording an event did."""

    event_id: str
    #: The event was already stored (a redelivery).
    duplicate: bool
    #: This call put the event on the delivery queue.
    enqueued: bool


def event_entity(event: PartnerCenterEvent, received_at: datetime) -> dict[str, Any]:
    """The ``events`` table entity of ``event`` (the contract with the delivery function)."""
    return {
        "PartitionKey": EVENT_PARTITION,
        "RowKey": event.event_id,
        "EventName": event.event_name,
        "ResourceUri": event.resource_uri,
        "ResourceName": event.resource_name,
        "AuditUri": event.audit_uri,
        "ChangedAt": event.resource_change_utc_date,
        "ReceivedAt": received_at.astimezone(UTC).isoformat(timespec="milliseconds"),
        "CustomerId": event.customer_id,
        "Enqueued": False,
    }


def record_event(
    clients: StorageClients, event: PartnerCenterEvent, *, received_at: datetime | None = None
) -> RecordedEvent:
    """Store ``event`` and queue it for delivery, unless both were done before.

    Raises :class:`gateway.storage.StorageUnavailableError` when any step fails: the caller
    must then not acknowledge the event (Partner Center delivers it again).
    """
    from azure.core.exceptions import ResourceExistsError  # noqa: PLC0415 - see gateway.storage
    from azure.data.tables import UpdateMode  # noqa: PLC0415

    entity = event_entity(event, received_at or datetime.now(UTC))
    table = clients.table(EVENTS_TABLE)
    duplicate = False
    with storage_errors("store the event"):
        try:
            table.create_entity(entity)
        except ResourceExistsError:
            duplicate = True
            if _queued_by_another(table, event.event_id):
                logger.info("event %s (%s) is a duplicate", event.event_id, event.event_name)
                return RecordedEvent(event.event_id, duplicate=True, enqueued=False)
    with storage_errors("queue the event for delivery"):
        clients.queue(DELIVERY_QUEUE).send_message(json.dumps({"eventId": event.event_id}))
    with storage_errors("mark the event queued"):
        table.update_entity(
            {"PartitionKey": EVENT_PARTITION, "RowKey": event.event_id, "Enqueued": True},
            mode=UpdateMode.MERGE,
        )
    logger.info(
        "event %s (%s) stored and queued%s",
        event.event_id,
        event.event_name,
        " (redelivery of an unqueued event)" if duplicate else "",
    )
    return RecordedEvent(event.event_id, duplicate=duplicate, enqueued=True)


def _queued_by_another(table: Any, event_id: str) -> bool:
    """Whether the stored event is (or soon is) on the queue.

    Partner Center can deliver one event several times at once. The delivery that stored it is
    then queuing it: wait a little for its mark rather than queue it again. Not seeing the mark
    in time (that delivery failed, or is slow) means queuing it here: a second message is
    harmless (delivery is idempotent per event), a missing one would lose the event.
    """
    for wait in DUPLICATE_WAITS:
        if table.get_entity(EVENT_PARTITION, event_id).get("Enqueued") is True:
            return True
        time.sleep(wait)
    return table.get_entity(EVENT_PARTITION, event_id).get("Enqueued") is True
