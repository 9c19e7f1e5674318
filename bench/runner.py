"""The whole benchmark: simulator up, every measurement in a fresh worker, then the report."""

from __future__ import annotations

import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from partnercenter import Settings
from simulator import CUSTOMERS
from simulator.data import derived_guid

from . import events, report
from .coldstart import WORKER_STDLIB_MODULES
from .config import MODES, BenchConfig
from .simproc import REPO_ROOT, SimulatorProcess

_WORKER_TIMEOUT = 900


def build_package(folder: Path) -> Path:
    """The app as the pipelines deploy it, unpacked in ``folder``: ``package_function.py``'s zip
    (the sources .funcignore keeps, and their unchecked-hash bytecode). Azure then runs it from a
    read-only mount with the dependencies the remote build installed (here: this venv's, which
    pip byte-compiled as the remote build's pip does)."""
    archive = folder / "package.zip"
    subprocess.run(
        [sys.executable, "infra/scripts/package_function.py", "--output", str(archive)],
        cwd=REPO_ROOT,
        capture_output=True,
        check=True,
        timeout=120,
    )
    app = folder / "app"
    with zipfile.ZipFile(archive) as package:
        package.extractall(app)
    return app


def azure_sized_bundle(sim: SimulatorProcess, folder: Path) -> str:
    """A CA bundle of certifi's roots and the simulator's CA, written in ``folder``.

    In Azure the app verifies Entra ID and Partner Center with certifi's bundle (requests'
    default, about 120 roots), and loading it into a TLS context is part of a cold start's
    first connections; the simulator's own bundle holds one certificate, which would leave that
    cost out.
    """
    bundle = folder / "ca-bundle.pem"
    roots = Path(requests.utils.DEFAULT_CA_BUNDLE_PATH).read_bytes()
    simulator_ca = Path(sim.settings["REQUESTS_CA_BUNDLE"]).read_bytes()
    bundle.write_bytes(roots.rstrip(b"\n") + b"\n" + simulator_ca)
    return str(bundle)


def cold_start(sim: SimulatorProcess, runs: int, profile_dir: Path | None = None) -> dict[str, Any]:
    """Cold starts the way Azure starts the app (``bench/coldstart.py``), in fresh processes
    against the warm simulator: import, indexing, first authenticated answer.

    The app is imported from its deployment package (:func:`build_package`), not from the
    working tree, so that the bytecode the import finds is what Azure finds. One unmeasured start
    first (the operating system's file cache, as on an instance that has just mounted the
    package). Each start serves two users never seen before.
    """
    with tempfile.TemporaryDirectory(prefix="bench-package-") as folder:
        app = build_package(Path(folder))
        # The package first on the path, as the worker puts the app's folder; bench.coldstart
        # itself comes from the repository.
        env = {
            **sim.environ(),
            "PYTHONPATH": str(REPO_ROOT),
            "REQUESTS_CA_BUNDLE": azure_sized_bundle(sim, Path(folder)),
        }
        measured = _cold_starts(sim, runs, app, env, profile_dir)
        if profile_dir is not None:
            _import_profile(app, env, profile_dir / "importtime.txt")
    return _cold_start_figures(measured)


