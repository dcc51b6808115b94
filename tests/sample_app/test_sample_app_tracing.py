"""What the app sends to the X-Ray daemon, read off a real UDP socket on loopback."""

from __future__ import annotations

import json
import logging
import re
import socket
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from aws_xray_sdk import global_sdk_config
from aws_xray_sdk.core.sampling.local.sampler import LocalSampler

from sample_app.traced_app.xray import (
    SAMPLING_RULES,
    DaemonEmitter,
    PollerFailureFilter,
    TracingSettings,
)
from tools.xray_receiver import SegmentReceiver

from .conftest import (
    PARENT_ID,
    SERVICE,
    AppFactory,
    documents_of,
    new_trace_id,
    nothing_sent_for,
    trace_header,
)

TRACE_ID_FORMAT = re.compile(r"1-[0-9a-f]{8}-[0-9a-f]{24}")


def traced_get(app: Any, daemon: SegmentReceiver, path: str, **kwargs: Any) -> dict[str, Any]:
    """GET with a forced-sampled new trace; the one segment the daemon got for it."""
    trace_id = new_trace_id()
    app.get(path, headers={**trace_header(trace_id), **kwargs.pop("headers", {})}, **kwargs)
    (segment,) = documents_of(daemon, {trace_id}, 1)
    return segment


def documents_after_marker(app: Any, daemon: SegmentReceiver) -> list[dict[str, Any]]:
    """Every document the daemon got before a forced-sampled marker request sent last."""
    marker = new_trace_id()
    app.get("/", headers=trace_header(marker))
    assert documents_of(daemon, {marker}, 1)
    return [d for d in daemon.documents if d["trace_id"] != marker]


def test_segment_fields(app: Any, shared_daemon: SegmentReceiver) -> None:
    segment = traced_get(app, shared_daemon, "/", headers={"User-Agent": "pytest"})
    assert segment["name"] == SERVICE
    assert TRACE_ID_FORMAT.fullmatch(segment["trace_id"])
    assert re.fullmatch(r"[0-9a-f]{16}", segment["id"])
    assert segment["end_time"] >= segment["start_time"]
    assert segment["http"]["request"]["method"] == "GET"
    assert segment["http"]["request"]["url"] == "http://localhost:80/"
    assert segment["http"]["request"]["user_agent"] == "pytest"
    assert segment["http"]["response"]["status"] == 200
    assert segment["origin"] == "AWS::ECS::Container"
    assert segment["aws"]["ecs"]["container"] == socket.gethostname()
    assert not segment.get("error") and not segment.get("fault")


def test_work_has_an_annotated_subsegment(app: Any, shared_daemon: SegmentReceiver) -> None:
    segment = traced_get(app, shared_daemon, "/work", params={"n": "1000"})
    assert segment["http"]["request"]["url"] == "http://localhost:80/work?n=1000"
    (subsegment,) = segment["subsegments"]
    assert subsegment["name"] == "count_primes"
    assert subsegment["annotations"] == {"n": 1000, "primes": 168}
    assert subsegment["metadata"] == {"app": {"largest_prime": 997}}
    assert segment["start_time"] <= subsegment["start_time"] <= subsegment["end_time"]
    assert subsegment["end_time"] <= segment["end_time"]


def test_bad_input_is_a_client_error_not_a_fault(app: Any, shared_daemon: SegmentReceiver) -> None:
    segment = traced_get(app, shared_daemon, "/work", params={"n": "x"}, status=400)
    assert segment["http"]["response"]["status"] == 400
    assert segment["error"] is True
    assert not segment.get("fault")
    assert "subsegments" not in segment


def test_incoming_trace_header_is_continued(app: Any, shared_daemon: SegmentReceiver) -> None:
    trace_id = new_trace_id()
    response = app.get("/", headers=trace_header(trace_id, sampled=1))
    (segment,) = documents_of(shared_daemon, {trace_id}, 1)
    assert segment["parent_id"] == PARENT_ID
    assert response.headers["X-Amzn-Trace-Id"] == f"Root={trace_id}"


def test_sampled_0_sends_nothing(app: Any, shared_daemon: SegmentReceiver) -> None:
    sent = {new_trace_id() for _ in range(10)}
    for trace_id in sent:
        app.get("/", headers=trace_header(trace_id, sampled=0))
        app.get("/work", {"n": "50"}, headers=trace_header(trace_id, sampled=0))
    assert nothing_sent_for(app, shared_daemon, sent)


def test_health_checks_send_nothing(app: Any, shared_daemon: SegmentReceiver) -> None:
    # Forced sampling would make any segment of /healthz visible.
    sent = {new_trace_id() for _ in range(10)}
    for trace_id in sent:
        app.get("/healthz", headers=trace_header(trace_id, sampled=1))
    assert nothing_sent_for(app, shared_daemon, sent)


