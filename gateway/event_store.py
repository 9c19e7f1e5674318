"""The event store: Partner Center events kept in table ``events`` and queued for delivery.

An event is put on queue ``event-deliveries`` and stored (PartitionKey ``event``, RowKey its
content-derived id) before the receiver answers 200: once Partner Center has its 200, the event
is durable and its delivery to subscribers is the queue function's job. Two storage calls, in
that order, so that a stored event is always a queued one (``Enqueued`` is true when the row is
written) and no third write has to say so:

- the message carries what the delivery needs (the event's id and the fields a callback
  receives), so the delivery does not read the row back;
- a redelivered event has the same id: its row exists already, so the message just sent for it
  is deleted again (the receipt that stored the event had queued it first), and the event is
  stored and queued once. Should that delete fail, or the message be taken first, the delivery
  recognises the second message (see :mod:`gateway.delivery`): a duplicate is delivered once;
- a failure after the message went out (the row could not be written) answers 503 and Partner
  Center delivers the event again: the event may then be queued twice, and is delivered once.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from partnercenter import InvalidArgumentError, PartnerCenterEvent

from .storage import DELIVERY_QUEUE, EVENTS_TABLE, StorageClients, storage_errors

logger = logging.getLogger("gateway.events")

EVENT_PARTITION = "event"
#: The entity fields a delivery message carries (what a callback receives is made of them).
MESSAGE_FIELDS = ("EventName", "ResourceUri", "CustomerId", "ChangedAt", "ReceivedAt")
#: Azure Queue storage's limit on a message (base64 text, as the queue trigger reads it).
QUEUE_MESSAGE_LIMIT = 64 * 1024


@dataclass(frozen=True)
class RecordedEvent:
    """What recording an event did."""

    event_id: str
    #: The event was already stored (a redelivery).
    duplicate: bool
    #: This call left the event on the delivery queue (a redelivery's message is taken back).
    enqueued: bool


def event_entity(event: PartnerCenterEvent, received_at: datetime) -> dict[str, Any]:
    """The ``events`` table entity of ``event``."""
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
        # Written after the message was sent: a stored event is a queued one.
        "Enqueued": True,
    }


def carried_fields(event: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of ``event`` (its entity, or what a message carried) that delivery messages
    carry."""
    return {name: event.get(name) for name in MESSAGE_FIELDS}


def delivery_message(event_id: str, event: Mapping[str, Any]) -> str:
    """The queue message that fans ``event`` (its entity's fields) out to its subscriptions
    (the contract with :mod:`gateway.delivery`)."""
    return json.dumps({"eventId": event_id, "event": carried_fields(event)}, ensure_ascii=False)


def record_event(
    clients: StorageClients, event: PartnerCenterEvent, *, received_at: datetime | None = None
) -> RecordedEvent:
    """Queue ``event`` for delivery and store it, unless it was stored before.

    Raises :class:`gateway.storage.StorageUnavailableError` when either step fails: the caller
    must then not acknowledge the event (Partner Center delivers it again).
    """
    from azure.core.exceptions import AzureError, ResourceExistsError  # noqa: PLC0415 - storage

    entity = event_entity(event, received_at or datetime.now(UTC))
    message = delivery_message(event.event_id, entity)
    if len(base64.b64encode(message.encode())) > QUEUE_MESSAGE_LIMIT:
        raise InvalidArgumentError("The event's fields are too long to queue.", argument="body")
    queue = clients.queue(DELIVERY_QUEUE)
    with storage_errors("queue the event for delivery"):
        sent = queue.send_message(message)
    table = clients.table(EVENTS_TABLE)
    with storage_errors("store the event"):
        try:
            table.create_entity(entity)
        except ResourceExistsError:
            # A redelivery. A row that does not say Enqueued was written by an earlier version
            # of the receiver, which stored first and queued second, and failed in between.
            stored = table.get_entity(EVENT_PARTITION, event.event_id, select=["Enqueued"])
            queued_before = stored.get("Enqueued") is True
        else:
            logger.info("event %s (%s) queued and stored", event.event_id, event.event_name)
            return RecordedEvent(event.event_id, duplicate=False, enqueued=True)
    if not queued_before:
        logger.info("event %s (%s) stored before, queued now", event.event_id, event.event_name)
        return RecordedEvent(event.event_id, duplicate=True, enqueued=True)
    try:
        queue.delete_message(sent.id, sent.pop_receipt)
    except AzureError as err:
        logger.info(
            "event %s: the redelivery's message stays queued (%s); it is delivered once",
            event.event_id,
            type(err).__name__,
        )
        enqueued = True
    else:
        enqueued = False
    logger.info("event %s (%s) is a duplicate", event.event_id, event.event_name)
    return RecordedEvent(event.event_id, duplicate=True, enqueued=enqueued)
