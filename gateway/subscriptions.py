"""Event subscriptions, kept in the storage table ``subscriptions``.

Two rows per subscription, for the two queries made:

- the **owner row** (PartitionKey ``owner|<owner>``, RowKey = id): the subscription itself, listed
  and deleted by its owner with a single-partition query or point operation. It is the source
  of truth: a subscription exists while its owner row does.
- the **event row** (PartitionKey ``event|<eventName>``, RowKey = id): the index the fan-out
  reads to find the callbacks of an event, one partition per event name.

Azure Table transactions cannot span partitions, so the rows are written in an order that keeps
the owner row authoritative: created owner row first, then the event row (a failure in between
removes the owner row again); deleted owner row first, then the event row. An event row whose
owner row is gone is a leftover, skipped and removed by the delivery.

The owner is the caller: a user (tenant + object id) or an application (tenant + its service
principal's object id). Another caller, even of the same tenant, finds nothing under that
owner, so it sees another's subscription as 404.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from partnercenter import InvalidArgumentError, NotFoundError

from .auth import Caller
from .storage import (
    SUBSCRIPTIONS_TABLE,
    StorageClients,
    storage_errors,
)

# The Azure SDKs load on first use, not with the app (cold start): see gateway.storage.
if TYPE_CHECKING:
    from azure.data.tables import TableClient

logger = logging.getLogger("gateway.subscriptions")

#: Subscriptions one caller may hold: each flow's trigger is one, and a runaway client should
#: not fill the table.
MAX_PER_OWNER = 500


@dataclass(frozen=True)
class Subscription:
    """A caller's subscription of a callback URL to one Partner Center event."""

    id: str
    owner: str
    event_name: str
    callback_url: str
    created_at: datetime


def owner_of(caller: Caller) -> str:
    """The key of the caller's subscriptions: ``user|tid|oid`` or ``app|tid|oid``."""
    return f"{caller.kind}|{caller.tenant_id}|{caller.object_id}"


def _owner_partition(owner: str) -> str:
    return f"owner|{owner}"


def _event_partition(event_name: str) -> str:
    return f"event|{event_name}"


