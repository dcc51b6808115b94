"""The OpenTelemetry side of the tracing seam: spans over OTLP/HTTP to the collector sidecar.

What keeps it one trace with services still on the X-Ray SDK: trace ids from the X-Ray id
generator (their first 32 bits are the start time, as X-Ray requires), and the X-Ray
propagator, which reads and writes `X-Amzn-Trace-Id` (`Root=1-...;Parent=...;Sampled=1`).
Sampling follows the same rule file as the X-Ray SDK's local sampler (1 request a second,
then 5 %) unless OTEL_TRACES_SAMPLER names another; a sampled or unsampled upstream decision
is always kept (parent-based).

As with the X-Ray side, the app keeps serving when the collector is away: failed exports are
reported as one warning per outage, and batches are dropped without waiting while it lasts.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware
from opentelemetry.propagators.aws import AwsXRayPropagator
from opentelemetry.sdk.extension.aws.resource.ecs import AwsEcsResourceDetector
from opentelemetry.sdk.extension.aws.trace import AwsXRayIdGenerator
from opentelemetry.sdk.resources import Resource, get_aggregated_resources
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import (
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
    _get_from_env_or_default,
)
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes

from .settings import Settings
from .tracing import TRACE_HEADER, WsgiApp

SAMPLING_RULES = Path(__file__).with_name("sampling_rules.json")
TRACES_PATH = "/v1/traces"
# The collector is on loopback: an export that takes longer is a collector that is not there.
EXPORT_TIMEOUT_SECONDS = 2.0
# While exports fail, one batch in this many seconds tries again; the others are dropped.
RETRY_INTERVAL_SECONDS = 5.0
EXPORTER_LOGGERS = (
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.common.http",
)
# The X-Ray exporter of the collector makes these span attributes annotations (indexed,
# searchable with filter expressions); other attributes become metadata.
XRAY_ANNOTATIONS_KEY = "aws.xray.annotations"

log = logging.getLogger(__name__)


class ReservoirThenRatioSampler(Sampler):
    """The X-Ray sampling rule as the SDK's local sampler applies it: the first
    `fixed_target` root requests of each second, then `rate` of the rest."""

    def __init__(
        self, fixed_target: int, rate: float, clock: Callable[[], float] = time.time
    ) -> None:
        self.fixed_target = fixed_target
        self.rate = rate
        self._ratio = TraceIdRatioBased(rate)
        self._clock = clock
        self._second = -1
        self._taken = 0
        self._lock = threading.Lock()

    @classmethod
    def from_rules(cls, path: Path = SAMPLING_RULES) -> ReservoirThenRatioSampler:
        default = json.loads(path.read_text())["default"]
        return cls(int(default["fixed_target"]), float(default["rate"]))

    def should_sample(  # noqa: PLR0917 (the Sampler interface)
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        second = int(self._clock())
        with self._lock:
            if second != self._second:
                self._second, self._taken = second, 0
            if self._taken < self.fixed_target:
                self._taken += 1
                return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes, trace_state)
        return self._ratio.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return f"ReservoirThenRatio{{{self.fixed_target}/s, {self.rate}}}"


def sampler_from_environ(environ: dict[str, str] | os._Environ[str]) -> Sampler:
    """OTEL_TRACES_SAMPLER when set (the SDK's names), else the shipped rule, parent-based."""
    if environ.get("OTEL_TRACES_SAMPLER"):
        return _get_from_env_or_default()
    return ParentBased(root=ReservoirThenRatioSampler.from_rules())


class _Suppressed(logging.Filter):
    """Keeps the exporter's own lines (a warning per retry, an error per batch) out of the
    log; `QuietExporter` reports the outage instead, with the first reason seen here. One
    instance on the exporter's loggers; the reason is kept per thread (the export thread)."""

    def __init__(self) -> None:
        super().__init__()
        self._local = threading.local()

    @property
    def reason(self) -> str:
        return getattr(self._local, "reason", "")

    @reason.setter
    def reason(self, value: str) -> None:
        self._local.reason = value

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        if not self.reason:
            self.reason = record.getMessage()
        return False


_SUPPRESSED = _Suppressed()


def _suppress_exporter_logs() -> _Suppressed:
    for name in EXPORTER_LOGGERS:
        logger = logging.getLogger(name)
        if _SUPPRESSED not in logger.filters:
            logger.addFilter(_SUPPRESSED)
    return _SUPPRESSED


class QuietExporter(SpanExporter):
    """An exporter that fails quietly: the first failed export of an outage logs one warning
    (no traceback), the first success after it one more; while exports fail, batches are
    dropped at once except one every `retry_interval` seconds, so the export thread never
    queues up behind a collector that is not there."""

    def __init__(
        self,
        inner: SpanExporter,
        endpoint: str,
        retry_interval: float = RETRY_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.inner = inner
        self.endpoint = endpoint
        self.retry_interval = retry_interval
        self._clock = clock
        self._failing = False
        self._next_try = 0.0
        self.dropped = 0
        self._filter = _suppress_exporter_logs()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._failing and self._clock() < self._next_try:
            self.dropped += len(spans)
            return SpanExportResult.FAILURE
        self._filter.reason = ""
        try:
            result = self.inner.export(spans)
        except Exception as error:  # an exporter must not take the export thread down
            self._filter.reason = self._filter.reason or f"{type(error).__name__}: {error}"
            result = SpanExportResult.FAILURE
        if result is SpanExportResult.SUCCESS:
            if self._failing:
                self._failing = False
                log.warning("exporting spans to the collector at %s again", self.endpoint)
            return result
        self.dropped += len(spans)
        self._next_try = self._clock() + self.retry_interval
        if not self._failing:
            self._failing = True
            log.warning(
                "dropping spans: cannot export to the collector at %s (%s); trying again"
                " every %g s",
                self.endpoint,
                self._diagnose(),
                self.retry_interval,
            )
        return result

    def _diagnose(self) -> str:
        """Why the export failed, for the one warning: nothing listening (the usual case: the
        sidecar is not up yet, or gone), or what the exporter said about the answer."""
        parts = urlsplit(self.endpoint)
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
            with socket.create_connection((parts.hostname or "", port), timeout=0.5):
                pass
        except (OSError, ValueError) as error:
            return f"cannot connect: {error}"
        return self._filter.reason or "no reason given"

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


def xray_trace_id(trace_id: int) -> str:
    """An OpenTelemetry trace id in X-Ray's form: `1-<8 hex: start time>-<24 hex>`."""
    hex_id = f"{trace_id:032x}"
    return f"1-{hex_id[:8]}-{hex_id[8:]}"


def response_trace_header(span: trace.Span) -> str:
    """The `X-Amzn-Trace-Id` value a traced response carries, as the X-Ray SDK writes it."""
    context = span.get_span_context()
    return f"Root={xray_trace_id(context.trace_id)};Sampled={int(context.trace_flags.sampled)}"


class _Span:
    """`tracing.Span` on an OpenTelemetry span."""

    def __init__(self, span: trace.Span) -> None:
        self._span = span
        self._annotations: list[str] = []

    def annotate(self, key: str, value: str | int | float | bool) -> None:
        if self._span.is_recording():
            self._span.set_attribute(key, value)
            self._annotations.append(key)
            self._span.set_attribute(XRAY_ANNOTATIONS_KEY, self._annotations)

    def metadata(self, key: str, value: Any) -> None:
        if self._span.is_recording():
            self._span.set_attribute(key, value)


class _ClientCall:
    """`tracing.ClientCall` on a client span (HTTP semantic conventions)."""

    def __init__(self, span: trace.Span) -> None:
        self._span = span

    def inject(self, headers: dict[str, str]) -> None:
        # The propagator writes the current context: this client span, as the parent of the
        # backend's server span, with its sampling decision.
        propagate.inject(headers)

    def response(self, status: int) -> None:
        self._span.set_attribute("http.response.status_code", status)
        if status >= 400:
            self._span.set_status(Status(StatusCode.ERROR))
            self._span.set_attribute("error.type", str(status))

    def failed(self, error: BaseException, outcome: str) -> None:
        self._span.record_exception(error)
        self._span.set_status(Status(StatusCode.ERROR, f"{outcome}: {error}"))
        self._span.set_attribute("error.type", type(error).__qualname__)
        self._span.set_attribute("downstream_outcome", outcome)
        self._span.set_attribute(XRAY_ANNOTATIONS_KEY, ["downstream_outcome"])


class OtelTracer:
    """`tracing.Tracer` on OpenTelemetry: the WSGI middleware makes a server span per request
    (the X-Ray segment, named after `service.name`), `span` internal spans, `client` client
    spans (remote subsegments)."""

    sdk = "opentelemetry"

    def __init__(self, provider: TracerProvider | trace.TracerProvider) -> None:
        self.provider = provider
        self.tracer = provider.get_tracer("traced_app")

    @classmethod
    def from_settings(cls, settings: Settings) -> OtelTracer:
        provider = build_provider(settings.service_name, settings.otlp_endpoint)
        trace.set_tracer_provider(provider)
        return cls(provider)

    def instrument(self, app: Any) -> WsgiApp:
        def add_trace_header(
            span: trace.Span,
            environ: dict[str, Any],
            status: str,
            headers: list[tuple[str, str]],
        ) -> None:
            if span.get_span_context().is_valid:
                headers.append((TRACE_HEADER, response_trace_header(span)))

        return OpenTelemetryMiddleware(
            app, response_hook=add_trace_header, tracer_provider=self.provider
        )

    @contextmanager
    def span(self, name: str) -> Iterator[_Span]:
        with self.tracer.start_as_current_span(name) as span:
            yield _Span(span)

    @contextmanager
    def client(self, name: str, method: str, url: str) -> Iterator[_ClientCall]:
        parts = urlsplit(url)
        attributes: dict[str, str | int] = {
            "http.request.method": method,
            "url.full": url,
            "server.address": parts.hostname or "",
            "peer.service": name,
        }
        if parts.port:
            attributes["server.port"] = parts.port
        with self.tracer.start_as_current_span(
            f"{method} {name}", kind=SpanKind.CLIENT, attributes=attributes
        ) as span:
            yield _ClientCall(span)

    def shutdown(self) -> None:
        shutdown = getattr(self.provider, "shutdown", None)
        if shutdown is not None:
            shutdown()


def install_propagator() -> None:
    """X-Amzn-Trace-Id in and out, for every instrumentation in the process."""
    propagate.set_global_textmap(AwsXRayPropagator())


def build_provider(
    service_name: str,
    endpoint: str,
    *,
    exporter: SpanExporter | None = None,
    sampler: Sampler | None = None,
    environ: dict[str, str] | os._Environ[str] = os.environ,
    export_timeout: float = EXPORT_TIMEOUT_SECONDS,
) -> TracerProvider:
    """A provider that batches spans to the collector's OTLP/HTTP endpoint (`endpoint` is its
    base URL, as OTEL_EXPORTER_OTLP_ENDPOINT; `/v1/traces` is added). OTEL_SDK_DISABLED=true
    makes every span a no-op, as the SDK defines it."""
    install_propagator()
    resource = get_aggregated_resources(
        [AwsEcsResourceDetector()], Resource.create({"service.name": service_name})
    )
    provider = TracerProvider(
        resource=resource,
        sampler=sampler or sampler_from_environ(environ),
        id_generator=AwsXRayIdGenerator(),
    )
    if exporter is None:
        timeout_set = environ.get("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT") or environ.get(
            "OTEL_EXPORTER_OTLP_TIMEOUT"
        )
        url = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or endpoint + TRACES_PATH
        exporter = QuietExporter(
            OTLPSpanExporter(endpoint=url, timeout=None if timeout_set else export_timeout),
            url,
        )
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider
