"""``python -m bench.worker SPEC``: one measurement in a fresh process, its result as JSON.

The environment carries the gateway's settings for the simulator (``SimulatorProcess.environ``);
SPEC is a JSON object naming the task and its numbers. The last line printed is the result.
"""

from __future__ import annotations

import functools
import gc
import json
import logging
import os
import sys
import threading
import time
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from typing import Any

import msal
from werkzeug.serving import BaseWSGIServer

from function_app import app
from gateway.devserver import serve_app
from gateway.registry import http_functions
from gateway.runtime import Runtime, get_runtime, set_runtime
from partnercenter import PartnerCenterClient, Settings, TokenCache
from partnercenter._tokens import AccessToken, OnBehalfOf, principal_key
from partnercenter._transport import Deadline
from simulator import CUSTOMERS, SimulatorClient

from .drivers import (
    PARTNER_CENTER_SCOPE,
    BaselineDriver,
    Driver,
    HttpDriver,
    InProcessDriver,
    PeakRss,
    UpstreamTimer,
    run_calls,
)
from .workload import Call, plan, summary_ms

Spec = dict[str, Any]
#: The environment names the simulator's settings come in (what ``Simulator.settings`` returns).
SETTING_NAMES = (
    "PARTNER_CENTER_API_URL",
    "AZURE_AUTHORITY_HOST",
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_ID",
    "AZURE_CLIENT_SECRET",
    "REQUESTS_CA_BUNDLE",
)


def _settings() -> dict[str, str]:
    return {name: os.environ[name] for name in SETTING_NAMES}


def _simulator() -> SimulatorClient:
    return SimulatorClient(os.environ["PARTNER_CENTER_API_URL"], os.environ["REQUESTS_CA_BUNDLE"])


def _tokens(spec: Spec) -> list[str]:
    with open(spec["users_file"], encoding="utf-8") as users:
        tokens: list[str] = json.load(users)
    return tokens


def _fresh_runtime() -> Runtime:
    """The gateway's runtime as the first request builds it: from the environment, cold."""
    set_runtime(None)
    return get_runtime()


def _handlers() -> dict[str, Any]:
    return {function.name: function.handler for function in http_functions(app)}


def _token_cache(client: PartnerCenterClient) -> TokenCache:
    cache = getattr(client.tokens, "cache", None)
    if not isinstance(cache, TokenCache):
        raise TypeError("the client's token provider has no TokenCache")
    return cache


