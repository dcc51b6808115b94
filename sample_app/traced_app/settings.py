"""The app's runtime contract: every environment variable it reads, parsed and checked once.

A wrong value stops the container at start with one message naming every problem, instead
of a service that starts and then fails requests.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from . import DEFAULT_PORT

ROLES: Final = ("frontend", "backend")
TRACING_SDKS: Final = ("xray-sdk", "opentelemetry")
DEFAULT_SERVICE_NAME: Final = "traced-fargate-sample"
DEFAULT_DOWNSTREAM_TIMEOUT: Final = 2.0
# The frontend's request must end before the load balancer gives up on it, and its drain
# must fit the task's stop timeout: a downstream call longer than this is a mistake.
MAX_DOWNSTREAM_TIMEOUT: Final = 20.0
DEFAULT_CHAIN_N: Final = 50_000
OTLP_PROTOCOLS: Final = ("http/protobuf",)
DEFAULT_OTLP_ENDPOINT: Final = "http://127.0.0.1:4318"
DEFAULT_DAEMON_ADDRESS: Final = "127.0.0.1:2000"


class ConfigError(ValueError):
    """The environment does not describe a service this app can run."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid configuration: " + "; ".join(problems))
        self.problems = problems


def _flag(value: str | None, default: bool) -> bool | None:
    if value is None or value.strip() == "":
        return default
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    return None


@dataclass(frozen=True)
class Settings:
    """What one container runs: its role, its name in traces, its tracing SDK, its backend."""

    role: str = "backend"
    service_name: str = DEFAULT_SERVICE_NAME
    port: int = DEFAULT_PORT
    tracing_sdk: str = "xray-sdk"
    # Tracing off through each SDK's own switch: AWS_XRAY_SDK_ENABLED=false for the X-Ray
    # SDK, OTEL_SDK_DISABLED=true for OpenTelemetry. The app serves the same either way.
    tracing_enabled: bool = True
    backend_url: str | None = None
    downstream_timeout: float = DEFAULT_DOWNSTREAM_TIMEOUT
    chain_n: int = DEFAULT_CHAIN_N
    access_log: bool = True
    log_level: str = "info"
    otlp_endpoint: str = DEFAULT_OTLP_ENDPOINT
    # "host:port" for both UDP and TCP, or "tcp:host:port udp:host:port" (the SDK's forms).
    xray_daemon_address: str = DEFAULT_DAEMON_ADDRESS

    @property
    def serves_chain(self) -> bool:
        return self.role == "frontend"

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        """The settings in `environ`; ConfigError lists every problem at once."""
        env = _Reader(environ)
        role = env.choice("ROLE", ROLES, "backend")
        sdk = env.choice("TRACING_SDK", TRACING_SDKS, "xray-sdk")
        if sdk == "opentelemetry":
            tracing_enabled = not env.flag("OTEL_SDK_DISABLED", default=False)
        else:
            tracing_enabled = env.flag("AWS_XRAY_SDK_ENABLED", default=True)

        backend_url = env.get("BACKEND_URL")
        if role == "frontend" and backend_url is None:
            env.problems.append(
                "ROLE=frontend needs BACKEND_URL (e.g. http://backend.<namespace>:8080)"
            )
        elif role == "frontend" and backend_url is not None:
            env.problems += _url_problems("BACKEND_URL", backend_url, paths=False)
        elif backend_url is not None:
            env.problems.append("BACKEND_URL is set but ROLE=backend calls no service: unset one")

        otlp_endpoint = env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or DEFAULT_OTLP_ENDPOINT
        if sdk == "opentelemetry":
            protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get(
                "OTEL_EXPORTER_OTLP_PROTOCOL"
            )
            if protocol is not None and protocol not in OTLP_PROTOCOLS:
                env.problems.append(
                    f"OTLP protocol {protocol!r} is not supported; the app exports"
                    f" {', '.join(OTLP_PROTOCOLS)} (the collector's port 4318)"
                )
            env.problems += _url_problems("OTEL_EXPORTER_OTLP_ENDPOINT", otlp_endpoint, paths=True)

        settings = cls(
            role=role,
            service_name=env.get("SERVICE_NAME") or DEFAULT_SERVICE_NAME,
            port=int(env.number("PORT", DEFAULT_PORT, 1, 65535, integer=True)),
            tracing_sdk=sdk,
            tracing_enabled=tracing_enabled,
            backend_url=backend_url.rstrip("/") if backend_url else None,
            downstream_timeout=env.number(
                "DOWNSTREAM_TIMEOUT_SECONDS", DEFAULT_DOWNSTREAM_TIMEOUT, 0, MAX_DOWNSTREAM_TIMEOUT
            ),
            chain_n=int(env.number("CHAIN_WORK_N", DEFAULT_CHAIN_N, 2, 1_000_000, integer=True)),
            access_log=env.flag("ACCESS_LOG", default=True),
            log_level=(env.get("LOG_LEVEL") or "info").lower(),
            otlp_endpoint=otlp_endpoint.rstrip("/"),
            xray_daemon_address=env.get("AWS_XRAY_DAEMON_ADDRESS") or DEFAULT_DAEMON_ADDRESS,
        )
        if env.problems:
            raise ConfigError(env.problems)
        return settings


class _Reader:
    """Reads variables, collecting what is wrong with them instead of stopping at the first."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.problems: list[str] = []

    def get(self, name: str) -> str | None:
        value = self.environ.get(name, "").strip()
        return value or None

    def choice(self, name: str, allowed: tuple[str, ...], default: str) -> str:
        value = (self.get(name) or default).lower()
        if value not in allowed:
            self.problems.append(f"{name}={value!r} is not allowed; allowed: {', '.join(allowed)}")
        return value

    def flag(self, name: str, *, default: bool) -> bool:
        value = _flag(self.environ.get(name), default)
        if value is None:
            self.problems.append(f"{name}={self.environ.get(name)!r} is not true or false")
            return default
        return value

    def number(
        self, name: str, default: float, low: float, high: float, *, integer: bool = False
    ) -> float:
        """A number in (low, high] (integers: [low, high]); `default` when unset."""
        raw = self.get(name)
        if raw is None:
            return default
        try:
            value = int(raw) if integer else float(raw)
        except ValueError:
            value = math.nan
        inside = low <= value <= high if integer else low < value <= high
        if not inside:
            kind = "an integer" if integer else "a number"
            bounds = f"from {low:g} to {high:g}" if integer else f"above {low:g}, at most {high:g}"
            self.problems.append(f"{name}={raw!r} is not {kind} {bounds}")
            return default
        return value


def _url_problems(name: str, value: str, *, paths: bool) -> list[str]:
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        return [f"{name}={value!r} is not a URL"]
    problems = []
    if parts.scheme not in ("http", "https") or not parts.hostname:
        problems.append(f"{name}={value!r} is not an http:// or https:// URL with a host")
    if not paths and parts.path not in ("", "/"):
        problems.append(f"{name}={value!r} has a path; give scheme, host and port only")
    if parts.query or parts.fragment:
        problems.append(f"{name}={value!r} has a query or fragment")
    if port == 0:
        problems.append(f"{name}={value!r} has port 0")
    return problems
