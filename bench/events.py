"""Partner Center events through the gateway: the webhook receiver's answer time at a steady rate,
and the time from an event's receipt to its subscribed callbacks (``python -m bench.events``;
``make bench`` runs it too).

The stack is the real one: Azurite (npm), the simulator (its signing certificate and key, served
and chained under its CA), the function app on the local host over HTTP in a process of its own
(``bench.events_host``), its queue trigger run by the local queue runner with host.json's
settings, and a local https server standing in for Power Automate's callbacks.

The benchmark plays Partner Center's dispatcher: it POSTs signed events open-loop at ``rate`` per
second (a slow answer does not slow the next one) and times each answer. Every event goes to
``subscriptions`` callbacks; the time from the receiver's 200 to each callback's arrival is
measured. The baseline, in the same run and at the same rate, is ``GET /api/health``: what the
local host itself costs per request.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from gateway.storage import STORAGE_SETTING, StorageClients, StorageTarget, ensure_storage
from partnercenter._webhooks import PartnerCenterEvent
from simulator import Simulator
from simulator.azurite import Azurite
from simulator.power_automate import CallbackServer

from .events_host import EventsHost
from .soak import free_port

EVENT = "reseller-relationship-accepted-by-customer"
RECEIVER_P99_TARGET_MS = 50.0
DELIVERY_P50_TARGET_MS = 1000.0
REPO_ROOT = Path(__file__).resolve().parents[1]


def percentiles(values: Sequence[float]) -> dict[str, float]:
    """p50, p95, p99 and max of ``values`` (milliseconds), or NaN for none."""
    if not values:
        return {"p50": float("nan"), "p95": float("nan"), "p99": float("nan"), "max": float("nan")}
    ordered = sorted(values)

    def at(share: float) -> float:
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))]

    return {"p50": statistics.median(ordered), "p95": at(0.95), "p99": at(0.99), "max": ordered[-1]}


@dataclass
class Sent:
    """One event the benchmark delivered to the receiver."""

    event_id: str
    status: int
    answered_ms: float
    acknowledged_at: float


class SignedDispatcher:
    """Signs events with the simulator's Partner Center certificate and POSTs them, timed."""

    def __init__(self, sim: Simulator, receiver_url: str) -> None:
        self._signer = sim.webhooks.signer
        self._certificate_url = sim.webhooks.certificate_url()
        self._url = receiver_url
        self._session = requests.Session()
        self._session.trust_env = False
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=64)
        self._session.mount("http://", adapter)
        self._lock = threading.Lock()
        self._ahead: deque[tuple[str, bytes, dict[str, str]]] = deque()

    def sign_ahead(self, count: int, event_name: str = EVENT) -> None:
        """Sign ``count`` events now, for :meth:`send` to deliver: Partner Center signs on its
        own machines, so the timed run does not spend this machine's CPU on it."""
        signed = [self.signed(event_name) for _ in range(count)]
        with self._lock:
            self._ahead.extend(signed)

    def signed(self, event_name: str = EVENT) -> tuple[str, bytes, dict[str, str]]:
        """A signed event about a new customer: its id, body and headers."""
        payload = {
            "EventName": event_name,
            "ResourceUri": f"/v1/customers/{uuid.uuid4()}",
            "ResourceName": "Customer",
            "AuditUri": None,
            "ResourceChangeUtcDate": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        }
        body = json.dumps(payload, separators=(",", ":")).encode()
        signature = self._signer.key.sign(body, padding.PKCS1v15(), hashes.SHA256())
        headers = {
            "Content-Type": "application/json",
            "Authorization": f"Signature {base64.b64encode(signature).decode()}",
            "X-MS-Certificate-Url": self._certificate_url,
            "X-MS-Signature-Algorithm": "rsa-sha256",
        }
        return PartnerCenterEvent.from_json(body).event_id, body, headers

    def send(self, event_name: str = EVENT) -> Sent:
        """One signed event (signed ahead, if any is left); its answer and when it came."""
        with self._lock:
            ahead = self._ahead.popleft() if self._ahead else None
        event_id, body, headers = ahead or self.signed(event_name)
        started = time.perf_counter()
        try:
            response = self._session.post(self._url, data=body, headers=headers, timeout=(5, 30))
            status = response.status_code
        except requests.RequestException:
            status = 0
        elapsed = time.perf_counter() - started
        return Sent(event_id, status, elapsed * 1000, time.time())

    def close(self) -> None:
        """Release the connections."""
        self._session.close()


