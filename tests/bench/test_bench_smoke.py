"""`make bench` on tiny numbers: it runs every mode and writes its table, JSON and chart.

No timing is asserted: the machine is shared, and benchmarks print figures.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ..conftest import repo_root

TINY = [
    "--quick",
    "--users=3",
    "--calls-per-user=2",
    "--concurrency=1,2",
    "--token-latency-ms=0",
    "--api-latency-ms=0",
    "--cold-start-runs=1",
    "--cache-users=200",
    "--cache-cap=20",
    "--burst-callers=8",
    "--cached-link-calls=10",
    "--event-rate=5",
    "--event-seconds=1",
    "--event-subscriptions=1",
]
RUN_KEYS = {
    "mode",
    "concurrency",
    "requests",
    "errors",
    "latency_ms",
    "throughput_rps",
    "token_requests",
    "connections",
    "overhead_ms",
    "peak_rss_delta_mib",
}


@pytest.fixture(scope="module")
def bench_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path_factory.mktemp("bench")
    done = subprocess.run(
        [sys.executable, "-m", "bench", *TINY, f"--out={out}"],
        cwd=repo_root(),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done, out


def test_the_table_and_targets_are_printed(bench_run) -> None:
    done, _ = bench_run
    assert "p50 ms" in done.stdout and "overhead p50/p99 ms" in done.stdout
    for mode in ("in-process", "http", "baseline", "in-process / baseline"):
        assert mode in done.stdout
    verdicts = [line for line in done.stdout.splitlines() if line.startswith(("PASS", "MISS"))]
    assert len(verdicts) >= 7
    assert "wall time" in done.stdout


def test_json_has_every_figure(bench_run) -> None:
    _, out = bench_run
    data = json.loads((out / "latest.json").read_text())
    assert {
        "runs",
        "cold_start",
        "token_cache_memory",
        "single_flight",
        "cached_relationship_request",
        "targets",
        "table",
        "wall_seconds",
        "config",
        "events",
    } <= data.keys()
    assert {(r["mode"], r["concurrency"]) for r in data["runs"]} == {
        (mode, c) for mode in ("in-process", "http", "baseline") for c in (1, 2)
    }
    for run in data["runs"]:
        assert run.keys() >= RUN_KEYS
        assert run["requests"] == 6 and run["errors"] == 0
    cold = data["cold_start"]
    assert cold["network_calls"] == 0
    # A fresh process imported, indexed and answered a first authenticated request (statuses are
    # checked by the runner); its figures are reported against the first-answer target.
    assert len(cold["first_answer_ms"]) == 1
    assert cold["first_answer_median_ms"] > cold["median_ms"]
    assert any(t["name"].startswith("first answer of a fresh process") for t in data["targets"])
    assert all({"name", "passed", "detail"} <= t.keys() for t in data["targets"])
    # Counted at the simulator: the gateway exchanges once per user, the baseline once per call.
    by_mode = {(r["mode"], r["concurrency"]): r for r in data["runs"]}
    assert by_mode["in-process", 1]["token_requests"]["on_behalf_of"] == 3
    assert by_mode["baseline", 1]["token_requests"]["on_behalf_of"] == 6
    assert data["single_flight"]["token_requests"]["on_behalf_of"] == 1
    # Events: every signed event acknowledged, every callback arrived (no timing asserted).
    events = data["events"]
    assert events["events_acknowledged"] == events["events_sent"] == 5
    assert events["callbacks_arrived"] == events["callbacks_expected"] == 5
    assert data["cached_relationship_request"]["api_calls"] == 0


def test_markdown_and_chart_are_written(bench_run) -> None:
    _, out = bench_run
    markdown = (out / "latest.md").read_text()
    assert "| mode |" in markdown and "Reproduce:" in markdown
    assert (out / "latency.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
