"""Where the templates are, and how the tests read them (pycep-parser 0.7.1 in its own venv)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
PARSER = Path(__file__).with_name("parse_bicep.py")


def pycep_python() -> Path:
    """The interpreter of the pycep venv (override with PYCEP_PYTHON)."""
    if override := os.environ.get("PYCEP_PYTHON"):
        return Path(override)
    venv = ROOT / ".venv-pycep"
    windows = venv / "Scripts" / "python.exe"
    return windows if windows.exists() else venv / "bin" / "python"


def parse_bicep(*paths: Path) -> dict[str, Any]:
    """Parse .bicep files (or directories of them): {absolute posix path: pycep tree}."""
    python = pycep_python()
    if not python.exists():
        pytest.fail(f"{python} not found: run `make lint-infra` once to create the pycep venv.")
    result = subprocess.run(
        [str(python), str(PARSER), "--json", *(str(path.resolve()) for path in paths)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if result.returncode != 0:
        pytest.fail(f"pycep-parser could not parse the templates:\n{result.stderr}")
    trees: dict[str, Any] = json.loads(result.stdout)
    return trees