def open_loop(rate: float, seconds: float, action: Callable[[], Any]) -> list[Any]:
    """Call ``action`` ``rate`` times a second for ``seconds``, each on its own pool thread, so
    that a slow call does not delay the next (as independent senders would)."""
    count = max(1, int(rate * seconds))
    interval = 1.0 / rate
    with ThreadPoolExecutor(64) as pool:
        futures = []
        start = time.perf_counter()
        for n in range(count):
            wait = start + n * interval - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            futures.append(pool.submit(action))
        return [f.result() for f in futures]


@contextmanager
def event_stack(callbacks: CallbackServer, *, folder: str) -> Iterator[dict[str, Any]]:
    """Azurite, the simulator, and the app on the local host (a child process, as the Functions
    worker is) with its queue trigger running; deliveries go to ``callbacks``."""
    with Azurite() as azurite:
        clients = StorageClients(StorageTarget.from_connection_string(azurite.connection_string))
        ensure_storage(clients)
        clients.close()
        sim = Simulator(state_dir=folder).start()
        port = free_port()
        env = {
            **os.environ,
            **sim.settings(),
            STORAGE_SETTING: azurite.connection_string,
            "PYTHONUNBUFFERED": "1",
        }
        host = EventsHost(env, port, callbacks, Path(folder))
        try:
            host.start()
            yield {
                "sim": sim,
                "base_url": f"http://127.0.0.1:{port}/api",
                "pids": {"host": host.pid, "azurite": azurite.pid},
            }
        finally:
            host.stop()
            sim.stop()


