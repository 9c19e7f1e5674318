"""`make soak` on small numbers: 20 callers for 3 s, with faults, through the local host."""

from __future__ import annotations

import subprocess
import sys

from ..conftest import repo_root


def test_soak_runs_and_passes() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.soak",
            "--callers=20",
            "--seconds=3",
            "--users=40",
            "--fault-rate=0.05",
        ],
        cwd=repo_root(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    for figure in (
        "requests ",
        "statuses ",
        "latency ms ",
        "faults injected ",
        "token requests ",
        "memory (host) MiB ",
        "unanswered        0",
        "other identity    0",
        "result            PASS",
    ):
        assert figure in out, out
    assert "total 0)" not in out, "no fault was injected:\n" + out


def test_soak_options_are_checked() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.soak", "--callers=0"],
        cwd=repo_root(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "--callers" in done.stderr
