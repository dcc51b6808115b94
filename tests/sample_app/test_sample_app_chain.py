"""GET /chain: the frontend calls the backend with the trace context, on either SDK, and
maps what goes wrong to 502/504 with the fault on the calling segment (in-process frontend,
backend on a loopback port)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aws_xray_sdk.core.recorder import AWSXRayRecorder
from webtest import TestApp

from sample_app.traced_app.app import create_app
from sample_app.traced_app.downstream import Backend, DownstreamTimeoutError
from sample_app.traced_app.otel import OtelTracer
from sample_app.traced_app.settings import Settings
from sample_app.traced_app.xray import TracingSettings, XRayTracer, configure_recorder
from tools.otlp_receiver import OtlpReceiver
from tools.trace_tree import SpanRecord, from_otlp, from_xray, tree
from tools.xray_receiver import SegmentReceiver

from .conftest import PARENT_ID, documents_of, new_trace_id, otel_provider, serving, trace_header

TIMEOUT = 0.3


def xray_tracer(name: str, daemon: SegmentReceiver) -> XRayTracer:
    recorder = AWSXRayRecorder()
    configure_recorder(recorder, TracingSettings(name, daemon.address))
    return XRayTracer(recorder)


def frontend(tracer: Any, backend_url: str, timeout: float = TIMEOUT) -> Any:
    settings = Settings(
        role="frontend",
        service_name="frontend",
        backend_url=backend_url,
        downstream_timeout=timeout,
        access_log=False,
    )
    return TestApp(create_app(tracer, settings))


def backend_app(tracer: Any) -> Any:
    return create_app(tracer, Settings(service_name="backend", access_log=False))


@pytest.fixture(scope="module")
def daemon() -> Iterator[SegmentReceiver]:
    with SegmentReceiver() as receiver:
        yield receiver


# A recorder costs the SDK a few tenths of a second to build (botocore clients): one for
# each service, shared by the module's tests, which tell their traces apart by trace id.
@pytest.fixture(scope="module")
def front(daemon: SegmentReceiver) -> XRayTracer:
    return xray_tracer("frontend", daemon)


@pytest.fixture(scope="module")
def back(daemon: SegmentReceiver) -> XRayTracer:
    return xray_tracer("backend", daemon)


@pytest.fixture(scope="module")
def xray_backend(back: XRayTracer) -> Iterator[str]:
    with serving(backend_app(back)) as url:
        yield url


def segments_of(daemon: SegmentReceiver, trace_id: str, count: int) -> list[SpanRecord]:
    return from_xray(documents_of(daemon, {trace_id}, count))


def test_chain_answers_with_the_backends_work_in_one_trace(
    daemon: SegmentReceiver, front: XRayTracer, xray_backend: str
) -> None:
    app = frontend(front, xray_backend)
    trace_id = new_trace_id()
    response = app.get("/chain", {"n": "1000"}, headers=trace_header(trace_id))
    assert response.json == {
        "service": "frontend",
        "backend": {"n": 1000, "primes": 168, "largest_prime": 997},
    }
    assert response.headers["Server-Timing"].startswith("backend;dur=")
    records = segments_of(daemon, trace_id, 2)
    (root,) = tree(records)
    assert (root.record.service, root.record.name, root.record.status) == (
        "frontend",
        "GET /chain?n=1000",
        200,
    )
    assert root.record.parent_id == PARENT_ID
    (call,) = root.children
    assert call.record.kind == "client"
    assert call.record.name == f"GET {xray_backend}/work?n=1000"
    (served,) = call.children
    assert (served.record.service, served.record.name) == ("backend", "GET /work?n=1000")
    assert [c.record.name for c in served.children] == ["count_primes"]
    assert root.record.start <= call.record.start <= served.record.start
    assert not any(r.fault or r.error for r in records)


def test_unsampled_upstream_decision_holds_downstream(
    daemon: SegmentReceiver, front: XRayTracer, xray_backend: str
) -> None:
    app = frontend(front, xray_backend)
    trace_id = new_trace_id()
    assert app.get("/chain", headers=trace_header(trace_id, sampled=0)).status_int == 200
    marker = new_trace_id()
    app.get("/chain", headers=trace_header(marker))
    assert len(documents_of(daemon, {marker}, 2)) == 2
    assert documents_of(daemon, {trace_id}, 1, timeout=0) == []


@pytest.mark.parametrize("front_sdk", ["xray-sdk", "opentelemetry"])
def test_a_frontend_on_one_sdk_and_a_backend_on_the_other_are_one_trace(
    front_sdk: str,
    daemon: SegmentReceiver,
    front: XRayTracer,
    back: XRayTracer,
    otlp: OtlpReceiver,
) -> None:
    otel = otel_provider(
        "frontend" if front_sdk == "opentelemetry" else "backend", otlp, sampler=None
    )
    caller: Any = front if front_sdk == "xray-sdk" else OtelTracer(otel)
    callee: Any = OtelTracer(otel) if front_sdk == "xray-sdk" else back
    with serving(backend_app(callee)) as url:
        app = frontend(caller, url)
        trace_id = new_trace_id()
        response = app.get("/chain", {"n": "100"}, headers=trace_header(trace_id))
    assert response.json["backend"]["primes"] == 25
    assert response.headers["X-Amzn-Trace-Id"].startswith(f"Root={trace_id}")
    otel.force_flush()
    records = [
        r
        for r in segments_of(daemon, trace_id, 1) + from_otlp(otlp.wait_for_spans(2, 2))
        if r.trace_id == trace_id
    ]
    (root,) = tree(records)
    (call,) = root.children
    (served,) = call.children
    assert (root.record.service, root.record.sdk) == ("frontend", front_sdk)
    assert served.record.service == "backend" and served.record.sdk != front_sdk
    assert served.record.parent_id == call.record.id
    assert [c.record.name for c in served.children] == ["count_primes"]
    assert served.children[0].record.annotations == {"n": 100, "primes": 25}


class _Scripted(BaseHTTPRequestHandler):
    """A backend that answers what the test says: a status, a body, after a delay."""

    protocol_version = "HTTP/1.1"
    status = 200
    body = b'{"n": 2, "primes": 0, "largest_prime": 0}'
    delay = 0.0
    headers_seen: list[str]

    def do_GET(self) -> None:
        self.headers_seen.append(self.headers.get("X-Amzn-Trace-Id", ""))
        time.sleep(self.delay)
        try:
            self.send_response(self.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(self.body)))
            self.end_headers()
            self.wfile.write(self.body)
        except OSError:  # the frontend gave up waiting and closed the connection
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def scripted() -> Iterator[tuple[str, type[_Scripted]]]:
    handler = type("Handler", (_Scripted,), {"headers_seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=2)


def fault_of(
    app: Any, daemon: SegmentReceiver, status: int
) -> tuple[Any, SpanRecord, dict[str, Any]]:
    trace_id = new_trace_id()
    response = app.get("/chain", headers=trace_header(trace_id), status=status)
    (segment,) = documents_of(daemon, {trace_id}, 1)
    (root,) = tree(from_xray([segment]))
    assert root.record.fault and root.record.status == status
    return response, root.children[0].record, segment["subsegments"][0]


@pytest.mark.parametrize(("status", "body"), [(500, b"oops"), (404, b"{}"), (200, b"not json")])
def test_a_failing_backend_is_a_502_and_a_fault_of_the_frontend(
    daemon: SegmentReceiver,
    front: XRayTracer,
    scripted: tuple[str, type[_Scripted]],
    status: int,
    body: bytes,
) -> None:
    url, handler = scripted
    handler.status, handler.body = status, body
    app = frontend(front, url)
    response, call, _ = fault_of(app, daemon, 502)
    assert f"backend answered {status}" in response.json["error"]
    assert call.status == status
    # The backend's own answer decides the client subsegment's flag: 5xx fault, 4xx error.
    assert (call.fault, call.error) == (status >= 500, 400 <= status < 500)


def test_a_slow_backend_is_a_504_within_the_timeout(
    daemon: SegmentReceiver, front: XRayTracer, scripted: tuple[str, type[_Scripted]]
) -> None:
    url, handler = scripted
    handler.delay = TIMEOUT * 3
    app = frontend(front, url)
    began = time.monotonic()
    response, call, raw = fault_of(app, daemon, 504)
    assert time.monotonic() - began < TIMEOUT + 0.25
    assert "backend timeout" in response.json["error"]
    assert call.fault and call.annotations == {"downstream_outcome": "timeout"}
    (cause,) = raw["cause"]["exceptions"]
    assert cause["type"] == "DownstreamTimeoutError" and cause["remote"] is True


def test_a_refused_connection_is_a_502(
    daemon: SegmentReceiver, front: XRayTracer, back: XRayTracer
) -> None:
    with serving(backend_app(back)) as url:
        pass  # the port is closed now
    app = frontend(front, url)
    response, call, _ = fault_of(app, daemon, 502)
    assert "backend unavailable" in response.json["error"]
    assert call.annotations == {"downstream_outcome": "unavailable"}


def test_otel_frontend_records_the_fault_on_its_server_and_client_spans(
    otlp: OtlpReceiver, scripted: tuple[str, type[_Scripted]]
) -> None:
    url, handler = scripted
    handler.delay = TIMEOUT * 3
    provider = otel_provider("frontend", otlp)
    app = frontend(OtelTracer(provider), url)
    trace_id = new_trace_id()
    app.get("/chain", headers=trace_header(trace_id), status=504)
    provider.force_flush()
    records = [r for r in from_otlp(otlp.wait_for_spans(2, 2)) if r.trace_id == trace_id]
    (root,) = tree(records)
    assert (root.record.kind, root.record.status, root.record.fault) == ("server", 504, True)
    (call,) = root.children
    assert call.record.kind == "client" and call.record.fault
    assert call.record.annotations == {"downstream_outcome": "timeout"}
    assert handler.headers_seen[-1].startswith(f"Root={trace_id};Parent={call.record.id};")


@pytest.mark.parametrize("n", ["oops", "0", "1000001"])
def test_bad_n_is_400_without_calling_the_backend(
    front: XRayTracer, scripted: tuple[str, type[_Scripted]], n: str
) -> None:
    url, handler = scripted
    app = frontend(front, url)
    assert "n must be an integer" in app.get("/chain", {"n": n}, status=400).json["error"]
    assert handler.headers_seen == []


def test_the_backend_role_has_no_chain(back: XRayTracer) -> None:
    app = TestApp(backend_app(back))
    assert app.get("/chain", status=404).text == "404 Not Found\n"


class _ClosesIdle(BaseHTTPRequestHandler):
    """Keeps a connection alive for one answer, then drops it without saying so, as a server
    whose idle timeout ran out does."""

    protocol_version = "HTTP/1.1"
    connections: list[int]

    def do_GET(self) -> None:
        self.connections.append(id(self.connection))
        body = json.dumps({"n": 2, "primes": 0, "largest_prime": 0}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_a_kept_alive_connection_the_backend_dropped_is_retried_once() -> None:
    handler: type[_ClosesIdle] = type("Handler", (_ClosesIdle,), {"connections": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        backend = Backend(f"http://127.0.0.1:{server.server_address[1]}", timeout=1)
        answers = [backend.get("/work?n=2", {}).status for _ in range(3)]
        time.sleep(0.05)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=2)
    assert answers == [200, 200, 200]
    assert len(handler.connections) == 3


def test_the_deadline_bounds_a_backend_that_trickles() -> None:
    class Trickle(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            for _ in range(100):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.02)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Trickle)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        backend = Backend(f"http://127.0.0.1:{server.server_address[1]}", timeout=0.2)
        began = time.monotonic()
        with pytest.raises(DownstreamTimeoutError):
            backend.get("/", {})
        assert time.monotonic() - began < 0.35
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=2)
