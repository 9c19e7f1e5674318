"""Run checkov on the Bicep templates and fail on any failed check, parse error or bare skip.

Run by the infra venv's interpreter (checkov is installed there, not in the project's venv).
checkov alone exits 0 when it cannot parse a file (the file is just not scanned), so this wrapper
reads its JSON report and also fails on parsing errors and on `#checkov:skip` comments without a
reason. It also checks coverage: checkov's own Bicep parser must read every .bicep file under the
directory and find every `resource` declared in it (counted from the source text), so a file or a
resource that drops out of the scan fails the check instead of passing silently.

    .venv-infra/bin/python tests/infra/run_checkov.py infra
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from checkov.bicep.parser import Parser  # type: ignore[import-not-found,unused-ignore]

NO_REASON = "No comment provided"

#: A resource declaration: `resource <symbol> '<type>@<version>'` at the start of a line.
RESOURCE_DECLARATION = re.compile(r"^\s*resource\s+\w+\s+'[^']+'", re.MULTILINE)


def run_checkov(directory: str) -> dict[str, Any]:
    """checkov's JSON report for the Bicep files under `directory` (offline)."""
    environ = {**os.environ, "BC_SKIP_MAPPING": "TRUE"}
    result = subprocess.run(
        [
            *(sys.executable, "-m", "checkov.main"),
            *("--directory", directory, "--framework", "bicep"),
            *("--skip-download", "--output", "json"),
        ],
        capture_output=True,
        text=True,
        check=False,
        env=environ,
    )
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        sys.stderr.write(result.stdout + result.stderr)
        raise SystemExit(
            f"checkov did not produce a JSON report (exit {result.returncode})"
        ) from None
    if isinstance(report, list):  # one report per framework; only bicep is asked for
        report = next((r for r in report if r.get("check_type") == "bicep"), {})
    return report if isinstance(report, dict) else {}


def declared_resources(path: Path) -> int:
    """How many resources a .bicep file declares, counted from its text (comments removed)."""
    text = re.sub(r"/\*.*?\*/", "", path.read_text(encoding="utf-8"), flags=re.DOTALL)
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("//")]
    return len(RESOURCE_DECLARATION.findall("\n".join(lines)))


def coverage_gaps(directory: str) -> list[str]:
    """Files and resources under `directory` that checkov's Bicep parser does not see."""
    files = sorted(Path(directory).rglob("*.bicep"))
    if not files:
        return [f"no .bicep files under {directory}"]
    # The parser checkov itself scans with (pycep-parser 0.5.1 underneath).
    definitions, _, errors = Parser().get_files_definitions(files)
    gaps = [f"{path}: checkov's parser cannot read it, so it is not scanned" for path in errors]
    for path in files:
        definition = definitions.get(path)
        if definition is None:
            continue
        seen = len(definition.get("resources") or {})
        declared = declared_resources(path)
        if seen < declared:
            gaps.append(f"{path}: checkov sees {seen} of the {declared} resources declared")
    return gaps


def main(argv: list[str]) -> int:
    """Print failures, parse errors and skips; return 1 if there is anything wrong."""
    directory = argv[0] if argv else "infra"
    report = run_checkov(directory)
    results = report.get("results", {})
    failed = results.get("failed_checks", [])
    parse_errors = results.get("parsing_errors", [])
    skipped = results.get("skipped_checks", [])
    passed = results.get("passed_checks", [])
    if not report or not (passed or failed or skipped):
        print(f"checkov found nothing to check under {directory}", file=sys.stderr)
        return 1

    for check in failed:
        lines = "-".join(map(str, check.get("file_line_range", [])))
        print(
            f"FAILED {check['check_id']} {check['check_name']}\n"
            f"    {check['resource']} in {check['repo_file_path']}:{lines}\n"
            f"    {check.get('guideline') or ''}".rstrip()
        )
    for path in parse_errors:
        print(
            f"PARSE ERROR {path}: checkov (pycep-parser 0.5.1) cannot read it, so it is not scanned"
        )
    gaps = coverage_gaps(directory)
    for gap in gaps:
        print(f"NOT SCANNED {gap}")
    bare = [c for c in skipped if c["check_result"].get("suppress_comment", NO_REASON) == NO_REASON]
    for check in bare:
        print(f"SKIP WITHOUT REASON {check['check_id']} on {check['resource']}: add `: <reason>`")
    files = sorted(Path(directory).rglob("*.bicep"))
    print(
        f"checkov {report.get('summary', {}).get('checkov_version', '')}: "
        f"{len(passed)} passed, {len(failed)} failed, {len(skipped)} skipped, "
        f"{len(parse_errors)} parse errors; {len(files)} files, "
        f"{sum(map(declared_resources, files))} resources, {len(gaps)} not scanned"
    )
    return 1 if failed or parse_errors or bare or gaps else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
