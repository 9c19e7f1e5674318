"""A simulator of its own (its clock moves forward by months here) with Key Vault, the gateway's
settings pointing at that vault, and the function app served over HTTP by the local host."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

import pytest
import requests

from function_app import app
from gateway.devserver import FunctionHost, serve_app
from gateway.runtime import Runtime, get_runtime, set_runtime
from partnercenter import Settings
from simulator import CUSTOMER_MCA, Simulator

SECRET = "partner-center-refresh-token"


@pytest.fixture(scope="module")
def vault_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    """Not the session's simulator: moving this one's clock months ahead would expire the
    refresh tokens other tests hold."""
    with Simulator(state_dir=str(tmp_path_factory.mktemp("vault-sim"))) as sim:
        yield sim


@dataclass
class Gateway:
    """The gateway served over HTTP, and what the tests drive it with."""

    sim: Simulator
    base_url: str
    host: FunctionHost
    http: requests.Session

    def call_as_app(self, *, renew: bool = True) -> requests.Response:
        """An application caller (no user): served by the service user. ``renew`` empties the
        token cache first, as the hourly expiry of the service user's token does."""
        if renew:
            get_runtime().client.tokens.cache.clear()  # type: ignore[attr-defined]
        # Agreements: not cached by the gateway, so every call reaches Partner Center.
        return self.http.get(
            f"{self.base_url}/api/customers/{CUSTOMER_MCA}/agreements",
            headers={"Authorization": f"Bearer {self.sim.app_token()}"},
            timeout=60,
        )

    def health(self) -> dict[str, Any]:
        answer = self.http.get(f"{self.base_url}/api/health", timeout=30)
        assert answer.status_code == 200
        body: dict[str, Any] = answer.json()
        return body

    def run_function(self, name: str, body: Any = None) -> requests.Response:
        """POST /admin/functions/{name}, as the Functions host takes it."""
        return self.http.post(
            f"{self.base_url}/admin/functions/{name}",
            json={"input": ""} if body is None else body,
            timeout=30,
        )

    def rotate(self) -> None:
        """Run the rotation through the admin endpoint and wait for it to finish."""
        answer = self.run_function("RotateServiceUserConsent")
        assert answer.status_code == 202, answer.text
        assert self.host.background.wait_idle(120)

    def new_runtime(self) -> None:
        """A fresh runtime (empty caches) from the environment, on the simulator's clock."""
        set_runtime(Runtime.from_settings(Settings.from_environ(), wall_clock=self.sim.clock.now))


@pytest.fixture(scope="module")
def served(vault_sim: Simulator) -> Iterator[tuple[str, FunctionHost]]:
    server = serve_app(app, "127.0.0.1", 0)
    host = server.app
    assert isinstance(host, FunctionHost)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", host
    finally:
        server.shutdown()
        thread.join(5)


def vault_environ(sim: Simulator, **overrides: str) -> dict[str, str]:
    """The gateway's settings for ``sim`` with the service user in its Key Vault."""
    env = {**sim.settings(), "KEY_VAULT_URL": sim.key_vault_url, **overrides}
    return {name: value for name, value in env.items() if value != ""}


@pytest.fixture
def gateway(
    vault_sim: Simulator, served: tuple[str, FunctionHost], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Gateway]:
    """The gateway with a fresh runtime, an empty vault and a reset simulator."""
    monkeypatch.delenv("PARTNER_CENTER_REFRESH_TOKEN", raising=False)
    for name, value in vault_environ(vault_sim).items():
        monkeypatch.setenv(name, value)
    vault_sim.reset()
    vault_sim.set_latency(token=0.0, api=0.0)
    vault_sim.keyvault.clear()
    vault_sim.sign_in()
    base_url, host = served
    with requests.Session() as http:
        http.trust_env = False
        found = Gateway(vault_sim, base_url, host, http)
        found.new_runtime()
        try:
            yield found
        finally:
            host.background.wait_idle(60)
            set_runtime(None)
            vault_sim.reset()


class _SignInPage(HTMLParser):
    """The form of Entra ID's ``form_post`` answer page."""

    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.action = found.get("action", "")
        elif tag == "input" and found.get("type") == "hidden":
            self.fields[found["name"]] = found.get("value", "")


def play_browser(sim: Simulator) -> Callable[[str], None]:
    """The user's browser: open the sign-in URL (the simulator's user is signed in already) and
    submit its answer page to the localhost listener, as the page's script does."""

    def browse(url: str) -> None:
        with requests.Session() as browser:
            browser.trust_env = False
            page = browser.get(url, verify=sim.ca_bundle, allow_redirects=False, timeout=30)
            assert page.status_code == 200, page.text
            form = _SignInPage()
            form.feed(page.text)
            assert form.action.startswith("http://localhost:")
            landed = browser.post(form.action, data=form.fields, timeout=30)
            assert landed.status_code == 200

    return browse


def environ_for_subprocess(sim: Simulator) -> dict[str, str]:
    """The environment ``make consent`` runs with."""
    env = {k: v for k, v in os.environ.items() if k != "PARTNER_CENTER_REFRESH_TOKEN"}
    env.update(vault_environ(sim))
    return env
