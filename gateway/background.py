"""Running the app's non-HTTP functions (timer and queue triggers) locally, as the host does.

The local host (``make run``) runs them on their schedule (:mod:`gateway.local_timers`) and on
demand (``POST /admin/functions/{name}``, :mod:`gateway.admin_functions`); each run is logged
like the Functions host logs it, and a failure is logged, never raised into the caller.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid

import azure.functions as func
from azure.functions.timer import TimerRequest

from .registry import QueueFunction, TimerFunction

logger = logging.getLogger("gateway.background")

BackgroundFunction = TimerFunction | QueueFunction


def invoke(function: BackgroundFunction, input_text: str, *, reason: str) -> bool:
    """Run ``function`` once in this thread: a timer gets a ``TimerRequest``, a queue function a
    ``QueueMessage`` whose body is ``input_text``. Whether it succeeded."""
    invocation = str(uuid.uuid4())
    logger.info("Executing 'Functions.%s' (Reason='%s', Id=%s)", function.name, reason, invocation)
    started = time.perf_counter()
    argument: func.TimerRequest | func.QueueMessage
    if isinstance(function, TimerFunction):
        # The concrete class the worker hands timer functions (func.TimerRequest is abstract).
        argument = TimerRequest(past_due=False)
    else:
        argument = func.QueueMessage(id=invocation, body=input_text)
    try:
        function.handler(**{function.arg_name: argument})
    except Exception:
        logger.exception(
            "Executed 'Functions.%s' (Failed, Id=%s, Duration=%.0fms)",
            function.name,
            invocation,
            (time.perf_counter() - started) * 1000,
        )
        return False
    logger.info(
        "Executed 'Functions.%s' (Succeeded, Id=%s, Duration=%.0fms)",
        function.name,
        invocation,
        (time.perf_counter() - started) * 1000,
    )
    return True


class BackgroundRunner:
    """Starts function runs on threads of their own and knows which are still running."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: set[threading.Thread] = set()
        self._idle = threading.Condition(self._lock)

    def start(self, function: BackgroundFunction, input_text: str, *, reason: str) -> None:
        """Run ``function`` in the background (the caller does not wait for it)."""
        thread = threading.Thread(
            target=self._run,
            args=(function, input_text, reason),
            name=f"function-{function.name}",
            daemon=True,
        )
        with self._lock:
            self._running.add(thread)
        thread.start()

    def _run(self, function: BackgroundFunction, input_text: str, reason: str) -> None:
        try:
            invoke(function, input_text, reason=reason)
        finally:
            with self._lock:
                self._running.discard(threading.current_thread())
                self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no run is in progress; whether that happened within ``timeout``."""
        with self._lock:
            return self._idle.wait_for(lambda: not self._running, timeout)
