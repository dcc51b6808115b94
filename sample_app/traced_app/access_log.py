"""The outermost WSGI layer: health checks answered at once, and one access-log line per
other request, with the trace id the tracing layer put on the response.

Health checks (the load balancer's and the container's, every few seconds per task) are
neither traced nor logged: they would bury the requests that matter. The access log is the
app's own, so it reads the same whichever server runs the app:

    10.0.1.17 "GET /chain?n=5000 HTTP/1.1" 200 97 3.1ms "curl/8.5.0" Root=1-...;Sampled=1

Sampled=1 means the trace of that request is in X-Ray under that id; Sampled=0 that it was
not recorded (the sampling rule left it out).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from . import HEALTH_PATH
from .tracing import SAMPLED_ENVIRON_KEY, TRACE_HEADER, StartResponse, WsgiApp

_HEALTH_BODY = b"ok"
_HEALTH_HEADERS = [
    ("Content-Type", "text/plain; charset=utf-8"),
    ("Content-Length", str(len(_HEALTH_BODY))),
]
_TRACE_HEADER = TRACE_HEADER.lower()


def stdout_writer(fd: int = 1) -> Callable[[str], None]:
    """Writes each line with one write() to `fd` (stdout): no logging machinery, no buffer,
    and a line shorter than the pipe buffer is never interleaved with another."""

    def write(line: str) -> None:
        data = (line + "\n").encode(errors="replace")
        while data:
            data = data[os.write(fd, data) :]

    return write


class FrontDoor:
    """Health checks answered without touching the app; everything else passed to it and,
    when `write` is given, logged through it when its response is done."""

    def __init__(self, app: WsgiApp, write: Callable[[str], None] | None) -> None:
        self.app = app
        self.write = write

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == HEALTH_PATH and environ.get("REQUEST_METHOD") == "GET":
            start_response("200 OK", list(_HEALTH_HEADERS))
            return [_HEALTH_BODY]
        if self.write is None:
            return self.app(environ, start_response)
        began = time.perf_counter()
        seen: list[Any] = [None, None]

        def capture(status: str, headers: list[tuple[str, str]], *exc_info: Any) -> Any:
            seen[0], seen[1] = status, headers
            return start_response(status, headers, *exc_info)

        try:
            body = self.app(environ, capture)
        except BaseException:
            self._log(environ, "500", None, 0, began)
            raise
        if isinstance(body, list):
            self._log(environ, seen[0], seen[1], sum(map(len, body)), began)
            return body
        return _LoggedBody(self, body, environ, seen, began)

    def _log(
        self,
        environ: dict[str, Any],
        status: str | None,
        headers: list[tuple[str, str]] | None,
        size: int,
        began: float,
    ) -> None:
        trace = "-"
        for name, value in headers or ():
            if name.lower() == _TRACE_HEADER:
                trace = value
                break
        sampled = environ.get(SAMPLED_ENVIRON_KEY)
        if sampled is not None and "Sampled=" not in trace:
            trace += f";Sampled={int(sampled)}"
        query = environ.get("QUERY_STRING")
        target = environ.get("PATH_INFO", "") + (f"?{query}" if query else "")
        assert self.write is not None
        remote = environ.get("REMOTE_ADDR", "-")
        request = (
            f"{environ.get('REQUEST_METHOD', '-')} {target} {environ.get('SERVER_PROTOCOL', '-')}"
        )
        code = (status or "500").split(" ", 1)[0]
        took = (time.perf_counter() - began) * 1000
        agent = environ.get("HTTP_USER_AGENT", "-")
        self.write(f'{remote} "{request}" {code} {size} {took:.1f}ms "{agent}" {trace}')


class _LoggedBody:
    """A streamed body: logged once the server closes it (PEP 3333 says it must)."""

    def __init__(
        self,
        door: FrontDoor,
        body: Iterable[bytes],
        environ: dict[str, Any],
        seen: list[Any],
        began: float,
    ) -> None:
        self._door, self._body, self._environ = door, body, environ
        self._seen, self._began = seen, began
        self._size = 0
        self._logged = False

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._body:
            self._size += len(chunk)
            yield chunk

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            if not self._logged:
                self._logged = True
                self._door._log(
                    self._environ, self._seen[0], self._seen[1], self._size, self._began
                )
