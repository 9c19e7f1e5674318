"""The local host for the events benchmark and soak: the app served as ``make run`` serves it,
its queue trigger run by the local queue runner, its event callbacks routed to a local callback
server, and retries seconds apart instead of minutes so that a one-minute run sees them through.

``python -m bench.events_host --port P --callback-port C --callback-ca FILE`` with the gateway's
settings (simulator, ``AzureWebJobsStorage``) in the environment; :class:`EventsHost` runs it as a
child process. A process of its own, as the Functions worker is: the benchmark's senders and
callback server do not share its interpreter.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from gateway.callbacks import CallbackHosts, CallbackSession
from gateway.delivery import EventDelivery, RetrySchedule, set_delivery
from gateway.devserver import serve_app
from gateway.local_queues import QueueOptions, QueueTriggerRunner
from gateway.registry import app_functions
from gateway.storage import storage_clients
from simulator.power_automate import CallbackServer, ConnectToAdapter

from .soak import Process

#: Retries of failed callbacks 1, 2 then 4 s apart (the deployed schedule starts at 30 s).
SOAK_RETRIES = RetrySchedule(delays=(1.0, 2.0, 4.0), jitter=0.1)
#: A message whose host was killed comes back after 30 s, not the host's 10 minutes.
PROCESSING_VISIBILITY = 30.0
REPO_ROOT = Path(__file__).resolve().parents[1]


class EventsHost:
    """This module's host as a child process (for the events benchmark and soak), restartable
    on the same port."""

    def __init__(
        self, env: dict[str, str], port: int, callbacks: CallbackServer, folder: Path
    ) -> None:
        self.env = env
        self.port = port
        self.ca_file = callbacks.write_ca(str(folder / "callback-ca.pem"))
        self.callback_port = callbacks.port
        self.folder = folder
        self.starts = 0
        self.process: Process | None = None

    def start(self) -> None:
        """Start it and wait until it serves."""
        self.starts += 1
        log = open(self.folder / f"host-{self.starts}.log", "w+")  # noqa: SIM115 - kept for stop
        self.process = Process(
            "the host",
            [
                sys.executable,
                "-m",
                "bench.events_host",
                f"--port={self.port}",
                f"--callback-port={self.callback_port}",
                f"--callback-ca={self.ca_file}",
            ],
            self.env,
            log,
        )
        self.process.wait_for_line("Serving the function app on", timeout=90)

    @property
    def pid(self) -> int | None:
        """The process id of the running host (None when it is not running)."""
        return self.process.popen.pid if self.process is not None else None

    def stop(self) -> None:
        """SIGTERM: it finishes the functions it runs, then exits."""
        if self.process is not None:
            self.process.stop()
            self.process.log.close()
            self.process = None

    def restart(self) -> float:
        """Stop and start again; the seconds it was down."""
        started = time.monotonic()
        self.stop()
        self.start()
        return time.monotonic() - started


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the app as ``make run`` does, delivering callbacks to the soak's server."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--callback-port", type=int, required=True)
    parser.add_argument("--callback-ca", required=True)
    args = parser.parse_args(argv)
    # As make run: the app's own line per request suffices (werkzeug's costs a log record each).
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    session = CallbackSession(CallbackHosts.parse([".logic.azure.com"]))
    session.mount("https://", ConnectToAdapter(args.callback_port, args.callback_ca))
    clients = storage_clients()
    set_delivery(EventDelivery(clients, session, schedule=SOAK_RETRIES))
    from function_app import app  # noqa: PLC0415 - after the delivery is in place

    options = replace(
        QueueOptions.from_host_json(REPO_ROOT / "host.json"),
        processing_visibility=PROCESSING_VISIBILITY,
    )
    runner = QueueTriggerRunner(app_functions(app).queues, clients, options).start()
    server = serve_app(app, "127.0.0.1", args.port)
    signal.signal(
        signal.SIGTERM,
        lambda signum, frame: threading.Thread(target=server.shutdown, daemon=True).start(),
    )
    print(f"Serving the function app on http://127.0.0.1:{args.port}/api", flush=True)
    try:
        server.serve_forever()
    finally:
        runner.stop()  # as the host does on shutdown: running functions finish
    return 0


if __name__ == "__main__":
    sys.exit(main())