@contextmanager
def _served() -> Iterator[str]:
    """The app on ``make run``'s host on a free port; yields its base URL."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # as `make run`: no access log
    server: BaseWSGIServer = serve_app(app, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/api"
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()


def _stats(sim: SimulatorClient) -> dict[str, Any]:
    stats = sim.stats()
    return {
        "token_requests": stats["token_requests"],
        "connections": stats["connections"],
        "api_calls": sum(stats["api_calls"].values()),
    }


def run_mode(spec: Spec) -> dict[str, Any]:
    """The workload through one mode at one concurrency."""
    mode, concurrency = spec["mode"], spec["concurrency"]
    tokens = _tokens(spec)
    calls = plan(spec["users"], spec["calls_per_user"], spec["seed"])
    sim = _simulator()
    timer: UpstreamTimer | None = None
    with ExitStack() as stack:
        driver: Driver
        if mode == "baseline":
            driver = BaselineDriver(tokens, _settings())
        else:
            timer = UpstreamTimer()
            stack.enter_context(timer.installed(_fresh_runtime().client))
            if mode == "in-process":
                driver = InProcessDriver(tokens, _handlers())
            else:
                driver = HttpDriver(tokens, stack.enter_context(_served()), concurrency)
        stack.callback(driver.close)
        sim.reset()
        with PeakRss() as rss:
            samples, wall = run_calls(driver, calls, concurrency, timer)
        stats = _stats(sim)
    sim.close()

    ok = [s for s in samples if s.ok]
    with_upstream = [(s, s.upstream) for s in ok if s.upstream is not None]
    api_latency = spec["api_latency"]
    return {
        "mode": mode,
        "concurrency": concurrency,
        "requests": len(samples),
        "errors": len(samples) - len(ok),
        "distinct_users": len({call.user for call in calls}),
        "wall_seconds": wall,
        "throughput_rps": len(samples) / wall,
        "latency_ms": summary_ms([s.seconds for s in ok]),
        "overhead_ms": summary_ms([s.seconds - u.total for s, u in with_upstream]),
        "overhead_vs_configured_latency_ms": summary_ms(
            [s.seconds - api_latency for s, u in with_upstream if u.api_only]
        ),
        "peak_rss_delta_mib": rss.delta / 2**20,
        **stats,
        "latencies_ms": [round(s.seconds * 1000, 3) for s in ok],
    }


def single_flight(spec: Spec) -> dict[str, Any]:
    """``burst_callers`` concurrent first calls of one user: how many token requests?"""
    callers = spec["burst_callers"]
    token = _tokens(spec)[0]
    runtime = _fresh_runtime()
    driver = InProcessDriver([token], _handlers())
    prepared = [
        driver.prepare(Call(0, "agreements", CUSTOMERS[n % len(CUSTOMERS)]), str(uuid.uuid4()))
        for n in range(callers)
    ]
    start = threading.Barrier(callers)

    def one(run: Callable[[], bool]) -> bool:
        start.wait()
        return run()

    sim = _simulator()
    sim.reset()
    with ThreadPoolExecutor(max_workers=callers) as pool:
        results = list(pool.map(one, prepared))
    stats = _stats(sim)
    sim.close()
    cache = _token_cache(runtime.client).stats()
    return {
        "callers": callers,
        "errors": results.count(False),
        **stats,
        "cache": {"misses": cache.misses, "waits": cache.waits, "hits": cache.hits},
    }


def cached_link(spec: Spec) -> dict[str, Any]:
    """Relationship requests after the first: latency in process, and upstream calls made."""
    token = _tokens(spec)[0]
    _fresh_runtime()
    driver = InProcessDriver([token], _handlers())
    link = Call(0, "relationship-request")
    if not driver.prepare(link, str(uuid.uuid4()))():  # the first one fetches and caches it
        raise RuntimeError("the first relationship request failed")
    sim = _simulator()
    sim.reset()
    samples, _ = run_calls(driver, [link] * spec["cached_link_calls"], 1, None)
    stats = _stats(sim)
    sim.close()
    return {
        "calls": len(samples),
        "errors": sum(not s.ok for s in samples),
        "latency_ms": summary_ms([s.seconds for s in samples if s.ok]),
        **stats,
    }


def _partner_center_token(user_token: str, settings: dict[str, str]) -> str:
    """A Partner Center token as the simulator issues it on behalf of a user: the size of what
    the token cache holds per user."""
    client = msal.ConfidentialClientApplication(
        settings["AZURE_CLIENT_ID"],
        client_credential=settings["AZURE_CLIENT_SECRET"],
        authority=f"{settings['AZURE_AUTHORITY_HOST']}/{settings['AZURE_TENANT_ID']}",
        instance_discovery=False,
    )
    result = client.acquire_token_on_behalf_of(user_token, scopes=[PARTNER_CENTER_SCOPE])
    return str(result["access_token"])


def _fill(settings: dict[str, str], cap: int, users: int, token: str) -> dict[str, Any]:
    client = PartnerCenterClient(
        Settings.from_environ({**settings, "TOKEN_CACHE_MAX_USERS": str(cap)})
    )
    cache = _token_cache(client)
    deadline = Deadline(60)
    refresh_at = time.monotonic() + 3600
    step = max(1, users // 10)
    tenant = settings["AZURE_TENANT_ID"]
    points: list[tuple[int, int]] = []
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    for n in range(users):
        # Distinct strings per caller token, as each caller's claims and each exchange produce;
        # keyed as the gateway keys them (a hash of the caller's token).
        caller = OnBehalfOf(f"{token[:-10]}{n:010d}", tenant, str(uuid.UUID(int=n + 1)))
        key = principal_key(caller)
        value = f"{token[:-10]}{n:010d}"
        cache.get(key, functools.partial(AccessToken, value, refresh_at), deadline)
        if (n + 1) % step == 0:
            points.append((n + 1, tracemalloc.get_traced_memory()[0] - base))
    tracemalloc.stop()
    client.close()
    stats = cache.stats()
    return {
        "cap": cap,
        "users": users,
        "size": stats.size,
        "evictions": stats.evictions,
        "traced_bytes": points,
        "bytes_per_cached_user": points[-1][1] / stats.size,
    }


def token_cache_memory(spec: Spec) -> dict[str, Any]:
    """The token cache filled with ``cache_users`` users: uncapped, then capped."""
    settings = _settings()
    token = _partner_center_token(_tokens(spec)[0], settings)
    users = spec["cache_users"]
    return {
        "token_chars": len(token),
        "measured_with": "tracemalloc (bytes traced after filling, minus before)",
        "uncapped": _fill(settings, users, users, token),
        "capped": _fill(settings, spec["cache_cap"], users, token),
    }


def profile(spec: Spec) -> dict[str, Any]:
    """Warm agreement listings in process under pyinstrument, with no simulated latency, so
    that the gateway's own work is what the profile shows. Writes text and HTML profiles."""
    from pyinstrument import Profiler  # noqa: PLC0415 - only this task needs it

    token = _tokens(spec)[0]
    _fresh_runtime()
    driver = InProcessDriver([token], _handlers())
    calls = [Call(0, "agreements", CUSTOMERS[n % len(CUSTOMERS)]) for n in range(200)]
    warm = [driver.prepare(call, str(uuid.uuid4())) for call in calls[:20]]
    measured = [driver.prepare(call, str(uuid.uuid4())) for call in calls]
    sim = _simulator()
    sim.set_latency(token=0.0, api=0.0)
    try:
        for run in warm:
            run()
        profiler = Profiler(interval=0.0001)
        with profiler:
            for run in measured:
                run()
    finally:
        sim.set_latency(token=spec["token_latency"], api=spec["api_latency"])
        sim.close()
    out = spec["out_dir"]
    text = profiler.output_text(unicode=False, color=False)
    with open(os.path.join(out, "profile.txt"), "w", encoding="utf-8") as file:
        file.write(text)
    with open(os.path.join(out, "profile.html"), "w", encoding="utf-8") as file:
        file.write(profiler.output_html())
    return {"calls": len(measured), "files": ["profile.txt", "profile.html"]}


TASKS: dict[str, Callable[[Spec], dict[str, Any]]] = {
    "run": run_mode,
    "single-flight": single_flight,
    "cached-link": cached_link,
    "token-cache": token_cache_memory,
    "profile": profile,
}


def main(argv: list[str]) -> int:
    """Run the task SPEC names and print its result as the last line."""
    spec: Spec = json.loads(argv[0])
    result = TASKS[spec["task"]](spec)
    set_runtime(None)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
