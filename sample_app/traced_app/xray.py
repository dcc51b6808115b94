"""The X-Ray SDK side of the tracing seam: how the recorder is set up (segment names,
sampling, where segments go) and how the app's spans map onto segments and subsegments.

The app must keep serving whatever the daemon does. The SDK's own emitter logs a traceback
for every segment it fails to send, and its sampling-rule pollers log one every time the daemon
does not answer; here a failure is reported as one line, once per outage or interval.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import botocore.session
import bottle
from aws_xray_sdk import global_sdk_config
from aws_xray_sdk.core import patch, xray_recorder
from aws_xray_sdk.core.daemon_config import DaemonConfig
from aws_xray_sdk.core.emitters.udp_emitter import PROTOCOL_DELIMITER, PROTOCOL_HEADER
from aws_xray_sdk.core.models import http
from aws_xray_sdk.core.patcher import SUPPORTED_MODULES
from aws_xray_sdk.ext.bottle.middleware import XRayMiddleware
from aws_xray_sdk.ext.util import inject_trace_header
from botocore import UNSIGNED
from botocore.config import Config

from .settings import Settings
from .tracing import SAMPLED_ENVIRON_KEY, WsgiApp

DEFAULT_SERVICE_NAME = "traced-fargate-sample"
DEFAULT_DAEMON_ADDRESS = "127.0.0.1:2000"
SAMPLING_RULES = Path(__file__).with_name("sampling_rules.json")

# The rule poller asks for rules every 5 minutes; one report per poll interval is enough.
POLLER_REPORT_INTERVAL = 300.0
POLLER_LOGGERS = (
    "aws_xray_sdk.core.sampling.rule_poller",
    "aws_xray_sdk.core.sampling.target_poller",
)

log = logging.getLogger(__name__)


class Entity(Protocol):
    """The part of an X-Ray segment or subsegment that an emitter uses."""

    def serialize(self) -> str: ...


@dataclass(frozen=True)
class TracingSettings:
    service_name: str = DEFAULT_SERVICE_NAME
    # "host:port" for both UDP and TCP, or "tcp:host:port udp:host:port" (the SDK's forms).
    daemon_address: str = DEFAULT_DAEMON_ADDRESS

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> TracingSettings:
        return cls(
            service_name=environ.get("SERVICE_NAME") or DEFAULT_SERVICE_NAME,
            daemon_address=environ.get("AWS_XRAY_DAEMON_ADDRESS") or DEFAULT_DAEMON_ADDRESS,
        )


class DaemonEmitter:
    """Sends finished segments to the daemon over UDP, never blocking a request.

    A send that fails (oversized document, full socket buffer, unresolvable address) drops
    that segment and the request goes on; the first failure of an outage is logged once,
    without a traceback.
    """

    def __init__(self, daemon_address: str) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.setblocking(False)
        self._failing = False
        self.set_daemon_address(daemon_address)

    @property
    def address(self) -> tuple[str, int]:
        return self._address

    def set_daemon_address(self, daemon_address: str | None) -> None:
        # The recorder calls this with None when it is configured without an address.
        if daemon_address:
            config = DaemonConfig(daemon_address)
            self._address = (config.udp_ip, config.udp_port)

    def send_entity(self, entity: Entity) -> None:
        # The daemon's protocol: a header line, then one segment document, as the SDK sends.
        payload = f"{PROTOCOL_HEADER}{PROTOCOL_DELIMITER}{entity.serialize()}".encode()
        try:
            self._socket.sendto(payload, self._address)
        except OSError as error:
            if not self._failing:
                self._failing = True
                log.warning(
                    "dropping trace segments: cannot send to the X-Ray daemon at %s:%d (%s)",
                    *self._address,
                    error,
                )
            return
        if self._failing:
            self._failing = False
            log.warning("sending trace segments to the X-Ray daemon again")


class PollerFailureFilter(logging.Filter):
    """Turns a sampling poller's error-with-traceback into a one-line warning, at most one per
    `interval` seconds: the poller tries again on its own schedule, and the sampler goes on
    with the rules it has meanwhile."""

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._interval = interval
        self._clock = clock
        self._last_report: float | None = None
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info is None:
            return True
        # The record passed the logger's level as an error: as a warning it might not.
        if not logging.getLogger(record.name).isEnabledFor(logging.WARNING):
            return False
        now = self._clock()
        with self._lock:
            if self._last_report is not None and now - self._last_report < self._interval:
                return False
            self._last_report = now
        error = record.exc_info[1]
        record.args = (record.getMessage(), type(error).__name__, error)
        record.msg = (
            "%s %s: %s; sampling goes on with the rules already loaded"
            " (the local ones until the daemon answers)"
        )
        record.exc_info = None
        record.exc_text = None
        record.levelno = logging.WARNING
        record.levelname = logging.getLevelName(logging.WARNING)
        return True


def quiet_sampling_pollers(interval: float = POLLER_REPORT_INTERVAL) -> None:
    for name in POLLER_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, PollerFailureFilter) for f in logger.filters):
            logger.addFilter(PollerFailureFilter(interval))


@functools.cache
def _botocore_session() -> Any:
    """One session per process: each new one reads the service models from disk again."""
    return botocore.session.get_session()


def sampling_client(daemon_address: str) -> Any:
    """The client the sampler asks for centralized rules through the daemon's TCP port.

    One attempt with short timeouts: the daemon is on loopback, and a failed poll only means
    the local rules apply until the next one, so retries would merely hold the poller thread.
    The daemon signs the calls, so the client sends no credentials.
    """
    config = DaemonConfig(daemon_address)
    return _botocore_session().create_client(
        "xray",
        endpoint_url=f"http://{config.tcp_ip}:{config.tcp_port}",
        # Never used for routing (the endpoint is explicit), but botocore requires one.
        region_name="us-east-1",
        config=Config(
            signature_version=UNSIGNED,
            connect_timeout=1,
            read_timeout=2,
            retries={"total_max_attempts": 1},
        ),
    )


def configure_recorder(
    recorder: Any,
    settings: TracingSettings,
    sampling_rules: Path = SAMPLING_RULES,
) -> None:
    """Configure an `AWSXRayRecorder` for the service. Run it before `patch_all()`."""
    # Unsampled requests get real trace ids too (the SDK's default is all zeros): the access
    # log line and the response header then name the request, and the backend is told
    # "not sampled" about a valid trace, which an OpenTelemetry backend honours as well.
    os.environ.setdefault("AWS_XRAY_NOOP_ID", "false")
    quiet_sampling_pollers()
    recorder.sampler.xray_client = sampling_client(settings.daemon_address)
    recorder.configure(
        service=settings.service_name,
        plugins=("ECSPlugin",),
        # Outside a request (startup, background threads) there is no segment to attach a
        # patched library call to: skip it silently instead of raising or logging an error.
        context_missing="IGNORE_ERROR",
        sampling_rules=str(sampling_rules),
        daemon_address=settings.daemon_address,
        emitter=DaemonEmitter(settings.daemon_address),
    )


# Everything `patch_all()` would patch but http.client: the one outgoing call makes its own
# subsegment (`XRayTracer.client`), and the SDK's http.client patch would nest a second one
# inside it and overwrite its trace header.
PATCHED_MODULES = tuple(m for m in SUPPORTED_MODULES if m != "httplib")


class _Subsegment:
    """`tracing.Span` on an X-Ray subsegment (None or a dummy when not sampled)."""

    def __init__(self, entity: Any) -> None:
        self._entity = entity

    def annotate(self, key: str, value: str | int | float | bool) -> None:
        if self._entity is not None:
            self._entity.put_annotation(key, value)

    def metadata(self, key: str, value: Any) -> None:
        if self._entity is not None:
            self._entity.put_metadata(key, value, "app")


class _RemoteCall:
    """`tracing.ClientCall` on a remote subsegment."""

    def __init__(self, subsegment: Any) -> None:
        self._subsegment = subsegment

    def inject(self, headers: dict[str, str]) -> None:
        # With the SDK disabled the subsegment is a placeholder: send no header at all
        # rather than one that tells the backend "not sampled".
        if self._subsegment is not None and global_sdk_config.sdk_enabled():
            inject_trace_header(headers, self._subsegment)

    def response(self, status: int) -> None:
        if self._subsegment is not None:
            # 5xx marks the subsegment as a fault, 4xx as an error, 429 as throttled.
            self._subsegment.put_http_meta(http.STATUS, status)

    def failed(self, error: BaseException, outcome: str) -> None:
        if self._subsegment is not None:
            # A fault with the exception as its cause, flagged as coming from the remote call.
            self._subsegment.add_exception(error, [], remote=True)
            self._subsegment.put_annotation("downstream_outcome", outcome)


class XRayTracer:
    """`tracing.Tracer` on the X-Ray SDK: the Bottle middleware makes one segment per request
    (named SERVICE_NAME), `span` and `client` make subsegments of it."""

    sdk = "xray-sdk"

    def __init__(self, recorder: Any) -> None:
        self.recorder = recorder

    @classmethod
    def from_settings(cls, settings: Settings) -> XRayTracer:
        configure_recorder(
            xray_recorder, TracingSettings(settings.service_name, settings.xray_daemon_address)
        )
        patch(PATCHED_MODULES, raise_errors=False)
        return cls(xray_recorder)

    def instrument(self, app: Any) -> WsgiApp:
        app.install(XRayMiddleware(self.recorder))
        app.install(self._note_sampling)
        wsgi: WsgiApp = app
        return wsgi

    def _note_sampling(self, callback: Callable[..., Any]) -> Callable[..., Any]:
        """A Bottle plugin inside the segment: it leaves the sampling decision in the WSGI
        environ for the access log (the SDK's response header says only Root=...)."""

        def noted(*args: Any, **kwargs: Any) -> Any:
            segment = self.recorder.current_segment()
            if segment is not None:
                bottle.request.environ[SAMPLED_ENVIRON_KEY] = bool(segment.sampled)
            return callback(*args, **kwargs)

        return noted

    @contextmanager
    def span(self, name: str) -> Iterator[_Subsegment]:
        with self.recorder.in_subsegment(name) as subsegment:
            yield _Subsegment(subsegment)

    @contextmanager
    def client(self, name: str, method: str, url: str) -> Iterator[_RemoteCall]:
        subsegment = self.recorder.begin_subsegment(name, "remote")
        if subsegment is not None:
            subsegment.put_http_meta(http.METHOD, method)
            subsegment.put_http_meta(http.URL, url)
        try:
            yield _RemoteCall(subsegment)
        finally:
            if subsegment is not None:
                self.recorder.end_subsegment()

    def shutdown(self) -> None:
        """Nothing is buffered: each segment is sent over UDP as it ends."""
