"""Run the app's queue-triggered functions locally, the way the Functions host does.

The local host (``make run``, the tests, the benchmarks) has no Functions host, so this polls each
trigger's queue with the host's own algorithm and settings (host.json ``extensions.queues``,
documented in "Azure Queue storage trigger and bindings for Azure Functions", host.json settings,
and the WebJobs SDK's ``QueuesOptions``):

- messages are fetched ``batchSize`` at a time (default 16, at most 32) and run in parallel; a new
  batch is fetched as soon as no more than ``newBatchThreshold`` (default ``batchSize / 2``) are
  still running;
- when a poll finds messages the next one follows at once; when it finds none the wait grows
  exponentially, randomised, from 100 ms to ``maxPollingInterval`` (default 1 minute);
- a fetched message is invisible to other readers for 10 minutes while the function runs;
- a message is deleted only after the function returned without raising. When it raises, the
  message becomes visible again after ``visibilityTimeout`` (default 0), unless its dequeue count
  has reached ``maxDequeueCount`` (default 5): then it is moved to ``<queue>-poison``. A message
  fetched with a dequeue count already above it (its function crashed the process) is moved too;
- message bodies are base64 text (``messageEncoding`` base64, the default); the function gets a
  ``func.QueueMessage`` with the id, body, dequeue count, insertion and expiration times.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import re
import threading
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from azure.core.exceptions import AzureError, ResourceExistsError
from azure.functions.queue import QueueMessage

from .registry import QueueFunction
from .storage import STORAGE_SETTING, StorageClients

logger = logging.getLogger("gateway.local_queues")

#: How long a fetched message stays invisible while its function runs: the host's 10 minutes,
#: renewed at half-time for as long as the function runs.
PROCESSING_VISIBILITY_SECONDS = 600.0
#: The host's shortest wait between empty polls (``QueuePollingIntervals.Minimum``).
MIN_POLLING_INTERVAL = 0.1
_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2}(?:\.\d+)?)$")


@dataclass(frozen=True)
class QueueOptions:
    """host.json ``extensions.queues``, with the host's defaults."""

    batch_size: int = 16
    new_batch_threshold: int = 8
    max_polling_interval: float = 60.0
    visibility_timeout: float = 0.0
    max_dequeue_count: int = 5
    #: Not a host.json setting: the host's fixed 10 minutes (a shorter one brings the messages of
    #: a host that died back sooner, e.g. in a soak that kills it).
    processing_visibility: float = PROCESSING_VISIBILITY_SECONDS

    @classmethod
    def from_host_json(cls, path: Path) -> QueueOptions:
        """The options in ``path``'s ``extensions.queues`` (absent ones take the defaults)."""
        document = json.loads(path.read_text(encoding="utf-8"))
        queues: Mapping[str, Any] = document.get("extensions", {}).get("queues", {})
        batch_size = int(queues.get("batchSize", 16))
        if not 1 <= batch_size <= 32:
            raise ValueError("extensions.queues.batchSize must be 1 to 32")
        threshold = queues.get("newBatchThreshold")
        return cls(
            batch_size=batch_size,
            new_batch_threshold=int(threshold) if threshold is not None else batch_size // 2,
            max_polling_interval=_interval(queues.get("maxPollingInterval"), 60.0),
            visibility_timeout=_interval(queues.get("visibilityTimeout"), 0.0, milliseconds=False),
            max_dequeue_count=int(queues.get("maxDequeueCount", 5)),
        )


def _interval(value: object, default: float, *, milliseconds: bool = True) -> float:
    """Seconds from a host.json interval: a ``[d.]hh:mm:ss`` timespan or (maxPollingInterval)
    a number of milliseconds."""
    if value is None:
        return default
    if isinstance(value, int | float) and milliseconds:
        return float(value) / 1000
    match = _TIMESPAN.match(str(value))
    if match is None:
        raise ValueError(f"not a timespan: {value!r}")
    days, hours, minutes, seconds = match.groups()
    return int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + float(seconds)


class _Backoff:
    """The host's randomised exponential back-off between empty polls."""

    def __init__(self, maximum: float) -> None:
        self._maximum = max(MIN_POLLING_INTERVAL, maximum)
        self._current = MIN_POLLING_INTERVAL

    def reset(self) -> None:
        self._current = MIN_POLLING_INTERVAL

    def next(self) -> float:
        wait = self._current
        grown = self._current * 2 * random.uniform(0.8, 1.2)  # noqa: S311 - not security
        self._current = min(self._maximum, grown)
        return wait


