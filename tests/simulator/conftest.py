"""Fixtures: one simulator for the whole folder, reset before every test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import msal
import pytest
import requests

from simulator import Simulator

PC_SCOPE = "https://api.partnercenter.microsoft.com/user_impersonation"
PC_DEFAULT_SCOPE = "https://api.partnercenter.microsoft.com/.default"
PC_RESOURCE = "https://api.partnercenter.microsoft.com"


@pytest.fixture(scope="session")
def sim() -> Iterator[Simulator]:
    with Simulator() as simulator:
        yield simulator


@pytest.fixture(scope="session")
def stranger() -> Simulator:
    """Another simulator, never started: its keys and client certificate are unknown to ``sim``."""
    return Simulator()


@pytest.fixture(autouse=True)
def _clean(sim: Simulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # requests lets REQUESTS_CA_BUNDLE (set machine-wide here) override a session's verify, and
    # MSAL's own session has no verify at all: point it at the simulator's CA.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", sim.ca_bundle)
    sim.reset()
    sim.set_latency(token=0.0, api=0.0)
    yield
    sim.reset()


@pytest.fixture
def http(sim: Simulator) -> Iterator[requests.Session]:
    """A fresh session (so connection counts start from zero) trusting the simulator's CA."""
    with requests.Session() as session:
        session.verify = sim.ca_bundle
        yield session


@pytest.fixture
def make_app(sim: Simulator) -> Callable[..., msal.ConfidentialClientApplication]:
    """Build a real MSAL confidential client against the simulator (a client secret by default).

    A fresh app per call: MSAL caches error answers per app, which must not leak between tests.
    """

    def make(credential: Any = None) -> msal.ConfidentialClientApplication:
        return msal.ConfidentialClientApplication(
            sim.client_id,
            client_credential=sim.client_secret if credential is None else credential,
            authority=f"{sim.authority_host}/{sim.tenant_id}",
            instance_discovery=False,
            timeout=10,
        )

    return make


@pytest.fixture
def pc_token(sim: Simulator) -> str:
    """A Partner Center App+User token (minted directly: no token request is counted)."""
    return sim.user_token(audience=PC_RESOURCE, scopes=["user_impersonation"])
