"""The gunicorn settings module: its names are real settings and honour the container's
environment and the ECS stop timeout."""

from __future__ import annotations

import importlib
from types import ModuleType

import pytest
from gunicorn.config import Config

from sample_app.traced_app import gunicorn_conf

ECS_STOP_TIMEOUT = 30


def load(monkeypatch: pytest.MonkeyPatch, **env: str) -> ModuleType:
    for name in ("PORT", "WEB_CONCURRENCY", "WEB_THREADS", "LOG_LEVEL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return importlib.reload(gunicorn_conf)


def settings(module: ModuleType) -> dict[str, object]:
    return {
        name: value
        for name, value in vars(module).items()
        if name.islower() and not name.startswith("_") and isinstance(value, str | int | type)
    }


def test_every_name_is_a_gunicorn_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    # gunicorn silently ignores a misspelt setting in a config module.
    config = Config()
    defined = settings(load(monkeypatch))
    assert set(defined) <= set(config.settings)
    for name, value in defined.items():
        config.set(name, value)  # validates the value
    assert config.worker_class_str == "gthread"


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    conf = load(monkeypatch)
    assert conf.bind == "0.0.0.0:8080"
    assert (conf.workers, conf.threads) == (2, 4)
    assert conf.loglevel == "info"


def test_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    conf = load(monkeypatch, PORT="9000", WEB_CONCURRENCY="3", WEB_THREADS="8", LOG_LEVEL="debug")
    assert conf.bind == "0.0.0.0:9000"
    assert (conf.workers, conf.threads) == (3, 8)
    assert conf.loglevel == "debug"


def test_fits_the_container(monkeypatch: pytest.MonkeyPatch) -> None:
    conf = load(monkeypatch)
    # Workers finish in-flight requests before ECS follows SIGTERM with SIGKILL.
    assert conf.graceful_timeout + 5 <= ECS_STOP_TIMEOUT
    # Only /tmp is writable: heartbeat files there, no control socket under $HOME.
    assert conf.worker_tmp_dir == "/tmp"
    assert conf.control_socket_disable is True
    # Idle connections are closed by the load balancer (60 s idle timeout), not by gunicorn.
    assert conf.keepalive > 60
    assert (conf.accesslog, conf.errorlog) == ("-", "-")
