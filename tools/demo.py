"""`make demo`: the sample app under gunicorn on loopback, a stand-in X-Ray daemon that
decodes its segments, and the Apache Bench experiment of the reference build, with no AWS and
no Docker. Prints the load results, how many requests were sampled, and one line per trace.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

# Run as a script (`python tools/demo.py`): make the repository root importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools.local_service import (
    LoadResult,
    ab_path,
    app_environment,
    free_tcp_port,
    gunicorn_command,
    load,
    running,
)
from tools.xray_receiver import SegmentReceiver, summarize, traces

DAEMON_PORT = 2000
FORCED = {"X-Amzn-Trace-Id": "Sampled=1"}


def start_receiver() -> SegmentReceiver:
    """On the daemon's usual port when it is free, else on any free port."""
    try:
        return SegmentReceiver(port=DAEMON_PORT).start()
    except OSError:
        return SegmentReceiver().start()


def report(label: str, result: LoadResult) -> None:
    # A rate over one or two requests says nothing.
    rate = f"{result.requests_per_second:8.1f} req/s" if result.complete >= 10 else ""
    line = f"  {label:<38} complete {result.complete:>4}  failed {result.failed}"
    print(f"{line}  non-2xx {result.non_2xx:>3}  {rate}".rstrip())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=100, help="requests to / (default 100)")
    parser.add_argument("--work-requests", type=int, default=20, help="requests to /work")
    parser.add_argument("--show", type=int, default=15, help="traces to list (default 15)")
    args = parser.parse_args()

    receiver = start_receiver()
    port = free_tcp_port()
    # One worker, as in the reference build: its reservoir of 1 trace a second is per process.
    env = app_environment(port, receiver.address, WEB_CONCURRENCY="1", WEB_THREADS="4")
    client = "ab" if ab_path() else "built-in client (install apache2-utils for ab)"
    print(f"app: gunicorn on http://127.0.0.1:{port}  daemon stand-in: udp {receiver.address}")
    print(f"load: {client}")
    try:
        with tempfile.TemporaryFile() as app_log:
            with running(gunicorn_command(port), env, port, stdout=app_log, stderr=app_log):
                results = [
                    (f"GET / x{args.requests}", load(port, "/", args.requests, 1)),
                    (
                        f"GET /work?n=50000 x{args.work_requests}",
                        load(port, "/work?n=50000", args.work_requests, 1),
                    ),
                    (
                        "GET /work?n=200000 (forced sampling)",
                        load(port, "/work?n=200000", 1, 1, FORCED),
                    ),
                    (
                        "GET /work?n=oops (forced sampling)",
                        load(port, "/work?n=oops", 1, 1, FORCED),
                    ),
                ]
                documents = receiver.settle()
            app_log.seek(0)
            warnings = [
                line
                for line in app_log.read().decode(errors="replace").splitlines()
                if " WARNING " in line or "Traceback" in line
            ]
    finally:
        receiver.stop()

    total = sum(result.complete + result.failed for _, result in results)
    print(f"\nrequests: {total}")
    for label, result in results:
        report(label, result)
    failed = sum(result.failed for _, result in results)
    print(f"failed requests: {failed}")
    grouped = traces(documents)
    print(f"segments received: {len(documents)} in {len(grouped)} traces")
    print(
        "  sampling: 1 request a second per worker, 5% of the rest;"
        " requests with X-Amzn-Trace-Id Sampled=1 always"
    )
    if receiver.errors:
        print(f"  undecodable datagrams: {len(receiver.errors)} (first: {receiver.errors[0]})")
    print("\ntraces (trace id, segment, request, status, duration, subsegments):")
    for trace in list(grouped.values())[: args.show]:
        for document in trace:
            print(f"  {summarize(document)}")
    if len(grouped) > args.show:
        print(f"  ... {len(grouped) - args.show} more")
    if warnings:
        print("\napp warnings:")
        for line in warnings:
            print(f"  {line}")
    return 0 if failed == 0 and documents and not receiver.errors else 1


if __name__ == "__main__":
    sys.exit(main())
