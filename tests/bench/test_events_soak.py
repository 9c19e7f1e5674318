"""The events soak on small numbers: it passes, and says what it injected."""

from __future__ import annotations

import subprocess
import sys

from ..conftest import repo_root


def test_every_acknowledged_event_reaches_every_subscription() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.events_soak",
            "--rate=8",
            "--seconds=5",
            "--storage-fault-rate=0.02",
            "--callback-failure-rate=0.1",
        ],
        cwd=repo_root(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "reached every matching subscription: PASS" in done.stdout
    assert "host restarts     1" in done.stdout
    assert "storage faults" in done.stdout and "callback failures" in done.stdout