def _cold_starts(
    sim: SimulatorProcess,
    runs: int,
    app: Path,
    env: dict[str, str],
    profile_dir: Path | None,
) -> list[dict[str, Any]]:
    measured: list[dict[str, Any]] = []
    for run in range(runs + 1):
        tokens = [
            sim.sim.user_token(oid=derived_guid(f"cold-start-{run}-{n}"), name=f"Cold {run}-{n}")
            for n in range(2)
        ]
        spec: dict[str, Any] = {"tokens": tokens, "customer": CUSTOMERS[0]}
        if profile_dir is not None and run == 1:
            spec["profile"] = str(profile_dir / "cold-start-profile.txt")
        done = subprocess.run(
            [sys.executable, "-m", "bench.coldstart", json.dumps(spec)],
            cwd=app,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        if done.returncode != 0:
            raise RuntimeError(f"cold start failed ({done.returncode}):\n{done.stderr[-4000:]}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        if result["statuses"] != [200, 200]:
            raise RuntimeError(f"cold start answered {result['statuses']}")
        if not result["app_file"].startswith(str(app)):
            raise RuntimeError(f"function_app came from {result['app_file']}, not the package")
        measured.append(result)
    return measured[1:]


def _cold_start_figures(measured: list[dict[str, Any]]) -> dict[str, Any]:
    times = [run["import_ms"] for run in measured]
    calls = [call for run in measured for call in run["network_calls"]]
    budgets = [
        r["import_ms"] + r["warm_answer_ms"] + report.FIRST_ANSWER_SLACK_MS for r in measured
    ]
    return {
        "runs_ms": times,
        "median_ms": statistics.median(times),
        "network_calls": len(calls),
        "network_call_kinds": sorted(set(calls)),
        "worker_preload_median_ms": statistics.median(r["worker_preload_ms"] for r in measured),
        "index_median_ms": statistics.median(r["index_ms"] for r in measured),
        "first_answer_ms": [r["first_answer_ms"] for r in measured],
        "first_answer_median_ms": statistics.median(r["first_answer_ms"] for r in measured),
        "warm_answer_median_ms": statistics.median(r["warm_answer_ms"] for r in measured),
        "first_answer_budget_median_ms": statistics.median(budgets),
        "first_answer_within_budget": sum(
            r["first_answer_ms"] <= b for r, b in zip(measured, budgets, strict=True)
        ),
    }


def _import_profile(app: Path, env: dict[str, str], path: Path) -> None:
    """``python -X importtime``: what the worker has loaded (azure.functions and
    :data:`coldstart.WORKER_STDLIB_MODULES`), then function_app from the package in ``app``; the
    slowest imports first."""
    preloaded = ", ".join(("azure.functions", *WORKER_STDLIB_MODULES))
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {preloaded}, function_app"],
        cwd=app,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    rows = [line for line in done.stderr.splitlines() if line.startswith("import time:")]
    parsed = []
    for line in rows[1:]:  # the first is the header
        self_us, cumulative_us, name = line.removeprefix("import time:").split("|")
        parsed.append((int(cumulative_us), int(self_us), name.rstrip()))
    parsed.sort(reverse=True)
    lines = ["cumulative us | self us | module"]
    lines += [f"{c:>13} | {s:>7} | {n}" for c, s, n in parsed[:60]]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


class Bench:
    """One benchmark run with ``config``."""

    def __init__(self, config: BenchConfig) -> None:
        self.config = config

    def _worker(self, sim: SimulatorProcess, spec: dict[str, Any]) -> dict[str, Any]:
        done = subprocess.run(
            [sys.executable, "-m", "bench.worker", json.dumps(spec)],
            cwd=REPO_ROOT,
            env=sim.environ(),
            capture_output=True,
            text=True,
            timeout=_WORKER_TIMEOUT,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"bench worker {spec['task']} failed ({done.returncode}):\n{done.stderr[-4000:]}"
            )
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        return result

    def _mint_users(self, sim: SimulatorProcess, folder: str) -> str:
        """Each user's token for the gateway's API, as callers would send it; a JSON file."""
        tokens = [
            sim.sim.user_token(oid=derived_guid(f"bench-user-{n}"), name=f"Bench User {n}")
            for n in range(self.config.users)
        ]
        path = Path(folder) / "users.json"
        path.write_text(json.dumps(tokens), encoding="utf-8")
        return str(path)

    def run(self) -> dict[str, Any]:
        """Every measurement; prints progress, returns the results."""
        config = self.config
        common: dict[str, Any] = {
            "users": config.users,
            "calls_per_user": config.calls_per_user,
            "seed": config.seed,
            "api_latency": config.api_latency,
            "burst_callers": config.burst_callers,
            "cached_link_calls": config.cached_link_calls,
            "cache_users": config.cache_users,
            "cache_cap": config.cache_cap,
            "token_latency": config.token_latency,
            "out_dir": str(config.out_dir),
        }
        runs: list[dict[str, Any]] = []
        with (
            SimulatorProcess(
                token_latency=config.token_latency, api_latency=config.api_latency
            ) as sim,
            tempfile.TemporaryDirectory(prefix="bench-") as folder,
        ):
            common["users_file"] = self._mint_users(sim, folder)
            pool_size = Settings.from_environ(sim.settings).pool_size
            for concurrency in config.concurrency:
                for mode in MODES:
                    spec = {**common, "task": "run", "mode": mode, "concurrency": concurrency}
                    run = self._worker(sim, spec)
                    runs.append(run)
                    latency = run["latency_ms"] or {}
                    print(
                        f"  {mode:10} c={concurrency:<3} {run['requests']} calls, "
                        f"{run['errors']} errors, p50 {latency.get('p50', float('nan')):.1f} ms, "
                        f"{run['throughput_rps']:.1f} calls/s ({run['wall_seconds']:.1f} s)",
                        flush=True,
                    )
            print("  checks: single-flight, cached relationship request, token cache memory")
            single = self._worker(sim, {**common, "task": "single-flight"})
            link = self._worker(sim, {**common, "task": "cached-link"})
            memory = self._worker(sim, {**common, "task": "token-cache"})
            if config.profile:
                config.out_dir.mkdir(parents=True, exist_ok=True)
                print(f"  profile: warm in-process calls -> {config.out_dir}/profile.txt")
                self._worker(sim, {**common, "task": "profile"})
            print(
                f"  events: {config.event_rate:g}/s for {config.event_seconds:g} s to "
                f"{config.event_subscriptions} subscriptions (Azurite, signed deliveries, "
                "callbacks)",
                flush=True,
            )
            event_figures = self._events()
            print(
                f"  cold start: {config.cold_start_runs} fresh processes import function_app, "
                "index it and answer a first request",
                flush=True,
            )
            cold = cold_start(
                sim, config.cold_start_runs, config.out_dir if config.profile else None
            )
        return {
            "generated_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "platform": platform.platform(),
            },
            "config": config.as_json(),
            "pool_size": pool_size,
            "runs": runs,
            "single_flight": single,
            "cached_relationship_request": link,
            "token_cache_memory": memory,
            "cold_start": cold,
            "events": event_figures,
        }

    def _events(self) -> dict[str, Any]:
        """bench.events in a fresh interpreter (it runs its own Azurite and simulator)."""
        config = self.config
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.events",
                "--json",
                f"--rate={config.event_rate}",
                f"--seconds={config.event_seconds}",
                f"--subscriptions={config.event_subscriptions}",
            ],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=_WORKER_TIMEOUT,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"bench.events failed ({done.returncode}):\n{done.stderr[-4000:]}")
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        return result


