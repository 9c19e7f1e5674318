"""Soak test (``make soak``): many concurrent callers through `make run`'s host, with faults.

``python -m bench.soak [--callers 200] [--seconds 30] [--fault-rate 0.01]`` starts the simulator
of Entra ID and Partner Center in a process of its own (token 120 ms, API 150 ms by default) and
the local Functions host (``python -m gateway.devserver``) in another, then runs ``--callers``
concurrent callers for ``--seconds``, each calling as one of ``--users`` distinct users (a few
as an application, served as the service user). About ``--fault-rate`` of the Partner Center
calls get an injected fault: a 503, a 429 with ``Retry-After: 1``, or a dropped connection.

It prints the figures and exits non-zero if any request went unanswered, any 5xx (or 429) is not
explained by a fault injected into that very call, any Partner Center call was made with another
identity's token than the caller's, the host's memory grew by more than ``--max-growth-mb`` from
the end of the warm-up to the end, or the host's log lines carry a token.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import requests

from bench.simproc import SimulatorProcess, stop_process
from simulator import CUSTOMER_MCA, CUSTOMER_NO_AGREEMENTS, Fault, SimulatorClient

REPO_ROOT = Path(__file__).resolve().parents[1]
FAULT_KINDS = ("503", "429", "drop")
#: Answers of the simulator that only an injected fault produces.
FAULTED_STATUSES = frozenset({0, 429, 503})
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{2,}\.eyJ[A-Za-z0-9_-]{2,}")
_BEARER = re.compile(r"(?i)\bbearer\s+(?![\[<]redacted)[A-Za-z0-9._~+/=-]{8,}")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--callers", type=int, default=200, help="concurrent callers (200)")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long they call (30)")
    parser.add_argument("--fault-rate", type=float, default=0.01, help="share of faulted calls")
    parser.add_argument("--users", type=int, default=2000, help="distinct users (2000)")
    parser.add_argument("--app-share", type=float, default=0.05, help="share of app callers")
    parser.add_argument("--token-latency-ms", type=float, default=120.0)
    parser.add_argument("--api-latency-ms", type=float, default=150.0)
    parser.add_argument(
        "--max-growth-mb",
        type=float,
        default=64.0,
        help="largest RSS growth of the host allowed from the end of the warm-up (64 MiB)",
    )
    args = parser.parse_args(argv)
    if args.callers < 1 or args.seconds <= 0 or args.users < 1:
        parser.error("--callers, --seconds and --users must be positive")
    if not 0 <= args.fault_rate <= 1 or not 0 <= args.app_share <= 1:
        parser.error("--fault-rate and --app-share are shares between 0 and 1")
    return args


# --- the two processes ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


class Process:
    """A child process of this run, stopped (and only it) when the run ends."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: IO[str]) -> None:
        self.name = name
        self.log = log
        self.popen = subprocess.Popen(
            argv, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=log, text=True
        )

    def wait_for_line(self, prefix: str, timeout: float = 60.0) -> str:
        """The first stdout line starting with ``prefix`` (the process failed if none comes)."""
        assert self.popen.stdout is not None
        found: list[str] = []

        def read() -> None:
            assert self.popen.stdout is not None
            for line in self.popen.stdout:
                if line.startswith(prefix):
                    found.append(line)
                    return

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(timeout)
        if not found:
            self.stop()
            self.log.seek(0)
            raise RuntimeError(f"{self.name} did not start:\n{self.log.read()[-4000:]}")
        return found[0]

    def stop(self) -> None:
        stop_process(self.popen)


