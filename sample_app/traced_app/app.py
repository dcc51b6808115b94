"""The routes, and the WSGI stack around them: front door (health, access log), then the
tracing SDK's server span, then Bottle.

    GET /          "Hello X-Ray!", as the reference app: no downstream call
    GET /work?n=   counts the primes below n in a span of its own ("count_primes")
    GET /chain?n=  frontend only: GET {BACKEND_URL}/work?n= with the trace context; 502 when
                   the backend fails or answers badly, 504 when it does not answer in time
    GET /healthz   "ok", never traced or logged
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from bottle import Bottle, request, response

from .access_log import FrontDoor, stdout_writer
from .downstream import Backend, DownstreamError
from .settings import Settings
from .tracing import Tracer, WsgiApp

MAX_N = 1_000_000
_DIGITS = re.compile(r"[0-9]{1,7}")
_TEXT = "text/plain; charset=utf-8"


def count_primes(n: int) -> tuple[int, int]:
    """Number of primes below `n`, and the largest of them (0 when there is none)."""
    if n < 3:
        return 0, 0
    sieve = bytearray([1]) * n
    sieve[0] = sieve[1] = 0
    for i in range(2, int(n**0.5) + 1):
        if sieve[i]:
            sieve[i * i :: i] = bytes(len(range(i * i, n, i)))
    return sieve.count(1), sieve.rindex(1)


def parse_n(raw: str) -> int | None:
    """The `n` of /work when it is an integer in 2..MAX_N written in plain digits."""
    if not _DIGITS.fullmatch(raw):
        return None
    n = int(raw)
    return n if 2 <= n <= MAX_N else None


def _bad_n() -> dict[str, str]:
    # Set rather than raised: the tracing layers record a raised HTTPError as a fault (a
    # server error); a status on the response is recorded as a client error.
    response.status = 400
    return {"error": f"n must be an integer from 2 to {MAX_N}"}


def _plain_error(error: Any) -> str:
    response.content_type = _TEXT
    return f"{error.status_line}\n"


def routes(tracer: Tracer, settings: Settings, backend: Backend | None = None) -> Bottle:
    """The Bottle app; `/chain` only when the service has a backend (ROLE=frontend)."""
    app = Bottle()
    # Bottle's error page is a template, which the X-Ray SDK traces as a subsegment; for a
    # 404 there is no segment to put it in, and every such request would log a warning.
    app.default_error_handler = _plain_error

    def hello() -> str:
        response.content_type = _TEXT
        return "Hello X-Ray!"

    def work() -> dict[str, Any]:
        n = parse_n(request.query.get("n", ""))
        if n is None:
            return _bad_n()
        with tracer.span("count_primes") as span:
            primes, largest = count_primes(n)
            span.annotate("n", n)
            span.annotate("primes", primes)
            span.metadata("largest_prime", largest)
        return {"n": n, "primes": primes, "largest_prime": largest}

    app.route("/", "GET", hello)
    app.route("/work", "GET", work)
    if backend is None:
        return app

    def chain() -> dict[str, Any]:
        raw = request.query.get("n")
        n = settings.chain_n if raw is None else parse_n(raw)
        if n is None:
            return _bad_n()
        target = f"/work?n={n}"
        headers = {"User-Agent": f"{settings.service_name} traced_app"}
        began = time.perf_counter()
        with tracer.client(backend.name, "GET", backend.url(target)) as call:
            call.inject(headers)
            try:
                answer = backend.get(target, headers)
            except DownstreamError as error:
                call.failed(error, error.outcome)
                response.status = error.status
                return {"error": f"backend {error.outcome}: {error}", "backend": backend.name}
            call.response(answer.status)
        # How long the backend took, as the caller saw it (in a header: the body of an
        # answer stays the same size from one request to the next).
        response.set_header(
            "Server-Timing", f"backend;dur={(time.perf_counter() - began) * 1000:.2f}"
        )
        try:
            answered = json.loads(answer.body) if answer.status == 200 else None
        except ValueError:
            answered = None
        if not isinstance(answered, dict):
            response.status = 502
            return {
                "error": f"backend answered {answer.status} without the expected JSON",
                "backend": backend.name,
            }
        return {"service": settings.service_name, "backend": answered}

    app.route("/chain", "GET", chain)
    return app


def create_app(
    tracer: Tracer, settings: Settings | None = None, backend: Backend | None = None
) -> WsgiApp:
    """The whole WSGI stack of one service."""
    settings = settings or Settings()
    if backend is None and settings.backend_url is not None:
        backend = Backend(settings.backend_url, settings.downstream_timeout)
    traced = tracer.instrument(routes(tracer, settings, backend))
    return FrontDoor(traced, stdout_writer() if settings.access_log else None)
