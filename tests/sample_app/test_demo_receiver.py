"""The demo's stand-ins: the X-Ray UDP protocol, OTLP/HTTP, trace trees, and ab's report."""

from __future__ import annotations

import gzip
import json
import socket
from typing import Any

import pytest
from aws_xray_sdk.core.models.segment import Segment
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace import SpanKind, Status, StatusCode

from sample_app.traced_app.xray import DaemonEmitter
from tools.local_service import parse_ab
from tools.otlp_receiver import OtlpReceiver, decode_export
from tools.trace_tree import SpanRecord, from_otlp, from_xray, render, services, tree
from tools.xray_receiver import (
    DecodeError,
    SegmentReceiver,
    decode_datagram,
    summarize,
    traces,
)

from .conftest import otel_provider

HEADER = b'{"format":"json","version":1}'
DOCUMENT = {
    "trace_id": "1-5759e988-bd862e3fe1be46a994272793",
    "id": "70de5b6f19ff9a0a",
    "name": "svc",
    "start_time": 1.0,
    "end_time": 1.25,
}


def test_decodes_a_segment() -> None:
    assert decode_datagram(HEADER + b"\n" + json.dumps(DOCUMENT).encode()) == DOCUMENT


def test_header_spacing_does_not_matter() -> None:
    header = b'{"format": "json", "version": 1}'
    assert decode_datagram(header + b"\n" + json.dumps(DOCUMENT).encode())["name"] == "svc"


def test_decodes_what_the_sdk_serializes() -> None:
    segment = Segment("from-sdk")
    segment.close()
    decoded = decode_datagram(HEADER + b"\n" + segment.serialize().encode())
    assert decoded["name"] == "from-sdk"
    assert decoded["trace_id"] == segment.trace_id


