"""Faults under load, on loopback and bounded: the frontend (the container's command) in front
of a backend that turns slow or stops mid-run, and services whose collector or daemon is
away. Every request must end within its timeout with 502/504, none may hang, `/` must keep
serving, and the traces must mark the fault."""

from __future__ import annotations

import contextlib
import http.client
import logging
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import IO, Any

import pytest
from aws_xray_sdk.core.recorder import AWSXRayRecorder
from webtest import TestApp

from sample_app.traced_app.app import create_app
from sample_app.traced_app.otel import OtelTracer, build_provider
from sample_app.traced_app.settings import Settings
from sample_app.traced_app.xray import TracingSettings, XRayTracer, configure_recorder
from tools.local_service import app_environment, free_tcp_port, running, serve_command
from tools.xray_receiver import SegmentReceiver

from .conftest import documents_of, new_trace_id, serving, trace_header

TIMEOUT = 0.3
# What a request may take beyond the downstream timeout: the frontend's own work, the
# client's, and a loaded 2-core machine.
SLACK = 0.5
CLIENTS = 8


class _Switchable(BaseHTTPRequestHandler):
    """A backend whose behaviour the test changes: answer at once, or after `delay`."""

    protocol_version = "HTTP/1.1"
    delay = 0.0
    gone = False
    open_connections: set[socket.socket]

    def setup(self) -> None:
        super().setup()
        self.open_connections.add(self.connection)

    def finish(self) -> None:
        self.open_connections.discard(self.connection)
        super().finish()

    def do_GET(self) -> None:
        if self.gone:
            # A connection accepted just before the stop, whose handler began after it:
            # a task that is gone answers nothing.
            self.close_connection = True
            return
        time.sleep(self.delay)
        body = b'{"n": 10, "primes": 4, "largest_prime": 7}'
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Backend:
    def __init__(self) -> None:
        self.handler: type[_Switchable] = type(
            "Handler", (_Switchable,), {"open_connections": set()}
        )
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self.handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}
        )
        self.thread.start()
        self.stopped = False

    def stop(self) -> None:
        """As a task that is gone: the port closed, open connections reset."""
        if self.stopped:
            return
        self.stopped = True
        self.handler.gone = True
        self.server.shutdown()
        self.server.server_close()
        for connection in list(self.handler.open_connections):
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        self.thread.join(timeout=2)


@pytest.fixture(scope="module")
def backend() -> Iterator[Backend]:
    stub = Backend()
    try:
        yield stub
    finally:
        stub.stop()


@pytest.fixture(scope="module")
def daemon() -> Iterator[SegmentReceiver]:
    with SegmentReceiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def logs() -> Iterator[IO[bytes]]:
    with tempfile.TemporaryFile() as file:
        yield file


@pytest.fixture(scope="module")
def frontend(backend: Backend, daemon: SegmentReceiver, logs: IO[bytes]) -> Iterator[int]:
    port = free_tcp_port()
    env = app_environment(
        port,
        daemon.address,
        ROLE="frontend",
        SERVICE_NAME="frontend",
        BACKEND_URL=backend.url,
        DOWNSTREAM_TIMEOUT_SECONDS=str(TIMEOUT),
        WEB_CONCURRENCY="1",
    )
    with running(serve_command(port), env, port, stdout=logs, stderr=logs, stop_timeout=10):
        yield port


def timed_get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, float]:
    began = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT + 3)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        response.read()
        return response.status, time.monotonic() - began
    finally:
        connection.close()


def in_parallel(count: int, work: Any) -> list[Any]:
    results: list[Any] = []
    lock = threading.Lock()

    def run(index: int) -> None:
        outcome = work(index)
        with lock:
            results.extend(outcome)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert not any(thread.is_alive() for thread in threads), "a client hung"
    return results


def faults_marked(daemon: SegmentReceiver, trace_ids: set[str], status: int) -> None:
    documents = documents_of(daemon, trace_ids, len(trace_ids))
    assert len(documents) == len(trace_ids)
    for document in documents:
        assert document["fault"] is True
        assert document["http"]["response"]["status"] == status
        (call,) = document["subsegments"]
        assert call["namespace"] == "remote" and call["fault"] is True


