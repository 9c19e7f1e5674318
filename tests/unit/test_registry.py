"""The app's functions are read once and sorted by trigger."""

from __future__ import annotations

import azure.functions as func

from gateway.registry import app_functions, http_functions


def _app() -> func.FunctionApp:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.function_name("Ping")
    @app.route(route="ping", methods=["GET"])
    def ping(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("pong")

    @app.function_name("Tick")
    @app.timer_trigger(arg_name="timer", schedule="%TICK_SCHEDULE%", run_on_startup=False)
    def tick(timer: func.TimerRequest) -> None:
        return None

    @app.function_name("Drain")
    @app.queue_trigger(arg_name="msg", queue_name="work", connection="AzureWebJobsStorage")
    def drain(msg: func.QueueMessage) -> None:
        return None

    return app


def test_functions_are_sorted_by_trigger_and_listed_once() -> None:
    app = _app()
    found = app_functions(app)
    assert [f.name for f in found.http] == ["Ping"]
    assert [(f.name, f.schedule, f.arg_name) for f in found.timers] == [
        ("Tick", "%TICK_SCHEDULE%", "timer")
    ]
    assert [(f.name, f.queue_name, f.connection, f.arg_name) for f in found.queues] == [
        ("Drain", "work", "AzureWebJobsStorage", "msg")
    ]
    assert sorted(found.background()) == ["Drain", "Tick"]
    # A second look is served from the first listing (azure-functions refuses a second pass).
    assert http_functions(app) is found.http
