"""`make demo [TRACING=xray-sdk|opentelemetry|mixed]`: the two-service chain on loopback,
with stand-ins for the tracing sidecar, no AWS and no Docker.

It starts a backend and a frontend (each `python -m traced_app.serve`, the container's
command), a receiver that decodes X-Ray segments (UDP, the daemon's protocol) and one that
decodes OTLP/HTTP spans (the collector's port 4318 protocol), drives a bounded load through
`GET /chain`, stops the backend to show a fault, and prints each sampled trace as a tree.
`mixed` runs the frontend on the X-Ray SDK and the backend on OpenTelemetry: still one trace.
"""

from __future__ import annotations

import argparse
import http.client
import secrets
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

# Run as a script (`python tools/demo.py`): make the repository root importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools.local_service import (
    HOST,
    LoadResult,
    ab_path,
    app_environment,
    free_tcp_port,
    load,
    running,
    serve_command,
    stop,
)
from tools.otlp_receiver import OtlpReceiver
from tools.trace_tree import SpanRecord, from_otlp, from_xray, group, render, services, tree
from tools.xray_receiver import SegmentReceiver

DAEMON_PORT = 2000
OTLP_PORT = 4318
SDKS = {
    "xray-sdk": ("xray-sdk", "xray-sdk"),
    "opentelemetry": ("opentelemetry", "opentelemetry"),
    "mixed": ("xray-sdk", "opentelemetry"),
}
CHAIN = "/chain?n=20000"


def start_receivers(stack: ExitStack) -> tuple[SegmentReceiver, OtlpReceiver]:
    """On the sidecar's usual ports when they are free, else on any free port."""
    try:
        segments = SegmentReceiver(port=DAEMON_PORT)
    except OSError:
        segments = SegmentReceiver()
    try:
        spans = OtlpReceiver(port=OTLP_PORT)
    except OSError:
        spans = OtlpReceiver()
    return stack.enter_context(segments), stack.enter_context(spans)


def forced_get(port: int, path: str) -> tuple[int, str]:
    """One request with a sampled trace header of its own (as a caller that sampled it)."""
    trace_id = f"1-{int(time.time()):08x}-{secrets.token_hex(12)}"
    header = f"Root={trace_id};Parent={secrets.token_hex(8)};Sampled=1"
    connection = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        connection.request("GET", path, headers={"X-Amzn-Trace-Id": header})
        response = connection.getresponse()
        response.read()
        return response.status, trace_id
    finally:
        connection.close()


