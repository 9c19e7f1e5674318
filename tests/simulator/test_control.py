"""The /_sim/ control plane through SimulatorClient, and the python -m simulator command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
import requests

from simulator import Fault, Simulator, SimulatorClient

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def client(sim: Simulator) -> Iterator[SimulatorClient]:
    control = SimulatorClient(sim.partner_center_url, sim.ca_bundle)
    yield control
    control.close()


def test_faults_stats_and_reset(
    sim: Simulator, client: SimulatorClient, http: requests.Session, pc_token: str
) -> None:
    client.faults_add([Fault.throttled(5), Fault(status=500, body=b"\x00raw")])
    url = f"{sim.partner_center_url}/v1/customers/relationshiprequests"
    headers = {"Authorization": f"Bearer {pc_token}"}
    assert http.get(url, headers=headers).status_code == 429
    assert http.get(url, headers=headers).content == b"\x00raw"
    stats = client.stats()
    assert [r["status"] for r in stats["api_requests"]] == [429, 500]
    assert stats["api_calls"] == {"/v1/customers/relationshiprequests": 2}
    assert stats["connections"]["api"] == 1  # the control connection is not counted
    client.faults_add([Fault(status=503)])
    client.reset()
    assert http.get(url, headers=headers).status_code == 200
    assert client.stats()["api_calls"] == {"/v1/customers/relationshiprequests": 1}


def test_tokens_latency_and_settings(sim: Simulator, client: SimulatorClient) -> None:
    user = jwt.decode(
        client.user_token(oid="00000000-0000-4000-8000-000000000001", mfa=False, scopes=["a"]),
        options={"verify_signature": False},
    )
    assert (user["oid"], user["amr"], user["scp"]) == (
        "00000000-0000-4000-8000-000000000001",
        ["pwd"],
        "a",
    )
    app = jwt.decode(client.app_token(roles=["r"]), options={"verify_signature": False})
    assert (app["idtyp"], app["roles"]) == ("app", ["r"])
    assert client.refresh_token_for(expired=True)
    assert client.federated_assertion()
    client.set_latency(api=0.25)
    assert sim.api_latency == 0.25
    assert client.settings() == sim.settings()


def test_bad_control_requests_are_refused_and_not_counted(
    sim: Simulator, client: SimulatorClient, http: requests.Session
) -> None:
    with pytest.raises(requests.HTTPError):
        client.user_token(colour="blue")
    control = f"{sim.partner_center_url}/_sim"
    assert http.post(f"{control}/faults", json={"not": "a list"}).status_code == 400
    assert http.post(f"{control}/faults", json=[{"stauts": 500}]).status_code == 400
    assert http.get(f"{control}/nothing").status_code == 404
    assert len(sim.faults) == 0
    assert sim.stats.api_requests == []
    assert sim.stats.connections == {"identity": 0, "api": 0}


def test_stop_releases_the_ports() -> None:
    first = Simulator().start()
    ports = [int(url.rsplit(":", 1)[1]) for url in (first.authority_host, first.partner_center_url)]
    first.stop()
    second = Simulator(identity_port=ports[0], api_port=ports[1]).start()
    second.stop()


def test_command_prints_settings_and_stops_on_sigterm(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "simulator", "--state-dir", str(tmp_path)]
    with subprocess.Popen(
        [*command, "--api-latency-ms", "5"],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            assert process.stdout is not None
            assert process.stderr is not None
            exports, line = [], process.stdout.readline()
            while line.startswith("export "):
                exports.append(line)
                line = process.stdout.readline()
            settings = json.loads(line)
            assert all(line.startswith("export ") for line in exports)
            assert f"export AZURE_TENANT_ID={settings['AZURE_TENANT_ID']}\n" in exports
            assert settings["REQUESTS_CA_BUNDLE"] == str(tmp_path / "ca.pem")
            assert (tmp_path / "ca.pem").is_file()
            client = SimulatorClient(
                settings["PARTNER_CENTER_API_URL"], settings["REQUESTS_CA_BUNDLE"]
            )
            assert client.settings() == settings
            client.close()
            started = time.monotonic()
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=10) == 0
            assert time.monotonic() - started < 5
            assert process.stderr.read() == ""
        finally:
            if process.poll() is None:
                process.kill()