def test_requests_without_trace_context_start_new_traces(
    app: Any, shared_daemon: SegmentReceiver
) -> None:
    # Every response names its own new trace; the reservoir records the first request of
    # every second: keep asking until two have been recorded.
    deadline = time.monotonic() + 3
    roots: set[str] = set()
    recorded: list[dict[str, Any]] = []
    while time.monotonic() < deadline and len(recorded) < 2:
        header = app.get("/").headers["X-Amzn-Trace-Id"]
        assert header.startswith("Root=")
        roots.add(header.removeprefix("Root="))
        recorded = documents_of(shared_daemon, roots, 2, timeout=0.05)
    assert len(recorded) >= 2
    assert all(TRACE_ID_FORMAT.fullmatch(root) for root in roots)


def test_keeps_serving_when_no_daemon_listens(
    make_app: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as closed:
        closed.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{closed.getsockname()[1]}"
    app = make_app(address)
    caplog.set_level(logging.DEBUG, logger="sample_app")
    for _ in range(20):
        assert app.get("/").text == "Hello X-Ray!"
        assert (
            app.get("/work", {"n": "100"}, headers=trace_header(new_trace_id())).json["primes"]
            == 25
        )
    # Nobody answers the sampling-rule call on the TCP side either: one line, no traceback.
    poller = "aws_xray_sdk.core.sampling.rule_poller"
    deadline = time.monotonic() + 5
    while not any(r.name == poller for r in caplog.records) and time.monotonic() < deadline:
        time.sleep(0.02)
    reports = [r for r in caplog.records if r.name == poller]
    assert reports
    for report in reports:
        assert report.levelno == logging.WARNING
        assert report.exc_info is None
        assert "EndpointConnectionError" in report.getMessage()
    # (The target pollers of earlier tests' recorders may report here too: not this app's.)
    ours = [r for r in caplog.records if not r.name.endswith("target_poller")]
    assert all(r.levelno < logging.ERROR and r.exc_info is None for r in ours)


def test_tracing_disabled_serves_and_sends_nothing(
    app: Any, shared_daemon: SegmentReceiver
) -> None:
    sent = {new_trace_id() for _ in range(5)}
    global_sdk_config.set_sdk_enabled(False)
    try:
        for trace_id in sent:
            response = app.get("/work", {"n": "100"}, headers=trace_header(trace_id))
            assert response.json["primes"] == 25
    finally:
        global_sdk_config.set_sdk_enabled(True)
    assert nothing_sent_for(app, shared_daemon, sent)


def test_a_burst_is_sampled_by_the_default_rule(
    make_app: AppFactory, daemon: SegmentReceiver
) -> None:
    app = make_app(daemon.address)
    began = time.time()
    for _ in range(100):
        app.get("/")
    ended = time.time()
    # One request a second from the reservoir (two when the burst straddles a second), and
    # 5% of the others: P(Binomial(100, 0.05) >= 20) is about 1e-7.
    reservoir = int(ended) - int(began) + 1
    sampled = len(documents_after_marker(app, daemon))
    assert 1 <= sampled <= reservoir + 19


def test_shipped_rules_are_the_x_ray_default() -> None:
    rules = json.loads(SAMPLING_RULES.read_text())
    assert rules == {"version": 2, "rules": [], "default": {"fixed_target": 1, "rate": 0.05}}
    LocalSampler(rules)  # the SDK accepts them


def test_configured_rules_file_decides(
    make_app: AppFactory, daemon: SegmentReceiver, tmp_path: Path
) -> None:
    never = tmp_path / "never.json"
    never.write_text(json.dumps({"version": 2, "default": {"fixed_target": 0, "rate": 0.0}}))
    app = make_app(daemon.address, sampling_rules=never)
    for _ in range(20):
        app.get("/")
    assert documents_after_marker(app, daemon) == []


class _SamplingApi(BaseHTTPRequestHandler):
    """The daemon's TCP side: it proxies the X-Ray sampling API."""

    rules: ClassVar[dict[str, Any]] = {
        "SamplingRuleRecords": [
            {
                "SamplingRule": {
                    "RuleName": "central-work",
                    "RuleARN": "arn:aws:xray:us-east-1:111122223333:sampling-rule/central-work",
                    "ResourceARN": "*",
                    "Priority": 1,
                    "FixedRate": 1.0,
                    "ReservoirSize": 0,
                    "ServiceName": "*",
                    "ServiceType": "*",
                    "Host": "*",
                    "HTTPMethod": "GET",
                    "URLPath": "/work",
                    "Version": 1,
                    "Attributes": {},
                },
                "CreatedAt": 1700000000,
                "ModifiedAt": 1700000000,
            }
        ]
    }
    paths: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        _SamplingApi.paths.append(self.path)
        body = json.dumps(self.rules if self.path == "/GetSamplingRules" else {}).encode()
        self.send_response(200 if self.path == "/GetSamplingRules" else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def sampling_api() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SamplingApi)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=2)