@dataclass
class Stack:
    """The simulator and the host, each a process of its own, started in order and stopped in
    reverse."""

    token_latency: float
    api_latency: float
    pool: int
    state: tempfile.TemporaryDirectory[str] = field(
        default_factory=lambda: tempfile.TemporaryDirectory(prefix="soak-")
    )
    processes: list[Process] = field(default_factory=list)
    settings: dict[str, str] = field(default_factory=dict)
    simulator: SimulatorProcess | None = None
    sim: SimulatorClient | None = None
    host_url: str = ""
    host_log: Path | None = None
    service_oid: str = field(default_factory=lambda: str(uuid.uuid4()))

    def __enter__(self) -> Stack:
        try:
            self._start()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _start(self) -> None:
        state = Path(self.state.name)
        self.simulator = SimulatorProcess(
            token_latency=self.token_latency, api_latency=self.api_latency
        ).start()
        self.settings = self.simulator.settings
        self.sim = self.simulator.sim
        port = free_port()
        env = {
            **os.environ,
            **self.settings,
            "PARTNER_CENTER_REFRESH_TOKEN": self.sim.refresh_token_for(oid=self.service_oid),
            "PARTNER_CENTER_DEADLINE_SECONDS": "20",
            # As the Functions host sizes its pool: one connection per worker thread.
            "PYTHON_THREADPOOL_THREAD_COUNT": str(self.pool),
            "PYTHONUNBUFFERED": "1",
        }
        self.host_log = state / "host.log"
        host_log = open(self.host_log, "w+")  # noqa: SIM115 - closed in __exit__
        host = Process(
            "the host",
            [sys.executable, "-m", "gateway.devserver", "--port", str(port)],
            env,
            host_log,
        )
        self.processes.append(host)
        host.wait_for_line("Serving the function app on")
        self.host_url = f"http://127.0.0.1:{port}/api"
        answer = requests.get(f"{self.host_url}/health", timeout=10)
        answer.raise_for_status()

    @property
    def host_pid(self) -> int:
        return self.processes[-1].popen.pid

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for process in reversed(self.processes):
            process.stop()
            process.log.close()
        if self.simulator is not None:
            self.simulator.stop()
        self.state.cleanup()


# --- measuring ---------------------------------------------------------------------------------


def rss_mib(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of ``pid`` in MiB: resident now and its peak."""
    values: dict[str, float] = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                values[name] = int(rest.split()[0]) / 1024
    return values.get("VmRSS", 0.0), values.get("VmHWM", 0.0)


@dataclass
class Sample:
    at: float
    rss: float
    peak: float


class MemoryWatch:
    """Samples the host's resident memory every ``interval`` seconds until stopped."""

    def __init__(self, pid: int, interval: float = 0.25) -> None:
        self.pid = pid
        self.interval = interval
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="soak-memory", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            rss, peak = rss_mib(self.pid)
            self.samples.append(Sample(time.monotonic() - self._started, rss, peak))
            if self._stop.wait(self.interval):
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def at(self, seconds: float) -> Sample:
        """The first sample taken at or after ``seconds`` (else the last one)."""
        for sample in self.samples:
            if sample.at >= seconds:
                return sample
        return self.samples[-1]


@dataclass(frozen=True)
class Outcome:
    correlation_id: str
    subject: tuple[str, str]
    status: int  # 0: no answer at all
    seconds: float
    error: str = ""


@dataclass
class Identity:
    token: str
    subject: tuple[str, str]


class FaultInjector:
    """Keeps the faults injected at ``rate`` of the calls made so far, mixed evenly."""

    def __init__(self, sim: SimulatorClient, rate: float, seed: int = 7) -> None:
        self._sim = sim
        self._rate = rate
        self._rng = random.Random(seed)
        self.injected: Counter[str] = Counter()
        self._stop = threading.Event()
        self._calls = 0
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="soak-faults", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def count_call(self) -> None:
        with self._lock:
            self._calls += 1

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            with self._lock:
                due = int(self._calls * self._rate) - sum(self.injected.values())
            faults: list[Fault] = []
            for _ in range(max(0, due)):
                kind = self._rng.choice(FAULT_KINDS)
                self.injected[kind] += 1
                if kind == "503":
                    faults.append(Fault(path="/v1/customers/", status=503))
                elif kind == "429":
                    faults.append(Fault.throttled(1, path="/v1/customers/"))
                else:
                    faults.append(Fault(path="/v1/customers/", drop=True))
            if faults:
                self._sim.faults_add(faults)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def call_until(
    *,
    end: float,
    url: str,
    identities: Sequence[Identity],
    rng: random.Random,
    faults: FaultInjector,
    outcomes: list[Outcome],
    lock: threading.Lock,
) -> None:
    """One caller: calls back to back until ``end``; every call's outcome is kept."""
    session = requests.Session()
    session.trust_env = False
    mine: list[Outcome] = []
    try:
        while time.monotonic() < end:
            who = rng.choice(identities)
            customer = CUSTOMER_MCA if rng.random() < 0.8 else CUSTOMER_NO_AGREEMENTS
            target = (
                f"{url}/customers/{customer}/agreements"
                if rng.random() < 0.9
                else f"{url}/relationship-request"
            )
            correlation = str(uuid.uuid4())
            faults.count_call()
            started = time.monotonic()
            try:
                answer = session.get(
                    target,
                    headers={
                        "Authorization": f"Bearer {who.token}",
                        "x-correlation-id": correlation,
                    },
                    timeout=60,
                )
                mine.append(
                    Outcome(
                        correlation, who.subject, answer.status_code, time.monotonic() - started
                    )
                )
            except requests.RequestException as err:
                mine.append(
                    Outcome(
                        correlation,
                        who.subject,
                        0,
                        time.monotonic() - started,
                        type(err).__name__,
                    )
                )
    finally:
        session.close()
        with lock:
            outcomes.extend(mine)


def percentile(sorted_values: Sequence[float], share: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(share * len(sorted_values)) - 1))
    return sorted_values[index]


