"""Serve the function app locally over HTTP, like Core Tools' ``func start`` (``make run``).

No Functions host can be installed on every machine, so this hosts the app's own registered HTTP
functions with Werkzeug: routes are read from the app, requests become ``func.HttpRequest`` and
answers ``func.HttpResponse``. With no ``AZURE_CLIENT_ID`` set it starts the local simulator of
Entra ID and Partner Center and points the service at it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shlex
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from http import HTTPStatus
from pathlib import Path
from types import FrameType
from typing import Any

import azure.functions as func
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from partnercenter import ConfigurationError

from .http import CORRELATION_HEADER, correlation_id_of, new_correlation_id, problem_response
from .local_queues import QueueOptions, QueueTriggerRunner
from .logs import configure_logging, correlation_scope
from .problems import (
    INVALID_REQUEST,
    METHOD_NOT_ALLOWED,
    NOT_FOUND,
    PROBLEM_CONTENT_TYPE,
    Kind,
    problem,
)
from .registry import HttpFunction, app_functions, http_functions
from .storage import STORAGE_SETTING, ensure_storage, set_storage_clients, storage_clients

logger = logging.getLogger("gateway.devserver")

ROUTE_PREFIX = "/api"
_ROUTE_PARAM = re.compile(r"\{(\w+)(?::[^}]*)?\}")


def werkzeug_rule(function: HttpFunction) -> Rule:
    """The Werkzeug rule for an Azure Functions route template (``a/{b}/c``)."""
    path = _ROUTE_PARAM.sub(lambda m: f"<{m.group(1)}>", function.route.strip("/"))
    return Rule(f"{ROUTE_PREFIX}/{path}", endpoint=function.name, methods=list(function.methods))


class FunctionHost:
    """A WSGI application that dispatches to the app's HTTP functions."""

    def __init__(self, app: func.FunctionApp) -> None:
        self.functions = {f.name: f for f in http_functions(app)}
        self._map = Map([werkzeug_rule(f) for f in self.functions.values()], strict_slashes=False)

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        request = Request(environ)
        response = self.dispatch(request)
        return response(environ, start_response)

    def dispatch(self, request: Request) -> Response:
        """Answer one request."""
        adapter = self._map.bind_to_environ(request.environ)
        try:
            name, route_params = adapter.match()
        except HTTPException as err:
            return self._routing_problem(request, err)
        function = self.functions[name]
        try:
            body = request.get_data(cache=False)
        except (HTTPException, OSError, ValueError):
            # A body shorter than its Content-Length, or broken chunked framing: the caller's fault.
            return self._unreadable_body(request)
        params = {key: ",".join(values) for key, values in request.args.lists()}
        http_request = func.HttpRequest(
            request.method,
            request.url,
            headers=dict(request.headers.items()),
            params=params,
            route_params={k: str(v) for k, v in route_params.items()},
            body=body,
        )
        answer = function.handler(http_request)
        return Response(
            answer.get_body(),
            status=answer.status_code,
            headers=list(answer.headers.items()),
            mimetype=answer.mimetype,
        )

    def _routing_problem(self, request: Request, err: HTTPException) -> Response:
        correlation_id, _ = correlation_id_of(
            func.HttpRequest(request.method, request.url, headers=dict(request.headers), body=b"")
        )
        with correlation_scope(correlation_id):
            if isinstance(err, MethodNotAllowed):
                found = problem(
                    METHOD_NOT_ALLOWED, "This route does not take that method.", correlation_id
                )
                allow = ", ".join(sorted(err.valid_methods or []))
                answer = problem_response(found)
                headers = [*answer.headers.items(), ("Allow", allow)]
            else:
                reason = "No such route." if isinstance(err, NotFound) else "Bad request path."
                answer = problem_response(problem(NOT_FOUND, reason, correlation_id))
                headers = list(answer.headers.items())
            logger.info("%s %s -> %d", request.method, request.path[:200], answer.status_code)
        return Response(
            answer.get_body(), status=answer.status_code, headers=headers, mimetype=answer.mimetype
        )

    def _unreadable_body(self, request: Request) -> Response:
        correlation_id, _ = correlation_id_of(
            func.HttpRequest(request.method, request.url, headers=dict(request.headers), body=b"")
        )
        with correlation_scope(correlation_id):
            answer = problem_response(
                problem(INVALID_REQUEST, "The request body could not be read.", correlation_id)
            )
            logger.info("%s %s -> %d", request.method, request.path[:200], answer.status_code)
        return Response(
            answer.get_body(),
            status=answer.status_code,
            headers=list(answer.headers.items()),
            mimetype=answer.mimetype,
        )


