"""Zip the function app for deployment, leaving out what .funcignore lists.

Used where no tool reads .funcignore itself (the Azure DevOps pipeline; GitHub Actions uses
Azure/functions-action with respect-funcignore, azd reads it too). The zip holds the sources and
requirements.txt only: Flex Consumption installs the dependencies with a remote build.

    python infra/scripts/package_function.py --output package.zip

Files are those git knows (tracked, or untracked and not git-ignored), so local virtual
environments and caches never end up in the package. .funcignore patterns follow the common
subset of .gitignore syntax: `name`, `*.ext`, `dir/`, `path/inside/root`; negation (`!`) is
rejected rather than half-supported.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import zipfile
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parents[2]


def read_patterns(funcignore: Path) -> list[str]:
    """The patterns of a .funcignore file (none if it does not exist)."""
    if not funcignore.exists():
        return []
    patterns = []
    for raw in funcignore.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("!"):
            raise SystemExit(f"{funcignore}: negated pattern {line!r} is not supported")
        patterns.append(line)
    return patterns


def is_ignored(path: PurePosixPath, patterns: list[str]) -> bool:
    """Whether a repository-relative file path matches any .funcignore pattern."""
    parts = path.parts
    for pattern in patterns:
        directory_only = pattern.endswith("/")
        body = pattern.strip("/")
        if "/" in body:  # anchored at the root: match the path or one of its parent folders
            candidates = [PurePosixPath(*parts[:i]).as_posix() for i in range(1, len(parts) + 1)]
            if directory_only:
                candidates = candidates[:-1]
            if any(fnmatchcase(candidate, body) for candidate in candidates):
                return True
            continue
        names = parts[:-1] if directory_only else parts  # any folder, or any folder or file
        if any(fnmatchcase(name, body) for name in names):
            return True
    return False


def project_files(root: Path) -> list[PurePosixPath]:
    """Files git knows in `root`: tracked, or untracked and not ignored."""
    listing = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],  # noqa: S607
        cwd=root,
        capture_output=True,
        check=True,
    ).stdout.decode("utf-8")
    return sorted(PurePosixPath(name) for name in listing.split("\0") if name)


def main(argv: list[str] | None = None) -> int:
    """Write the package and print what went into it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, required=True, help="zip file to write")
    args = parser.parse_args(argv)

    patterns = read_patterns(ROOT / ".funcignore")
    files = [
        path
        for path in project_files(ROOT)
        if (ROOT / path).is_file() and not is_ignored(path, patterns)
    ]
    for required in ("host.json", "requirements.txt"):
        if PurePosixPath(required) not in files:
            raise SystemExit(f"{required} is missing from the package; check .funcignore")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(args.output, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            archive.write(ROOT / path, path.as_posix())
    print(f"{args.output}: {len(files)} files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
