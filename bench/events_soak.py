"""Events soak (``make soak-events``): Partner Center events at a steady rate through the webhook
receiver to subscribed callbacks, with storage faults, failing callbacks and a restart of the host.

``python -m bench.events_soak [--rate 15] [--seconds 20] [--storage-fault-rate 0.01]
[--callback-failure-rate 0.05]`` starts Azurite behind a fault-injecting proxy (a share of
storage requests fail with 503 before reaching it, or with 500 after it acted), the simulator
(its Partner Center signs and delivers the events, retrying as Partner Center does), a local
https server for the callbacks (a share of them answer 503), and the local host
(``bench.events_host``: ``make run``'s host with retries seconds apart) as a child process. Three
subscriptions are made through the API (two users on one event, one on another). Events are fired
at ``--rate`` for ``--seconds``; halfway the host is stopped (SIGTERM: it finishes what it runs)
and started again while events keep coming.

It exits non-zero unless every event the receiver acknowledged (answered 200) reached every
subscription to its name, within ``--drain-seconds`` after the last one.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import requests

from bench.soak import free_port
from gateway.storage import DEV_ACCOUNT_KEY, DEV_ACCOUNT_NAME, STORAGE_SETTING
from partnercenter._webhooks import PartnerCenterEvent
from simulator import Simulator
from simulator._webhooks import MAX_ATTEMPTS
from simulator.azurite import Azurite
from simulator.power_automate import CallbackServer

from .events_host import EventsHost
from .storage_faults import FaultyProxy

REPO_ROOT = Path(__file__).resolve().parents[1]
ACCEPTED = "reseller-relationship-accepted-by-customer"
INDIRECT = "indirect-reseller-relationship-accepted-by-customer"
#: Subscriptions: callback path -> event name (two users on one event, one on the other).
SUBSCRIPTIONS = {
    "/workflows/soak-a/triggers/manual/run": ACCEPTED,
    "/workflows/soak-b/triggers/manual/run": ACCEPTED,
    "/workflows/soak-c/triggers/manual/run": INDIRECT,
}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m bench.events_soak", description=__doc__)
    parser.add_argument("--rate", type=float, default=15.0, help="events per second (15)")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long events come (20)")
    parser.add_argument("--storage-fault-rate", type=float, default=0.01)
    parser.add_argument("--callback-failure-rate", type=float, default=0.05)
    parser.add_argument("--drain-seconds", type=float, default=45.0)
    parser.add_argument("--no-restart", action="store_true", help="keep the host running")
    return parser.parse_args(argv)


def proxied_connection_string(table_port: int, queue_port: int) -> str:
    """``AzureWebJobsStorage`` for Azurite's development account through the proxies."""
    return (
        f"DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT_NAME};AccountKey={DEV_ACCOUNT_KEY};"
        f"TableEndpoint=http://127.0.0.1:{table_port}/{DEV_ACCOUNT_NAME};"
        f"QueueEndpoint=http://127.0.0.1:{queue_port}/{DEV_ACCOUNT_NAME};"
    )


def subscribe(base_url: str, sim: Simulator, callbacks: CallbackServer) -> None:
    """The soak's subscriptions, each by another user, through the API (retried: faults)."""
    for path, event in SUBSCRIPTIONS.items():
        token = sim.user_token(oid=str(uuid.uuid4()), scopes=["Events.Subscribe"])
        for _ in range(10):
            answer = requests.post(
                f"{base_url}/subscriptions",
                json={"eventName": event, "callbackUrl": callbacks.url(path)},
                headers={"Authorization": f"Bearer {token}"},
                timeout=30,
            )
            if answer.status_code == 201:
                break
            time.sleep(0.5)
        else:
            raise RuntimeError(f"could not subscribe: {answer.status_code} {answer.text[:200]}")


