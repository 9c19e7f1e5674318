"""``python -m bench --cold-start-only``: cold starts from the deployment package, figures printed.

No timing is asserted: the machine is shared, and benchmarks print figures.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from ..conftest import repo_root


def test_cold_starts_import_the_deployment_package_and_print_both_targets(
    tmp_path: Path,
) -> None:
    out = tmp_path / "results"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--cold-start-only",
            "--cold-start-runs=1",
            "--token-latency-ms=0",
            "--api-latency-ms=0",
            f"--out={out}",
        ],
        cwd=repo_root(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    lines = done.stdout.strip().splitlines()
    figures = json.loads(next(line for line in lines if line.startswith("{")))
    assert figures["network_calls"] == 0
    assert len(figures["runs_ms"]) == 1
    assert figures["first_answer_median_ms"] > figures["median_ms"]
    assert any("import of function_app <= 200 ms" in line for line in lines)
    assert any("first answer of a fresh process" in line for line in lines)
    assert not out.exists()  # figures only: nothing written