def test_centralized_rules_come_through_the_daemon(
    make_app: AppFactory, daemon: SegmentReceiver, sampling_api: int
) -> None:
    app = make_app(f"tcp:127.0.0.1:{sampling_api} udp:127.0.0.1:{daemon.port}")
    # The pollers start with the first sampling decision and fetch the rules at once.
    deadline = time.monotonic() + 5
    by_central_rule: list[dict[str, Any]] = []
    while not by_central_rule and time.monotonic() < deadline:
        app.get("/work", {"n": "10"})
        documents = daemon.wait_for(len(daemon.documents) + 1, timeout=0.05)
        by_central_rule = [
            d for d in documents if d["aws"]["xray"].get("sampling_rule_name") == "central-work"
        ]
    assert "/GetSamplingRules" in _SamplingApi.paths
    assert by_central_rule, "no segment was sampled by the daemon's rule"
    # The rule samples every /work request (rate 1.0).
    before = len(daemon.settle(quiet=0.1))
    for _ in range(10):
        app.get("/work", {"n": "10"})
    after = daemon.wait_for(before + 10, timeout=2)[before:]
    assert [d["aws"]["xray"]["sampling_rule_name"] for d in after] == ["central-work"] * 10


class _Document:
    def __init__(self, size: int) -> None:
        self.size = size

    def serialize(self) -> str:
        document = {"trace_id": new_trace_id(), "id": "a" * 16, "name": "n", "start_time": 1.0}
        return json.dumps({**document, "pad": "x" * self.size})


def test_emitter_reports_a_failed_send_once_without_traceback(
    daemon: SegmentReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    emitter = DaemonEmitter(daemon.address)
    caplog.set_level(logging.DEBUG, logger="sample_app.traced_app.tracing")
    too_big = _Document(70_000)  # over the 65,507-byte limit of a UDP datagram
    for _ in range(3):
        emitter.send_entity(too_big)
    emitter.send_entity(_Document(10))
    emitter.send_entity(too_big)
    assert len(daemon.wait_for(1, timeout=2)) == 1
    messages = [(r.levelno, r.getMessage(), r.exc_info) for r in caplog.records]
    assert len(messages) == 3
    assert all(level == logging.WARNING and exc is None for level, _, exc in messages)
    assert "Message too long" in messages[0][1]
    assert "again" in messages[1][1]
    assert "Message too long" in messages[2][1]


def test_emitter_takes_the_sdk_address_forms(daemon: SegmentReceiver) -> None:
    assert DaemonEmitter("127.0.0.1:2000").address == ("127.0.0.1", 2000)
    emitter = DaemonEmitter(f"tcp:127.0.0.1:9 udp:127.0.0.1:{daemon.port}")
    assert emitter.address == ("127.0.0.1", daemon.port)
    emitter.set_daemon_address(None)
    assert emitter.address == ("127.0.0.1", daemon.port)


def _poller_error(
    message: str = "Encountered an issue while polling sampling rules.", name: str = "poller"
) -> Any:
    try:
        raise ConnectionRefusedError(111, "Connection refused")
    except ConnectionRefusedError:
        return logging.LogRecord(name, logging.ERROR, __file__, 1, message, None, sys.exc_info())


def test_poller_failures_become_one_line_per_interval() -> None:
    now = [1000.0]
    poller_filter = PollerFailureFilter(interval=300, clock=lambda: now[0])
    first = _poller_error()
    assert poller_filter.filter(first)
    assert first.levelno == logging.WARNING and first.levelname == "WARNING"
    assert first.exc_info is None
    assert first.getMessage() == (
        "Encountered an issue while polling sampling rules. ConnectionRefusedError: "
        "[Errno 111] Connection refused; sampling goes on with the rules already loaded"
        " (the local ones until the daemon answers)"
    )
    now[0] += 299
    assert not poller_filter.filter(_poller_error())
    now[0] += 2
    assert poller_filter.filter(_poller_error())
    # A logger set to errors only gets no warning.
    quiet = logging.getLogger("tests.sample_app.errors_only")
    quiet.setLevel(logging.ERROR)
    now[0] += 301
    assert not poller_filter.filter(_poller_error(name=quiet.name))
    assert poller_filter.filter(_poller_error())
    # Records without a traceback (the pollers' debug and info lines) pass untouched.
    plain = logging.LogRecord("poller", logging.INFO, __file__, 1, "fetched", None, None)
    assert poller_filter.filter(plain) and plain.getMessage() == "fetched"


def test_settings_from_environment() -> None:
    assert TracingSettings.from_environ({}) == TracingSettings(
        "traced-fargate-sample", "127.0.0.1:2000"
    )
    assert TracingSettings.from_environ(
        {"SERVICE_NAME": "orders", "AWS_XRAY_DAEMON_ADDRESS": "10.0.0.5:3000"}
    ) == TracingSettings("orders", "10.0.0.5:3000")
