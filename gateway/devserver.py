"""Serve the function app locally over HTTP, like Core Tools' ``func start`` (``make run``).

No Functions host can be installed on every machine, so this hosts the app's own registered HTTP
functions with Werkzeug: routes are read from the app, requests become ``func.HttpRequest`` and
answers ``func.HttpResponse``. With no ``AZURE_CLIENT_ID`` set it starts the local simulator of
Entra ID and Partner Center and points the service at it.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import math
import os
import re
import shlex
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import azure.functions as func
from werkzeug.exceptions import HTTPException
from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler
from werkzeug.wrappers import Request, Response

from partnercenter import ConfigurationError

from .admin_functions import ADMIN_PREFIX, AdminFunctions
from .auth import Permission
from .background import BackgroundRunner
from .host_request import (
    BadRequestTargetError,
    MethodNotAllowedError,
    RouteTable,
    host_headers,
    host_path,
    host_query,
    host_url,
)
from .http import CORRELATION_HEADER, correlation_id_of, new_correlation_id, problem_response
from .local_queues import QueueOptions, QueueTriggerRunner
from .local_timers import TimerScheduler
from .logs import configure_logging, correlation_scope
from .problems import (
    INVALID_REQUEST,
    METHOD_NOT_ALLOWED,
    NOT_FOUND,
    PROBLEM_CONTENT_TYPE,
    REQUEST_TIMEOUT,
    TOO_LARGE,
    Kind,
    problem,
)
from .registry import app_functions, http_functions
from .storage import STORAGE_SETTING, ensure_storage, set_storage_clients, storage_clients

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

logger = logging.getLogger("gateway.devserver")

ROUTE_PREFIX = "/api"
_HEX = re.compile(rb"[0-9A-Fa-f]+")


class FunctionHost:
    """A WSGI application that dispatches to the app's HTTP functions, following the Functions
    host's request rules (``gateway/host_request.py``)."""

    def __init__(self, app: func.FunctionApp) -> None:
        self.functions = {f.name: f for f in http_functions(app)}
        self._routes = RouteTable(ROUTE_PREFIX, self.functions.values())
        self.background = BackgroundRunner()
        """Runs the app's timer and queue functions (on schedule, or on demand)."""
        self.admin = AdminFunctions(app_functions(app).background(), self.background)

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        request = Request(environ)
        # The host's own admin API comes before the app's routes, as on the Functions host.
        if request.path.startswith(ADMIN_PREFIX):
            response = self.admin.dispatch(request)
        else:
            response = self.dispatch(request)
        return response(environ, start_response)

    def dispatch(self, request: Request) -> Response:
        """Answer one request."""
        # The raw target: the WSGI server has already decoded PATH_INFO, %2F included.
        raw_target = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI") or "/"
        raw_query = request.environ.get("QUERY_STRING", "")
        try:
            path = host_path(raw_target)
            match = self._routes.match(request.method, path)
        except (BadRequestTargetError, LookupError) as err:
            return self._routing_problem(request, err)
        try:
            body = request.get_data(cache=False)
        except (HTTPException, OSError, ValueError):
            # A body shorter than its Content-Length, or broken chunked framing: the caller's fault.
            return self._unreadable_body(request)
        http_request = func.HttpRequest(
            request.method,
            host_url(request.scheme, request.host, path, raw_query),
            headers=host_headers(request.headers.items()),
            params=host_query(raw_query),
            route_params=match.route_params,
            body=body,
        )
        answer = match.function.handler(http_request)
        return Response(
            answer.get_body(),
            status=answer.status_code,
            headers=list(answer.headers.items()),
            mimetype=answer.mimetype,
        )

    def _routing_problem(self, request: Request, err: Exception) -> Response:
        correlation_id, _ = correlation_id_of(
            func.HttpRequest(request.method, request.url, headers=dict(request.headers), body=b"")
        )
        with correlation_scope(correlation_id):
            if isinstance(err, MethodNotAllowedError):
                found = problem(
                    METHOD_NOT_ALLOWED, "This route does not take that method.", correlation_id
                )
                answer = problem_response(found)
                headers = [*answer.headers.items(), ("Allow", ", ".join(err.allowed))]
            elif isinstance(err, BadRequestTargetError):
                answer = problem_response(
                    problem(INVALID_REQUEST, "Bad request target.", correlation_id)
                )
                headers = list(answer.headers.items())
            else:
                answer = problem_response(problem(NOT_FOUND, "No such route.", correlation_id))
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


@dataclass(frozen=True)
class RequestLimits:
    """What one request may cost the local host, checked before any application code runs."""

    #: Largest request body read; a larger one is refused with 413 before it is read.
    max_body_bytes: int = 1024 * 1024
    #: Longest wait for the next bytes of a request (or of a connection's first request).
    idle_seconds: float = 15.0
    #: Longest time to receive a whole request: line, headers and body (slow senders).
    request_seconds: float = 30.0
    #: Most requests served at once; further connections wait in the listen backlog.
    max_threads: int = 256