def subscribe(base_url: str, sim: Simulator, callbacks: CallbackServer, count: int) -> list[str]:
    """``count`` subscriptions to :data:`EVENT`, each by another user; their callback paths."""
    paths = []
    for n in range(count):
        token = sim.user_token(oid=str(uuid.uuid4()), scopes=["Events.Subscribe"])
        path = f"/workflows/bench-{n}/triggers/manual/run"
        answer = requests.post(
            f"{base_url}/subscriptions",
            json={"eventName": EVENT, "callbackUrl": callbacks.url(path)},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        answer.raise_for_status()
        paths.append(path)
    return paths


def measure(rate: float, seconds: float, subscriptions: int) -> dict[str, Any]:
    """Run the stack, send events at ``rate`` for ``seconds``; every figure, as JSON data."""
    callbacks = CallbackServer().start()
    try:
        with (
            tempfile.TemporaryDirectory(prefix="bench-events-") as folder,
            event_stack(callbacks, folder=folder) as stack,
        ):
            base_url, sim = stack["base_url"], stack["sim"]
            paths = subscribe(base_url, sim, callbacks, subscriptions)
            dispatcher = SignedDispatcher(sim, f"{base_url}/events/partner-center")
            open_loop(rate, 1.0, dispatcher.send)  # warm-up: connections, certificate cache
            health = _health_probe(base_url)
            baseline = open_loop(rate, min(seconds, 10.0), health)
            dispatcher.sign_ahead(max(1, int(rate * seconds)))
            before = _cpu_seconds(stack["pids"])
            sent: list[Sent] = open_loop(rate, seconds, dispatcher.send)
            dispatcher.close()
            acknowledged = [s for s in sent if s.status == 200]
            expected = {(s.event_id, p) for s in acknowledged for p in paths}
            arrived = _wait_for_callbacks(callbacks, expected, timeout=60.0)
            after = _cpu_seconds(stack["pids"])
    finally:
        callbacks.stop()
    cpu_ms = {
        name: (after[name] - before[name]) * 1000 / max(1, len(acknowledged)) for name in before
    }
    acked_at = {s.event_id: s.acknowledged_at for s in acknowledged}
    delivery_ms = [(at - acked_at[event_id]) * 1000 for (event_id, _), at in arrived.items()]
    return {
        "rate": rate,
        "seconds": seconds,
        "subscriptions": subscriptions,
        "events_sent": len(sent),
        "events_acknowledged": len(acknowledged),
        "statuses": _histogram(s.status for s in sent),
        "receiver_ms": percentiles([s.answered_ms for s in sent]),
        "baseline_health_ms": percentiles(baseline),
        "callbacks_expected": len(expected),
        "callbacks_arrived": len(arrived),
        "receipt_to_callback_ms": percentiles(delivery_ms),
        # CPU per acknowledged event, from its sending to its last callback: the function app's
        # process (receiver and delivery) and Azurite's, on a machine where both share 2 cores.
        "cpu_ms_per_event": cpu_ms,
    }


def _cpu_seconds(pids: dict[str, int | None]) -> dict[str, float]:
    """User + system CPU seconds each process has used so far (Linux ``/proc``; NaN elsewhere)."""
    found = {}
    for name, pid in pids.items():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            found[name] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            found[name] = float("nan")
    return found


def _health_probe(base_url: str) -> Callable[[], float]:
    session = requests.Session()
    session.trust_env = False

    def probe() -> float:
        started = time.perf_counter()
        session.get(f"{base_url}/health", timeout=(5, 30))
        return (time.perf_counter() - started) * 1000

    return probe


def _wait_for_callbacks(
    callbacks: CallbackServer, expected: set[tuple[str, str]], timeout: float
) -> dict[tuple[str, str], float]:
    """When each expected (event id, callback path) first arrived."""
    deadline = time.monotonic() + timeout
    while True:
        arrived: dict[tuple[str, str], float] = {}
        for received in list(callbacks.received):
            key = (str(received.body.get("eventId")), received.path)
            if key in expected and key not in arrived:
                arrived[key] = received.at
        if len(arrived) >= len(expected) or time.monotonic() > deadline:
            return arrived
        time.sleep(0.2)


def _histogram(statuses: Iterator[int] | Any) -> dict[str, int]:
    found: dict[str, int] = {}
    for status in statuses:
        found[str(status)] = found.get(str(status), 0) + 1
    return dict(sorted(found.items()))


def lines(result: dict[str, Any]) -> list[str]:
    """The figures, for people."""
    receiver, health = result["receiver_ms"], result["baseline_health_ms"]
    delivery = result["receipt_to_callback_ms"]
    return [
        f"events            {result['events_sent']} at {result['rate']:.0f}/s for "
        f"{result['seconds']:.0f} s, {result['subscriptions']} subscriptions; statuses "
        f"{result['statuses']}",
        f"receiver answer   p50 {receiver['p50']:.1f}  p95 {receiver['p95']:.1f}  "
        f"p99 {receiver['p99']:.1f}  max {receiver['max']:.1f} ms",
        f"baseline health   p50 {health['p50']:.1f}  p95 {health['p95']:.1f}  "
        f"p99 {health['p99']:.1f}  max {health['max']:.1f} ms (GET /api/health, same rate)",
        f"receipt->callback p50 {delivery['p50']:.0f}  p95 {delivery['p95']:.0f}  "
        f"p99 {delivery['p99']:.0f}  max {delivery['max']:.0f} ms; "
        f"{result['callbacks_arrived']} of {result['callbacks_expected']} callbacks arrived",
        "cpu per event     "
        + "  ".join(f"{name} {ms:.1f} ms" for name, ms in result["cpu_ms_per_event"].items()),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bench.events [--rate 50] [--seconds 20] [--subscriptions 3] [--json]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rate", type=float, default=50.0, help="events per second")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--subscriptions", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print one JSON line (for make bench)")
    args = parser.parse_args(argv)
    result = measure(args.rate, args.seconds, args.subscriptions)
    if args.json:
        print(json.dumps(result))
    else:
        print("\n".join(lines(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
