"""The construct library ships as a wheel that works without this repository."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

from tests.conftest import ROOT

LIBRARY = ROOT / "constructs"


def _build(kind: str, out: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "build", f"--{kind}", "--no-isolation", "--outdir", str(out)],
        cwd=LIBRARY,
        check=True,
        capture_output=True,
    )
    (built,) = out.glob("traced_fargate_constructs-*.whl" if kind == "wheel" else "*.tar.gz")
    return built


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build("wheel", tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="module")
def sdist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build("sdist", tmp_path_factory.mktemp("sdist"))


def test_wheel_version_is_the_one_in_version_module(wheel: Path) -> None:
    import traced_fargate
    from traced_fargate._version import __version__

    assert traced_fargate.__version__ == __version__
    with zipfile.ZipFile(wheel) as archive:
        (metadata,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        version = Parser().parsestr(archive.read(metadata).decode())["Version"]
    assert version == __version__
    assert wheel.name.startswith(f"traced_fargate_constructs-{__version__}-")


def test_sdist_carries_changelog_and_readme(sdist: Path) -> None:
    from traced_fargate._version import __version__

    top = f"traced_fargate_constructs-{__version__}"
    with tarfile.open(sdist) as archive:
        names = set(archive.getnames())
        changelog = archive.extractfile(f"{top}/CHANGELOG.md")
        assert changelog is not None
        assert changelog.read() == (ROOT / "CHANGELOG.md").read_bytes()
    assert {f"{top}/README.md", f"{top}/PKG-INFO", f"{top}/src/traced_fargate/py.typed"} <= names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_wheel_ships_typed_package_and_handler_code(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "traced_fargate/py.typed" in names
    assert "traced_fargate/__init__.py" in names
    source_files = {
        str(p.relative_to(LIBRARY / "src"))
        for p in (LIBRARY / "src" / "traced_fargate").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert source_files <= names, f"missing from the wheel: {sorted(source_files - names)}"
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_wheel_imports_outside_the_repo(wheel: Path, tmp_path: Path) -> None:
    # -S skips site-packages' .pth files, so the editable install of the library is not
    # on the path: the import can only come from the wheel.
    site_packages = sysconfig.get_paths()["purelib"]
    # Importing a construct module would load aws-cdk-lib's jsii runtime (seconds); the
    # size table is pure Python and proves the package imports from the wheel.
    probe = (
        "import traced_fargate;"
        "print(traced_fargate.__file__);"
        "from traced_fargate.fargate_sizes import fargate_size_problem;"
        "assert fargate_size_problem(256, 512) is None"
    )
    result = subprocess.run(
        [sys.executable, "-S", "-c", probe],
        cwd=tmp_path,
        env={"PYTHONPATH": f"{wheel}:{site_packages}", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(str(wheel))


def test_package_exports_every_construct() -> None:
    import traced_fargate

    for name in traced_fargate.__all__:
        if name.startswith("__"):  # __version__
            continue
        exported = getattr(traced_fargate, name)
        assert exported.__name__ == name
