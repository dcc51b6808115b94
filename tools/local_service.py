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


def serve_command(port: int) -> list[str]:
    """The container's command (Granian); the port, and BIND=127.0.0.1, come from
    `app_environment`."""
    return [sys.executable, "-m", "traced_app.serve"]


def gunicorn_command(port: int) -> list[str]:
    """The previous container command (gunicorn, gthread 2 x 4), bound to loopback."""
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "--config",
        str(ROOT / "bench" / "gunicorn_conf.py"),
        "--bind",
        f"{HOST}:{port}",
        "traced_app.wsgi:app",
    ]


def reference_command(port: int) -> list[str]:
    """Seed 000's app as it was (bench/reference_app.py): Bottle's development server
    (single-threaded wsgiref), X-Ray SDK on. It has no health route: wait on `/`."""
    return [sys.executable, str(ROOT / "bench" / "reference_app.py"), str(port)]


def pinned(command: list[str], cpu: int | None) -> list[str]:
    """`command` on one CPU (taskset), or as it is when `cpu` is None."""
    if cpu is None:
        return command
    taskset = shutil.which("taskset")
    if taskset is None:
        raise FileNotFoundError("taskset (util-linux) is not installed")
    return [taskset, "-c", str(cpu), *command]


def can_pin() -> bool:
    """Whether servers and the load generator can each have a CPU of their own."""
    affinity = getattr(os, "sched_getaffinity", None)
    cpus = len(affinity(0)) if affinity else (os.cpu_count() or 1)
    return shutil.which("taskset") is not None and cpus >= 2


