"""The frontend's HTTP client for its backend: kept-alive connections, one deadline per call.

Every call ends by its deadline (DOWNSTREAM_TIMEOUT_SECONDS from its start), however the
backend behaves: each socket operation (connect, send, every read) gets only the time that
is left. What can go wrong ends up as one of two exceptions, which the route maps to a status:
`DownstreamTimeoutError` (504: the backend did not answer in time) and `DownstreamUnavailableError`
(502: refused, reset, closed, or not HTTP). A backend status is returned as it is.

A kept-alive connection that the backend closed while it sat idle fails on first use; that
call is sent once more on a new connection (GET is idempotent, and nothing was answered).
"""

from __future__ import annotations

import http.client
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_BODY_BYTES = 1 << 20
IDLE_CONNECTIONS = 32


class DownstreamError(Exception):
    """The backend gave no usable answer."""

    status = 502
    outcome = "unavailable"


class DownstreamTimeoutError(DownstreamError):
    status = 504
    outcome = "timeout"


class DownstreamUnavailableError(DownstreamError):
    status = 502
    outcome = "unavailable"


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    headers: Mapping[str, str]


# The connection went away before any answer: safe to send again on a fresh connection.
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


class Backend:
    """GET requests to one base URL (`http://host:port`), at most `timeout` seconds each."""

    def __init__(self, base_url: str, timeout: float, idle: int = IDLE_CONNECTIONS) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL with a host: {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.name = parts.netloc
        self.timeout = timeout
        self._connection_class: type[http.client.HTTPConnection] = (
            http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        )
        self._idle: deque[http.client.HTTPConnection] = deque()
        self._max_idle = idle

    def url(self, target: str) -> str:
        return self.base_url + target

    def get(self, target: str, headers: Mapping[str, str]) -> Response:
        deadline = time.monotonic() + self.timeout
        try:
            return self._get(target, headers, deadline)
        except DownstreamError:
            raise
        except TimeoutError as error:
            raise DownstreamTimeoutError(f"no answer within {self.timeout:g} s") from error
        except (OSError, http.client.HTTPException) as error:
            raise DownstreamUnavailableError(f"{type(error).__name__}: {error}") from error

    def _get(self, target: str, headers: Mapping[str, str], deadline: float) -> Response:
        for attempt in range(2):
            connection, reused = self._acquire(deadline)
            try:
                response = self._exchange(connection, target, headers, deadline)
            except _STALE:
                connection.close()
                if reused and attempt == 0 and time.monotonic() < deadline:
                    continue
                raise
            except BaseException:
                connection.close()
                raise
            self._release(connection, response)
            return response[0]
        raise AssertionError("unreachable")  # pragma: no cover

    def _exchange(
        self,
        connection: http.client.HTTPConnection,
        target: str,
        headers: Mapping[str, str],
        deadline: float,
    ) -> tuple[Response, bool]:
        if connection.sock is None:
            connection.timeout = _remaining(deadline)
            connection.connect()
        sock = connection.sock
        assert sock is not None
        sock.settimeout(_remaining(deadline))
        connection.request("GET", target, headers=dict(headers))
        sock.settimeout(_remaining(deadline))
        answer = connection.getresponse()
        chunks: list[bytes] = []
        size = 0
        # read1: at most one receive per call, so that the deadline is checked between them
        # (read(n) would wait for all n bytes, however slowly they come).
        while answer.length is None or answer.length > 0:
            sock.settimeout(_remaining(deadline))
            chunk = answer.read1(65536)
            if not chunk:
                break
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise DownstreamUnavailableError(f"answer larger than {MAX_BODY_BYTES} bytes")
            chunks.append(chunk)
        # Done with this answer: the connection can carry the next request.
        answer.close()
        _remaining(deadline)
        response = Response(
            answer.status, b"".join(chunks), {k.lower(): v for k, v in answer.getheaders()}
        )
        return response, not answer.will_close

    def _acquire(self, deadline: float) -> tuple[http.client.HTTPConnection, bool]:
        try:
            return self._idle.pop(), True
        except IndexError:
            return self._connection_class(self.host, self.port, timeout=_remaining(deadline)), False

    def _release(
        self, connection: http.client.HTTPConnection, response: tuple[Response, bool]
    ) -> None:
        if response[1] and connection.sock is not None and len(self._idle) < self._max_idle:
            self._idle.append(connection)
        else:
            connection.close()

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("deadline passed")
    return left
