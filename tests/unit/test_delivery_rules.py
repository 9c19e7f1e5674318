"""Fine-grained rules of event delivery and of the local queue trigger."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import pytest

from gateway.delivery import RetrySchedule, notification_of
from gateway.local_queues import QueueOptions
from gateway.storage import StorageClients
from gateway.subscriptions import Subscription, SubscriptionIndex, SubscriptionStore


def test_retries_back_off_then_repeat_hourly() -> None:
    schedule = RetrySchedule(jitter=0.0)
    assert [schedule.delay_before(n) for n in range(2, 8)] == [30, 120, 600, 3600, 3600, 3600]


def test_retry_after_is_honoured_up_to_the_longest_delay() -> None:
    schedule = RetrySchedule(jitter=0.0)
    assert schedule.delay_before(2, retry_after=90) == 90
    assert schedule.delay_before(2, retry_after=5) == 30
    assert schedule.delay_before(2, retry_after=86_400) == 3600


def test_jitter_stays_within_its_share() -> None:
    schedule = RetrySchedule(jitter=0.1)
    delays = {schedule.delay_before(2) for _ in range(200)}
    assert min(delays) >= 27 and max(delays) <= 33 and len(delays) > 1


def test_the_notification_is_the_documented_payload() -> None:
    event = {
        "PartitionKey": "event",
        "RowKey": "ab" * 32,
        "EventName": "reseller-relationship-accepted-by-customer",
        "ResourceUri": "https://api.partnercenter.microsoft.com/v1/customers/x",
        "CustomerId": "",
        "ChangedAt": "2026-12-02T13:00:00Z",
        "ReceivedAt": "2026-12-02T13:00:01Z",
    }
    body = json.loads(notification_of(event).model_dump_json(by_alias=True))
    assert body == {
        "eventId": "ab" * 32,
        "eventName": "reseller-relationship-accepted-by-customer",
        "customerId": "",
        "resourceUri": "https://api.partnercenter.microsoft.com/v1/customers/x",
        "changedAt": "2026-12-02T13:00:00Z",
        "receivedAt": "2026-12-02T13:00:01Z",
    }


@pytest.mark.parametrize(
    ("queues", "expected"),
    [
        ({}, QueueOptions()),
        ({"maxPollingInterval": 2000}, QueueOptions(max_polling_interval=2.0)),
        ({"maxPollingInterval": "00:00:02"}, QueueOptions(max_polling_interval=2.0)),
        ({"visibilityTimeout": "00:01:30"}, QueueOptions(visibility_timeout=90.0)),
        ({"batchSize": 4}, QueueOptions(batch_size=4, new_batch_threshold=2)),
        (
            {"maxDequeueCount": 2, "newBatchThreshold": 1},
            QueueOptions(max_dequeue_count=2, new_batch_threshold=1),
        ),
        ({"visibilityTimeout": "1.00:00:00"}, QueueOptions(visibility_timeout=86_400.0)),
    ],
)
def test_host_json_queue_settings(
    tmp_path: Path, queues: dict[str, object], expected: QueueOptions
) -> None:
    path = tmp_path / "host.json"
    path.write_text(json.dumps({"version": "2.0", "extensions": {"queues": queues}}))
    assert QueueOptions.from_host_json(path) == expected


@pytest.mark.parametrize("queues", [{"batchSize": 33}, {"visibilityTimeout": "soon"}])
def test_bad_host_json_queue_settings_are_refused(
    tmp_path: Path, queues: dict[str, object]
) -> None:
    path = tmp_path / "host.json"
    path.write_text(json.dumps({"extensions": {"queues": queues}}))
    with pytest.raises(ValueError, match=r"\S"):
        QueueOptions.from_host_json(path)


class _CountingStore(SubscriptionStore):
    """The subscriptions of every event name: one, read slowly, the reads counted."""

    def __init__(self) -> None:
        super().__init__(cast(StorageClients, None))
        self.reads = 0

    def for_event(self, event_name: str) -> list[Subscription]:
        self.reads += 1
        time.sleep(0.05)
        created = datetime(2026, 12, 2, tzinfo=UTC)
        return [Subscription(str(self.reads), "user|t|o", event_name, "https://x/", created)]


def test_fan_outs_that_start_together_share_one_read_of_the_subscriptions() -> None:
    store = _CountingStore()
    index = SubscriptionIndex(store)
    since = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        found = list(pool.map(lambda _: index.for_event("e", since), range(8)))
    assert store.reads == 1
    assert {s[0].id for s in found} == {"1"}
    # Another event name is read on its own.
    assert index.for_event("other", since)[0].id == "2"


def test_a_fan_out_that_starts_after_a_read_reads_again() -> None:
    store = _CountingStore()
    index = SubscriptionIndex(store)
    assert index.for_event("e", time.monotonic())[0].id == "1"
    # A subscription may have been made since that read started: a later message reads again.
    assert index.for_event("e", time.monotonic())[0].id == "2"
    assert store.reads == 2
