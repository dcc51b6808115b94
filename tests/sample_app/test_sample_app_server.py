"""The production entry points: the container's command (Granian) and the health probe."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from sample_app.traced_app.healthcheck import probe
from tools.local_service import (
    SAMPLE_APP,
    app_environment,
    free_tcp_port,
    serve_command,
    stop,
    wait_until_healthy,
)
from tools.xray_receiver import SegmentReceiver

from .conftest import documents_of, new_trace_id, trace_header

GRACEFUL_TIMEOUT = 20


def get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def run_healthcheck(port: int) -> int:
    env = app_environment(port, "127.0.0.1:2000")
    done = subprocess.run(
        [sys.executable, "-m", "traced_app.healthcheck"],
        cwd=SAMPLE_APP,
        env=env,
        capture_output=True,
        timeout=10,
        check=False,
    )
    return done.returncode


def all_answered(port: int, connections: int) -> bool:
    opened = [http.client.HTTPConnection("127.0.0.1", port, timeout=5) for _ in range(connections)]
    try:
        for _ in range(2):
            for connection in opened:
                connection.request("GET", "/")
            for connection in opened:
                response = connection.getresponse()
                if response.status != 200 or response.read() != b"Hello X-Ray!":
                    return False
        return True
    finally:
        for connection in opened:
            connection.close()


def test_the_container_command_serves_the_app_and_stops_on_sigterm(
    daemon: SegmentReceiver,
) -> None:
    port = free_tcp_port()
    env = app_environment(
        port, daemon.address, SERVICE_NAME="under-granian", WEB_CONCURRENCY="1", WEB_THREADS="2"
    )
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(
            serve_command(port), cwd=SAMPLE_APP, env=env, stdout=out, stderr=err
        )
        try:
            wait_until_healthy(process, port, timeout=20)
            assert get(port, "/") == (200, b"Hello X-Ray!")
            status, body = get(port, "/work?n=100")
            assert (status, json.loads(body)["primes"]) == (200, 25)
            assert get(port, "/work?n=nope")[0] == 400

            trace_id = new_trace_id()
            assert get(port, "/work?n=1000", trace_header(trace_id))[0] == 200
            (segment,) = documents_of(daemon, {trace_id}, 1)
            assert segment["name"] == "under-granian"
            assert segment["http"]["request"]["url"] == f"http://127.0.0.1:{port}/work?n=1000"
            assert [s["name"] for s in segment["subsegments"]] == ["count_primes"]

            assert run_healthcheck(port) == 0
            # More kept-alive connections than threads (WEB_THREADS=2): all of them served.
            assert all_answered(port, connections=8)

            took = stop(process, timeout=GRACEFUL_TIMEOUT + 5)
        finally:
            stop(process, timeout=5)
        assert process.returncode == 0
        # Well within the graceful timeout when nothing is in flight.
        assert took < 5, f"shutdown took {took:.1f} s"
        out.seek(0)
        err.seek(0)
        access_log, error_log = out.read().decode(), err.read().decode()

    # One access line per request with its trace id; none for the health checks.
    assert '127.0.0.1 "GET / HTTP/1.1" 200 12 ' in access_log
    assert '"GET /work?n=1000 HTTP/1.1" 200' in access_log
    assert f"Root={trace_id}" in access_log
    assert "/healthz" not in access_log
    assert "[INFO] Started worker-1" in access_log
    assert "Granian shutdown completed" in access_log
    assert "quite high" not in access_log
    assert "Traceback" not in error_log + access_log
    assert " ERROR " not in error_log


def test_wsgi_entry_point_configures_the_sdk() -> None:
    code = (
        "import json, logging\n"
        "from aws_xray_sdk.core import patcher, xray_recorder\n"
        "import traced_app.wsgi\n"
        "print(json.dumps({'patched': sorted(patcher._PATCHED_MODULES),\n"
        "  'service': xray_recorder.service,\n"
        "  'context_missing': xray_recorder.context.context_missing,\n"
        "  'emitter': type(xray_recorder.emitter).__name__,\n"
        "  'sdk_log_level': logging.getLogger('aws_xray_sdk').level}))\n"
    )
    env = app_environment(free_tcp_port(), "127.0.0.1:2000", SERVICE_NAME="entry")
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=SAMPLE_APP,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    configured = json.loads(done.stdout)
    # Outbound AWS calls (botocore) and SQL (sqlite3) become subsegments; http.client is left
    # alone, the backend call makes its own subsegment.
    assert {"botocore", "sqlite3"} <= set(configured["patched"])
    assert "httplib" not in configured["patched"]
    assert configured["service"] == "entry"
    assert configured["context_missing"] == "IGNORE_ERROR"
    assert configured["emitter"] == "DaemonEmitter"
    assert configured["sdk_log_level"] == 30


class _Health(BaseHTTPRequestHandler):
    delay = 0.0
    status = 200

    def do_GET(self) -> None:
        time.sleep(self.delay)
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[tuple[int, type[_Health]]]:
    handler = type("Handler", (_Health,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server.server_address[1], handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=2)


def test_probe_passes_on_200(health_server: tuple[int, type[_Health]]) -> None:
    port, _ = health_server
    assert probe(port)


def test_probe_fails_on_other_statuses(health_server: tuple[int, type[_Health]]) -> None:
    port, handler = health_server
    handler.status = 503
    assert not probe(port)


def test_probe_fails_when_too_slow(health_server: tuple[int, type[_Health]]) -> None:
    port, handler = health_server
    handler.delay = 0.5
    began = time.monotonic()
    assert not probe(port, timeout=0.2)
    assert time.monotonic() - began < 0.45


def test_probe_fails_when_nothing_listens() -> None:
    assert not probe(free_tcp_port())


def test_healthcheck_module_exit_codes(health_server: tuple[int, type[_Health]]) -> None:
    port, handler = health_server
    assert run_healthcheck(port) == 0
    handler.status = 500
    assert run_healthcheck(port) == 1
