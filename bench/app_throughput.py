"""Sample app throughput: requests per second with X-Ray tracing on and off, under gunicorn
(the container's command) and under Bottle's development server (`bottle.run`, the reference
build), all on 127.0.0.1: GET / at concurrency 1 and 8, with a connection per request (as
Apache Bench runs by default, and the reference experiment did) and with keep-alive (as the
load balancer talks to its targets), and a CPU-bound GET /work at concurrency 8.

    make bench                         (after the synth benchmark)
    .venv/bin/python bench/app_throughput.py [--requests 2000] [--repeat 3] [--client builtin]

Tracing does real work: each traced server sends to its own stand-in daemon on a loopback UDP
port, which decodes every datagram. Tracing off is AWS_XRAY_SDK_ENABLED=false. The four servers
run side by side and the runs go round-robin, so that a change in the machine's background load
hits every configuration alike; each figure is the median of the repeats, next to the server's
CPU time per request, which that load disturbs less. Load comes from Apache Bench when
installed, else from a built-in client (a thread per connection). Not a test: it prints the
table, the ratios against their targets, and the machine's facts; it fails only when a request
failed.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from wsgiref.util import setup_testing_defaults

# Run as a script (`python bench/app_throughput.py`): make the repository root importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aws_xray_sdk import global_sdk_config
from aws_xray_sdk.core.recorder import AWSXRayRecorder

from sample_app.traced_app.app import create_app
from sample_app.traced_app.tracing import TracingSettings, configure_recorder
from tools.local_service import (
    LoadResult,
    ab_path,
    app_environment,
    dev_server_command,
    free_tcp_port,
    gunicorn_command,
    load,
    process_tree_cpu_seconds,
    running,
)
from tools.xray_receiver import SegmentReceiver

CONCURRENCY = (1, 8)
# About 2 ms of CPU per request (a sieve up to a million): where a second core matters.
WORK_PATH = "/work?n=1000000"
MAX_TRACING_OVERHEAD = 0.10
MIN_GUNICORN_SPEEDUP = 2.0
WARMUP_REQUESTS = 200


@dataclass(frozen=True)
class Mode:
    path: str
    keepalive: bool
    concurrency: int
    requests: int


@dataclass(frozen=True)
class Run:
    result: LoadResult
    server_cpu_seconds: float
    client_cpu_seconds: float

    @property
    def cpu_us_per_request(self) -> float:
        return self.server_cpu_seconds / max(self.result.complete, 1) * 1e6

    @property
    def client_us_per_request(self) -> float:
        return self.client_cpu_seconds / max(self.result.complete, 1) * 1e6


@dataclass
class Target:
    server: str
    tracing: bool
    port: int
    pid: int
    receiver: SegmentReceiver | None
    runs: dict[Mode, list[Run]] = field(default_factory=dict)

    def median(self, mode: Mode) -> float:
        return statistics.median(r.result.requests_per_second for r in self.runs[mode])

    def median_cpu(self, mode: Mode) -> float:
        return statistics.median(r.cpu_us_per_request for r in self.runs[mode])

    def median_client_cpu(self, mode: Mode) -> float:
        return statistics.median(r.client_us_per_request for r in self.runs[mode])

    def requests(self) -> int:
        return sum(r.result.complete for runs in self.runs.values() for r in runs)


SERVERS: dict[str, Callable[[int], list[str]]] = {
    "gunicorn": gunicorn_command,
    "dev server": dev_server_command,
}


@contextmanager
def started(server: str, tracing: bool) -> Iterator[Target]:
    with ExitStack() as stack:
        receiver = stack.enter_context(SegmentReceiver()) if tracing else None
        port = free_tcp_port()
        # Without tracing the daemon address is never used; it still must parse.
        address = receiver.address if receiver else "127.0.0.1:2000"
        env = app_environment(port, address, tracing=tracing)
        process = stack.enter_context(running(SERVERS[server](port), env, port))
        yield Target(server, tracing, port, process.pid, receiver)


def client_cpu_seconds() -> float:
    """CPU time of this process (the built-in client) and of its finished children (ab)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def measure(target: Target, mode: Mode, client: str) -> None:
    cpu_before = process_tree_cpu_seconds(target.pid)
    client_before = client_cpu_seconds()
    result = load(
        target.port,
        mode.path,
        mode.requests,
        mode.concurrency,
        keepalive=mode.keepalive,
        client=client,
    )
    cpu = process_tree_cpu_seconds(target.pid) - cpu_before
    client_cpu = client_cpu_seconds() - client_before
    target.runs.setdefault(mode, []).append(Run(result, cpu, client_cpu))


