"""The container's command, `python -m traced_app.serve`: Granian serving `traced_app.wsgi:app`.

Granian is an HTTP server written in Rust: the HTTP/1.1 parsing, keep-alive and connection
handling run outside the interpreter, and Python threads only run the app. On one core it
serves this app several times faster than a pure-Python server (docs/benchmarks.md).

What the container needs from it, and where each comes from:
- workers: one process per vCPU of the task (WEB_CONCURRENCY overrides), read from the ECS
  task metadata endpoint (the task's CPU limit), else the cgroup's CPU quota, else the
  CPUs this process may run on; a 0.5 vCPU task gets 1.
- threads: WEB_THREADS (default 32) Python threads per worker, so that requests waiting on
  the backend (up to DOWNSTREAM_TIMEOUT_SECONDS) do not hold up the others.
- keep-alive: an idle client connection stays open KEEPALIVE_SECONDS (default 75), longer
  than the load balancer's idle timeout (60 s), so the balancer closes it first; the other way
  round, a request racing the close gets a 502.
- SIGTERM: the listener closes, requests in flight finish; workers still busy after
  GRACEFUL_TIMEOUT_SECONDS (default 20) are killed, within the task's stop timeout (30 s).
- logs: the app writes one access line per request (not for health checks) to stdout; the
  server's own lines (start, stop, worker failures) go to stdout too.
- nothing is written to the filesystem (read-only root), and it runs as any user.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from granian import Granian
from granian.constants import HTTPModes, Interfaces
from granian.http import HTTP1Settings
from granian.log import LogLevels
from granian.server import MPServer, MTServer

from .settings import ConfigError, Settings

WSGI_TARGET = "traced_app.wsgi:app"
DEFAULT_THREADS = 32
DEFAULT_KEEPALIVE = 75
DEFAULT_GRACEFUL = 20
MAX_CONNECTIONS = 1024
METADATA_TIMEOUT = 1.0
CGROUP = Path("/sys/fs/cgroup")


def _metadata_vcpus(environ: Mapping[str, str]) -> float | None:
    """The task's CPU limit in vCPUs from the ECS task metadata endpoint (v4), if set."""
    base = environ.get("ECS_CONTAINER_METADATA_URI_V4")
    if not base:
        return None
    try:
        with urllib.request.urlopen(f"{base}/task", timeout=METADATA_TIMEOUT) as answer:  # noqa: S310
            limit = json.load(answer).get("Limits", {}).get("CPU")
    except (OSError, ValueError, AttributeError):
        return None
    return float(limit) if isinstance(limit, int | float) and limit > 0 else None


def _cgroup_vcpus(root: Path) -> float | None:
    """The CPU quota of this cgroup (v2 `cpu.max`, else v1 `cpu.cfs_quota_us`), if any."""
    try:
        quota, _, period = (root / "cpu.max").read_text().strip().partition(" ")
        if quota != "max":
            return int(quota) / int(period or 100000)
        return None
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota_us / period_us if quota_us > 0 and period_us > 0 else None


def _usable_cpus() -> int:
    affinity: Callable[[int], set[int]] | None = getattr(os, "sched_getaffinity", None)
    if affinity is not None:
        return len(affinity(0))
    return os.cpu_count() or 1


def task_vcpus(environ: Mapping[str, str], cgroup: Path = CGROUP) -> float:
    """How many vCPUs this container may use, best source first."""
    for found in (_metadata_vcpus(environ), _cgroup_vcpus(cgroup)):
        if found:
            return min(found, _usable_cpus())
    return float(_usable_cpus())


def _positive_int(environ: Mapping[str, str], name: str, default: int, problems: list[str]) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    if raw.isdigit() and int(raw) > 0:
        return int(raw)
    problems.append(f"{name}={raw!r} is not a positive integer")
    return default


@dataclass(frozen=True)
class ServerSettings:
    port: int
    workers: int
    threads: int
    keepalive_seconds: int
    graceful_seconds: int
    bind: str = "0.0.0.0"  # noqa: S104 (the task's own network interface, awsvpc)
    log_level: str = "info"

    @classmethod
    def from_environ(
        cls, environ: Mapping[str, str] = os.environ, cgroup: Path = CGROUP
    ) -> ServerSettings:
        problems: list[str] = []
        try:
            app = Settings.from_environ(environ)
        except ConfigError as error:
            problems += error.problems
            app = Settings()
        workers = _positive_int(environ, "WEB_CONCURRENCY", 0, problems) or max(
            1, math.ceil(task_vcpus(environ, cgroup) - 1e-9)
        )
        threads = _positive_int(environ, "WEB_THREADS", DEFAULT_THREADS, problems)
        keepalive = _positive_int(environ, "KEEPALIVE_SECONDS", DEFAULT_KEEPALIVE, problems)
        graceful = _positive_int(environ, "GRACEFUL_TIMEOUT_SECONDS", DEFAULT_GRACEFUL, problems)
        if problems:
            raise ConfigError(problems)
        level = app.log_level if app.log_level in ("debug", "info", "warning", "error") else "info"
        return cls(
            port=app.port,
            workers=workers,
            threads=threads,
            keepalive_seconds=keepalive,
            graceful_seconds=graceful,
            bind=environ.get("BIND", "").strip() or cls.bind,
            log_level=level,
        )


class _ExpectedThreads(logging.Filter):
    """Drops Granian's start-up warning that more threads than cores is a lot: here most of
    them wait on the backend, and the number is deliberate (WEB_THREADS)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Python threads, which seems quite high" not in record.getMessage()


def server(settings: ServerSettings, target: str = WSGI_TARGET) -> MPServer | MTServer:
    """The Granian server for these settings (not started)."""
    granian = Granian(
        target,
        address=settings.bind,
        port=settings.port,
        interface=Interfaces.WSGI,
        workers=settings.workers,
        blocking_threads=settings.threads,
        # Granian's backpressure caps the connections a worker serves at once, idle kept-alive
        # ones included: at the thread count, the load balancer's extra connections would
        # wait unaccepted. Requests beyond the threads wait in the server, not the interpreter.
        backpressure=MAX_CONNECTIONS,
        http=HTTPModes.http1,
        websockets=False,
        # Granian closes a connection that sends no request headers for this long, idle
        # keep-alive connections included: this is the keep-alive timeout. (Its command
        # line caps it at 60 s, the Python API does not.)
        http1_settings=HTTP1Settings(header_read_timeout=settings.keepalive_seconds * 1000),
        log_level=LogLevels(settings.log_level),
        log_access=False,
        respawn_failed_workers=True,
        workers_kill_timeout=settings.graceful_seconds,
    )
    # Granian's logging is configured by now (the constructor does it).
    logging.getLogger("_granian").addFilter(_ExpectedThreads())
    return granian


def main(environ: Mapping[str, str] = os.environ) -> int:
    try:
        settings = ServerSettings.from_environ(environ)
    except ConfigError as error:
        print(f"traced_app: {error}", file=sys.stderr)
        return 2
    server(settings).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
