"""Azurite, the local Azure Storage emulator, as a child process on ports of its own.

Installed from npm by the project's own files (``package.json``, ``package-lock.json``, ``npm ci``).
Azurite is started with port 0 for each service, so the system picks free ports with no race
between choosing a port and binding it; the ports it bound are read from its start-up lines.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from types import TracebackType

from gateway.storage import DEV_ACCOUNT_KEY as ACCOUNT_KEY
from gateway.storage import DEV_ACCOUNT_NAME as ACCOUNT_NAME

SERVICES = ("blob", "queue", "table")
_LISTENING = re.compile(
    r"Azurite (Blob|Queue|Table) service is successfully listening at \S+:(\d+)"
)


def azurite_executable(root: Path | None = None) -> Path:
    """``node_modules/.bin/azurite`` of the repository (``npm ci`` installs it)."""
    base = root or Path(__file__).resolve().parents[1]
    return base / "node_modules" / ".bin" / "azurite"


class AzuriteError(RuntimeError):
    """Azurite is not installed or did not start."""


class Azurite:
    """One Azurite process serving blob, queue and table on 127.0.0.1, in memory."""

    def __init__(self, *, executable: Path | None = None, start_timeout: float = 60.0) -> None:
        self.executable = executable or azurite_executable()
        self.start_timeout = start_timeout
        self.ports: dict[str, int] = {}
        self._process: subprocess.Popen[str] | None = None
        self._output: list[str] = []
        self._ready = threading.Event()

    @property
    def pid(self) -> int | None:
        """The process id of the running Azurite (None when it is not running)."""
        return self._process.pid if self._process is not None else None

    def start(self) -> Azurite:
        """Start Azurite and wait until its three services answer."""
        if not self.executable.exists():
            raise AzuriteError(
                f"Azurite is not installed at {self.executable}: run `npm ci` (make run and "
                "make test do)."
            )
        command = [str(self.executable)]
        for service in SERVICES:
            command += [f"--{service}Host", "127.0.0.1", f"--{service}Port", "0"]
        command += [
            "--inMemoryPersistence",
            "--extentMemoryLimit",
            "256",
            "--disableTelemetry",
            "--skipApiVersionCheck",
            "--loose",
            "--silent",
        ]
        self._process = subprocess.Popen(  # noqa: S603 - our own pinned executable
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        threading.Thread(target=self._read_output, name="azurite-output", daemon=True).start()
        deadline = time.monotonic() + self.start_timeout
        if not self._ready.wait(self.start_timeout) or self._process.poll() is not None:
            self.stop()
            raise AzuriteError("Azurite did not start: " + " | ".join(self._output[-5:]))
        for port in self.ports.values():
            _wait_for_port(port, deadline)
        return self

    def _read_output(self) -> None:
        process = self._process
        assert process is not None
        assert process.stdout is not None
        # Read to the end, so that the pipe never fills and blocks Azurite.
        for line in process.stdout:
            if len(self._output) < 200:
                self._output.append(line.rstrip())
            found = _LISTENING.search(line)
            if found:
                self.ports[found.group(1).lower()] = int(found.group(2))
                if len(self.ports) == len(SERVICES):
                    self._ready.set()
        self._ready.set()

    def endpoint(self, service: str) -> str:
        """The URL of ``service`` (``blob``, ``queue``, ``table``) for the development account."""
        return f"http://127.0.0.1:{self.ports[service]}/{ACCOUNT_NAME}"

    @property
    def connection_string(self) -> str:
        """``AzureWebJobsStorage`` for this Azurite (its development account, its ports)."""
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT_NAME};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint={self.endpoint('blob')};QueueEndpoint={self.endpoint('queue')};"
            f"TableEndpoint={self.endpoint('table')};"
        )

    def stop(self) -> None:
        """Stop Azurite (its data is in memory and goes with it)."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)

    def __enter__(self) -> Azurite:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _wait_for_port(port: int, deadline: float) -> None:
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise AzuriteError(f"Azurite does not answer on port {port}.") from None
            time.sleep(0.05)
