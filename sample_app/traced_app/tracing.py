"""The tracing seam: what the app asks of a tracing SDK, whichever one TRACING_SDK selects.

The routes never import an SDK. They open spans for their own work (`span`), and wrap the
one outgoing call in `client`, which puts the trace context on its headers and records its
outcome. `xray.XRayTracer` maps this onto the X-Ray SDK (segments, subsegments, annotations),
`otel.OtelTracer` onto OpenTelemetry (server, internal and client spans, attributes). Both
speak the `X-Amzn-Trace-Id` header with X-Ray trace ids, so a frontend on one SDK and a
backend on the other are one trace.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from typing import Any, Protocol

from .settings import Settings

TRACE_HEADER = "X-Amzn-Trace-Id"
# Where a tracer may leave its sampling decision for the access log, when its response header
# does not carry it.
SAMPLED_ENVIRON_KEY = "traced_app.sampled"

# PEP 3333 in the types the app uses.
StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class Span(Protocol):
    """A unit of the app's own work: an X-Ray subsegment or an OpenTelemetry span."""

    def annotate(self, key: str, value: str | int | float | bool) -> None:
        """A searchable value (X-Ray annotation; OTel attribute listed as an annotation)."""

    def metadata(self, key: str, value: Any) -> None:
        """A value kept with the trace but not indexed (X-Ray metadata; OTel attribute)."""


class ClientCall(Protocol):
    """The outgoing call to the backend, as seen by the caller's trace."""

    def inject(self, headers: dict[str, str]) -> None:
        """Put the trace context on the request's headers (X-Amzn-Trace-Id)."""

    def response(self, status: int) -> None:
        """The backend answered with this status (5xx is the backend's fault, 4xx an error)."""

    def failed(self, error: BaseException, outcome: str) -> None:
        """No usable answer: the call timed out, was refused or broke (`outcome` names it)."""


class Tracer(Protocol):
    """One tracing SDK, set up for the service."""

    sdk: str

    def instrument(self, app: Any) -> WsgiApp:
        """The Bottle app with a server span (segment) around every request it serves."""

    def span(self, name: str) -> AbstractContextManager[Span]:
        """A span for in-process work, a child of the request's."""

    def client(self, name: str, method: str, url: str) -> AbstractContextManager[ClientCall]:
        """A client span for an outgoing HTTP call to `url`, named after its target."""

    def shutdown(self) -> None:
        """Send what is still buffered (at process exit)."""


def build_tracer(settings: Settings) -> Tracer:
    """The tracer TRACING_SDK selects; only that SDK is imported."""
    # Imported here, not at the top: a service loads the SDK it runs and not the other.
    if settings.tracing_sdk == "opentelemetry":
        from .otel import OtelTracer  # noqa: PLC0415

        return OtelTracer.from_settings(settings)
    from .xray import XRayTracer  # noqa: PLC0415

    return XRayTracer.from_settings(settings)