def arrived(
    trace_ids: list[str], segments: SegmentReceiver, spans: OtlpReceiver, timeout: float
) -> bool:
    """Whether both services' parts of these traces came in within `timeout` seconds (each
    service sends its own, when its batch or segment is done)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        grouped = group(from_xray(list(segments.documents)) + from_otlp(list(spans.requests)))
        if all(len({r.service for r in grouped.get(t, [])}) >= 2 for t in trace_ids):
            return True
        time.sleep(0.05)
    return False


def report(label: str, result: LoadResult) -> None:
    rate = f"{result.requests_per_second:8.1f} req/s" if result.complete >= 10 else ""
    line = f"  {label:<34} complete {result.complete:>4}  failed {result.failed}"
    print(f"{line}  non-2xx {result.non_2xx:>3}  {rate}".rstrip())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tracing", choices=sorted(SDKS), default="xray-sdk")
    parser.add_argument("--requests", type=int, default=200, help="requests to /chain and /")
    parser.add_argument("--show", type=int, default=3, help="chain traces to draw (default 3)")
    args = parser.parse_args()
    front_sdk, back_sdk = SDKS[args.tracing]

    with ExitStack() as stack:
        segments, spans = start_receivers(stack)
        logs = stack.enter_context(tempfile.TemporaryFile())
        back_port, front_port = free_tcp_port(), free_tcp_port()
        back_env = app_environment(
            back_port, segments.address, sdk=back_sdk, otlp_endpoint=spans.endpoint,
            ROLE="backend", SERVICE_NAME="backend", WEB_CONCURRENCY="1",
            OTEL_BSP_SCHEDULE_DELAY="100",
        )  # fmt: skip
        front_env = app_environment(
            front_port, segments.address, sdk=front_sdk, otlp_endpoint=spans.endpoint,
            ROLE="frontend", SERVICE_NAME="frontend", BACKEND_URL=f"http://{HOST}:{back_port}",
            DOWNSTREAM_TIMEOUT_SECONDS="1", WEB_CONCURRENCY="1", OTEL_BSP_SCHEDULE_DELAY="100",
        )  # fmt: skip
        print(f"backend:  {back_sdk:<13} http://{HOST}:{back_port}")
        print(f"frontend: {front_sdk:<13} http://{HOST}:{front_port}  -> backend")
        print(f"receivers: X-Ray udp {segments.address}, OTLP/HTTP {spans.endpoint}/v1/traces")
        client = "ab" if ab_path() else "built-in client (install apache2-utils for ab)"
        print(f"load: {client}, keep-alive, concurrency 4\n")
        backend = stack.enter_context(
            running(serve_command(back_port), back_env, back_port, stdout=logs, stderr=logs)
        )
        stack.enter_context(
            running(serve_command(front_port), front_env, front_port, stdout=logs, stderr=logs)
        )
        results = [
            (f"GET / x{args.requests}", load(front_port, "/", args.requests, 4, keepalive=True)),
            (
                f"GET {CHAIN} x{args.requests}",
                load(front_port, CHAIN, args.requests, 4, keepalive=True),
            ),
        ]
        forced = [forced_get(front_port, CHAIN) for _ in range(2)]
        arrived([trace_id for _, trace_id in forced], segments, spans, timeout=3)
        stop(backend, timeout=10)
        fault_status, fault_trace = forced_get(front_port, CHAIN)
        time.sleep(0.3)  # the last spans leave in the next export batch
        documents = segments.settle(quiet=0.3)
        requests = spans.settle(quiet=0.3)
        logs.seek(0)
        warnings = [
            line
            for line in logs.read().decode(errors="replace").splitlines()
            if " WARNING " in line or " ERROR " in line or "Traceback" in line
        ]
    records = from_xray(documents) + from_otlp(requests)
    code = summarize(
        args,
        results=results,
        forced=forced,
        fault=(fault_status, fault_trace),
        records=records,
        segments=segments,
        spans=spans,
    )
    if warnings:
        print("\napp warnings (the stand-in daemon serves no sampling rules: the X-Ray SDK says")
        print("  so once per process, as it would in an outage):")
        for line in warnings:
            print(f"  {line}")
    return code


def summarize(
    args: argparse.Namespace,
    *,
    results: list[tuple[str, LoadResult]],
    forced: list[tuple[int, str]],
    fault: tuple[int, str],
    records: list[SpanRecord],
    segments: SegmentReceiver,
    spans: OtlpReceiver,
) -> int:
    print("requests:")
    for label, result in results:
        report(label, result)
    print(f"  2 x GET {CHAIN} with X-Amzn-Trace-Id Sampled=1: {[s for s, _ in forced]}")
    print(f"  GET {CHAIN} after the backend stopped (Sampled=1): {fault[0]}")
    grouped = group(records)
    spanning = {
        trace_id: trace
        for trace_id, trace in grouped.items()
        if len({r.service for r in trace}) >= 2
    }
    print(
        f"\ntraces received: {len(grouped)} ({len(records)} spans: {len(segments.documents)}"
        f" X-Ray documents, {spans.span_count()} OTLP spans); across both services:"
        f" {len(spanning)}"
    )
    print("  sampling: 1 request a second per service, 5% of the rest; Sampled=1 always")
    problems = segments.errors + spans.errors
    if problems:
        print(f"  undecodable: {len(problems)} (first: {problems[0]})")
    forced_ids = [trace_id for _, trace_id in forced]
    chosen = [t for t in forced_ids if t in spanning]
    chosen += [t for t in spanning if t not in chosen][: max(args.show - len(chosen), 0)]
    print("\n  offset duration     service    span" + " " * 55 + "status  waterfall")
    for trace_id in chosen[: args.show]:
        print()
        for line in render(spanning[trace_id]):
            print(line)
    if fault[1] in grouped:
        print("\nthe backend stopped: the frontend's segment carries the fault")
        for line in render(grouped[fault[1]]):
            print(line)
    failed = sum(result.failed + result.non_2xx for _, result in results)
    ok = failed == 0 and bool(spanning) and not problems and fault[0] == 502
    if spanning:
        print(f"\nservices of a chain trace: {' -> '.join(services(tree(spanning[chosen[0]])))}")
    print(f"result: {'ok' if ok else 'NOT ok'} (failed or non-2xx requests under load: {failed})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
