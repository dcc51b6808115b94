"""The runtime contract: environment variables, the container command's server settings (workers
from the task's vCPUs, keep-alive, drain), and the access log."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from granian.constants import HTTPModes, Interfaces
from webtest import TestApp

from sample_app.traced_app.access_log import FrontDoor, stdout_writer
from sample_app.traced_app.serve import ServerSettings, server, task_vcpus
from sample_app.traced_app.settings import ConfigError, Settings
from tools.local_service import SAMPLE_APP

ECS_STOP_TIMEOUT = 30
ALB_IDLE_TIMEOUT = 60


def test_defaults_are_the_single_service_of_before() -> None:
    settings = Settings.from_environ({})
    assert settings == Settings()
    assert (settings.role, settings.tracing_sdk, settings.port) == ("backend", "xray-sdk", 8080)
    assert not settings.serves_chain and settings.backend_url is None
    assert settings.xray_daemon_address == "127.0.0.1:2000"


def test_a_frontend_with_its_backend_on_opentelemetry() -> None:
    settings = Settings.from_environ(
        {
            "ROLE": "frontend",
            "SERVICE_NAME": "traced-fargate-dev-frontend",
            "BACKEND_URL": "http://backend.traced-dev.local:8080/",
            "TRACING_SDK": "opentelemetry",
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "DOWNSTREAM_TIMEOUT_SECONDS": "1.5",
            "PORT": "9000",
        }
    )
    assert settings.serves_chain
    assert settings.backend_url == "http://backend.traced-dev.local:8080"
    assert (settings.downstream_timeout, settings.port) == (1.5, 9000)
    assert settings.otlp_endpoint == "http://127.0.0.1:4318"
    assert settings.tracing_enabled


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.from_environ(
            {
                "ROLE": "front",
                "TRACING_SDK": "jaeger",
                "PORT": "80800",
                "DOWNSTREAM_TIMEOUT_SECONDS": "forever",
                "ACCESS_LOG": "sometimes",
            }
        )
    problems = raised.value.problems
    assert len(problems) == 5
    assert "ROLE='front' is not allowed; allowed: frontend, backend" in problems
    assert "TRACING_SDK='jaeger' is not allowed; allowed: xray-sdk, opentelemetry" in problems
    assert any(p.startswith("PORT='80800'") for p in problems)
    assert any(p.startswith("DOWNSTREAM_TIMEOUT_SECONDS='forever'") for p in problems)
    assert "ACCESS_LOG='sometimes' is not true or false" in problems


@pytest.mark.parametrize(
    ("environ", "problem"),
    [
        ({"ROLE": "frontend"}, "ROLE=frontend needs BACKEND_URL"),
        ({"BACKEND_URL": "http://b:8080"}, "BACKEND_URL is set but ROLE=backend"),
        ({"ROLE": "frontend", "BACKEND_URL": "b:8080"}, "is not an http:// or https:// URL"),
        ({"ROLE": "frontend", "BACKEND_URL": "http://b:8080/work"}, "has a path"),
        ({"DOWNSTREAM_TIMEOUT_SECONDS": "0"}, "above 0, at most 20"),
        ({"DOWNSTREAM_TIMEOUT_SECONDS": "25"}, "above 0, at most 20"),
        (
            {"TRACING_SDK": "opentelemetry", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
            "OTLP protocol 'grpc' is not supported",
        ),
        ({"TRACING_SDK": "opentelemetry", "OTEL_SDK_DISABLED": "maybe"}, "OTEL_SDK_DISABLED"),
        ({"AWS_XRAY_SDK_ENABLED": "nope"}, "AWS_XRAY_SDK_ENABLED='nope' is not true or false"),
    ],
)
def test_invalid(environ: dict[str, str], problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        Settings.from_environ(environ)


def test_each_sdk_has_its_own_off_switch() -> None:
    assert not Settings.from_environ({"AWS_XRAY_SDK_ENABLED": "false"}).tracing_enabled
    otel = {"TRACING_SDK": "opentelemetry"}
    assert not Settings.from_environ({**otel, "OTEL_SDK_DISABLED": "true"}).tracing_enabled
    assert Settings.from_environ(otel).tracing_enabled


def test_the_container_command_refuses_a_bad_environment() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "traced_app.serve"],
        cwd=SAMPLE_APP,
        env={"ROLE": "frontend", "WEB_CONCURRENCY": "many", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("traced_app: invalid configuration: ROLE=frontend needs")
    assert "WEB_CONCURRENCY='many' is not a positive integer" in done.stderr
    assert "Traceback" not in done.stderr


def test_server_settings_fit_the_task(tmp_path: Path) -> None:
    settings = ServerSettings.from_environ({"WEB_CONCURRENCY": "3"}, cgroup=tmp_path)
    assert settings.workers == 3
    # The load balancer closes idle connections first (its idle timeout is 60 s).
    assert settings.keepalive_seconds > ALB_IDLE_TIMEOUT
    # In-flight requests finish before ECS follows SIGTERM with SIGKILL.
    assert settings.graceful_seconds + 5 <= ECS_STOP_TIMEOUT
    granian = server(settings)
    assert granian.interface == Interfaces.WSGI and granian.http == HTTPModes.http1
    assert granian.workers == 3
    assert granian.bind_addr == "0.0.0.0" and granian.bind_port == 8080
    assert granian.http1_settings is not None
    assert granian.http1_settings.header_read_timeout == settings.keepalive_seconds * 1000
    assert granian.workers_kill_timeout == settings.graceful_seconds
    assert granian.blocking_threads == settings.threads
    assert granian.backpressure >= 1000  # kept-alive connections, idle or not
    assert granian.log_access is False  # the app writes the access log
    assert granian.respawn_failed_workers is True


def test_workers_follow_the_cgroup_quota(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("50000 100000\n")
    assert task_vcpus({}, tmp_path) == pytest.approx(0.5)
    assert ServerSettings.from_environ({}, cgroup=tmp_path).workers == 1
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert task_vcpus({}, tmp_path) >= 1


class _TaskMetadata(BaseHTTPRequestHandler):
    cpu: Any = 2

    def do_GET(self) -> None:
        body = json.dumps({"Limits": {"CPU": self.cpu, "Memory": 4096}}).encode()
        self.send_response(200 if self.path == "/v4/abc/task" else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def metadata() -> Iterator[tuple[str, type[_TaskMetadata]]]:
    handler = type("Handler", (_TaskMetadata,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v4/abc", handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=2)


def test_workers_follow_the_task_metadata(
    metadata: tuple[str, type[_TaskMetadata]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, handler = metadata
    monkeypatch.setattr("sample_app.traced_app.serve._usable_cpus", lambda: 8)
    environ = {"ECS_CONTAINER_METADATA_URI_V4": url}
    assert ServerSettings.from_environ(environ, cgroup=tmp_path).workers == 2
    handler.cpu = 0.25
    assert ServerSettings.from_environ(environ, cgroup=tmp_path).workers == 1
    handler.cpu = "lots"  # not a number: the next source decides
    assert task_vcpus(environ, tmp_path) == 8


def _hello(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    headers = [("Content-Type", "text/plain"), ("Content-Length", "5")]
    start_response("200 OK", [*headers, ("X-Amzn-Trace-Id", "Root=1-a-b;Sampled=1")])
    return [b"hello"]


def _streamed(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
    start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
    yield b"no"
    yield b"pe"


def test_access_log_line_per_request_with_the_trace_id_and_none_for_health() -> None:
    lines: list[str] = []
    app = TestApp(FrontDoor(_hello, lines.append))
    assert app.get("/healthz").text == "ok"
    app.get(
        "/a",
        {"b": "c"},
        headers={"User-Agent": "tester"},
        extra_environ={"REMOTE_ADDR": "10.0.0.9"},
    )
    TestApp(FrontDoor(_streamed, lines.append)).get("/s", status=503)
    assert len(lines) == 2
    assert lines[0].startswith('10.0.0.9 "GET /a?b=c HTTP/1.0" 200 5 ')
    assert lines[0].endswith('ms "tester" Root=1-a-b;Sampled=1')
    assert lines[1].startswith('- "GET /s HTTP/1.0" 503 4 ')
    assert lines[1].endswith(" -")


def test_stdout_writer_writes_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / "out"
    with path.open("wb") as out:
        write = stdout_writer(out.fileno())
        write('127.0.0.1 "GET / HTTP/1.1" 200 12 0.1ms "ab" Root=1-a-b;Sampled=0')
        write("second \udcff")
    assert path.read_bytes().splitlines() == [
        b'127.0.0.1 "GET / HTTP/1.1" 200 12 0.1ms "ab" Root=1-a-b;Sampled=0',
        b"second ?",
    ]
