"""The Bottle routes, traced by the X-Ray SDK's Bottle middleware."""

from __future__ import annotations

import re
from typing import Any

from aws_xray_sdk.ext.bottle.middleware import XRayMiddleware
from bottle import Bottle, request, response

from . import HEALTH_PATH

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


def create_app(recorder: Any) -> Any:
    """A Bottle app whose requests `recorder` (an `AWSXRayRecorder`) traces, except health
    checks: the load balancer and ECS poll them every few seconds and they say nothing."""
    app = Bottle()
    app.install(XRayMiddleware(recorder))

    def hello() -> str:
        response.content_type = _TEXT
        return "Hello X-Ray!"

    def healthz() -> str:
        response.content_type = _TEXT
        return "ok"

    def work() -> dict[str, Any]:
        n = parse_n(request.query.get("n", ""))
        if n is None:
            # Set rather than raised: the middleware records a raised HTTPError as a fault
            # (a server error); a status on the response is recorded as a client error.
            response.status = 400
            return {"error": f"n must be an integer from 2 to {MAX_N}"}
        with recorder.in_subsegment("count_primes") as subsegment:
            primes, largest = count_primes(n)
            subsegment.put_annotation("n", n)
            subsegment.put_annotation("primes", primes)
            subsegment.put_metadata("largest_prime", largest, "work")
        return {"n": n, "primes": primes, "largest_prime": largest}

    app.route("/", "GET", hello)
    app.route(HEALTH_PATH, "GET", healthz, skip=[XRayMiddleware])
    app.route("/work", "GET", work)
    return app
