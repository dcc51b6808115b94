"""Handler tests never reach AWS: every client gets fake credentials, a fixed region and
no profile, config file or endpoint from the machine running them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REGION = "eu-west-1"


@pytest.fixture
def offline_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials in ``REGION``; nothing read from the machine's AWS configuration."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")


def run_as_lambda(script: str, handler_dir: Path) -> str:
    """Run ``script`` in a fresh interpreter with no AWS configuration, its arguments the
    folder above ``handler_dir`` (the construct's side) and ``handler_dir`` (the code root
    Lambda gives the function); what it prints, once it exits 0."""
    result = subprocess.run(
        [sys.executable, "-c", script, str(handler_dir.parent), str(handler_dir)],
        env={"AWS_DEFAULT_REGION": REGION, "PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()
