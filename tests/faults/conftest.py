"""The function app on its own `make run` host, whose worker threads can be counted."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from werkzeug.serving import ThreadedWSGIServer

from function_app import app
from gateway.devserver import serve_app
from simulator import Simulator
from tests.e2e.conftest import service_env  # noqa: F401 - the service's settings, session-wide


@dataclass
class Gateway:
    """The app served over HTTP, and the request threads it has running."""

    url: str
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _workers: set[threading.Thread] = field(default_factory=set)

    def running(self) -> int:
        """Request threads of this host that have not returned yet."""
        with self._lock:
            return len(self._workers)

    def enter(self) -> None:
        with self._lock:
            self._workers.add(threading.current_thread())

    def leave(self) -> None:
        with self._lock:
            self._workers.discard(threading.current_thread())


@pytest.fixture(scope="session")
def gateway(service_env: dict[str, str]) -> Iterator[Gateway]:  # noqa: F811
    """`make run`'s host (``serve_app``) on a free port, counting its request threads."""
    server = serve_app(app, "127.0.0.1", 0)
    assert isinstance(server, ThreadedWSGIServer)
    host = Gateway(f"http://127.0.0.1:{server.server_port}/api")
    handle: Callable[..., Any] = server.process_request_thread

    def counted(request: Any, client_address: Any) -> None:
        host.enter()
        try:
            handle(request, client_address)
        finally:
            host.leave()

    # ThreadingMixIn starts each request thread with target=self.process_request_thread.
    server.process_request_thread = counted  # type: ignore[method-assign]
    thread = threading.Thread(target=server.serve_forever, name="faults-gateway", daemon=True)
    thread.start()
    try:
        yield host
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@dataclass(frozen=True)
class ServiceUser:
    """The consented service user (Secure Application Model) that app callers are served as."""

    refresh_token: str
    object_id: str


@pytest.fixture(scope="session")
def service_user(sim: Simulator) -> ServiceUser:
    """A service user whose object id is known, so calls made for app callers can be checked."""
    oid = str(uuid.uuid4())
    return ServiceUser(sim.refresh_token_for(oid=oid), oid)