def run(args: argparse.Namespace) -> int:
    """The soak; 0 when every acknowledged event reached every matching subscription."""
    callbacks = CallbackServer(failure_rate=args.callback_failure_rate).start()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="events-soak-") as name, Azurite() as azurite:
        folder = Path(name)
        from gateway.storage import StorageClients, StorageTarget, ensure_storage  # noqa: PLC0415

        ensure_storage(
            StorageClients(StorageTarget.from_connection_string(azurite.connection_string))
        )
        tables = FaultyProxy(azurite.ports["table"], args.storage_fault_rate).start()
        queues = FaultyProxy(azurite.ports["queue"], args.storage_fault_rate, seed=13).start()
        sim = Simulator(state_dir=str(folder / "sim")).start()
        port = free_port()
        env = {
            **os.environ,
            **sim.settings(),
            STORAGE_SETTING: proxied_connection_string(tables.port, queues.port),
            "PYTHONUNBUFFERED": "1",
        }
        host = EventsHost(env, port, callbacks, folder)
        fired: dict[str, tuple[str, str]] = {}  # correlation id -> (event id, event name)
        downtime: list[float] = []
        try:
            host.start()
            base_url = f"http://127.0.0.1:{port}/api"
            subscribe(base_url, sim, callbacks)
            sim.webhooks.retry_delay = 0.25
            sim.webhooks.register(f"{base_url}/events/partner-center", [ACCEPTED, INDIRECT])
            count = int(args.rate * args.seconds)
            restart_at = count // 2
            restarter: threading.Thread | None = None
            begin = time.perf_counter()
            for n in range(count):
                wait = begin + n / args.rate - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
                if n == restart_at and not args.no_restart:
                    restarter = threading.Thread(
                        target=lambda: downtime.append(host.restart()), daemon=True
                    )
                    restarter.start()
                event = INDIRECT if n % 4 == 3 else ACCEPTED
                correlation = str(uuid.uuid4())
                sent = sim.webhooks.fire(
                    event,
                    resource_uri=f"/v1/customers/{uuid.uuid4()}",
                    resource_name="Customer",
                    correlation_id=correlation,
                )
                fired[correlation] = (
                    PartnerCenterEvent.from_json(sent["body"].encode()).event_id,
                    event,
                )
            sending = time.perf_counter() - begin
            if restarter is not None:
                restarter.join(120)
            deadline = time.monotonic() + args.drain_seconds
            attempts = _settled(sim, set(fired), deadline)
            acknowledged = {a["correlationId"] for a in attempts if a["status"] == 200}
            expected = {
                (fired[c][0], path)
                for c in acknowledged
                if c in fired
                for path, event in SUBSCRIPTIONS.items()
                if event == fired[c][1]
            }
            arrived = _arrived(callbacks, expected, deadline)
        finally:
            host.stop()
            sim.stop()
            tables.stop()
            queues.stop()
            callbacks.stop()
    missing = expected - arrived
    received = Counter((str(r.body.get("eventId")), r.path) for r in callbacks.received)
    repeats = sum(n - 1 for key, n in received.items() if n > 1)
    statuses = Counter(str(a["status"]) for a in attempts)
    dropped = len(fired) - len(acknowledged & fired.keys())
    print(f"events            {len(fired)} fired in {sending:.1f} s ({len(fired) / sending:.1f}/s)")
    print(f"receiver answers  {dict(sorted(statuses.items()))} over {len(attempts)} attempts")
    print(f"acknowledged      {len(acknowledged & fired.keys())}; never acknowledged {dropped}")
    print(
        f"storage faults    tables {dict(tables.faults)} of {tables.requests}, "
        f"queues {dict(queues.faults)} of {queues.requests}"
    )
    print(f"callback failures {callbacks.failures} injected (503)")
    print(
        f"host restarts     {len(downtime)} (down {', '.join(f'{d:.1f} s' for d in downtime)})"
        if downtime
        else "host restarts     0"
    )
    print(
        f"callbacks         {len(arrived)} of {len(expected)} expected arrived; "
        f"{repeats} repeated deliveries (at least once)"
    )
    ok = not missing and dropped == 0
    print(f"wall time {time.monotonic() - started:.1f} s")
    print(
        "every acknowledged event reached every matching subscription: "
        + ("PASS" if ok else f"FAIL ({len(missing)} missing, {dropped} never acknowledged)")
    )
    return 0 if ok else 1


def _settled(sim: Simulator, fired: set[str], deadline: float) -> list[dict[str, Any]]:
    """The simulator's delivery attempts once every fired event was acknowledged or given up
    (Partner Center's last attempt failed), or at the deadline."""
    while True:
        attempts = sim.webhooks.attempts()
        done = {a["correlationId"] for a in attempts if a["status"] == 200}
        done |= {a["correlationId"] for a in attempts if a["attempt"] >= MAX_ATTEMPTS}
        if fired <= done or time.monotonic() > deadline:
            return attempts
        time.sleep(0.2)


def _arrived(
    callbacks: CallbackServer, expected: set[tuple[str, str]], deadline: float
) -> set[tuple[str, str]]:
    while True:
        found = {(str(r.body.get("eventId")), r.path) for r in list(callbacks.received)}
        arrived = expected & found
        if arrived == expected or time.monotonic() > deadline:
            return arrived
        time.sleep(0.2)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bench.events_soak``."""
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