def wsgi_cost_us(receiver: SegmentReceiver, calls: int = 3000, rounds: int = 7) -> dict[str, float]:
    """Microseconds per GET / through the WSGI app alone, in this process, best of `rounds`:
    the SDK's own cost, without the HTTP server and the client. Sampling as configured
    (1/s + 5%), tracing disabled, and every request sampled (each one serialized and sent)."""
    # Its sampling-rule poller finds no daemon behind the receiver: not news here.
    logging.getLogger("aws_xray_sdk").setLevel(logging.ERROR)
    app_recorder = AWSXRayRecorder()
    configure_recorder(app_recorder, TracingSettings("bench", receiver.address))
    app = create_app(app_recorder)

    def start_response(
        status: str, headers: list[tuple[str, str]], exc_info: object = None
    ) -> None:
        pass

    def best() -> float:
        fastest = float("inf")
        for _ in range(rounds):
            began = time.perf_counter()
            for _ in range(calls):
                environ: dict[str, object] = {"PATH_INFO": "/"}
                setup_testing_defaults(environ)
                b"".join(app(environ, start_response))
            fastest = min(fastest, (time.perf_counter() - began) / calls)
        return fastest * 1e6

    costs = {"sampled as configured": best()}
    global_sdk_config.set_sdk_enabled(False)
    try:
        costs["tracing disabled"] = best()
    finally:
        global_sdk_config.set_sdk_enabled(True)
    app_recorder.sampling = False  # no sampling decision: every request is recorded
    costs["every request sampled"] = best()
    return costs


def machine_facts(client: str) -> list[str]:
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
        f"client: {client}; gunicorn: gthread, WEB_CONCURRENCY/WEB_THREADS defaults (2 x 4)",
    ]


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def modes(requests: int, work_requests: int) -> list[Mode]:
    return [
        Mode("/", keepalive, concurrency, requests)
        for keepalive in (False, True)
        for concurrency in CONCURRENCY
    ] + [Mode(WORK_PATH, False, 8, work_requests)]


def run_matrix(runs: list[Mode], repeat: int, client: str) -> tuple[list[Target], dict[int, int]]:
    """Every configuration, round-robin; the segments each traced server's daemon received."""
    with ExitStack() as stack:
        targets = [
            stack.enter_context(started(server, tracing))
            for server in SERVERS
            for tracing in (True, False)
        ]
        for target in targets:
            load(target.port, "/", WARMUP_REQUESTS, 8, client=client)
        for _ in range(repeat):
            for mode in runs:
                for target in targets:
                    measure(target, mode, client)
        segments = {
            id(t): len(t.receiver.settle(quiet=0.3)) for t in targets if t.receiver is not None
        }
    return targets, segments


def print_table(targets: list[Target], runs: list[Mode]) -> int:
    """The table; the number of failed or non-2xx requests."""
    header = f"{'path':<16} {'server':<10} {'tracing':<7} {'keep-alive':<10} {'c':>2}"
    print(f"{header} {'req/s':>8} {'min-max':>11} {'server':>7} {'client':>7} {'failed':>6}")
    failed = 0
    for mode in runs:
        for target in targets:
            runs_of_mode = target.runs[mode]
            rates = [r.result.requests_per_second for r in runs_of_mode]
            run_failures = sum(r.result.failed + r.result.non_2xx for r in runs_of_mode)
            failed += run_failures
            spread = f"{min(rates):.0f}-{max(rates):.0f}"
            print(
                f"{mode.path:<16} {target.server:<10} {'on' if target.tracing else 'off':<7}"
                f" {'yes' if mode.keepalive else 'no':<10} {mode.concurrency:>2}"
                f" {target.median(mode):>8.0f} {spread:>11}"
                f" {target.median_cpu(mode):>7.0f} {target.median_client_cpu(mode):>7.0f}"
                f" {run_failures:>6}"
            )
    return failed


