"""Delivery of stored Partner Center events to the callbacks subscribed to them.

The receiver puts ``{"eventId", "event"}`` on the queue ``event-deliveries`` (``event``: the
stored event's fields, see :func:`gateway.event_store.delivery_message`) and stores the event
(table ``events``); the queue-triggered function hands each message here:

- ``{"eventId", "event"}`` **fans out**: every subscription to the event's name gets a first
  attempt at once (in parallel), so an event reaches its flows within a second of its receipt.
  (``{"eventId"}`` alone, as earlier versions queued, reads the event from its row.)
- ``{"eventId", "subscriptionId", "attempt", "event"}`` is a **retry** of one delivery, put on
  the same queue by a failed attempt with a visibility delay (30 s, 2 min, 10 min, then hourly),
  until 24 hours after the event's receipt; then the delivery is given up, with a warning.

Each (event, subscription) has a row in table ``deliveries`` (PartitionKey = event id, RowKey =
subscription id) saying where it stands. A fan-out first **claims** the event: it inserts the
row ``fan-out`` of the event's partition, naming its queue message, which fails if the row
exists. So two messages of one event (a redelivered event, a copy the receiver could not take
back) never both call a callback: the second leaves the deliveries to the message that claimed
them, unless that message is itself (the host handed it out again after a crash or a failure:
the deliveries without a row are made again). One transaction then writes where each delivery
ended. A retry never starts a second retry chain (the row counts the attempts). Delivery is at
least once: a crash between a callback's answer and the row's update repeats the callback, with
the same ``eventId`` so the flow can ignore it. A storage failure raises, so the host retries
the message (and after ``maxDequeueCount`` moves it to ``event-deliveries-poison``); nothing
is deleted unless done.

The subscriptions of an event name are read once for all the fan-outs that start together
(:class:`gateway.subscriptions.SubscriptionIndex`).

A callback answering 404 or 410 is a flow Power Automate deleted: its subscription is removed.
Callback URLs carry a signature (``sig=``) that grants the right to run the flow, so they are
never logged; only their host is.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

import requests

from .callbacks import CallbackSession, CallbackUrlError, callback_hosts
from .event_store import EVENT_PARTITION, carried_fields
from .runtime import get_runtime
from .schemas import EventNotification
from .storage import (
    DELIVERIES_TABLE,
    DELIVERY_QUEUE,
    EVENTS_TABLE,
    StorageClients,
    storage_clients,
)
from .subscriptions import Subscription, SubscriptionIndex, SubscriptionStore

logger = logging.getLogger("gateway.delivery")

#: (connect, read) seconds for one callback. Power Automate answers a trigger callback at once
#: (202) and runs the flow afterwards.
CALLBACK_TIMEOUT = (5.0, 15.0)
#: Operations in one table transaction (the service's limit).
TRANSACTION_LIMIT = 100
#: Callbacks of one event attempted at the same time.
FAN_OUT_PARALLELISM = 8
#: RowKey of the row by which a fan-out claims an event's deliveries (the other rows of the
#: event's partition are named by subscription ids, which are UUIDs).
CLAIM_ROW = "fan-out"
USER_AGENT = "PartnerCenterGateway-events/1"


class State(StrEnum):
    """Where one delivery stands."""

    DELIVERED = "delivered"
    RETRYING = "retrying"
    RETIRED = "retired"  # the callback said 404/410: the subscription was removed
    GAVE_UP = "gave-up"


FINAL_STATES = frozenset({State.DELIVERED, State.RETIRED, State.GAVE_UP})


@dataclass(frozen=True)
class RetrySchedule:
    """When failed deliveries are tried again."""

    #: Delay before the 2nd, 3rd... attempt; the last one repeats.
    delays: Sequence[float] = (30.0, 120.0, 600.0, 3600.0)
    #: No attempt starts later than this after the event's receipt.
    give_up_after: float = 24 * 3600.0
    #: Each delay is spread by up to this fraction, so a burst of failures does not retry in step.
    jitter: float = 0.1

    def delay_before(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before ``attempt`` (2 or more), at least the server's Retry-After."""
        base = self.delays[min(attempt - 2, len(self.delays) - 1)]
        base *= 1 + random.uniform(-self.jitter, self.jitter)  # noqa: S311 - not security
        if retry_after is not None:
            base = max(base, min(retry_after, max(self.delays)))
        return max(1.0, base)