def leaked_log_lines(path: Path) -> int:
    """Host log lines carrying a JWT or a bearer value."""
    count = 0
    with open(path, encoding="utf-8", errors="replace") as log:
        for line in log:
            if _JWT.search(line) or _BEARER.search(line):
                count += 1
    return count


# --- the run -------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    rng = random.Random(20_260_401)
    with Stack(args.token_latency_ms / 1000, args.api_latency_ms / 1000, args.callers) as stack:
        sim = stack.sim
        assert sim is not None
        assert stack.host_log is not None
        tenant = stack.settings.get("AZURE_TENANT_ID", "")
        users = args.users
        apps = max(1, round(users * args.app_share)) if args.app_share > 0 else 0
        oids = [str(uuid.uuid4()) for _ in range(users)]
        with ThreadPoolExecutor(16) as pool:
            tokens = list(pool.map(lambda oid: sim.user_token(oid=oid), oids))
        identities = [Identity(t, (tenant, oid)) for t, oid in zip(tokens, oids, strict=True)]
        app_token = sim.app_token()
        identities += [Identity(app_token, (tenant, stack.service_oid))] * apps
        sim.reset()

        faults = FaultInjector(sim, args.fault_rate)
        memory = MemoryWatch(stack.host_pid)
        outcomes: list[Outcome] = []
        lock = threading.Lock()
        started = time.monotonic()
        end = started + args.seconds
        faults.start()
        callers = [
            threading.Thread(
                target=call_until,
                kwargs={
                    "end": end,
                    "url": stack.host_url,
                    "identities": identities,
                    "rng": random.Random(rng.random()),
                    "faults": faults,
                    "outcomes": outcomes,
                    "lock": lock,
                },
                name=f"caller-{n}",
                daemon=True,
            )
            for n in range(args.callers)
        ]
        for caller in callers:
            caller.start()
        gives_up = end + 75  # each caller ends by itself: its last call times out at 60 s
        for caller in callers:
            caller.join(max(0.0, gives_up - time.monotonic()))
        elapsed = time.monotonic() - started
        stuck = sum(caller.is_alive() for caller in callers)
        faults.stop()
        time.sleep(0.5)  # the last upstream records
        memory.stop()
        stats = sim.stats()
        leaks = leaked_log_lines(stack.host_log)

    return report(
        args,
        outcomes=outcomes,
        stats=stats,
        faults=faults,
        memory=memory,
        elapsed=elapsed,
        stuck=stuck,
        leaks=leaks,
        service_oid=stack.service_oid,
    )