def print_targets(targets: list[Target], runs: list[Mode], failed: int) -> None:
    by_key = {(t.server, t.tracing): t for t in targets}
    traced, untraced = by_key["gunicorn", True], by_key["gunicorn", False]
    dev = by_key["dev server", True]
    print("\ntargets (c=8; gunicorn traced vs untraced, and vs the dev server, both traced):")
    for mode in (m for m in runs if m.concurrency == 8):
        overhead = 1 - traced.median(mode) / untraced.median(mode)
        cpu_overhead = traced.median_cpu(mode) / untraced.median_cpu(mode) - 1
        speedup = traced.median(mode) / dev.median(mode)
        connections = "keep-alive" if mode.keepalive else "a connection per request"
        print(f"  {mode.path}, {connections}:")
        print(
            f"    tracing overhead: {overhead:6.1%} of req/s, {cpu_overhead:6.1%} CPU per request"
            f"  (<= {MAX_TRACING_OVERHEAD:.0%}: {verdict(overhead <= MAX_TRACING_OVERHEAD)})"
        )
        print(
            f"    gunicorn / dev server: {speedup:.2f}x"
            f"  (>= {MIN_GUNICORN_SPEEDUP:.0f}x: {verdict(speedup >= MIN_GUNICORN_SPEEDUP)})"
        )
    print(f"  failed or non-2xx requests, all runs: {failed}  (0: {verdict(failed == 0)})")


def print_wsgi_costs(costs: dict[str, float], targets: list[Target], mode: Mode) -> None:
    print("\nthe WSGI app alone, in-process (us per request, best of 7 x 3000):")
    for name, cost in costs.items():
        print(f"  {name:<22} {cost:6.1f}")
    untraced = next(t for t in targets if t.server == "gunicorn" and not t.tracing)
    added = costs["sampled as configured"] - costs["tracing disabled"]
    per_request = untraced.median_cpu(mode)
    print(
        f"  tracing adds {added:.1f} us to a request that costs gunicorn {per_request:.0f} us of"
        f" CPU (keep-alive, c=8): {added / per_request:.1%}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=2000, help="requests per run of /")
    parser.add_argument(
        "--work-requests", type=int, default=400, help=f"requests per run of {WORK_PATH}"
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per configuration")
    parser.add_argument("--client", choices=("auto", "ab", "builtin"), default="auto")
    args = parser.parse_args()
    client = args.client if args.client != "auto" else ("ab" if ab_path() else "builtin")
    if client == "ab" and ab_path() is None:
        parser.error("ab is not installed (apt-get install apache2-utils)")

    facts_before = machine_facts(client)
    began = time.monotonic()
    runs = modes(args.requests, args.work_requests)
    targets, segments = run_matrix(runs, args.repeat, client)
    with SegmentReceiver() as receiver:
        wsgi = wsgi_cost_us(receiver)
    elapsed = time.monotonic() - began

    print(
        f"GET / x{args.requests} and {WORK_PATH} x{args.work_requests} per run,"
        f" {args.repeat} runs per row (median; min-max)"
    )
    print(
        "server, client: CPU time (user + system) per request in microseconds, median, of the"
        " server's processes and of the load generator\n"
    )
    failed = print_table(targets, runs)
    print("\nsegments received (tracing on; 1 a second per process + 5% sampled):")
    for target in targets:
        if target.receiver is not None:
            print(f"  {target.server:<10} {segments[id(target)]} of {target.requests()} requests")
    print_targets(targets, runs, failed)
    print_wsgi_costs(wsgi, targets, Mode("/", True, 8, args.requests))
    print()
    for line in facts_before:
        print(line)
    load1, load5, _ = os.getloadavg()
    print(f"load average after: {load1:.2f} / {load5:.2f}; wall time {elapsed:.0f} s")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
