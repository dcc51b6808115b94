"""A stand-in for the collector's OTLP/HTTP receiver, on loopback: it decodes what the
OpenTelemetry exporter sends.

`POST /v1/traces` with a protobuf `ExportTraceServiceRequest` body (gzip or not), answered
with an empty `ExportTraceServiceResponse`, as the collector does. Decoding is the
opentelemetry-proto package's, so what is read here is what a collector reads.
"""

from __future__ import annotations

import gzip
import threading
import time
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

TRACES_PATH = "/v1/traces"
MAX_BODY = 16 << 20


def decode_export(body: bytes, encoding: str | None = None) -> ExportTraceServiceRequest:
    """One export request's body, as the collector would read it."""
    if encoding == "gzip":
        body = gzip.decompress(body)
    elif encoding == "deflate":
        body = zlib.decompress(body)
    elif encoding not in (None, "", "identity"):
        raise ValueError(f"unsupported Content-Encoding {encoding!r}")
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except Exception as error:  # protobuf's DecodeError, or whatever a broken body raises
        raise ValueError(f"not an ExportTraceServiceRequest: {error}") from error
    return request


@dataclass
class OtlpReceiver:
    """Receives OTLP/HTTP trace exports on a loopback TCP port in a background thread."""

    host: str = "127.0.0.1"
    port: int = 0
    requests: list[ExportTraceServiceRequest] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    # The status every export is answered with (503: a collector that refuses work).
    status: int = 200

    def __post_init__(self) -> None:
        receiver = self
        self._arrived = threading.Condition()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(min(length, MAX_BODY))
                if self.path != TRACES_PATH:
                    self._answer(404, b"")
                    return
                if receiver.status != 200:
                    self._answer(receiver.status, b"")
                    return
                try:
                    decoded = decode_export(body, self.headers.get("Content-Encoding"))
                except ValueError as error:
                    with receiver._arrived:
                        receiver.errors.append(str(error))
                    self._answer(400, b"")
                    return
                with receiver._arrived:
                    receiver.requests.append(decoded)
                    receiver._arrived.notify_all()
                self._answer(200, ExportTraceServiceResponse().SerializeToString())

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="otlp-receiver",
            daemon=True,
        )

    @property
    def endpoint(self) -> str:
        """The value for OTEL_EXPORTER_OTLP_ENDPOINT (the exporter adds /v1/traces)."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> OtlpReceiver:
        self._thread.start()
        return self

    def __enter__(self) -> OtlpReceiver:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=2)
        self._server.server_close()

    def span_count(self) -> int:
        return sum(
            len(scope.spans)
            for request in self.requests
            for resource in request.resource_spans
            for scope in resource.scope_spans
        )

    def wait_for_spans(self, count: int, timeout: float) -> list[ExportTraceServiceRequest]:
        """The requests received so far, once they hold `count` spans or `timeout` passed."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while self.span_count() < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._arrived.wait(remaining)
            return list(self.requests)

    def settle(self, quiet: float = 0.2, timeout: float = 3.0) -> list[ExportTraceServiceRequest]:
        """The requests received once nothing has arrived for `quiet` seconds."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            seen = -1
            while seen != len(self.requests) and time.monotonic() < deadline:
                seen = len(self.requests)
                self._arrived.wait(min(quiet, max(deadline - time.monotonic(), 0)))
            return list(self.requests)