class ProblemRequestHandler(WSGIRequestHandler):
    """Werkzeug's request handler, but the HTTP server's own refusals (bad request line, line or
    headers too long, unsupported HTTP version), made before any application code runs, are
    problem+json answers like every other error rather than HTML pages."""

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Answer ``code`` with a problem; never echo the refused request line back."""
        try:
            phrase = HTTPStatus(code).phrase
        except ValueError:
            phrase = "Bad Request"
        correlation_id = new_correlation_id()
        found = problem(
            Kind(code, INVALID_REQUEST.slug, INVALID_REQUEST.title),
            f"The HTTP server refused the request: {phrase}.",
            correlation_id,
            headers={},
        )
        body = found.body.model_dump_json(by_alias=True, exclude_none=True).encode()
        self.log_error("code %d, message %s", code, phrase)
        self.send_response(code, phrase)
        self.send_header("Connection", "close")
        self.send_header("Content-Type", f"{PROBLEM_CONTENT_TYPE}; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header(CORRELATION_HEADER, correlation_id)
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


def serve_app(app: func.FunctionApp, host: str, port: int) -> BaseWSGIServer:
    """A threaded server for ``app`` (not started)."""
    return make_server(
        host, port, FunctionHost(app), threaded=True, request_handler=ProblemRequestHandler
    )


def _start_simulator() -> Any:
    # Imported here: the simulator is a development tool, never deployed with the app.
    from simulator import Simulator  # noqa: PLC0415

    sim = Simulator(state_dir=os.path.join(os.getcwd(), ".sim")).start()
    os.environ.update(sim.settings())
    os.environ.setdefault("PARTNER_CENTER_REFRESH_TOKEN", sim.refresh_token_for())
    return sim


def _start_azurite() -> Any:
    # Imported here, like the simulator: Azurite is a development tool, never deployed.
    from simulator.azurite import Azurite  # noqa: PLC0415

    emulator = Azurite().start()
    os.environ[STORAGE_SETTING] = emulator.connection_string
    set_storage_clients(None)
    ensure_storage(storage_clients())
    return emulator


def _start_queue_triggers(app: func.FunctionApp) -> QueueTriggerRunner | None:
    """Run the app's queue-triggered functions, as the Functions host would, if it has any."""
    functions = app_functions(app).queues
    if not functions:
        return None
    options = QueueOptions.from_host_json(Path(__file__).resolve().parents[1] / "host.json")
    try:
        clients = storage_clients()
    except ConfigurationError as err:
        logger.warning("queue triggers not started: %s", err)
        return None
    return QueueTriggerRunner(functions, clients, options).start()


def _example_curl(port: int, sim: Any) -> str:
    token = sim.user_token(name="Local Developer")
    url = f"http://127.0.0.1:{port}{ROUTE_PREFIX}"
    from simulator import CUSTOMER_MCA  # noqa: PLC0415 - see _start_simulator

    return "\n".join(
        [
            f"TOKEN={shlex.quote(token)}",
            f'curl -s -H "Authorization: Bearer $TOKEN" {url}/relationship-request',
            f'curl -s -H "Authorization: Bearer $TOKEN" '
            f'"{url}/customers/{CUSTOMER_MCA}/agreements?type=MicrosoftCustomerAgreement"',
            f"curl -s {url}/health",
            "# Partner Center events: register the receiver, then a customer accepts",
            f"SIM={sim.partner_center_url}/_sim CA={shlex.quote(sim.ca_bundle)}",
            'curl -s --cacert "$CA" -X POST "$SIM/webhooks/registration" -d '
            + shlex.quote(
                json.dumps(
                    {
                        "url": f"{url}/events/partner-center",
                        "events": ["reseller-relationship-accepted-by-customer", "test-created"],
                    }
                )
            ),
            'curl -s --cacert "$CA" -X POST "$SIM/customers/accept-relationship" -d "{}"',
        ]
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m gateway.devserver``: serve the app on 127.0.0.1:$PORT/api."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "7071")))
    args = parser.parse_args(argv)
    configure_logging(json_to_stderr=True)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # our own line per request suffices

    sim = None
    if not os.environ.get("AZURE_CLIENT_ID"):
        sim = _start_simulator()
        logger.info("no AZURE_CLIENT_ID set: using the local simulator")

    azurite = None
    if not _storage_configured():
        azurite = _start_azurite()
        logger.info("no AzureWebJobsStorage set: using Azurite on ports %s", azurite.ports)

    from function_app import app  # noqa: PLC0415 - after the environment is set

    server = serve_app(app, args.host, args.port)
    queue_triggers = _start_queue_triggers(app)
    stop = threading.Event()

    def _shutdown(signum: int, frame: FrameType | None) -> None:
        stop.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _shutdown)
    signal.signal(signal.SIGINT, _shutdown)
    base = f"http://{args.host}:{args.port}{ROUTE_PREFIX}"
    print(f"Serving the function app on {base}", flush=True)
    for function in http_functions(app):
        methods = ",".join(function.methods)
        print(f"  {methods:6} {ROUTE_PREFIX}/{function.route}  ({function.name})", flush=True)
    for listener in queue_triggers.listeners if queue_triggers is not None else ():
        queue = listener.function.queue_name
        print(f"  queue  {queue}  ({listener.function.name})", flush=True)
    if sim is not None:
        print("\nSimulator mode. Try:\n" + _example_curl(args.port, sim) + "\n", flush=True)
    try:
        server.serve_forever()
    finally:
        if queue_triggers is not None:
            queue_triggers.stop()
        if sim is not None:
            sim.stop()
        if azurite is not None:
            azurite.stop()
    return 0


def _storage_configured() -> bool:
    return any(
        name.split("__")[0] == STORAGE_SETTING and value for name, value in os.environ.items()
    )


if __name__ == "__main__":
    sys.exit(main())
