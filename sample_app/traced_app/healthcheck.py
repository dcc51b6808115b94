"""Container health probe: `python -m traced_app.healthcheck`.

Exits 0 if and only if GET http://127.0.0.1:$PORT/healthz answers 200 within 2 seconds. The
slim image has no curl, and this imports nothing but the standard library, so the probe ECS
runs every few seconds stays cheap.
"""

from __future__ import annotations

import http.client
import os
import sys
import time

from . import DEFAULT_PORT, HEALTH_PATH

TIMEOUT_SECONDS = 2.0


def probe(port: int, timeout: float = TIMEOUT_SECONDS) -> bool:
    deadline = time.monotonic() + timeout
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", HEALTH_PATH, headers={"User-Agent": "healthcheck"})
        remaining = deadline - time.monotonic()
        if remaining <= 0 or connection.sock is None:
            return False
        connection.sock.settimeout(remaining)
        status = connection.getresponse().status
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()
    return status == 200 and time.monotonic() <= deadline


def main() -> int:
    try:
        port = int(os.environ.get("PORT", DEFAULT_PORT))
    except ValueError:
        return 1
    return 0 if probe(port) else 1


if __name__ == "__main__":
    sys.exit(main())
