"""The simulator in a process of its own, driven through its control plane.

Partner Center and Entra ID are remote services: running their simulator outside the measured
process keeps its TLS handshakes, token signing and threads off the benchmark's GIL and out of
its memory figures.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from simulator import SimulatorClient

REPO_ROOT = Path(__file__).resolve().parents[1]


def stop_process(process: subprocess.Popen[str]) -> None:
    """Ask a child process to stop (SIGTERM), kill it if it has not within 10 s, close its pipe."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stdout is not None:
        process.stdout.close()


class SimulatorProcess:
    """``python -m simulator`` with the given latencies; a context manager."""

    def __init__(self, *, token_latency: float, api_latency: float) -> None:
        self._latencies = (token_latency, api_latency)
        self._state = tempfile.TemporaryDirectory(prefix="bench-sim-")
        self._process: subprocess.Popen[str] | None = None
        self._log: IO[str] | None = None
        self.settings: dict[str, str] = {}
        self.client: SimulatorClient | None = None

    def start(self) -> SimulatorProcess:
        """Start the simulator and wait for its settings line."""
        token_latency, api_latency = self._latencies
        self._log = open(Path(self._state.name) / "simulator.log", "w+")  # noqa: SIM115
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "simulator",
                "--state-dir",
                self._state.name,
                "--token-latency-ms",
                str(token_latency * 1000),
                "--api-latency-ms",
                str(api_latency * 1000),
            ],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        self.settings = self._read_settings(self._process)
        self.client = SimulatorClient(
            self.settings["PARTNER_CENTER_API_URL"], self.settings["REQUESTS_CA_BUNDLE"]
        )
        return self

    def _read_settings(self, process: subprocess.Popen[str]) -> dict[str, str]:
        # The simulator prints `export` lines, then the same settings as one JSON line.
        assert process.stdout is not None
        for line in process.stdout:  # ends when the simulator exits (it failed to start)
            if line.startswith("{"):
                settings: dict[str, str] = json.loads(line)
                return settings
        self.stop()
        raise RuntimeError(f"the simulator did not start:\n{self.log_text()}")

    def log_text(self) -> str:
        """What the simulator wrote on stderr so far."""
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read()

    @property
    def sim(self) -> SimulatorClient:
        """The control-plane client (after :meth:`start`)."""
        if self.client is None:
            raise RuntimeError("start the simulator first")
        return self.client

    def stats(self) -> dict[str, Any]:
        """Token requests, API calls and connections counted since the last reset."""
        stats = self.sim.stats()
        stats.pop("api_requests", None)  # one entry per call: not needed, and it grows
        return stats

    def environ(self) -> dict[str, str]:
        """This process's environment plus the gateway's settings for the simulator."""
        return {**os.environ, **self.settings}

    def stop(self) -> None:
        """Stop the simulator (the process this object started) and remove its files."""
        if self.client is not None:
            self.client.close()
            self.client = None
        if self._process is not None:
            stop_process(self._process)
            self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None
        self._state.cleanup()

    def __enter__(self) -> SimulatorProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
