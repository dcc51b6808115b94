"""Sample app throughput per core, tracing overhead for both SDKs, and the chain's hop cost.

    make bench                                   (after the synth benchmark)
    .venv/bin/python bench/app_throughput.py [--repeat 3] [--requests 4000] [--only SECTION]

1. servers (per core): each server pinned to CPU 0 (`taskset -c 0`), Apache Bench pinned to
   CPU 1 (`taskset -c 1 ab [-k] -n 4000 -c 8`), GET /, X-Ray SDK tracing on, each traced
   server sending to its own stand-in daemon: the reference app (seed 000's main.py on
   Bottle's development server, bench/reference_app.py), the previous container command
   (gunicorn gthread 2 x 4, bench/gunicorn_conf.py) and the container's command (Granian,
   `python -m traced_app.serve`, which starts one worker for the one CPU it may use). Runs go
   round-robin, so that a change in the machine's load hits every server alike; figures are
   medians, next to the server's CPU time per request (what a core can do: 1e6 / that).
2. overhead: the container's command, pinned as above, tracing on and off for each SDK
   (AWS_XRAY_SDK_ENABLED=false, OTEL_SDK_DISABLED=true), GET / with keep-alive; and the WSGI
   stack alone, in-process (no server, no client), microseconds per request.
3. chain: a backend and a frontend (both the container's command, both on CPU 0), requests
   one at a time from CPU 1 on a kept-alive connection: GET /work on the backend directly,
   then GET /chain on the frontend (which makes the same call): the difference is what one hop
   adds (the frontend's request handling, its client, loopback), p50 and p99.

Needs 2 CPUs and taskset for the pinned sections, ab for section 1 (apt-get install
apache2-utils). Not a test: it prints tables and verdicts; it fails only when a request failed.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from wsgiref.util import setup_testing_defaults

# Run as a script (`python bench/app_throughput.py`): make the repository root importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aws_xray_sdk import global_sdk_config
from aws_xray_sdk.core.recorder import AWSXRayRecorder
from opentelemetry import trace
from opentelemetry.sdk.trace.sampling import ALWAYS_ON

from sample_app.traced_app.app import create_app
from sample_app.traced_app.otel import OtelTracer, build_provider
from sample_app.traced_app.settings import Settings
from sample_app.traced_app.xray import TracingSettings, XRayTracer, configure_recorder
from tools.local_service import (
    LoadResult,
    ab_path,
    app_environment,
    can_pin,
    free_tcp_port,
    gunicorn_command,
    latencies,
    load,
    pinned,
    process_tree_cpu_seconds,
    reference_command,
    running,
    serve_command,
)
from tools.otlp_receiver import OtlpReceiver
from tools.xray_receiver import SegmentReceiver

SERVER_CPU, CLIENT_CPU = 0, 1
CONCURRENCY = 8
MIN_SPEEDUP = 2.0
MAX_OVERHEAD = 0.10
WARMUP = 300
CHAIN_N = 20_000
LATENCY_BATCH = 50

SERVERS: dict[str, tuple[Callable[[int], list[str]], str]] = {
    # name: (command, health path)
    "reference": (reference_command, "/"),
    "gunicorn": (gunicorn_command, "/healthz"),
    "granian": (serve_command, "/healthz"),
}


@dataclass
class Target:
    label: str
    port: int
    pid: int
    runs: dict[bool, list[tuple[LoadResult, float]]] = field(default_factory=dict)

    def measure(self, keepalive: bool, requests: int) -> None:
        before = process_tree_cpu_seconds(self.pid)
        result = load(
            self.port, "/", requests, CONCURRENCY, keepalive=keepalive, client="ab", cpu=CLIENT_CPU
        )
        cpu = process_tree_cpu_seconds(self.pid) - before
        self.runs.setdefault(keepalive, []).append((result, cpu / max(result.complete, 1) * 1e6))

    def rate(self, keepalive: bool) -> float:
        return statistics.median(r.requests_per_second for r, _ in self.runs[keepalive])

    def spread(self, keepalive: bool) -> str:
        rates = [r.requests_per_second for r, _ in self.runs[keepalive]]
        return f"{min(rates):.0f}-{max(rates):.0f}"

    def cpu_us(self, keepalive: bool) -> float:
        return statistics.median(us for _, us in self.runs[keepalive])

    def failed(self) -> int:
        return sum(r.failed + r.non_2xx for runs in self.runs.values() for r, _ in runs)


@contextmanager
def started(
    label: str, command: Callable[[int], list[str]], health: str, *, sdk: str, tracing: bool
) -> Iterator[Target]:
    with ExitStack() as stack:
        segments = stack.enter_context(SegmentReceiver())
        spans = stack.enter_context(OtlpReceiver())
        port = free_tcp_port()
        env = app_environment(
            port, segments.address, sdk=sdk, tracing=tracing, otlp_endpoint=spans.endpoint
        )
        process = stack.enter_context(
            running(pinned(command(port), SERVER_CPU), env, port, health_path=health)
        )
        yield Target(label, port, process.pid)


def pin_self() -> None:
    """This process (the receivers' threads) on the load generator's CPU, off the server's."""
    os.sched_setaffinity(0, {CLIENT_CPU})


def round_robin(targets: list[Target], modes: list[bool], repeat: int, requests: int) -> None:
    for target in targets:
        load(target.port, "/", WARMUP, CONCURRENCY, keepalive=True, client="ab", cpu=CLIENT_CPU)
    for _ in range(repeat):
        for keepalive in modes:
            for target in targets:
                target.measure(keepalive, requests)


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def servers_section(repeat: int, requests: int) -> int:
    print(
        f"1. servers, one core each (taskset -c {SERVER_CPU}; taskset -c {CLIENT_CPU} ab [-k]"
        f" -n {requests} -c {CONCURRENCY}), GET /, X-Ray SDK tracing on; median of {repeat}\n"
    )
    with ExitStack() as stack:
        targets = [
            stack.enter_context(started(name, cmd, health, sdk="xray-sdk", tracing=True))
            for name, (cmd, health) in SERVERS.items()
        ]
        round_robin(targets, [True, False], repeat, requests)
    reference = targets[0]
    print(
        f"{'server':<10} {'connections':<11} {'req/s':>7} {'min-max':>11} {'x ref':>6}"
        f" {'us CPU/req':>10} {'x ref':>6} {'failed':>6}"
    )
    for keepalive in (True, False):
        for target in targets:
            print(
                f"{target.label:<10} {'keep-alive' if keepalive else 'new each':<11}"
                f" {target.rate(keepalive):>7.0f} {target.spread(keepalive):>11}"
                f" {target.rate(keepalive) / reference.rate(keepalive):>5.2f}x"
                f" {target.cpu_us(keepalive):>10.0f}"
                f" {reference.cpu_us(keepalive) / target.cpu_us(keepalive):>5.2f}x"
                f" {target.failed():>6}"
            )
    chosen = targets[-1]
    keep = chosen.rate(True) / reference.rate(True)
    new = chosen.rate(False) / reference.rate(False)
    failed = sum(t.failed() for t in targets)
    print(
        f"\n  granian / reference, keep-alive: {keep:.2f}x req/s"
        f" (>= {MIN_SPEEDUP:.0f}x: {verdict(keep >= MIN_SPEEDUP)})"
    )
    print(
        f"  granian / reference, a connection per request: {new:.2f}x (>= 1x: {verdict(new >= 1)})"
    )
    print(f"  failed or non-2xx requests, all runs: {failed} (0: {verdict(failed == 0)})")
    return failed


def overhead_section(repeat: int, requests: int) -> int:
    print(
        "\n2. tracing overhead: the container's command on one core, GET /, keep-alive,"
        f" c={CONCURRENCY}"
    )
    with ExitStack() as stack:
        targets = [
            stack.enter_context(
                started(
                    f"{sdk} {'on' if on else 'off'}", serve_command, "/healthz", sdk=sdk, tracing=on
                )
            )
            for sdk in ("xray-sdk", "opentelemetry")
            for on in (True, False)
        ]
        round_robin(targets, [True], repeat, requests)
    print(f"\n{'sdk, tracing':<18} {'req/s':>7} {'min-max':>11} {'us CPU/req':>10} {'failed':>6}")
    for target in targets:
        print(
            f"{target.label:<18} {target.rate(True):>7.0f} {target.spread(True):>11}"
            f" {target.cpu_us(True):>10.0f} {target.failed():>6}"
        )
    print()
    for on, off in zip(targets[::2], targets[1::2], strict=True):
        drop = 1 - on.rate(True) / off.rate(True)
        cpu = on.cpu_us(True) / off.cpu_us(True) - 1
        sdk = on.label.split()[0]
        print(
            f"  {sdk:<13} whole server: {drop:6.1%} of req/s, {cpu:6.1%} CPU per request"
            f"  (<= {MAX_OVERHEAD:.0%}: {verdict(max(drop, cpu) <= MAX_OVERHEAD)})"
        )
    untraced = {off.label.split()[0]: off.cpu_us(True) for off in targets[1::2]}
    print_wsgi_costs(wsgi_costs(), untraced)
    return sum(t.failed() for t in targets)


def wsgi_costs(calls: int = 2000, rounds: int = 9) -> dict[str, dict[str, float]]:
    """Microseconds per GET / through the whole WSGI stack (front door, tracing, Bottle), in
    this process, access log off: the tracing SDKs' own cost. The variants take turns, round
    after round, and each keeps its best round: a burst of background load then hits one
    round of every variant rather than all rounds of one."""
    logging.getLogger("aws_xray_sdk").setLevel(logging.ERROR)
    settings = Settings(service_name="bench", access_log=False)

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        pass

    def once(app: Any) -> float:
        began = time.perf_counter()
        for _ in range(calls):
            environ: dict[str, Any] = {"PATH_INFO": "/"}
            setup_testing_defaults(environ)
            b"".join(app(environ, start_response))
        return (time.perf_counter() - began) / calls * 1e6

    with SegmentReceiver() as segments, OtlpReceiver() as spans:
        configured_recorder, every_recorder = AWSXRayRecorder(), AWSXRayRecorder()
        for recorder in (configured_recorder, every_recorder):
            configure_recorder(recorder, TracingSettings("bench", segments.address))
        every_recorder.sampling = False  # no sampling decision: every request recorded and sent
        configured = build_provider("bench", spans.endpoint, environ={})
        every = build_provider("bench", spans.endpoint, sampler=ALWAYS_ON, environ={})
        xray = create_app(XRayTracer(configured_recorder), settings)
        xray_every = create_app(XRayTracer(every_recorder), settings)
        otel = create_app(OtelTracer(configured), settings)
        otel_off = create_app(OtelTracer(trace.NoOpTracerProvider()), settings)
        otel_every = create_app(OtelTracer(every), settings)
        # (sdk, variant, app, the X-Ray SDK's global switch while it runs)
        variants: list[tuple[str, str, Any, bool]] = [
            ("xray-sdk", "sampled as configured", xray, True),
            ("xray-sdk", "tracing off", xray, False),
            ("xray-sdk", "every request sampled", xray_every, True),
            ("opentelemetry", "sampled as configured", otel, True),
            ("opentelemetry", "tracing off", otel_off, True),
            ("opentelemetry", "every request sampled", otel_every, True),
        ]
        costs: dict[str, dict[str, float]] = {}
        for _ in range(rounds):
            for sdk, label, app, xray_enabled in variants:
                global_sdk_config.set_sdk_enabled(xray_enabled)
                try:
                    took = once(app)
                finally:
                    global_sdk_config.set_sdk_enabled(True)
                row = costs.setdefault(sdk, {})
                row[label] = min(row.get(label, float("inf")), took)
        for provider in (configured, every):
            provider.shutdown()
    return costs


def print_wsgi_costs(costs: dict[str, dict[str, float]], server_cpu_us: dict[str, float]) -> None:
    print("\n  the WSGI stack alone, in-process, us per GET / (best of 9 x 2000, access log off):")
    print(f"  {'sdk':<14} {'off':>6} {'as configured':>14} {'every sampled':>14} {'added':>6}")
    for sdk, row in costs.items():
        added = row["sampled as configured"] - row["tracing off"]
        print(
            f"  {sdk:<14} {row['tracing off']:>6.1f} {row['sampled as configured']:>14.1f}"
            f" {row['every request sampled']:>14.1f} {added:>6.1f}"
        )
    for sdk, row in costs.items():
        added = row["sampled as configured"] - row["tracing off"]
        share = added / server_cpu_us[sdk]
        print(
            f"  {sdk}: adds {added:.1f} us in-process to a request that costs the server"
            f" {server_cpu_us[sdk]:.0f} us of CPU untraced: {share:.1%}"
            f" (<= {MAX_OVERHEAD:.0%}: {verdict(share <= MAX_OVERHEAD)})"
        )


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def chain_section(requests: int) -> None:
    print(
        f"\n3. the chain's hop, on loopback: {requests} requests one at a time, kept alive;"
        f" backend /work?n={CHAIN_N} directly, then frontend /chain?n={CHAIN_N}"
    )
    print(
        f"\n{'sdk':<14} {'direct p50':>10} {'p99':>8} {'chain p50':>10} {'p99':>8}"
        f" {'hop p50':>8} {'p99':>8}  (ms)"
    )
    for sdk in ("xray-sdk", "opentelemetry"):
        with ExitStack() as stack:
            segments = stack.enter_context(SegmentReceiver())
            spans = stack.enter_context(OtlpReceiver())
            back, front = free_tcp_port(), free_tcp_port()
            back_env = app_environment(
                back, segments.address, sdk=sdk, otlp_endpoint=spans.endpoint, ROLE="backend"
            )
            front_env = app_environment(
                front, segments.address, sdk=sdk, otlp_endpoint=spans.endpoint,
                ROLE="frontend", BACKEND_URL=f"http://127.0.0.1:{back}",
            )  # fmt: skip
            stack.enter_context(running(pinned(serve_command(back), SERVER_CPU), back_env, back))
            stack.enter_context(running(pinned(serve_command(front), SERVER_CPU), front_env, front))
            latencies(front, f"/chain?n={CHAIN_N}", WARMUP)
            # Direct and chained calls take turns, in batches, so that both see the same
            # background load.
            direct: list[float] = []
            chained: list[float] = []
            for _ in range(max(requests // LATENCY_BATCH, 1)):
                direct += latencies(back, f"/work?n={CHAIN_N}", LATENCY_BATCH)
                chained += latencies(front, f"/chain?n={CHAIN_N}", LATENCY_BATCH)
        cells = [
            percentile(direct, 0.5),
            percentile(direct, 0.99),
            percentile(chained, 0.5),
            percentile(chained, 0.99),
            percentile(chained, 0.5) - percentile(direct, 0.5),
            percentile(chained, 0.99) - percentile(direct, 0.99),
        ]
        print(
            f"{sdk:<14} "
            + " ".join(
                f"{c * 1000:>{w}.2f}" for c, w in zip(cells, (10, 8, 10, 8, 8, 8), strict=True)
            )
        )


def machine_facts() -> list[str]:
    model = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [line for line in cpuinfo.read_text().splitlines() if line.startswith("model name")]
        if names:
            model = names[0].split(":", 1)[1].strip()
    load1, load5, _ = os.getloadavg()
    return [
        f"machine: {os.cpu_count()} CPUs ({model}), {platform.system()} {platform.release()}",
        f"python {platform.python_version()}, load average {load1:.2f} / {load5:.2f} (1 / 5 min)",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=4000, help="requests per ab run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per configuration")
    parser.add_argument("--latency-requests", type=int, default=1000, help="per chain row")
    parser.add_argument(
        "--only", choices=("servers", "overhead", "chain"), help="one section (default: all)"
    )
    args = parser.parse_args()
    if not can_pin():
        parser.error("needs 2 CPUs and taskset (util-linux) to give server and client a core each")
    if ab_path() is None:
        parser.error("ab is not installed (apt-get install apache2-utils)")

    facts = machine_facts()
    began = time.monotonic()
    pin_self()
    failed = 0
    if args.only in (None, "servers"):
        failed += servers_section(args.repeat, args.requests)
    if args.only in (None, "overhead"):
        failed += overhead_section(args.repeat, args.requests)
    if args.only in (None, "chain"):
        chain_section(args.latency_requests)
    print()
    for line in facts:
        print(line)
    load1, load5, _ = os.getloadavg()
    print(
        f"load average after: {load1:.2f} / {load5:.2f}; wall time {time.monotonic() - began:.0f} s"
    )
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
