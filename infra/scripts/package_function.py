"""Zip the function app for deployment, leaving out what .funcignore lists.

Used by both pipelines (Azure DevOps and GitHub Actions). The zip holds the sources,
requirements.txt and the sources' bytecode: Flex Consumption installs the dependencies with a
remote build (pip byte-compiles those), but nothing there compiles the app's own modules, and the
app runs from its package, mounted read-only, so without bytecode in the package every cold start
compiles them again (about a fifth of the import here). The bytecode is checked against nothing
(PEP 552 ``unchecked-hash``): the remote build copies files without their modification times
(Oryx: ``rsync -rcE``, checksums rather than times), which would make timestamp-checked bytecode
look stale. Unchecked bytecode is right for a package, whose sources never change after it is
built; it must be compiled by the Python minor version the app runs on (``runtime`` in
infra/app/api.bicep), which is checked here.

    python infra/scripts/package_function.py --output package.zip

Files are those git knows (tracked, or untracked and not git-ignored), so local virtual
environments and caches never end up in the package. .funcignore patterns follow the common
subset of .gitignore syntax: `name`, `*.ext`, `dir/`, `path/inside/root`; negation (`!`) is
rejected rather than half-supported.
"""

from __future__ import annotations

import argparse
import importlib.util
import py_compile
import re
import subprocess
import sys
import tempfile
import zipfile
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parents[2]
#: Where the function app's Python version is set (its ``runtime`` block).
APP_TEMPLATE = ROOT / "infra" / "app" / "api.bicep"


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


def app_python_version(template: Path = APP_TEMPLATE) -> str:
    """The Python version the function app runs on, e.g. ``3.11``."""
    found = re.search(
        r"runtime:\s*\{\s*name:\s*'python'\s*version:\s*'(\d+\.\d+)'",
        template.read_text(encoding="utf-8"),
    )
    if found is None:
        raise SystemExit(f"{template}: no runtime block with the Python version")
    return found.group(1)


def bytecode(source: Path, name: PurePosixPath, folder: Path) -> tuple[PurePosixPath, Path]:
    """Compile ``source`` (``name`` in the package) to unchecked-hash bytecode in ``folder``.

    Returns where the bytecode goes in the package (``__pycache__/<name>.cpython-3XX.pyc``, the
    file the import system looks for first) and the compiled file.
    """
    cached = PurePosixPath(importlib.util.cache_from_source(name.as_posix()))
    target = folder / cached
    py_compile.compile(
        str(source),
        cfile=str(target),
        dfile=name.as_posix(),
        doraise=True,
        invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
    )
    return cached, target


def write_package(output: Path, root: Path, files: list[PurePosixPath]) -> int:
    """Write the zip: ``files`` (relative to ``root``) and the bytecode of their Python sources;
    returns how many modules were compiled."""
    output.parent.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory(prefix="package-bytecode-") as folder,
        zipfile.ZipFile(output, "w", compression=zipfile.ZIP_DEFLATED) as archive,
    ):
        compiled = 0
        for path in files:
            archive.write(root / path, path.as_posix())
            if path.suffix == ".py":
                cached, target = bytecode(root / path, path, Path(folder))
                archive.write(target, cached.as_posix())
                compiled += 1
    return compiled


def main(argv: list[str] | None = None) -> int:
    """Write the package and print what went into it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, required=True, help="zip file to write")
    args = parser.parse_args(argv)

    running = f"{sys.version_info.major}.{sys.version_info.minor}"
    if running != (wanted := app_python_version()):
        raise SystemExit(
            f"the app runs on Python {wanted} ({APP_TEMPLATE.relative_to(ROOT)}): package it with "
            f"that version (this is {running}), so that its bytecode is the one Azure loads"
        )
    patterns = read_patterns(ROOT / ".funcignore")
    files = [
        path
        for path in project_files(ROOT)
        if (ROOT / path).is_file() and not is_ignored(path, patterns)
    ]
    for required in ("host.json", "requirements.txt"):
        if PurePosixPath(required) not in files:
            raise SystemExit(f"{required} is missing from the package; check .funcignore")
    compiled = write_package(args.output, ROOT, files)
    print(f"{args.output}: {len(files)} files, {compiled} modules compiled by Python {running}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