class SubscriptionStore:
    """Create, list, find and delete subscriptions in table storage."""

    def __init__(self, clients: StorageClients) -> None:
        self._clients = clients

    @property
    def _table(self) -> TableClient:
        return self._clients.table(SUBSCRIPTIONS_TABLE)

    def create(self, owner: str, event_name: str, callback_url: str) -> Subscription:
        """A new subscription of ``owner``."""
        if self._count(owner) >= MAX_PER_OWNER:
            raise _too_many()
        subscription = Subscription(
            id=str(uuid.uuid4()),
            owner=owner,
            event_name=event_name,
            callback_url=callback_url,
            created_at=datetime.now(UTC).replace(microsecond=0),
        )
        from azure.core.exceptions import AzureError  # noqa: PLC0415

        table = self._table
        with storage_errors("save the subscription"):
            table.create_entity(self._owner_row(subscription))
            try:
                table.create_entity(self._event_row(subscription))
            except AzureError:
                table.delete_entity(_owner_partition(owner), subscription.id)
                raise
        logger.info("subscription %s created for %s", subscription.id, event_name)
        return subscription

    def list_for(self, owner: str) -> list[Subscription]:
        """The subscriptions of ``owner``, oldest first."""
        with storage_errors("list the subscriptions"):
            found = [self._from_row(row) for row in self._owner_rows(owner)]
        return sorted(found, key=lambda s: (s.created_at, s.id))

    def delete(self, owner: str, subscription_id: str) -> None:
        """Delete ``owner``'s subscription; :class:`NotFoundError` when it has none by that id."""
        from azure.core.exceptions import ResourceNotFoundError  # noqa: PLC0415

        table = self._table
        with storage_errors("find the subscription"):
            try:
                row = table.get_entity(_owner_partition(owner), subscription_id)
            except ResourceNotFoundError:
                row = None
        if row is None:
            raise _not_found()
        with storage_errors("delete the subscription"):
            self.remove(self._from_row(row))
        logger.info("subscription %s deleted by its owner", subscription_id)

    def remove(self, subscription: Subscription) -> None:
        """Delete both rows of ``subscription`` (gone already is fine); storage errors raise."""
        table = self._table
        table.delete_entity(_owner_partition(subscription.owner), subscription.id)
        table.delete_entity(_event_partition(subscription.event_name), subscription.id)

    def for_event(self, event_name: str) -> list[Subscription]:
        """The subscriptions to ``event_name`` (from the event index; storage errors raise)."""
        rows = self._table.query_entities(
            "PartitionKey eq @pk", parameters={"pk": _event_partition(event_name)}
        )
        return [self._from_row(row) for row in rows]

    def get(self, event_name: str, subscription_id: str) -> Subscription | None:
        """The subscription behind an event row, if its owner row still exists.

        An event row whose owner row is gone (a delete that failed half-way) is removed here.
        Storage errors raise.
        """
        from azure.core import MatchConditions  # noqa: PLC0415
        from azure.core.exceptions import ResourceNotFoundError  # noqa: PLC0415

        table = self._table
        try:
            index = table.get_entity(_event_partition(event_name), subscription_id)
        except ResourceNotFoundError:
            return None
        subscription = self._from_row(index)
        try:
            table.get_entity(_owner_partition(subscription.owner), subscription.id)
        except ResourceNotFoundError:
            table.delete_entity(
                _event_partition(event_name),
                subscription_id,
                etag=index.metadata["etag"],
                match_condition=MatchConditions.IfNotModified,
            )
            return None
        return subscription

    def _count(self, owner: str) -> int:
        with storage_errors("count the subscriptions"):
            return sum(1 for _ in self._owner_rows(owner, select=["RowKey"]))

    def _owner_rows(self, owner: str, select: list[str] | None = None) -> Iterator[Any]:
        return iter(
            self._table.query_entities(
                "PartitionKey eq @pk",
                parameters={"pk": _owner_partition(owner)},
                select=select,
            )
        )

    @staticmethod
    def _owner_row(subscription: Subscription) -> dict[str, Any]:
        return {
            "PartitionKey": _owner_partition(subscription.owner),
            "RowKey": subscription.id,
            "Owner": subscription.owner,
            "EventName": subscription.event_name,
            "CallbackUrl": subscription.callback_url,
            "CreatedAt": subscription.created_at,
        }

    @staticmethod
    def _event_row(subscription: Subscription) -> dict[str, Any]:
        return {
            **SubscriptionStore._owner_row(subscription),
            "PartitionKey": _event_partition(subscription.event_name),
        }

    @staticmethod
    def _from_row(row: Any) -> Subscription:
        created = row["CreatedAt"]
        if isinstance(created, datetime) and created.tzinfo is None:
            created = created.replace(tzinfo=UTC)
        return Subscription(
            id=row["RowKey"],
            owner=row["Owner"],
            event_name=row["EventName"],
            callback_url=row["CallbackUrl"],
            created_at=created,
        )


class SubscriptionIndex:
    """The subscriptions of each event name, each read shared by every fan-out waiting for it.

    A fan-out needs the subscriptions as they were when its event was received: every
    subscription created before that (its 201 answered) must get the event. A list read after
    the fan-out's queue message was taken (so after the event was received, stored and queued)
    has them all; an older one may not. So :meth:`for_event` gives a list whose read *started*
    after the caller's ``since``: the last one read if it did, else a new read, one at a time
    per event name. Fan-outs that start together (a batch of queue messages) share one read;
    one alone reads as before. No clock but this process's monotonic one is compared, and a
    subscription's removal is seen by every fan-out that starts after it.
    """

    def __init__(self, store: SubscriptionStore) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._reading: dict[str, threading.Lock] = {}
        self._read: dict[str, tuple[float, list[Subscription]]] = {}

    def for_event(self, event_name: str, since: float) -> list[Subscription]:
        """The subscriptions to ``event_name`` read after ``since`` (``time.monotonic()``)."""
        with self._lock:
            reading = self._reading.setdefault(event_name, threading.Lock())
        with reading:
            last = self._read.get(event_name)
            if last is not None and last[0] >= since:
                return last[1]
            started = time.monotonic()
            found = self._store.for_event(event_name)
            self._read[event_name] = (started, found)
            return found

    def forget(self, event_name: str) -> None:
        """Drop the last list read for ``event_name`` (a subscription to it was removed)."""
        self._read.pop(event_name, None)


def _not_found() -> NotFoundError:
    error = NotFoundError("No subscription of yours has that id.", status=404)
    error.remedy = "List your subscriptions with GET /api/subscriptions."
    return error


def _too_many() -> InvalidArgumentError:
    return InvalidArgumentError(
        f"You already have {MAX_PER_OWNER} subscriptions; delete some first.", argument="eventName"
    )
