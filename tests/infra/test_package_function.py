"""The deployment package (infra/scripts/package_function.py) carries the sources' bytecode, and
the app imports it, unchecked, from the unpacked package."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import zipfile
from pathlib import Path, PurePosixPath
from types import ModuleType

import pytest

from tests.infra.templates import ROOT

SCRIPT = ROOT / "infra" / "scripts" / "package_function.py"


def load_script() -> ModuleType:
    """The packaging script as a module (it lives outside the packages)."""
    spec = importlib.util.spec_from_file_location("package_function", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package the pipelines build, written by the script as they run it."""
    output = tmp_path_factory.mktemp("package") / "package.zip"
    subprocess.run(
        [sys.executable, str(SCRIPT), "--output", str(output)],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    return output


def test_every_source_has_unchecked_hash_bytecode(package: Path) -> None:
    with zipfile.ZipFile(package) as archive:
        names = set(archive.namelist())
        sources = sorted(name for name in names if name.endswith(".py"))
        assert "function_app.py" in sources
        for source in sources:
            cached = importlib.util.cache_from_source(source)
            assert cached in names, f"{source} has no bytecode in the package"
            data = archive.read(cached)
            assert data[:4] == importlib.util.MAGIC_NUMBER
            # PEP 552: flags bit 0 = hash-based, bit 1 = check the source; only bit 0 set.
            assert int.from_bytes(data[4:8], "little") == 0b01, source
            assert data[8:16] == importlib.util.source_hash(archive.read(source))
        assert not any(PurePosixPath(name).parts[0] in {"tests", "bench"} for name in names)


def test_the_unpacked_app_imports_the_bytecode_without_checking_the_source(
    package: Path, tmp_path: Path
) -> None:
    with zipfile.ZipFile(package) as archive:
        archive.extractall(tmp_path)
    source = tmp_path / "gateway" / "startup.py"
    # As the remote build's copy does, the source gets a new modification time.
    source.touch()
    done = subprocess.run(
        [sys.executable, "-v", "-c", "import gateway.startup"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    cached = tmp_path / importlib.util.cache_from_source("gateway/startup.py")
    assert f"code object from '{cached}'" in done.stderr


def test_the_bytecode_is_compiled_by_the_apps_python_version() -> None:
    script = load_script()
    assert script.app_python_version() == f"{sys.version_info.major}.{sys.version_info.minor}"


def test_another_python_version_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    script = load_script()
    template = tmp_path / "api.bicep"
    template.write_text("runtime: {\n  name: 'python'\n  version: '3.9'\n}\n", encoding="utf-8")
    assert script.app_python_version(template) == "3.9"
    monkeypatch.setattr(script, "app_python_version", lambda: "3.9")
    with pytest.raises(SystemExit, match=r"runs on Python 3\.9"):
        script.main(["--output", str(tmp_path / "package.zip")])
    assert not (tmp_path / "package.zip").exists()
