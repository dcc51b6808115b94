"""TRACING_SDK=opentelemetry: what reaches the collector (read off a real OTLP/HTTP receiver),
the X-Ray-compatible ids and header, the sampler, and quiet failures."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Sequence
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import Decision
from webtest import TestApp

from sample_app.traced_app.app import create_app
from sample_app.traced_app.otel import (
    OtelTracer,
    QuietExporter,
    ReservoirThenRatioSampler,
    xray_trace_id,
)
from sample_app.traced_app.settings import Settings
from tools.otlp_receiver import OtlpReceiver
from tools.trace_tree import from_otlp, tree

from .conftest import PARENT_ID, new_trace_id, otel_provider, trace_header


def otel_app(provider: Any) -> Any:
    return TestApp(create_app(OtelTracer(provider), Settings(service_name="svc", access_log=False)))


def test_server_and_work_spans_reach_the_collector(otlp: OtlpReceiver) -> None:
    provider = otel_provider("svc", otlp)
    app = otel_app(provider)
    trace_id = new_trace_id()
    response = app.get("/work", {"n": "1000"}, headers=trace_header(trace_id))
    assert response.json["primes"] == 168
    assert response.headers["X-Amzn-Trace-Id"] == f"Root={trace_id};Sampled=1"
    provider.force_flush()
    requests = otlp.wait_for_spans(2, timeout=2)
    resource = requests[0].resource_spans[0].resource
    assert {a.key: a.value.string_value for a in resource.attributes}["service.name"] == "svc"
    (root,) = tree([r for r in from_otlp(requests) if r.trace_id == trace_id])
    assert (root.record.kind, root.record.name, root.record.status) == (
        "server",
        "GET /work?n=1000",
        200,
    )
    # The caller's subsegment id is the parent: the X-Ray propagator read the header.
    assert root.record.parent_id == PARENT_ID
    (work,) = root.children
    assert work.record.name == "count_primes"
    assert work.record.annotations == {"n": 1000, "primes": 168}
    provider.shutdown()


def test_new_traces_get_x_ray_trace_ids_and_the_response_says_so(otlp: OtlpReceiver) -> None:
    provider = otel_provider("svc", otlp)
    header = otel_app(provider).get("/").headers["X-Amzn-Trace-Id"]
    root, sampled = header.split(";")
    assert root.startswith("Root=1-") and sampled in ("Sampled=0", "Sampled=1")
    epoch = int(root.split("-")[1], 16)
    assert abs(epoch - time.time()) < 60  # X-Ray rejects ids whose time is far off
    provider.shutdown()


def test_unsampled_upstream_records_nothing(otlp: OtlpReceiver) -> None:
    provider = otel_provider("svc", otlp)
    app = otel_app(provider)
    trace_id = new_trace_id()
    response = app.get("/work", {"n": "10"}, headers=trace_header(trace_id, sampled=0))
    assert response.headers["X-Amzn-Trace-Id"] == f"Root={trace_id};Sampled=0"
    provider.force_flush()
    assert not [r for r in from_otlp(otlp.requests) if r.trace_id == trace_id]
    provider.shutdown()


def test_disabled_sdk_serves_and_sends_nothing(otlp: OtlpReceiver) -> None:
    app = otel_app(trace.NoOpTracerProvider())
    response = app.get("/work", {"n": "10"})
    assert response.json["primes"] == 4
    assert "X-Amzn-Trace-Id" not in response.headers
    # An upstream trace passes through untouched (no span of this service in it).
    trace_id = new_trace_id()
    response = app.get("/work", {"n": "10"}, headers=trace_header(trace_id))
    assert response.headers["X-Amzn-Trace-Id"] == f"Root={trace_id};Sampled=1"
    assert otlp.requests == []


def test_sampler_takes_a_reservoir_each_second_then_the_rate() -> None:
    now = [1000.2]
    sampler = ReservoirThenRatioSampler(fixed_target=2, rate=0.0, clock=lambda: now[0])
    decisions = [sampler.should_sample(None, 1, "GET").decision for _ in range(4)]
    assert decisions == [Decision.RECORD_AND_SAMPLE] * 2 + [Decision.DROP] * 2
    now[0] = 1001.0
    assert sampler.should_sample(None, 1, "GET").decision == Decision.RECORD_AND_SAMPLE
    always = ReservoirThenRatioSampler(fixed_target=0, rate=1.0)
    assert always.should_sample(None, 12345, "GET").decision == Decision.RECORD_AND_SAMPLE
    shipped = ReservoirThenRatioSampler.from_rules()
    assert (shipped.fixed_target, shipped.rate) == (1, 0.05)


def test_x_ray_trace_id_form() -> None:
    assert xray_trace_id(0x5759E988BD862E3FE1BE46A994272793) == (
        "1-5759e988-bd862e3fe1be46a994272793"
    )


class _Flaky(SpanExporter):
    def __init__(self) -> None:
        self.up = False
        self.calls = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.calls += 1
        if not self.up:
            logging.getLogger("opentelemetry.exporter.otlp.proto.http.trace_exporter").error(
                "Failed to export spans batch code: None, reason: Connection refused"
            )
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def test_an_outage_is_one_warning_and_batches_are_dropped_until_a_retry(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    now = [0.0]
    inner = _Flaky()
    with socket.socket() as listening:  # the collector's port is open; its answers are not
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        url = f"http://127.0.0.1:{listening.getsockname()[1]}/v1/traces"
        exporter = QuietExporter(inner, url, 5, clock=lambda: now[0])
        for step in range(6):  # 0, 1, ..., 5 s: tries at 0 and 5, drops the rest at once
            now[0] = float(step)
            assert exporter.export([]) is SpanExportResult.FAILURE
        assert inner.calls == 2
        inner.up = True
        now[0] = 11.0
        assert exporter.export([]) is SpanExportResult.SUCCESS
    lines = [(r.name, r.levelno, r.getMessage()) for r in caplog.records]
    assert lines == [
        (
            "sample_app.traced_app.otel",
            logging.WARNING,
            f"dropping spans: cannot export to the collector at {url}"
            " (Failed to export spans batch code: None, reason: Connection refused);"
            " trying again every 5 s",
        ),
        (
            "sample_app.traced_app.otel",
            logging.WARNING,
            f"exporting spans to the collector at {url} again",
        ),
    ]
