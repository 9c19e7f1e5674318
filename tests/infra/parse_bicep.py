"""Parse Bicep files with pycep-parser (0.7.1, in its own venv) and report or dump the result.

Run by the pycep venv's interpreter, not the project's: checkov pins an older pycep-parser, so the
two cannot share an environment. Used by `make lint-infra` (every file must parse) and by the
contract test (which reads the JSON on stdout).

    .venv-pycep/bin/python tests/infra/parse_bicep.py infra          # parse, report, exit 1 on error
    .venv-pycep/bin/python tests/infra/parse_bicep.py --json infra   # {path: tree} on stdout
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pycep import BicepParser  # type: ignore[import-not-found,unused-ignore]


def bicep_files(paths: list[Path]) -> list[Path]:
    """The .bicep files named, or found under the directories named, in a stable order."""
    found: set[Path] = set()
    for path in paths:
        found.update(path.rglob("*.bicep") if path.is_dir() else [path])
    return sorted(found)


def main(argv: list[str] | None = None) -> int:
    """Parse every file; print failures (or the JSON trees) and return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", type=Path, help=".bicep files or directories")
    parser.add_argument("--json", action="store_true", help="print {path: tree} as JSON")
    args = parser.parse_args(argv)

    files = bicep_files(args.paths)
    if not files:
        print(f"no .bicep files under {', '.join(map(str, args.paths))}", file=sys.stderr)
        return 1
    bicep = BicepParser()
    trees: dict[str, object] = {}
    failures = 0
    for path in files:
        try:
            trees[path.as_posix()] = bicep.parse(file_path=path)
        except Exception as err:
            failures += 1
            print(f"{path}: {type(err).__name__}: {err}", file=sys.stderr)
    if args.json:
        json.dump(trees, sys.stdout, default=str)
    else:
        print(f"pycep-parser: {len(files) - failures}/{len(files)} Bicep files parsed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
