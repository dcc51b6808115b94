"""The image recipe, checked without a Docker engine: the Dockerfile's contract, the pinned
requirements, and what enters the CDK asset hash."""

from __future__ import annotations

import importlib.metadata
import re
import shutil
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from .conftest import ROOT

SAMPLE_APP = ROOT / "sample_app"
DOCKERFILE = (SAMPLE_APP / "Dockerfile").read_text()
RUNTIME_PYTHON = {"python_version": "3.13", "python_full_version": "3.13.14"}


def instructions(keyword: str) -> list[str]:
    """Arguments of every instruction of that keyword, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    return [
        line.split(None, 1)[1]
        for line in joined.splitlines()
        if line.split(None, 1)[:1] == [keyword]
    ]


def pins(path: Path) -> dict[str, str]:
    found = re.findall(r"^([A-Za-z0-9_.-]+)==([^\s;\\]+)", path.read_text(), re.MULTILINE)
    return {canonicalize_name(name): version for name, version in found}


def test_base_image_is_pinned_to_a_patch_release() -> None:
    (default,) = instructions("ARG")
    assert re.fullmatch(r"PYTHON_IMAGE=python:3\.13\.\d+-slim-bookworm", default)
    assert instructions("FROM") == ["${PYTHON_IMAGE} AS build", "${PYTHON_IMAGE}"]


def test_runtime_contract() -> None:
    assert instructions("USER") == ["10001:10001"]
    assert instructions("EXPOSE") == ["8080"]
    assert instructions("WORKDIR") == ["/app"]
    (env,) = instructions("ENV")[-1:]
    for setting in ("PYTHONDONTWRITEBYTECODE=1", "PYTHONPATH=/app", "PORT=8080"):
        assert setting in env
    assert instructions("CMD") == ['["python", "-m", "traced_app.serve"]']
    assert instructions("STOPSIGNAL") == ["SIGTERM"]
    assert (SAMPLE_APP / "traced_app" / "serve.py").is_file()
    assert (SAMPLE_APP / "traced_app" / "wsgi.py").is_file()
    assert (SAMPLE_APP / "traced_app" / "healthcheck.py").is_file()
    # ECS defines the health check; an image HEALTHCHECK would run beside it.
    assert instructions("HEALTHCHECK") == []


def test_tmp_volume_is_writable_by_the_app_user() -> None:
    # ECS copies owner and mode of an image VOLUME onto the task volume mounted there;
    # otherwise the volume is root's with 0755 and the app (uid 10001) cannot write to it.
    assert instructions("VOLUME") == ['["/tmp"]']
    assert "chmod 1777 /tmp" in instructions("RUN")


def test_runtime_stage_takes_only_the_venv_and_the_app() -> None:
    assert [c for c in instructions("COPY") if c.startswith("--from")] == [
        "--from=build /opt/venv /opt/venv",
        "--from=build /app /app",
    ]
    install = next(run for run in instructions("RUN") if "pip --python" in run)
    assert "--require-hashes" in install
    assert "--only-binary=:all:" in install


def test_requirements_are_exact_hashed_and_match_the_dev_lock() -> None:
    requirements = SAMPLE_APP / "requirements.txt"
    pinned = pins(requirements)
    assert {"bottle", "granian", "aws-xray-sdk", "opentelemetry-sdk"} <= set(pinned)
    # The previous server stays a development tool (bench/): not in the image.
    assert "gunicorn" not in pinned
    dev = pins(ROOT / "requirements" / "dev.lock")
    assert {name: dev[name] for name in pinned if name in dev} == pinned
    blocks = re.split(r"\n(?=[A-Za-z])", requirements.read_text().split("\n", 2)[2])
    assert all("--hash=sha256:" in block for block in blocks if "==" in block)


def test_requirements_hold_every_dependency() -> None:
    pinned = pins(SAMPLE_APP / "requirements.txt")
    for name in pinned:
        for spec in importlib.metadata.requires(name) or []:
            requirement = Requirement(spec)
            if requirement.marker and not requirement.marker.evaluate(
                {**RUNTIME_PYTHON, "extra": ""}
            ):
                continue
            dependency = canonicalize_name(requirement.name)
            assert dependency in pinned, f"{name} needs {dependency}"
            assert requirement.specifier.contains(pinned[dependency])


@pytest.fixture(scope="module")
def asset_hash() -> object:
    from aws_cdk import App, AssetStaging, Stack
    from aws_cdk.aws_ecr_assets import DockerImageAsset

    stack = Stack(App())

    def fingerprint(directory: Path) -> str:
        # Staging caches a hash per directory path for the life of the process.
        AssetStaging.clear_asset_hash_cache()
        asset = DockerImageAsset(
            stack, f"Image{len(stack.node.children)}", directory=str(directory)
        )
        return str(asset.asset_hash)

    return fingerprint


def copy_of_the_app(destination: Path) -> Path:
    copy = destination / "sample_app"
    shutil.copytree(SAMPLE_APP, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def test_caches_and_tests_never_change_the_asset_hash(asset_hash, tmp_path: Path) -> None:
    copy = copy_of_the_app(tmp_path)
    before = asset_hash(copy)
    (copy / "traced_app" / "__pycache__").mkdir()
    (copy / "traced_app" / "__pycache__" / "app.cpython-313.pyc").write_bytes(b"\0")
    (copy / "tests").mkdir()
    (copy / "tests" / "test_x.py").write_text("")
    (copy / ".pytest_cache").mkdir()
    (copy / "notes.md").write_text("")
    assert asset_hash(copy) == before


def test_what_the_image_is_built_from_changes_the_asset_hash(asset_hash, tmp_path: Path) -> None:
    copy = copy_of_the_app(tmp_path)
    before = asset_hash(copy)
    for name in (
        "Dockerfile",
        "requirements.txt",
        "traced_app/app.py",
        "traced_app/sampling_rules.json",
    ):
        path = copy / name
        original = path.read_bytes()
        path.write_bytes(original + b"\n")
        assert asset_hash(copy) != before, name
        path.write_bytes(original)
    assert asset_hash(copy) == before