def reproduce_command(argv: list[str]) -> str:
    """How to run this again."""
    if not argv:
        return "make bench"
    return f"make bench BENCH_ARGS={shlex.quote(' '.join(argv))}"


def cold_start_only(config: BenchConfig) -> int:
    """``--cold-start-only``: the cold starts against a simulator of their own; the two targets
    printed, nothing written."""
    print(
        f"cold start: {config.cold_start_runs} fresh processes import function_app from its "
        "deployment package, index it and answer a first request",
        flush=True,
    )
    with SimulatorProcess(
        token_latency=config.token_latency, api_latency=config.api_latency
    ) as sim:
        if config.profile:
            config.out_dir.mkdir(parents=True, exist_ok=True)
        cold = cold_start(sim, config.cold_start_runs, config.out_dir if config.profile else None)
    print(json.dumps(cold))
    for target in report.cold_start_targets(cold):
        print(target.line())
    return 0


def main(argv: list[str], config: BenchConfig) -> int:
    """Run, print the table and the targets, write the files."""
    if config.cold_start_only:
        return cold_start_only(config)
    started = time.perf_counter()
    print(
        f"bench: simulator latency token {config.token_latency * 1000:.0f} ms, Partner Center "
        f"{config.api_latency * 1000:.0f} ms; {config.users} users x {config.calls_per_user} "
        f"calls per run; concurrency {', '.join(map(str, config.concurrency))}",
        flush=True,
    )
    results = Bench(config).run()
    rows = report.table_rows(results["runs"])
    found = report.targets(results, results["pool_size"])
    results["wall_seconds"] = time.perf_counter() - started
    paths = report.write(results, rows, found, config, reproduce_command(argv))
    print()
    print(report.text_table(rows))
    print()
    print(
        "overhead = gateway latency - time in upstream calls and token acquisition; "
        "peak RSS = resident memory above the run's start; conns = new TCP connections at the "
        "simulator"
    )
    print()
    print("\n".join(events.lines(results["events"])))
    print()
    for target in found:
        print(target.line())
    print()
    for path in paths:
        print(f"wrote {path}")
    print(f"wall time {time.perf_counter() - started:.1f} s")
    return 0
