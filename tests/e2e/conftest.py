"""The function app served over real HTTP by `make run`'s host, against the simulator."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

import pytest
import requests

from function_app import app
from gateway.devserver import serve_app
from gateway.runtime import set_runtime
from simulator import Simulator

from ..conftest import sim_environ


@pytest.fixture(scope="session")
def service_env(sim: Simulator) -> Iterator[dict[str, str]]:
    """The service's settings in the process environment, as the Functions host provides them."""
    env = sim_environ(sim, PARTNER_CENTER_REFRESH_TOKEN=sim.refresh_token_for())
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    set_runtime(None)
    try:
        yield env
    finally:
        set_runtime(None)
        for name, value in saved.items():
            if name == "REQUESTS_CA_BUNDLE":
                continue
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope="session")
def base_url(service_env: dict[str, str]) -> Iterator[str]:
    """http://127.0.0.1:PORT/api of a host serving the app on a background thread."""
    server = serve_app(app, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/api"
    finally:
        server.shutdown()
        thread.join(5)


@pytest.fixture
def api(base_url: str, fresh_sim: Simulator) -> Iterator[requests.Session]:
    """A plain HTTP session for calling the gateway; the simulator is reset first."""
    session = requests.Session()
    session.trust_env = False
    yield session
    session.close()


@pytest.fixture
def fresh_runtime(service_env: dict[str, str]) -> Iterator[None]:
    """A new runtime (empty token cache) for tests that count token requests."""
    set_runtime(None)
    yield
    set_runtime(None)