class Outcome(StrEnum):
    """What one callback attempt came to."""

    DELIVERED = "delivered"
    GONE = "gone"
    FAILED = "failed"
    REFUSED = "refused"  # the URL is no longer allowed: never retried


@dataclass(frozen=True)
class Attempt:
    """The result of POSTing an event to one callback."""

    outcome: Outcome
    detail: str
    retry_after: float | None = None


class EventDelivery:
    """Fans events out to their subscriptions and retries failed deliveries."""

    def __init__(
        self,
        clients: StorageClients,
        session: CallbackSession,
        *,
        schedule: RetrySchedule | None = None,
        timeout: tuple[float, float] = CALLBACK_TIMEOUT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._clients = clients
        self._session = session
        self._schedule = schedule or RetrySchedule()
        self._timeout = timeout
        self._clock = clock
        self._subscriptions = SubscriptionStore(clients)
        self._index = SubscriptionIndex(self._subscriptions)
        self._pool = ThreadPoolExecutor(FAN_OUT_PARALLELISM, thread_name_prefix="delivery")

    def handle(self, body: bytes | str, message_id: str | None = None) -> None:
        """Process one queue message (``message_id``: its id on the queue, which stays the same
        each time the host hands it out); raises (so the host retries it) when storage fails."""
        since = time.monotonic()
        try:
            message = json.loads(body)
            event_id = str(message["eventId"])
            event = _carried_event(event_id, message.get("event"))
        except (ValueError, TypeError, KeyError):
            logger.warning('dropped a delivery message that is not {"eventId": ...}')
            return
        if "subscriptionId" in message:
            try:
                attempt = int(message.get("attempt", 2))
                subscription_id = str(message["subscriptionId"])
            except (ValueError, TypeError):
                logger.warning("dropped a malformed retry message for event %s", event_id)
                return
            self.retry(event_id, subscription_id, attempt, event=event)
        else:
            self.fan_out(event_id, event=event, message_id=message_id, since=since)

    def fan_out(
        self,
        event_id: str,
        *,
        event: Any | None = None,
        message_id: str | None = None,
        since: float | None = None,
    ) -> None:
        """First attempt at every subscription to the event not already served.

        ``event`` is the event's fields (read from its row when not given); ``message_id`` the
        queue message being processed (deliveries it claimed before are made again);
        ``since`` when the message was taken (``time.monotonic()``; default now). One row
        claims the deliveries and one transaction records where they ended, whatever the
        number of subscriptions: the callbacks themselves are called in parallel.
        """
        if since is None:
            since = time.monotonic()
        if event is None:
            event = self._event(event_id)
            if event is None:
                return
        subscriptions = self._index.for_event(event["EventName"], since)
        if not subscriptions:
            logger.info("event %s (%s): no subscription", event_id, event["EventName"])
            return
        due = self._claim(event_id, subscriptions, message_id or "")
        futures = [self._pool.submit(self._attempt, event, s, 1) for s in due]
        done = [f.result() for f in futures if f.exception() is None]
        self._record(event_id, done)
        errors = [f.exception() for f in futures if f.exception() is not None]
        if errors:
            raise errors[0]  # type: ignore[misc]

    def retry(
        self, event_id: str, subscription_id: str, attempt: int, *, event: Any | None = None
    ) -> None:
        """Attempt ``attempt`` of one delivery, unless it is done or a later one is scheduled."""
        from azure.core.exceptions import ResourceNotFoundError  # noqa: PLC0415 - see storage

        if event is None:
            event = self._event(event_id)
            if event is None:
                return
        try:
            row = self._clients.table(DELIVERIES_TABLE).get_entity(event_id, subscription_id)
        except ResourceNotFoundError:
            row = None
        if row is not None and (
            row.get("State") in FINAL_STATES or int(row.get("Attempts", 0)) >= attempt
        ):
            return  # a repeated message
        subscription = self._subscriptions.get(event["EventName"], subscription_id)
        if subscription is None:
            logger.info("event %s: subscription %s is gone", event_id, subscription_id)
            return
        self._record(event_id, [self._attempt(event, subscription, attempt)])

    def close(self) -> None:
        """Stop the fan-out threads and release the callback connections."""
        self._pool.shutdown(wait=True)
        self._session.close()

    def _claim(
        self, event_id: str, subscriptions: Sequence[Subscription], message_id: str
    ) -> list[Subscription]:
        """The subscriptions this message is to call now.

        A fan-out claims the event's first deliveries with one row (RowKey ``fan-out``, naming
        its queue message), inserted before any callback is called. The insert fails when the
        row exists: another message of the event claimed them (they are that message's to make;
        a subscription it did not see was made after the event arrived), or this same message
        did, before the host handed it out again after a crash or a failure: then the
        deliveries that have no row yet are made now.
        """
        from azure.core.exceptions import ResourceExistsError  # noqa: PLC0415 - see storage

        table = self._clients.table(DELIVERIES_TABLE)
        try:
            table.create_entity(
                {
                    "PartitionKey": event_id,
                    "RowKey": CLAIM_ROW,
                    "Message": message_id,
                    "ClaimedAt": datetime.now(UTC),
                }
            )
        except ResourceExistsError:
            pass
        else:
            return list(subscriptions)
        rows = {
            row["RowKey"]: row
            for row in table.query_entities(
                "PartitionKey eq @pk", parameters={"pk": event_id}, select=["RowKey", "Message"]
            )
        }
        claim = rows.get(CLAIM_ROW)
        if claim is None or not message_id or claim.get("Message") != message_id:
            logger.info("event %s: its deliveries were claimed by another message", event_id)
            return []
        return [s for s in subscriptions if s.id not in rows]

    def _attempt(self, event: Any, subscription: Subscription, attempt: int) -> _Settled:
        """POST to one callback and act on the answer (retry scheduled, subscription retired).

        The row saying so is written afterwards by the caller: a retry message is always on
        the queue before its row says ``retrying``.
        """
        event_id = event["RowKey"]
        result = self.post(subscription.callback_url, notification_of(event))
        host = urlsplit(subscription.callback_url).hostname
        if result.outcome is Outcome.DELIVERED:
            logger.info("event %s delivered to %s (attempt %d)", event_id, host, attempt)
            return _Settled(subscription.id, State.DELIVERED, attempt, result.detail)
        if result.outcome is Outcome.GONE:
            self._subscriptions.remove(subscription)
            self._index.forget(subscription.event_name)
            logger.info(
                "event %s: callback on %s answered %s; subscription %s removed",
                event_id,
                host,
                result.detail,
                subscription.id,
            )
            return _Settled(subscription.id, State.RETIRED, attempt, result.detail)
        if result.outcome is Outcome.REFUSED or self._too_late(event, attempt, result):
            logger.warning(
                "event %s: gave up delivering to subscription %s on %s after %d attempts (%s)",
                event_id,
                subscription.id,
                host,
                attempt,
                result.detail,
            )
            return _Settled(subscription.id, State.GAVE_UP, attempt, result.detail)
        delay = self._schedule.delay_before(attempt + 1, result.retry_after)
        retry = {
            "eventId": event_id,
            "subscriptionId": subscription.id,
            "attempt": attempt + 1,
            "event": carried_fields(event),
        }
        self._clients.queue(DELIVERY_QUEUE).send_message(
            json.dumps(retry), visibility_timeout=round(delay)
        )
        logger.info(
            "event %s: callback on %s failed (%s); attempt %d in %.0f s",
            event_id,
            host,
            result.detail,
            attempt + 1,
            delay,
        )
        return _Settled(subscription.id, State.RETRYING, attempt, result.detail)

    def post(self, url: str, notification: EventNotification) -> Attempt:
        """POST one notification to a callback URL and classify the answer."""
        try:
            response = self._session.post(
                url,
                data=notification.model_dump_json(by_alias=True).encode(),
                headers={"Content-Type": "application/json", "User-Agent": USER_AGENT},
                timeout=self._timeout,
            )
        except CallbackUrlError as err:
            return Attempt(Outcome.REFUSED, err.message)
        except requests.Timeout:
            return Attempt(Outcome.FAILED, "timed out")
        except requests.RequestException as err:
            return Attempt(Outcome.FAILED, type(err).__name__)
        with response:
            status = response.status_code
            if 200 <= status < 300:
                return Attempt(Outcome.DELIVERED, str(status))
            if status in (404, 410):
                return Attempt(Outcome.GONE, str(status))
            return Attempt(Outcome.FAILED, f"HTTP {status}", _retry_after(response))

    def _too_late(self, event: Any, attempt: int, result: Attempt) -> bool:
        received = _timestamp(event.get("ReceivedAt"))
        if received is None:
            received = self._clock()
        next_at = self._clock() + self._schedule.delay_before(attempt + 1, result.retry_after)
        return next_at - received > self._schedule.give_up_after

    def _event(self, event_id: str) -> Any | None:
        from azure.core.exceptions import ResourceNotFoundError  # noqa: PLC0415 - see storage

        try:
            return self._clients.table(EVENTS_TABLE).get_entity(EVENT_PARTITION, event_id)
        except ResourceNotFoundError:
            logger.warning("event %s is not stored; nothing to deliver", event_id)
            return None

    def _record(self, event_id: str, settled: Sequence[_Settled]) -> None:
        """Write the delivery rows of one event, up to 100 in one transaction (one partition)."""
        now = datetime.now(UTC)
        table = self._clients.table(DELIVERIES_TABLE)
        for first in range(0, len(settled), TRANSACTION_LIMIT):
            table.submit_transaction(
                [
                    (
                        "upsert",
                        {
                            "PartitionKey": event_id,
                            "RowKey": item.subscription_id,
                            "State": item.state.value,
                            "Attempts": item.attempt,
                            "LastResult": item.detail[:200],
                            "UpdatedAt": now,
                        },
                    )
                    for item in settled[first : first + TRANSACTION_LIMIT]
                ]
            )


def _carried_event(event_id: str, fields: object) -> dict[str, Any] | None:
    """The event a message carries, shaped as its row (None when it carries none)."""
    if fields is None:
        return None
    if not isinstance(fields, dict) or not isinstance(fields.get("EventName"), str):
        raise ValueError("not an event")
    return {**carried_fields(fields), "RowKey": event_id}


@dataclass(frozen=True)
class _Settled:
    """Where one delivery stands after an attempt."""

    subscription_id: str
    state: State
    attempt: int
    detail: str


def notification_of(event: Any) -> EventNotification:
    """What a callback receives for a stored event."""
    return EventNotification(
        event_id=event["RowKey"],
        event_name=event["EventName"],
        customer_id=event.get("CustomerId") or "",
        resource_uri=event.get("ResourceUri") or "",
        changed_at=_text(event.get("ChangedAt")),
        received_at=_text(event.get("ReceivedAt")),
    )


def _text(value: object) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return "" if value is None else str(value)


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After", "").strip()
    return float(value) if value.isdigit() else None


def _timestamp(value: object) -> float | None:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str) and value:
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


_lock = threading.Lock()
_delivery: EventDelivery | None = None


def get_delivery() -> EventDelivery:
    """The process-wide delivery, built on first use from the settings and the storage."""
    global _delivery  # noqa: PLW0603 - the one process-wide instance
    with _lock:
        if _delivery is None:
            hosts = callback_hosts(get_runtime().settings.event_callback_hosts)
            _delivery = EventDelivery(storage_clients(), CallbackSession(hosts))
        return _delivery


def set_delivery(delivery: EventDelivery | None) -> None:
    """Replace the process-wide delivery (tests, benchmarks); closes the old one."""
    global _delivery
    with _lock:
        old, _delivery = _delivery, delivery
    if old is not None and old is not delivery:
        old.close()
