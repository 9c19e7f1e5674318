"""The local host's queue triggers behave as the Functions host's do, against Azurite."""

from __future__ import annotations

import base64
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest

from gateway.local_queues import QueueOptions, QueueTriggerRunner
from gateway.registry import QueueFunction
from gateway.storage import STORAGE_SETTING, StorageClients, storage_clients

from ..conftest import repo_root

FAST = QueueOptions(max_polling_interval=0.2, visibility_timeout=0.0, max_dequeue_count=3)


@pytest.fixture
def clients(azurite: Any) -> StorageClients:
    return storage_clients()


@pytest.fixture
def queue_name(clients: StorageClients) -> str:
    name = f"q-{uuid.uuid4().hex[:12]}"
    clients.queue(name).create_queue()
    return name


@pytest.fixture
def run(clients: StorageClients) -> Iterator[Callable[..., QueueTriggerRunner]]:
    started: list[QueueTriggerRunner] = []

    def start(name: str, handler: Callable[..., Any], options: QueueOptions = FAST) -> Any:
        function = QueueFunction("Probe", name, STORAGE_SETTING, "msg", handler)
        runner = QueueTriggerRunner([function], clients, options).start()
        started.append(runner)
        return runner

    yield start
    for runner in started:
        runner.stop()


def wait_until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_the_function_gets_the_message_as_the_host_gives_it(
    clients: StorageClients, queue_name: str, run: Callable[..., Any]
) -> None:
    got: list[func.QueueMessage] = []

    def record(msg: func.QueueMessage) -> None:
        got.append(msg)

    run(queue_name, record)
    sent = clients.queue(queue_name).send_message('{"eventId": "e1"}')

    wait_until(lambda: len(got) == 1)
    message = got[0]
    assert message.id == sent.id
    assert message.get_body() == b'{"eventId": "e1"}'
    assert message.get_json() == {"eventId": "e1"}
    assert message.dequeue_count == 1
    assert message.insertion_time is not None and message.expiration_time is not None
    # Deleted once the function returned.
    wait_until(
        lambda: clients.queue(queue_name).get_queue_properties().approximate_message_count == 0
    )


def test_messages_are_base64_on_the_wire(clients: StorageClients, queue_name: str) -> None:
    clients.queue(queue_name).send_message("héllo")
    from azure.storage.queue import QueueClient  # noqa: PLC0415

    raw = QueueClient(
        account_url=clients.target.queue_endpoint,
        queue_name=queue_name,
        credential=clients.target.credential,
    )
    (peeked,) = raw.peek_messages()
    assert base64.b64decode(peeked.content).decode() == "héllo"


def test_a_failing_message_is_retried_then_moved_to_the_poison_queue(
    clients: StorageClients, queue_name: str, run: Callable[..., Any]
) -> None:
    counts: list[int] = []

    def failing(msg: func.QueueMessage) -> None:
        counts.append(msg.dequeue_count or 0)
        raise RuntimeError("the function failed")

    run(queue_name, failing)
    clients.queue(queue_name).send_message("poisonous")
    poison = clients.queue(f"{queue_name}-poison")

    def poisoned() -> bool:
        try:
            return len(list(poison.peek_messages())) == 1
        except Exception:  # the poison queue is created on first use
            return False

    wait_until(poisoned)
    assert counts == [1, 2, 3]  # maxDequeueCount attempts, then no more
    (moved,) = poison.peek_messages()
    assert moved.content == b"poisonous"
    assert clients.queue(queue_name).get_queue_properties().approximate_message_count == 0


def test_a_message_that_fails_once_succeeds_on_its_retry(
    clients: StorageClients, queue_name: str, run: Callable[..., Any]
) -> None:
    done = threading.Event()
    seen: list[int] = []

    def flaky(msg: func.QueueMessage) -> None:
        seen.append(msg.dequeue_count or 0)
        if len(seen) == 1:
            raise RuntimeError("transient")
        done.set()

    run(queue_name, flaky)
    clients.queue(queue_name).send_message("once more")
    assert done.wait(20)
    assert seen == [1, 2]


def test_a_batch_runs_in_parallel(
    clients: StorageClients, queue_name: str, run: Callable[..., Any]
) -> None:
    running = 0
    most = 0
    lock = threading.Lock()
    finished = threading.Semaphore(0)

    def slow(msg: func.QueueMessage) -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.3)
        with lock:
            running -= 1
        finished.release()

    queue = clients.queue(queue_name)
    for n in range(8):
        queue.send_message(str(n))
    run(
        queue_name,
        slow,
        QueueOptions(batch_size=8, new_batch_threshold=4, max_polling_interval=0.2),
    )
    for _ in range(8):
        assert finished.acquire(timeout=20)
    assert most > 1


def test_options_come_from_host_json() -> None:
    options = QueueOptions.from_host_json(Path(repo_root(), "host.json"))
    assert options.max_polling_interval == 1.0
    assert options.max_dequeue_count == 5
    assert options.batch_size == 16 and options.new_batch_threshold == 8
    assert options.visibility_timeout == 5.0