class _DeadlineSocketReader(io.RawIOBase):
    """The connection's bytes, each receive bounded by the idle timeout and the request deadline,
    so a sender trickling a byte at a time cannot hold a thread beyond the deadline."""

    def __init__(self, connection: socket.socket, idle_seconds: float) -> None:
        super().__init__()
        self._connection = connection
        self._idle = idle_seconds
        self.deadline = math.inf

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the request was not received within the host's time limit")
        self._connection.settimeout(min(self._idle, remaining))
        return self._connection.recv_into(buffer)


class ProblemRequestHandler(WSGIRequestHandler):
    """Werkzeug's request handler, with the limits of :class:`RequestLimits` and problem+json
    answers for the HTTP server's own refusals (bad request line, line or headers too long,
    unsupported HTTP version, body too large), made before any application code runs."""

    server: LimitedWSGIServer
    _reader: _DeadlineSocketReader

    def setup(self) -> None:
        """Read the connection through a reader that enforces the idle and request timeouts."""
        super().setup()
        self.connection.settimeout(self.server.limits.idle_seconds)
        self._reader = _DeadlineSocketReader(self.connection, self.server.limits.idle_seconds)
        self.rfile = io.BufferedReader(self._reader)

    def handle_one_request(self) -> None:
        """Serve one request, which must arrive whole within ``request_seconds``."""
        self._reader.deadline = time.monotonic() + self.server.limits.request_seconds
        super().handle_one_request()

    def run_wsgi(self) -> None:
        """Read the body (refusing one over the limit) before the application runs."""
        limit = self.server.limits.max_body_bytes
        chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
        length = self.headers.get("Content-Length", "").strip()
        if not chunked and length.isdigit() and int(length) > limit:
            self._refuse_body(413, limit)
            return
        try:
            body = self._read_body(limit, chunked, int(length) if length.isdigit() else 0)
        except TimeoutError:
            self._send_problem(REQUEST_TIMEOUT, "The request body did not arrive in time.")
            self.close_connection = True
            return
        except (OSError, ValueError):
            self._refuse_body(400, limit)
            return
        if body is None:
            self._refuse_body(413, limit)
            return
        # The application reads the body from memory: it never waits on the connection.
        self._reader.deadline = math.inf
        self.connection.settimeout(self.server.limits.idle_seconds)
        if chunked:
            del self.headers["Transfer-Encoding"]
            del self.headers["Content-Length"]
            self.headers["Content-Length"] = str(len(body))
        self.rfile = io.BufferedReader(io.BytesIO(body))
        super().run_wsgi()

    def _read_body(self, limit: int, chunked: bool, length: int) -> bytes | None:
        """The body, or None when it is longer than ``limit`` (then not read further).

        Raises ``ValueError`` for broken chunked framing, ``TimeoutError`` when too slow.
        """
        if not chunked:
            return self.rfile.read(length) if length else b""
        parts: list[bytes] = []
        size = 0
        while True:
            header = self._chunk_line()
            digits = header.split(b";", 1)[0].strip()
            if not _HEX.fullmatch(digits):
                raise ValueError("bad chunk size")
            chunk_size = int(digits, 16)
            if chunk_size == 0:
                while self._chunk_line().strip():  # trailer fields, ignored
                    pass
                return b"".join(parts)
            size += chunk_size
            if size > limit:  # refused from the declared size, before the chunk is read
                return None
            chunk = self.rfile.read(chunk_size)
            if len(chunk) < chunk_size or self._chunk_line().strip():
                raise ValueError("chunk shorter than its size, or not followed by CRLF")
            parts.append(chunk)

    def _chunk_line(self) -> bytes:
        line = self.rfile.readline(1024)
        if not line.endswith(b"\n"):
            raise ValueError("chunk line missing or too long")
        return line

    def _refuse_body(self, code: int, limit: int) -> None:
        if code == 413:
            detail = f"The request body is larger than the host's limit of {limit} bytes."
            self._send_problem(TOO_LARGE, detail)
        else:
            self._send_problem(INVALID_REQUEST, "The request body could not be read.")
        self.close_connection = True
        self._linger()

    def _linger(self) -> None:
        """Let the client read the refusal: stop sending, then discard what it still sends for
        a moment (never keeping it), so closing does not reset the connection under it."""
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            ends = time.monotonic() + LINGER_SECONDS
            discard = bytearray(65536)
            while (remaining := ends - time.monotonic()) > 0:
                self.connection.settimeout(remaining)
                if not self.connection.recv_into(discard):
                    break
        except OSError:
            pass

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Answer ``code`` with a problem; never echo the refused request line back."""
        try:
            phrase = HTTPStatus(code).phrase
        except ValueError:
            phrase = "Bad Request"
        kind = Kind(code, INVALID_REQUEST.slug, INVALID_REQUEST.title)
        self._send_problem(kind, f"The HTTP server refused the request: {phrase}.")

    def _send_problem(self, kind: Kind, detail: str) -> None:
        code = kind.status
        try:
            phrase = HTTPStatus(code).phrase
        except ValueError:
            phrase = "Bad Request"
        correlation_id = new_correlation_id()
        found = problem(kind, detail, correlation_id, headers={})
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


#: How long a refused request's connection is kept open for the client to read the answer.
LINGER_SECONDS = 2.0


class LimitedWSGIServer(ThreadedWSGIServer):
    """Werkzeug's threaded server with a bounded pool of request threads.

    When every thread is busy the accept loop waits, so new connections queue in the listen
    backlog instead of each getting a thread of its own.
    """

    def __init__(
        self,
        host: str,
        port: int,
        app: WSGIApplication,
        *,
        limits: RequestLimits,
        handler: type[WSGIRequestHandler] = ProblemRequestHandler,
    ) -> None:
        super().__init__(host, port, app, handler=handler)
        self.limits = limits
        self._slots = threading.BoundedSemaphore(limits.max_threads)
        self._pool = ThreadPoolExecutor(limits.max_threads, thread_name_prefix="request")
        self._stopping = threading.Event()

    def process_request(self, request: Any, client_address: Any) -> None:
        """Serve ``request`` on a pool thread once one is free."""
        while not self._slots.acquire(timeout=0.2):
            if self._stopping.is_set():
                self.shutdown_request(request)
                return
        try:
            self._pool.submit(self._serve, request, client_address)
        except RuntimeError:  # the pool is shut down: the server is closing
            self._slots.release()
            self.shutdown_request(request)

    def _serve(self, request: Any, client_address: Any) -> None:
        try:
            # Looked up per request, so a wrapper set on the instance (tests count threads) runs.
            self.process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def shutdown(self) -> None:
        """Stop serving; the accept loop no longer waits for a free thread."""
        self._stopping.set()
        super().shutdown()

    def server_close(self) -> None:
        """Close the socket; requests in progress finish on their own (bounded by the limits)."""
        self._stopping.set()
        super().server_close()
        self._pool.shutdown(wait=False)


def serve_app(
    app: func.FunctionApp, host: str, port: int, *, limits: RequestLimits | None = None
) -> LimitedWSGIServer:
    """A threaded server for ``app`` (not started), with ``limits`` on every request."""
    return LimitedWSGIServer(host, port, FunctionHost(app), limits=limits or RequestLimits())


def _start_simulator() -> Any:
    # Imported here: the simulator is a development tool, never deployed with the app.
    from simulator import Simulator  # noqa: PLC0415

    sim = Simulator(state_dir=os.path.join(os.getcwd(), ".sim")).start()
    os.environ.update(sim.settings())
    # The service user's consent lives in the simulator's Key Vault, as in Azure: the timer
    # rotates it, and /api/health reports it.
    os.environ.setdefault("KEY_VAULT_URL", sim.key_vault_url)
    sim.seed_consent()
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
    # Every permission of the API, so that the attestation can be tried too.
    token = sim.user_token(name="Local Developer", scopes=[p.value for p in Permission])
    url = f"http://127.0.0.1:{port}{ROUTE_PREFIX}"
    from simulator import CUSTOMER_MCA, CUSTOMER_NEITHER  # noqa: PLC0415 - see _start_simulator

    contact = json.dumps(
        {"primaryContact": {"firstName": "Ada", "lastName": "Lovelace", "email": "ada@x.example"}}
    )
    return "\n".join(
        [
            f"TOKEN={shlex.quote(token)}",
            f'curl -s -H "Authorization: Bearer $TOKEN" {url}/relationship-request',
            f'curl -s -H "Authorization: Bearer $TOKEN" '
            f'"{url}/customers/{CUSTOMER_MCA}/agreements?type=MicrosoftCustomerAgreement"',
            f'curl -s -H "Authorization: Bearer $TOKEN" {url}/customers/{CUSTOMER_MCA}/mca-status',
            'curl -s -X POST -H "Authorization: Bearer $TOKEN" '
            f'-H "Content-Type: application/json" -d {shlex.quote(contact)} '
            f"{url}/customers/{CUSTOMER_NEITHER}/agreements",
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
    host = server.app
    assert isinstance(host, FunctionHost)
    timers = TimerScheduler(app_functions(app).timers, host.background)
    timers.start()
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
    for name, (_, schedule) in timers.schedules.items():
        print(f"  {'TIMER':6} {schedule.expression}  ({name})", flush=True)
    for listener in queue_triggers.listeners if queue_triggers is not None else ():
        queue = listener.function.queue_name
        print(f"  queue  {queue}  ({listener.function.name})", flush=True)
    if sim is not None:
        print("\nSimulator mode. Try:\n" + _example_curl(args.port, sim) + "\n", flush=True)
    try:
        server.serve_forever()
    finally:
        timers.stop()
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
