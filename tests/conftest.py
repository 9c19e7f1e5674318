"""Shared fixtures: the local simulator of Entra ID and Partner Center, over TLS."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from partnercenter import PartnerCenterClient, Settings
from simulator import Simulator


@pytest.fixture(scope="session")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    """One simulator for the session; tests reset its faults and counters."""
    state = tmp_path_factory.mktemp("sim")
    simulator = Simulator(state_dir=str(state)).start()
    # requests lets REQUESTS_CA_BUNDLE override a session's verify: trust the simulator's CA.
    previous = os.environ.get("REQUESTS_CA_BUNDLE")
    os.environ["REQUESTS_CA_BUNDLE"] = simulator.ca_bundle
    try:
        yield simulator
    finally:
        simulator.stop()
        if previous is None:
            os.environ.pop("REQUESTS_CA_BUNDLE", None)
        else:
            os.environ["REQUESTS_CA_BUNDLE"] = previous


@pytest.fixture
def fresh_sim(sim: Simulator) -> Simulator:
    """The simulator with no faults, zero counters and no latency."""
    sim.reset()
    sim.set_latency(token=0.0, api=0.0)
    return sim


def sim_environ(sim: Simulator, **overrides: str) -> dict[str, str]:
    """The service's environment for the simulator, with overrides (empty string = unset)."""
    env = dict(sim.settings())
    env.update(overrides)
    return {k: v for k, v in env.items() if v != ""}


@pytest.fixture
def make_client(fresh_sim: Simulator) -> Iterator[Callable[..., PartnerCenterClient]]:
    """Build clients against the simulator; all are closed after the test."""
    made: list[PartnerCenterClient] = []

    def build(**overrides: str) -> PartnerCenterClient:
        client = PartnerCenterClient(Settings.from_environ(sim_environ(fresh_sim, **overrides)))
        made.append(client)
        return client

    yield build
    for client in made:
        client.close()


def repo_root() -> Path:
    """The repository's top folder."""
    return Path(__file__).resolve().parents[1]
