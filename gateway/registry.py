"""The function app's HTTP functions, read once from its registrations.

``FunctionApp.get_functions()`` may be called only once per app (azure-functions 1.26 records
every name it indexes and refuses a second pass as duplicates), so everything that needs the
list (the local host, the OpenAPI generator) asks here.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import azure.functions as func
from azure.functions.decorators.http import HttpTrigger


@dataclass(frozen=True)
class HttpFunction:
    """An HTTP-triggered function of the app."""

    name: str
    route: str
    methods: tuple[str, ...]
    handler: Callable[[func.HttpRequest], func.HttpResponse]


@functools.cache
def http_functions(app: func.FunctionApp) -> tuple[HttpFunction, ...]:
    """The app's HTTP functions, in registration order."""
    found = []
    for function in app.get_functions():
        trigger = function.get_trigger()
        if not isinstance(trigger, HttpTrigger) or trigger.route is None:
            continue
        methods = tuple(str(getattr(m, "value", m)).upper() for m in (trigger.methods or ()))
        name = function.get_function_name() or trigger.route
        found.append(HttpFunction(name, trigger.route, methods, function.get_user_function()))
    return tuple(found)
