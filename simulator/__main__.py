"""``python -m simulator``: run the simulator until SIGINT or SIGTERM.

Prints the gateway's settings as ``export NAME=value`` lines, then the same settings as one JSON
line, and writes the CA bundle and client certificate into ``--state-dir``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import signal
import sys
import threading
from types import FrameType

from simulator._core import Simulator


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m simulator", description="Local Entra ID + Partner Center simulator."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--identity-port", type=int, default=0, help="0: any free port")
    parser.add_argument("--api-port", type=int, default=0, help="0: any free port")
    parser.add_argument("--token-latency-ms", type=float, default=0.0)
    parser.add_argument("--api-latency-ms", type=float, default=0.0)
    parser.add_argument("--state-dir", default=".sim", help="where ca.pem is written")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the simulator in the foreground; returns the exit status."""
    args = _parse(argv)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    sim = Simulator(
        host=args.host,
        identity_port=args.identity_port,
        api_port=args.api_port,
        token_latency=args.token_latency_ms / 1000,
        api_latency=args.api_latency_ms / 1000,
        state_dir=args.state_dir,
    )
    with sim:
        settings = sim.settings()
        for name, value in settings.items():
            print(f"export {name}={shlex.quote(value)}")
        print(json.dumps(settings), flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
