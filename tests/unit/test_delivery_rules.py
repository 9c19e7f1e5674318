"""Fine-grained rules of event delivery and of the local queue trigger."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.delivery import RetrySchedule, notification_of
from gateway.local_queues import QueueOptions


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