class QueueListener:
    """Polls one queue and runs one function for each message, on background threads."""

    def __init__(
        self, function: QueueFunction, clients: StorageClients, options: QueueOptions
    ) -> None:
        if function.connection != STORAGE_SETTING:
            raise ValueError(
                f"{function.name}: the local host serves connection {STORAGE_SETTING} only, "
                f"not {function.connection}"
            )
        self.function = function
        self._clients = clients
        self._options = options
        self._stop = threading.Event()
        self._idle = threading.Condition()
        self._running = 0
        self._pool = ThreadPoolExecutor(
            options.batch_size + options.new_batch_threshold,
            thread_name_prefix=f"queue-{function.name}",
        )
        self._thread = threading.Thread(
            target=self._poll, name=f"poll-{function.queue_name}", daemon=True
        )

    def start(self) -> None:
        """Start polling."""
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop polling and wait (up to ``timeout``) for running functions to return."""
        self._stop.set()
        with self._idle:
            self._idle.notify_all()
        self._thread.join(timeout)
        self._pool.shutdown(wait=True)

    def _poll(self) -> None:
        backoff = _Backoff(self._options.max_polling_interval)
        queue = self._clients.queue(self.function.queue_name)
        while not self._stop.is_set():
            with self._idle:
                while self._running > self._options.new_batch_threshold and not self._stop.is_set():
                    self._idle.wait(1.0)
            if self._stop.is_set():
                return
            try:
                messages = list(
                    queue.receive_messages(
                        max_messages=self._options.batch_size,
                        messages_per_page=self._options.batch_size,
                        visibility_timeout=round(self._options.processing_visibility),
                    )
                )
            except AzureError as err:
                logger.warning(
                    "polling %s failed: %s", self.function.queue_name, type(err).__name__
                )
                messages = []
            if not messages:
                self._stop.wait(backoff.next())
                continue
            backoff.reset()
            for message in messages:
                with self._idle:
                    self._running += 1
                self._pool.submit(self._run_one, message)

    def _run_one(self, message: Any) -> None:
        try:
            self._process(message)
        except Exception:
            logger.exception(
                "queue message %s of %s was not settled", message.id, self.function.name
            )
        finally:
            with self._idle:
                self._running -= 1
                self._idle.notify_all()

    def _process(self, message: Any) -> None:
        queue = self._clients.queue(self.function.queue_name)
        if message.dequeue_count > self._options.max_dequeue_count:
            self._to_poison(message)
            return
        lease = _Lease(queue, message, self._options.processing_visibility)
        try:
            with lease:
                self.function.handler(**{self.function.arg_name: _queue_message(message)})
        except Exception:
            logger.exception(
                "%s failed on message %s (dequeue count %d)",
                self.function.name,
                message.id,
                message.dequeue_count,
            )
            if message.dequeue_count >= self._options.max_dequeue_count:
                self._to_poison(message, lease.pop_receipt)
            else:
                queue.update_message(
                    message.id,
                    lease.pop_receipt,
                    visibility_timeout=round(self._options.visibility_timeout),
                )
            return
        queue.delete_message(message.id, lease.pop_receipt)

    def _to_poison(self, message: Any, pop_receipt: str | None = None) -> None:
        name = f"{self.function.queue_name}-poison"
        poison = self._clients.queue(name)
        with contextlib.suppress(ResourceExistsError):
            poison.create_queue()
        poison.send_message(_body_bytes(message.content).decode("utf-8", "replace"))
        self._clients.queue(self.function.queue_name).delete_message(
            message.id, pop_receipt or message.pop_receipt
        )
        logger.warning(
            "message %s moved to %s after %d dequeues", message.id, name, message.dequeue_count
        )


class _Lease:
    """Keeps a fetched message invisible while its function runs, renewing the visibility at
    half-time as the host does; each renewal gives the message a new pop receipt."""

    def __init__(self, queue: Any, message: Any, visibility: float) -> None:
        self._queue = queue
        self._id = message.id
        self.pop_receipt: str = message.pop_receipt
        self._visibility = visibility
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._renew, daemon=True)

    def __enter__(self) -> _Lease:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._done.set()
        self._thread.join()

    def _renew(self) -> None:
        while not self._done.wait(self._visibility / 2):
            try:
                receipt = self._queue.update_message(
                    self._id, self.pop_receipt, visibility_timeout=round(self._visibility)
                )
            except AzureError as err:
                logger.warning("could not renew message %s: %s", self._id, type(err).__name__)
                continue
            self.pop_receipt = receipt.pop_receipt


def _body_bytes(content: object) -> bytes:
    if isinstance(content, bytes):
        return content
    return str(content).encode("utf-8")


def _queue_message(message: Any) -> QueueMessage:
    """The ``func.QueueMessage`` the host would give the function for an SDK message."""
    # The worker's own class: the trigger's metadata, which func.QueueMessage lacks.
    return QueueMessage(  # type: ignore[no-untyped-call]
        id=message.id,
        body=_body_bytes(message.content),
        dequeue_count=message.dequeue_count,
        expiration_time=message.expires_on,
        insertion_time=message.inserted_on,
        time_next_visible=message.next_visible_on,
        pop_receipt=message.pop_receipt,
    )


class QueueTriggerRunner:
    """Every queue-triggered function of the app, each with its listener."""

    def __init__(
        self, functions: Iterable[QueueFunction], clients: StorageClients, options: QueueOptions
    ) -> None:
        self.listeners = [QueueListener(f, clients, options) for f in functions]

    def start(self) -> QueueTriggerRunner:
        """Start every listener."""
        for listener in self.listeners:
            listener.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop every listener, letting running functions finish."""
        for listener in self.listeners:
            listener.stop(timeout)