def report(
    args: argparse.Namespace,
    *,
    outcomes: list[Outcome],
    stats: dict[str, Any],
    faults: FaultInjector,
    memory: MemoryWatch,
    elapsed: float,
    stuck: int,
    leaks: int,
    service_oid: str,
) -> int:
    upstream: dict[str, list[dict[str, Any]]] = {}
    for request in stats["api_requests"]:
        upstream.setdefault(request["headers"].get("ms-correlationid", ""), []).append(request)
    by_correlation = {o.correlation_id: o for o in outcomes}
    statuses = Counter(o.status for o in outcomes)
    latencies = sorted(o.seconds * 1000 for o in outcomes if o.status)
    unanswered = [o for o in outcomes if o.status == 0]

    explained = unexplained = 0
    for outcome in outcomes:
        if outcome.status >= 500 or outcome.status == 429:
            seen = upstream.get(outcome.correlation_id, [])
            if outcome.status != 500 and any(r["status"] in FAULTED_STATUSES for r in seen):
                explained += 1
            else:
                unexplained += 1
    strangers = 0  # upstream calls with no caller's correlation id, or another identity
    for correlation, requests_seen in upstream.items():
        caller = by_correlation.get(correlation)
        for request in requests_seen:
            if caller is None or tuple(request["subject"] or ()) != caller.subject:
                strangers += 1
    served_faults = Counter(
        "drop" if r["status"] == 0 else str(r["status"])
        for r in stats["api_requests"]
        if r["status"] in FAULTED_STATUSES
    )
    distinct_users = {o.subject for o in outcomes if o.status and o.subject[1] != service_oid}
    # A caller whose calls were all served from its cached relationship link needs no token.
    upstream_users = {
        tuple(r["subject"])
        for r in stats["api_requests"]
        if r["subject"] and r["subject"][1] != service_oid
    }
    warm = memory.at(min(max(2.0, elapsed * 0.2), elapsed / 2))
    middle = memory.at(elapsed / 2)
    last = memory.samples[-1]
    peak = max(s.peak for s in memory.samples)
    growth = last.rss - warm.rss
    tokens = stats["token_requests"]

    lines = [
        f"soak: {args.callers} callers for {args.seconds:g} s, {args.users} users "
        f"(+ app callers {args.app_share:.0%}), faults {args.fault_rate:.1%}, latencies token "
        f"{args.token_latency_ms:g} ms / api {args.api_latency_ms:g} ms",
        f"requests          {len(outcomes)} in {elapsed:.1f} s = "
        f"{len(outcomes) / elapsed:.1f} req/s",
        "statuses          "
        + ", ".join(f"{status or 'no answer'}: {n}" for status, n in sorted(statuses.items())),
        f"latency ms        p50 {percentile(latencies, 0.50):.0f}  p95 "
        f"{percentile(latencies, 0.95):.0f}  p99 {percentile(latencies, 0.99):.0f}  max "
        f"{(latencies[-1] if latencies else 0):.0f}",
        f"upstream calls    {len(stats['api_requests'])} Partner Center requests",
        "faults injected   "
        + (", ".join(f"{k}: {faults.injected[k]}" for k in FAULT_KINDS) or "none")
        + f" (total {sum(faults.injected.values())}); served: "
        + (", ".join(f"{k}: {n}" for k, n in sorted(served_faults.items())) or "none"),
        f"errors seen       {explained} 5xx/429 explained by a fault in that call, "
        f"{unexplained} unexplained",
        f"token requests    on-behalf-of {tokens.get('on_behalf_of', 0)} for "
        f"{len(upstream_users)} distinct users whose calls reached Partner Center "
        f"({len(distinct_users)} distinct users called); refresh_token "
        f"{tokens.get('refresh_token', 0)} "
        f"for the service user (app callers); client_credentials "
        f"{tokens.get('client_credentials', 0)}",
        f"memory (host) MiB start {memory.samples[0].rss:.1f}, after warm-up "
        f"({warm.at:.1f} s) {warm.rss:.1f}, middle {middle.rss:.1f}, end {last.rss:.1f}, peak "
        f"{peak:.1f}; growth {growth:+.1f} (bound {args.max_growth_mb:g})",
        f"unanswered        {len(unanswered)} (callers stuck: {stuck})",
        f"other identity    {strangers} Partner Center calls not made for the caller",
        f"tokens in logs    {leaks} host log lines",
    ]
    failures = []
    if not outcomes:
        failures.append("no request was made")
    if unanswered or stuck:
        kinds = Counter(o.error for o in unanswered)
        failures.append(f"{len(unanswered)} requests unanswered ({dict(kinds)}), {stuck} stuck")
    if unexplained:
        failures.append(f"{unexplained} 5xx/429 answers not explained by an injected fault")
    if strangers:
        failures.append(f"{strangers} Partner Center calls made with another identity's token")
    if tokens.get("on_behalf_of", 0) > len(upstream_users):
        failures.append("more token exchanges than users: the per-user token cache failed")
    if growth > args.max_growth_mb:
        failures.append(f"memory grew {growth:.1f} MiB (bound {args.max_growth_mb:g})")
    if leaks:
        failures.append(f"{leaks} host log lines carry a token")
    lines.append("result            " + ("FAIL: " + "; ".join(failures) if failures else "PASS"))
    print("\n".join(lines), flush=True)
    return 1 if failures else 0


def main(argv: Sequence[str] | None = None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