def app_environment(
    port: int,
    daemon_address: str,
    *,
    tracing: bool = True,
    sdk: str = "xray-sdk",
    otlp_endpoint: str | None = None,
    **extra: str,
) -> dict[str, str]:
    """The environment of one local service: loopback only, the caller's own settings for
    the app, its SDKs and its servers left out."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_XRAY_", "OTEL_", "WEB_", "GUNICORN_", "GRANIAN_"))
        and key
        not in {
            "ROLE",
            "SERVICE_NAME",
            "BACKEND_URL",
            "TRACING_SDK",
            "DOWNSTREAM_TIMEOUT_SECONDS",
            "ACCESS_LOG",
            "ECS_CONTAINER_METADATA_URI",
            "ECS_CONTAINER_METADATA_URI_V4",
        }
    }
    env.update(
        PORT=str(port),
        BIND=HOST,
        TRACING_SDK=sdk,
        AWS_XRAY_DAEMON_ADDRESS=daemon_address,
        PYTHONDONTWRITEBYTECODE="1",
        PYTHONUNBUFFERED="1",
    )
    if sdk == "opentelemetry":
        env["OTEL_SDK_DISABLED"] = "false" if tracing else "true"
        if otlp_endpoint:
            env["OTEL_EXPORTER_OTLP_ENDPOINT"] = otlp_endpoint
    else:
        env["AWS_XRAY_SDK_ENABLED"] = "true" if tracing else "false"
    env.update(extra)
    return env


def wait_until_healthy(
    process: subprocess.Popen[bytes], port: int, timeout: float, path: str = "/healthz"
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the app exited with status {process.returncode} while starting")
        connection = http.client.HTTPConnection(HOST, port, timeout=1)
        try:
            connection.request("GET", path)
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
    health_path: str = "/healthz",
) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(command, cwd=SAMPLE_APP, env=dict(env), stdout=stdout, stderr=stderr)
    try:
        wait_until_healthy(process, port, ready_timeout, health_path)
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
    port: int,
    path: str,
    requests: int,
    concurrency: int,
    headers: Mapping[str, str] | None = None,
    *,
    keepalive: bool = False,
    cpu: int | None = None,
) -> LoadResult:
    ab = ab_path()
    if ab is None:
        raise FileNotFoundError("ab (apache2-utils) is not installed")
    command = pinned([ab, "-q", "-n", str(requests), "-c", str(concurrency), "-s", "10"], cpu)
    if keepalive:
        command.append("-k")
    for name, value in (headers or {}).items():
        command += ["-H", f"{name}: {value}"]
    command.append(f"http://{HOST}:{port}{path}")
    timeout = 30 + requests / 50
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=True)
    return parse_ab(done.stdout, concurrency)


class _Connection:
    """A minimal HTTP/1.1 client connection: one prepared request, sent again and again.

    http.client parses headers with the email package, which costs more CPU per request than
    the servers measured here spend; on a 2-core machine the client would set the pace.
    """

    def __init__(self, port: int, request: bytes, keepalive: bool) -> None:
        self._address = (HOST, port)
        self._request = request
        self._keepalive = keepalive
        self._socket: socket.socket | None = None

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def get(self) -> int:
        """Send the request, read the whole response, return its status."""
        if self._socket is None:
            # A numeric address: no name lookup per connection, as there is none in ab.
            self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self._socket.settimeout(10)
            self._socket.connect(self._address)
        sock = self._socket
        sock.sendall(self._request)
        buffer = b""
        while b"\r\n\r\n" not in buffer:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed before the response headers")
            buffer += chunk
        head, _, body = buffer.partition(b"\r\n\r\n")
        lines = head.lower().split(b"\r\n")
        status = int(lines[0].split()[1])
        fields = dict(line.split(b":", 1) for line in lines[1:] if b":" in line)
        length = fields.get(b"content-length")
        remaining = int(length) - len(body) if length is not None else None
        while remaining is None or remaining > 0:
            chunk = sock.recv(65536)
            if not chunk:
                if remaining is None:
                    break
                raise ConnectionError("connection closed in the middle of the body")
            if remaining is not None:
                remaining -= len(chunk)
        reusable = (
            self._keepalive
            and length is not None
            and fields.get(b"connection", b"").strip() != b"close"
            and not lines[0].startswith(b"http/1.0")
        )
        if not reusable:
            self.close()
        return status


def load_with_threads(
    port: int,
    path: str,
    requests: int,
    concurrency: int,
    headers: Mapping[str, str] | None = None,
    *,
    keepalive: bool = False,
) -> LoadResult:
    """A built-in client: `concurrency` threads sharing `requests` requests, each on its own
    connection, kept alive when asked to and the server allows (reopened when it closes)."""
    lines = [f"GET {path} HTTP/1.1", f"Host: {HOST}:{port}", "User-Agent: local-load"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if not keepalive:
        lines.append("Connection: close")
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
    counts = {"complete": 0, "failed": 0, "non_2xx": 0}
    lock = threading.Lock()
    start = threading.Barrier(concurrency + 1)
    shares = [requests // concurrency + (i < requests % concurrency) for i in range(concurrency)]

    def worker(share: int) -> None:
        complete = failed = non_2xx = 0
        connection = _Connection(port, request, keepalive)
        start.wait()
        for _ in range(share):
            try:
                status = connection.get()
            except (OSError, ValueError, IndexError):
                failed += 1
                connection.close()
                continue
            complete += 1
            non_2xx += not 200 <= status < 300
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
    keepalive: bool = False,
    client: str = "auto",
    cpu: int | None = None,
) -> LoadResult:
    """Apache Bench when installed (or `client="ab"`), else the built-in client. Without
    keep-alive every request opens a connection, as `ab` does by default. `cpu` pins ab."""
    if client == "ab" or (client == "auto" and ab_path() is not None):
        return load_with_ab(
            port, path, requests, concurrency, headers, keepalive=keepalive, cpu=cpu
        )
    return load_with_threads(port, path, requests, concurrency, headers, keepalive=keepalive)


def process_tree_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its descendants (Linux /proc), e.g. a gunicorn
    arbiter and its workers. 0.0 where /proc is not available."""
    parents: dict[int, int] = {}
    times: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        child = int(stat.parent.name)
        parents[child] = int(fields[1])
        times[child] = int(fields[11]) + int(fields[12])
    tree = {pid}
    grew = True
    while grew:
        grew = False
        for child, parent in parents.items():
            if parent in tree and child not in tree:
                tree.add(child)
                grew = True
    ticks = sum(times.get(member, 0) for member in tree)
    return ticks / os.sysconf("SC_CLK_TCK")


def latencies(
    port: int, path: str, requests: int, headers: Mapping[str, str] | None = None
) -> list[float]:
    """Seconds per request of `requests` GETs sent one after another on one kept-alive
    connection (reopened if the server closes it); raises on any non-2xx answer."""
    lines = [f"GET {path} HTTP/1.1", f"Host: {HOST}:{port}", "User-Agent: local-latency"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    connection = _Connection(port, ("\r\n".join(lines) + "\r\n\r\n").encode(), keepalive=True)
    took: list[float] = []
    try:
        for _ in range(requests):
            began = time.perf_counter()
            status = connection.get()
            took.append(time.perf_counter() - began)
            if not 200 <= status < 300:
                raise RuntimeError(f"GET {path} answered {status}")
    finally:
        connection.close()
    return took
