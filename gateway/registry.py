"""The function app's functions, read once from its registrations.

``FunctionApp.get_functions()`` may be called only once per app (azure-functions 1.26 records
every name it indexes and refuses a second pass as duplicates), so everything that needs the
list (the local host, its timer and queue runners, the OpenAPI generator) asks here.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import azure.functions as func
from azure.functions.decorators.http import HttpTrigger
from azure.functions.decorators.queue import QueueTrigger
from azure.functions.decorators.timer import TimerTrigger


@dataclass(frozen=True)
class HttpFunction:
    """An HTTP-triggered function of the app."""

    name: str
    route: str
    methods: tuple[str, ...]
    handler: Callable[[func.HttpRequest], func.HttpResponse]


@dataclass(frozen=True)
class TimerFunction:
    """A timer-triggered function: its NCRONTAB schedule (``%SETTING%`` names an app setting)."""

    name: str
    schedule: str
    run_on_startup: bool
    #: The handler's parameter that receives the ``func.TimerRequest``.
    arg_name: str
    handler: Callable[..., Any]


@dataclass(frozen=True)
class QueueFunction:
    """A queue-triggered function: the queue it reads and the connection setting's prefix."""

    name: str
    queue_name: str
    connection: str
    #: The handler's parameter that receives the ``func.QueueMessage``.
    arg_name: str
    handler: Callable[..., Any]


@dataclass(frozen=True)
class AppFunctions:
    """Every function of the app, by trigger."""

    http: tuple[HttpFunction, ...]
    timers: tuple[TimerFunction, ...]
    queues: tuple[QueueFunction, ...]

    def background(self) -> dict[str, TimerFunction | QueueFunction]:
        """The non-HTTP functions by name (what ``POST /admin/functions/{name}`` may run)."""
        found: dict[str, TimerFunction | QueueFunction] = {f.name: f for f in self.timers}
        found.update((f.name, f) for f in self.queues)
        return found


@functools.cache
def app_functions(app: func.FunctionApp) -> AppFunctions:
    """The app's functions, in registration order."""
    http: list[HttpFunction] = []
    timers: list[TimerFunction] = []
    queues: list[QueueFunction] = []
    for function in app.get_functions():
        trigger = function.get_trigger()
        handler = function.get_user_function()
        name = function.get_function_name() or handler.__name__
        if isinstance(trigger, HttpTrigger) and trigger.route is not None:
            methods = tuple(str(getattr(m, "value", m)).upper() for m in (trigger.methods or ()))
            http.append(HttpFunction(name, trigger.route, methods, handler))
        elif isinstance(trigger, TimerTrigger):
            timers.append(
                TimerFunction(
                    name, trigger.schedule, bool(trigger.run_on_startup), trigger.name, handler
                )
            )
        elif isinstance(trigger, QueueTrigger):
            queues.append(
                QueueFunction(name, trigger.queue_name, trigger.connection, trigger.name, handler)
            )
    return AppFunctions(tuple(http), tuple(timers), tuple(queues))


def http_functions(app: func.FunctionApp) -> tuple[HttpFunction, ...]:
    """The app's HTTP functions, in registration order."""
    return app_functions(app).http