def test_a_backend_slower_than_the_timeout(
    frontend: int, backend: Backend, daemon: SegmentReceiver
) -> None:
    assert timed_get(frontend, "/chain")[0] == 200
    backend.handler.delay = TIMEOUT + 0.7
    traced: set[str] = set()

    def client(index: int) -> list[tuple[str, int, float]]:
        answers = []
        if index % 2:  # half the clients ask for / while the others wait on the backend
            for _ in range(5):
                time.sleep(0.05)
                answers.append(("root", *timed_get(frontend, "/")))
            return answers
        for _ in range(2):
            trace_id = new_trace_id()
            traced.add(trace_id)
            answers.append(("chain", *timed_get(frontend, "/chain", trace_header(trace_id))))
        return answers

    try:
        answers = in_parallel(CLIENTS, client)
    finally:
        backend.handler.delay = 0.0
    chain = [(status, took) for kind, status, took in answers if kind == "chain"]
    root = [(status, took) for kind, status, took in answers if kind == "root"]
    assert {status for status, _ in chain} == {504}
    assert max(took for _, took in chain) < TIMEOUT + SLACK
    # `/` is answered while the chain requests wait on the backend.
    assert {status for status, _ in root} == {200}
    assert max(took for _, took in root) < SLACK
    faults_marked(daemon, traced, 504)


def test_a_backend_that_stops_mid_run(
    frontend: int, backend: Backend, daemon: SegmentReceiver, logs: IO[bytes]
) -> None:
    began = time.monotonic()
    stopped_at: list[float] = []

    def client(index: int) -> list[tuple[int, float, float]]:
        answers = []
        for _ in range(200):  # bounded in count and in time
            started = time.monotonic()
            if started - began > 0.6:
                break
            status, took = timed_get(frontend, "/chain")
            answers.append((status, took, started))
        return answers

    def stopper() -> None:
        time.sleep(0.2)
        backend.stop()
        stopped_at.append(time.monotonic())

    stopping = threading.Thread(target=stopper)
    stopping.start()
    answers = in_parallel(CLIENTS, client)
    stopping.join(timeout=5)
    assert stopped_at
    statuses = {status for status, _, _ in answers}
    # A request in flight when the backend stops may wait out its timeout (504); every
    # other one is answered or refused at once.
    assert statuses <= {200, 502, 504}
    assert 200 in statuses and 502 in statuses
    assert max(took for _, took, _ in answers) < TIMEOUT + SLACK
    # Once the backend is gone, every chain request is a clean 502; `/` is still served.
    # (The start is taken before the request: one that began just before the stop, and
    # whose answer was read late on a loaded machine, may well be a 200.)
    assert all(status == 502 for status, _, started in answers if started > stopped_at[0])
    assert timed_get(frontend, "/")[0] == 200
    trace_id = new_trace_id()
    assert timed_get(frontend, "/chain", trace_header(trace_id))[0] == 502
    faults_marked(daemon, {trace_id}, 502)

    logs.seek(0)
    log = logs.read().decode(errors="replace")
    assert "Traceback" not in log
    assert " ERROR " not in log
    # One line per request in the access log, none of them a warning.
    assert log.count('"GET /chain HTTP/1.1" 502') >= 1
    assert log.count(" WARNING ") <= 2  # the sampling poller's one line, nothing per request


def test_no_collector_and_no_daemon_one_warning_each_and_both_serve(
    caplog: pytest.LogCaptureFixture,
) -> None:
    closed = free_tcp_port()  # nothing listens there, on TCP or UDP
    caplog.set_level(logging.DEBUG, logger="sample_app.traced_app")
    caplog.set_level(logging.DEBUG, logger="opentelemetry")
    recorder = AWSXRayRecorder()
    configure_recorder(recorder, TracingSettings("backend", f"127.0.0.1:{closed}"))
    backend = create_app(XRayTracer(recorder), Settings(access_log=False))
    provider = build_provider(
        "frontend", f"http://127.0.0.1:{closed}", environ={}, export_timeout=0.2
    )
    with serving(backend) as url:
        settings = Settings(
            role="frontend", backend_url=url, downstream_timeout=2, access_log=False
        )
        app = TestApp(create_app(OtelTracer(provider), settings))
        for _ in range(3):
            for _ in range(10):
                response = app.get("/chain", {"n": "10"}, headers=trace_header(new_trace_id()))
                assert response.json["backend"]["primes"] == 4
            provider.force_flush()  # an export attempt per round: the first fails
    provider.shutdown()
    ours = [r for r in caplog.records if r.name == "sample_app.traced_app.otel"]
    assert [r.levelno for r in ours] == [logging.WARNING]
    assert "dropping spans: cannot export to the collector" in ours[0].getMessage()
    assert "(cannot connect: [Errno 111] Connection refused)" in ours[0].getMessage()
    assert all(r.exc_info is None for r in caplog.records)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
