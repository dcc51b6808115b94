"""Run the sample app on loopback and load it: shared by `make demo` and `make bench`.

Everything binds 127.0.0.1, every wait has a timeout, and a started server is always stopped.
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_APP = ROOT / "sample_app"
HOST = "127.0.0.1"


def free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def gunicorn_command(port: int) -> list[str]:
    """The container's command, bound to loopback instead of every interface."""
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "--config",
        "python:traced_app.gunicorn_conf",
        "--bind",
        f"{HOST}:{port}",
        "traced_app.wsgi:app",
    ]


def dev_server_command(port: int) -> list[str]:
    """The reference setup: the same app under Bottle's development server (`bottle.run`,
    single-threaded wsgiref), as the original main.py ran it."""
    code = (
        "import sys, bottle\n"
        "from traced_app.wsgi import app\n"
        "bottle.run(app=app, host=sys.argv[1], port=int(sys.argv[2]))\n"
    )
    return [sys.executable, "-c", code, HOST, str(port)]


def app_environment(
    port: int, daemon_address: str, *, tracing: bool = True, **extra: str
) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_XRAY_", "WEB_", "GUNICORN_"))
    }
    env.update(
        PORT=str(port),
        AWS_XRAY_DAEMON_ADDRESS=daemon_address,
        AWS_XRAY_SDK_ENABLED="true" if tracing else "false",
        PYTHONDONTWRITEBYTECODE="1",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def wait_until_healthy(process: subprocess.Popen[bytes], port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the app exited with status {process.returncode} while starting")
        connection = http.client.HTTPConnection(HOST, port, timeout=1)
        try:
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        finally:
            connection.close()
        time.sleep(0.05)
    raise TimeoutError(f"the app did not answer on {HOST}:{port} within {timeout} s")


def stop(process: subprocess.Popen[bytes], timeout: float) -> float:
    """SIGTERM, then SIGKILL after `timeout` seconds; how long it took to exit."""
    started = time.monotonic()
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
    return time.monotonic() - started


@contextmanager
def running(
    command: list[str],
    env: Mapping[str, str],
    port: int,
    *,
    stdout: IO[bytes] | int = subprocess.DEVNULL,
    stderr: IO[bytes] | int = subprocess.DEVNULL,
    ready_timeout: float = 20.0,
    stop_timeout: float = 25.0,
) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(command, cwd=SAMPLE_APP, env=dict(env), stdout=stdout, stderr=stderr)
    try:
        wait_until_healthy(process, port, ready_timeout)
        yield process
    finally:
        stop(process, stop_timeout)


@dataclass(frozen=True)
class LoadResult:
    client: str
    concurrency: int
    complete: int
    failed: int
    non_2xx: int
    seconds: float

    @property
    def requests_per_second(self) -> float:
        return self.complete / self.seconds if self.seconds > 0 else 0.0


_AB_FIELDS = {
    "complete": re.compile(r"^Complete requests:\s+(\d+)", re.MULTILINE),
    "failed": re.compile(r"^Failed requests:\s+(\d+)", re.MULTILINE),
    "non_2xx": re.compile(r"^Non-2xx responses:\s+(\d+)", re.MULTILINE),
    "seconds": re.compile(r"^Time taken for tests:\s+([\d.]+) seconds", re.MULTILINE),
}


def parse_ab(output: str, concurrency: int) -> LoadResult:
    """The counts of an Apache Bench report (`Non-2xx responses` only appears when nonzero)."""
    values: dict[str, str] = {}
    for name, pattern in _AB_FIELDS.items():
        match = pattern.search(output)
        if match:
            values[name] = match.group(1)
        elif name != "non_2xx":
            raise ValueError(f"no {name!r} in the ab report")
    return LoadResult(
        client="ab",
        concurrency=concurrency,
        complete=int(values["complete"]),
        failed=int(values["failed"]),
        non_2xx=int(values.get("non_2xx", "0")),
        seconds=float(values["seconds"]),
    )


def ab_path() -> str | None:
    return shutil.which("ab")


def load_with_ab(
    port: int, path: str, requests: int, concurrency: int, headers: Mapping[str, str] | None = None
) -> LoadResult:
    ab = ab_path()
    if ab is None:
        raise FileNotFoundError("ab (apache2-utils) is not installed")
    command = [ab, "-q", "-n", str(requests), "-c", str(concurrency), "-s", "10"]
    for name, value in (headers or {}).items():
        command += ["-H", f"{name}: {value}"]
    command.append(f"http://{HOST}:{port}{path}")
    timeout = 30 + requests / 50
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=True)
    return parse_ab(done.stdout, concurrency)


def load_with_threads(
    port: int, path: str, requests: int, concurrency: int, headers: Mapping[str, str] | None = None
) -> LoadResult:
    """A built-in client: `concurrency` threads, each on its own keep-alive connection
    (reopened when the server closes it), sharing `requests` requests."""
    counts = {"complete": 0, "failed": 0, "non_2xx": 0}
    lock = threading.Lock()
    start = threading.Barrier(concurrency + 1)
    shares = [requests // concurrency + (i < requests % concurrency) for i in range(concurrency)]

    def worker(share: int) -> None:
        complete = failed = non_2xx = 0
        connection = http.client.HTTPConnection(HOST, port, timeout=10)
        start.wait()
        for _ in range(share):
            try:
                connection.request("GET", path, headers=dict(headers or {}))
                response = connection.getresponse()
                response.read()
            except (OSError, http.client.HTTPException):
                failed += 1
                connection.close()
                continue
            complete += 1
            non_2xx += not 200 <= response.status < 300
            if response.will_close:
                connection.close()
        connection.close()
        with lock:
            counts["complete"] += complete
            counts["failed"] += failed
            counts["non_2xx"] += non_2xx

    threads = [threading.Thread(target=worker, args=(share,)) for share in shares]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    return LoadResult(
        client="builtin",
        concurrency=concurrency,
        seconds=time.perf_counter() - began,
        **counts,
    )


def load(
    port: int,
    path: str,
    requests: int,
    concurrency: int,
    headers: Mapping[str, str] | None = None,
    *,
    client: str = "auto",
) -> LoadResult:
    """Apache Bench when installed (or `client="ab"`), else the built-in client."""
    if client == "ab" or (client == "auto" and ab_path() is not None):
        return load_with_ab(port, path, requests, concurrency, headers)
    return load_with_threads(port, path, requests, concurrency, headers)
