"""Fixtures for the sample app: a fresh recorder per app, a real UDP stand-in daemon."""

from __future__ import annotations

import logging
import secrets
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The app is imported as `sample_app.traced_app` (mypy sees the same name), the demo's
# receiver as `tools.xray_receiver`: both need the repository root on the path.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from aws_xray_sdk.core.recorder import AWSXRayRecorder  # noqa: E402

with warnings.catch_warnings():
    # webob (under webtest) still imports the `cgi` module, deprecated since Python 3.11.
    warnings.simplefilter("ignore", DeprecationWarning)
    from webtest import TestApp

from sample_app.traced_app.app import create_app  # noqa: E402
from sample_app.traced_app.otel import build_provider  # noqa: E402
from sample_app.traced_app.settings import Settings  # noqa: E402
from sample_app.traced_app.xray import (  # noqa: E402
    POLLER_LOGGERS,
    PollerFailureFilter,
    TracingSettings,
    XRayTracer,
    configure_recorder,
)
from tools.otlp_receiver import OtlpReceiver  # noqa: E402
from tools.xray_receiver import SegmentReceiver  # noqa: E402

SERVICE = "sample-under-test"
PARENT_ID = "53995c3f42cd8ad8"


@pytest.fixture(autouse=True)
def _isolated_tracing(monkeypatch: pytest.MonkeyPatch) -> None:
    """No SDK setting from the caller's environment, and no poller-log filter left from an
    earlier test (a filter keeps the time of its last report). Filters are left in place
    afterwards: the pollers of earlier tests' recorders go on in the background."""
    for name in (
        "AWS_XRAY_DAEMON_ADDRESS",
        "AWS_XRAY_TRACING_NAME",
        "AWS_XRAY_CONTEXT_MISSING",
        "AWS_XRAY_SDK_ENABLED",
        "SERVICE_NAME",
    ):
        monkeypatch.delenv(name, raising=False)

    for name in POLLER_LOGGERS:
        logger = logging.getLogger(name)
        for installed in [f for f in logger.filters if isinstance(f, PollerFailureFilter)]:
            logger.removeFilter(installed)


@pytest.fixture
def daemon() -> Iterator[SegmentReceiver]:
    with SegmentReceiver() as receiver:
        yield receiver


@pytest.fixture(scope="session")
def shared_daemon() -> Iterator[SegmentReceiver]:
    """The daemon of `app`. Tests that share it tell their documents apart by trace id."""
    with SegmentReceiver() as receiver:
        yield receiver


AppFactory = Callable[..., Any]


@pytest.fixture
def make_app() -> AppFactory:
    """A webtest app for a daemon address, with a recorder of its own configured as in
    production (keyword arguments go to `configure_recorder`)."""

    def make(daemon_address: str, **options: Any) -> Any:
        recorder = AWSXRayRecorder()
        configure_recorder(recorder, TracingSettings(SERVICE, daemon_address), **options)
        return TestApp(xray_app(recorder))

    return make


@pytest.fixture(scope="session")
def app(shared_daemon: SegmentReceiver) -> Any:
    """One app for the tests that need no sampler state of their own: building a recorder
    costs a few tenths of a second (the SDK creates botocore clients)."""
    recorder = AWSXRayRecorder()
    configure_recorder(recorder, TracingSettings(SERVICE, shared_daemon.address))
    return TestApp(xray_app(recorder))


def xray_app(recorder: Any, **settings: Any) -> Any:
    """The whole WSGI stack on the X-Ray SDK (access log off unless asked for)."""
    return create_app(
        XRayTracer(recorder), Settings(service_name=SERVICE, access_log=False, **settings)
    )


def trace_header(trace_id: str, sampled: int | None = 1) -> dict[str, str]:
    value = f"Root={trace_id};Parent={PARENT_ID}"
    if sampled is not None:
        value += f";Sampled={sampled}"
    return {"X-Amzn-Trace-Id": value}


def new_trace_id() -> str:
    return f"1-{int(time.time()):08x}-{secrets.token_hex(12)}"


def documents_of(
    daemon: SegmentReceiver, trace_ids: set[str], count: int, timeout: float = 2.0
) -> list[dict[str, Any]]:
    """The documents of these traces, once there are `count` of them or `timeout` passed."""
    deadline = time.monotonic() + timeout
    while True:
        found = [d for d in daemon.documents if d["trace_id"] in trace_ids]
        if len(found) >= count or time.monotonic() >= deadline:
            return found
        daemon.wait_for(len(daemon.documents) + 1, timeout=0.05)


def nothing_sent_for(app: Any, daemon: SegmentReceiver, trace_ids: set[str]) -> bool:
    """Whether none of these traces reached the daemon, known once a forced-sampled marker
    request sent after them arrived (the app sends before it answers; no sleep needed)."""
    marker = new_trace_id()
    app.get("/", headers=trace_header(marker))
    assert documents_of(daemon, {marker}, 1), "the marker request never arrived"
    return not documents_of(daemon, trace_ids, 1, timeout=0)


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """A WSGI app on a loopback port in a thread (wsgiref: a connection per request), for
    the frontend's calls to reach; its base URL."""
    server = make_server("127.0.0.1", 0, app, ThreadingWSGIServer, _QuietHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=2)


class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def otel_provider(service: str, receiver: OtlpReceiver, **options: Any) -> Any:
    """A provider as in production (X-Ray ids, the shipped sampler, OTLP/HTTP) to `receiver`;
    `provider.force_flush()` sends what it holds."""
    return build_provider(service, receiver.endpoint, environ={}, **options)


@pytest.fixture
def otlp() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as receiver:
        yield receiver
