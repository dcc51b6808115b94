"""Fixtures for the sample app: a fresh recorder per app, a real UDP stand-in daemon."""

from __future__ import annotations

import logging
import secrets
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

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
from sample_app.traced_app.tracing import (  # noqa: E402
    POLLER_LOGGERS,
    PollerFailureFilter,
    TracingSettings,
    configure_recorder,
)
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
        return TestApp(create_app(recorder))

    return make


@pytest.fixture(scope="session")
def app(shared_daemon: SegmentReceiver) -> Any:
    """One app for the tests that need no sampler state of their own: building a recorder
    costs a few tenths of a second (the SDK creates botocore clients)."""
    recorder = AWSXRayRecorder()
    configure_recorder(recorder, TracingSettings(SERVICE, shared_daemon.address))
    return TestApp(create_app(recorder))


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