@pytest.mark.parametrize(
    ("datagram", "reason"),
    [
        (json.dumps(DOCUMENT).encode(), "no header line"),
        (b"not json\n{}", "header is not JSON"),
        (b'{"format":"json","version":2}\n{}', "unsupported header"),
        (HEADER + b"\n{truncated", "document is not JSON"),
        (HEADER + b"\n[1, 2]", "document is a list"),
        (HEADER + b'\n{"name": "x", "id": "1", "start_time": 1}', "no 'trace_id'"),
    ],
)
def test_rejects_what_is_not_the_protocol(datagram: bytes, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        decode_datagram(datagram)


def test_receiver_decodes_the_emitter_and_keeps_bad_datagrams_apart() -> None:
    with SegmentReceiver() as receiver:
        segment = Segment("over-udp")
        segment.close()
        DaemonEmitter(receiver.address).send_entity(segment)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
            raw.sendto(b"garbage", ("127.0.0.1", receiver.port))
        DaemonEmitter(receiver.address).send_entity(segment)
        documents = receiver.wait_for(2, timeout=2)
    assert [d["name"] for d in documents] == ["over-udp", "over-udp"]
    assert receiver.errors == ["no header line"]


def test_receiver_holds_the_tcp_port_so_sampling_calls_are_refused() -> None:
    with (
        SegmentReceiver() as receiver,
        socket.socket() as client,
        pytest.raises(ConnectionRefusedError),
    ):
        client.connect(("127.0.0.1", receiver.port))


def test_summary_line() -> None:
    document: dict[str, Any] = {
        **DOCUMENT,
        "error": True,
        "http": {
            "request": {"method": "GET", "url": "http://h:80/work?n=5"},
            "response": {"status": 400},
        },
        "subsegments": [{"name": "count_primes", "annotations": {"n": 5, "primes": 2}}],
    }
    assert summarize(document) == (
        "1-5759e988-bd862e3fe1be46a994272793  svc  GET /work?n=5  400 [error]  250.00 ms"
        "  subsegments: count_primes(n=5, primes=2)"
    )
    assert traces([document, DOCUMENT]) == {DOCUMENT["trace_id"]: [document, DOCUMENT]}


AB_REPORT = """\
Server Software:        gunicorn
Document Path:          /
Concurrency Level:      8
Time taken for tests:   0.512 seconds
Complete requests:      1000
Failed requests:        0
Non-2xx responses:      3
Requests per second:    1953.12 [#/sec] (mean)
"""


def test_parses_an_ab_report() -> None:
    result = parse_ab(AB_REPORT, concurrency=8)
    assert (result.complete, result.failed, result.non_2xx) == (1000, 0, 3)
    assert result.requests_per_second == pytest.approx(1953.125)
    assert parse_ab(AB_REPORT.replace("Non-2xx responses:      3\n", ""), 8).non_2xx == 0
    with pytest.raises(ValueError, match="complete"):
        parse_ab("Server Software: x\n", 8)


def test_otlp_receiver_decodes_what_the_exporter_sends(otlp: OtlpReceiver) -> None:
    provider = otel_provider("svc", otlp, sampler=ALWAYS_ON)
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("outer", kind=SpanKind.SERVER) as outer:
        outer.set_attribute("http.method", "GET")
        outer.set_attribute("http.url", "http://h/x?y=1")
        outer.set_attribute("http.status_code", 503)
        outer.set_status(Status(StatusCode.ERROR))
        with tracer.start_as_current_span("inner") as inner:
            inner.set_attribute("n", 5)
            inner.set_attribute("aws.xray.annotations", ["n"])
    provider.force_flush()
    records = from_otlp(otlp.wait_for_spans(2, timeout=2))
    provider.shutdown()
    (root,) = tree(records)
    assert (root.record.name, root.record.status, root.record.fault) == ("GET /x?y=1", 503, True)
    assert root.record.service == "svc" and root.record.sdk == "opentelemetry"
    assert root.record.trace_id.startswith("1-") and len(root.record.trace_id) == 35
    (child,) = root.children
    assert (child.record.name, child.record.annotations) == ("inner", {"n": 5})
    assert otlp.errors == []


def test_otlp_decoding_takes_gzip_and_rejects_what_is_not_otlp() -> None:
    request = ExportTraceServiceRequest()
    request.resource_spans.add().scope_spans.add().spans.add(name="s", trace_id=b"\1" * 16)
    body = request.SerializeToString()
    assert decode_export(gzip.compress(body), "gzip") == request
    with pytest.raises(ValueError, match="not an ExportTraceServiceRequest"):
        decode_export(b"\xff\xff\xff")
    with pytest.raises(ValueError, match="unsupported Content-Encoding"):
        decode_export(body, "br")


def test_a_mixed_trace_is_one_tree_and_draws_as_a_waterfall() -> None:
    trace_id = "1-5759e988-bd862e3fe1be46a994272793"
    frontend = {
        "trace_id": trace_id,
        "id": "aaaaaaaaaaaaaaaa",
        "name": "frontend",
        "start_time": 10.0,
        "end_time": 10.004,
        "http": {
            "request": {"method": "GET", "url": "http://f/chain"},
            "response": {"status": 200},
        },
        "subsegments": [
            {
                "id": "bbbbbbbbbbbbbbbb",
                "name": "backend:8080",
                "namespace": "remote",
                "start_time": 10.001,
                "end_time": 10.003,
                "http": {"request": {"method": "GET", "url": "http://backend:8080/work?n=9"}},
            }
        ],
    }
    backend = SpanRecord(
        trace_id=trace_id,
        id="cccccccccccccccc",
        parent_id="bbbbbbbbbbbbbbbb",
        service="backend",
        name="GET /work?n=9",
        kind="server",
        start=10.0015,
        end=10.0025,
        sdk="opentelemetry",
        status=200,
    )
    records = [*from_xray([frontend]), backend]
    (root,) = tree(records)
    assert services([root]) == ["frontend [xray-sdk]", "backend [opentelemetry]"]
    lines = render(records, width=8)
    assert lines[0] == (
        f"trace {trace_id}  frontend [xray-sdk] -> backend [opentelemetry]  4.00 ms, 3 spans"
    )
    assert "GET /chain" in lines[1] and lines[1].endswith("|########|")
    assert "(unavailable)" not in lines[2]
    assert "`- GET http://backend:8080/work?n=9" in lines[2]
    assert "   `- GET /work?n=9" in lines[3] and " backend " in lines[3]
    assert lines[3].endswith("|   ##   |")
