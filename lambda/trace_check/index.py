"""Deploy-time trace check: a short burst through the internal load balancer to the chain
route, then X-Ray must show at least one trace that holds segments of both the frontend and
the backend with no fault on the chain.

The logic is plain functions (:func:`send_burst`, :func:`find_chain_trace`, :func:`run`)
that take their clients, clock and sleep as arguments; :func:`handler` only reads the
settings and wires the real ones in. In ``fail`` mode a failed check raises
:class:`TraceCheckError` with the report as its message; in ``report`` mode the report is
logged and returned, and the function never fails.
"""

from __future__ import annotations

import json
import os
import secrets
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

Mode = Literal["fail", "report"]
Clock = Callable[[], float]
Sleep = Callable[[float], None]
XRayClient = Any
"""A boto3 X-Ray client (only ``get_trace_summaries`` and ``batch_get_traces`` are used)."""

CHAIN_PATH = "/chain"
MAX_REQUESTS = 200
MAX_CONCURRENCY = 20
REQUEST_TIMEOUT_SECONDS = 10.0
# Left of the Lambda timeout once the budget is spent: time to build and return the report.
SAFETY_MARGIN_SECONDS = 10.0
# X-Ray usually indexes a trace within seconds to a minute of its end.
FIRST_DELAY_SECONDS = 2.0
MAX_DELAY_SECONDS = 15.0
WINDOW_SLACK_SECONDS = 10.0
# BatchGetTraces takes at most 5 ids a call.
TRACES_TO_FETCH = 5
# Pages of summaries read per poll: the window is short, other traffic may still fill it.
MAX_PAGES = 5
THROTTLING_CODES = frozenset(
    {"ThrottledException", "ThrottlingException", "TooManyRequestsException", "Throttling"}
)


class TraceCheckError(Exception):
    """The check did not pass; ``str()`` is the JSON report."""


@dataclass(frozen=True)
class Settings:
    url: str
    frontend_service: str
    backend_service: str
    region: str
    mode: Mode = "fail"
    requests: int = 20
    concurrency: int = 4

    @property
    def chain_url(self) -> str:
        return self.url.rstrip("/") + CHAIN_PATH

    @classmethod
    def read(cls, env: Mapping[str, str], event: Mapping[str, Any]) -> Settings:
        """From the function's environment; ``requests`` / ``concurrency`` in the event
        override it (bounded like the environment's values)."""
        mode = env.get("MODE", "fail")
        if mode not in ("fail", "report"):
            raise ValueError(f"MODE: {mode!r} is not allowed; expected 'fail' or 'report'")
        requests = _bounded(
            "requests", event.get("requests", env.get("REQUESTS", 20)), 1, MAX_REQUESTS
        )
        concurrency = _bounded(
            "concurrency", event.get("concurrency", env.get("CONCURRENCY", 4)), 1, MAX_CONCURRENCY
        )
        return cls(
            url=env["TARGET_URL"],
            frontend_service=env["FRONTEND_SERVICE"],
            backend_service=env["BACKEND_SERVICE"],
            region=env.get("AWS_REGION", "us-east-1"),
            mode="report" if mode == "report" else "fail",
            requests=requests,
            concurrency=min(concurrency, requests),
        )


def _bounded(name: str, value: Any, low: int, high: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: {value!r} is not an integer") from None
    if not low <= number <= high:
        raise ValueError(f"{name}: {number} is not allowed; expected {low} to {high}")
    return number


# --- the burst -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Burst:
    started: float
    ended: float
    statuses: Mapping[str, int]
    """Response status by count; ``"error"`` for no response (refused, timed out)."""
    trace_ids: frozenset[str]
    """The trace ids the requests carried (sampled)."""

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    @property
    def non_2xx(self) -> int:
        return sum(n for status, n in self.statuses.items() if not status.startswith("2"))


def new_trace_id(now: float) -> str:
    """An X-Ray trace id: ``1-<epoch seconds, 8 hex>-<96 random bits, 24 hex>``."""
    return f"1-{int(now):08x}-{secrets.token_hex(12)}"


def _request(url: str, trace_id: str, timeout: float) -> str:
    request = urllib.request.Request(  # noqa: S310 - the URL is the deployment's own http(s) ALB
        url, headers={"X-Amzn-Trace-Id": f"Root={trace_id};Sampled=1"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            response.read()
            return str(response.status)
    except urllib.error.HTTPError as error:
        return str(error.code)
    except (urllib.error.URLError, OSError):
        return "error"


def send_burst(
    url: str,
    requests: int,
    concurrency: int,
    *,
    clock: Clock = time.time,
    timeout: float = REQUEST_TIMEOUT_SECONDS,
    deadline: float | None = None,
) -> Burst:
    """``requests`` GETs of ``url``, ``concurrency`` at a time, each sampled with a trace id
    of its own (``X-Amzn-Trace-Id: Root=...;Sampled=1``). No request starts after
    ``deadline`` (a ``clock`` value), and none waits past it; those not sent are not
    counted."""
    started = clock()
    ids = [new_trace_id(started) for _ in range(requests)]

    def one(trace_id: str) -> tuple[str, str] | None:
        wait = timeout
        if deadline is not None:
            left = deadline - clock()
            if left <= 0:
                return None
            wait = min(timeout, max(left, 1.0))
        return trace_id, _request(url, trace_id, wait)

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        sent = [answer for answer in pool.map(one, ids) if answer is not None]
    statuses = Counter(status for _, status in sent)
    return Burst(started, clock(), dict(statuses), frozenset(tid for tid, _ in sent))


# --- X-Ray -------------------------------------------------------------------------------


@dataclass
class Observation:
    """What the polls saw so far."""

    polls: int = 0
    throttled: int = 0
    trace_ids: list[str] = field(default_factory=list)
    services: set[str] = field(default_factory=set)
    faulted: set[str] = field(default_factory=set)
    passing: str | None = None
    """The id of a trace that passes, once one is found."""


def _throttled(error: Exception) -> bool:
    response = getattr(error, "response", None)
    code = (response or {}).get("Error", {}).get("Code", "") if isinstance(response, dict) else ""
    return code in THROTTLING_CODES


def _summaries(xray: XRayClient, service: str, start: float, end: float) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {
        "StartTime": datetime.fromtimestamp(start, UTC),
        "EndTime": datetime.fromtimestamp(end, UTC),
        "FilterExpression": f'service("{service}")',
        "Sampling": False,
    }
    for _ in range(MAX_PAGES):
        page = xray.get_trace_summaries(**kwargs)
        found.extend(page.get("TraceSummaries", []))
        token = page.get("NextToken")
        if not token:
            break
        kwargs["NextToken"] = token
    return found


def _segment_documents(trace: Mapping[str, Any]) -> Iterable[dict[str, Any]]:
    for segment in trace.get("Segments", []):
        try:
            document = json.loads(segment.get("Document", "{}"))
        except json.JSONDecodeError:
            continue
        if isinstance(document, dict):
            yield document


def _faulted(document: Mapping[str, Any]) -> bool:
    status = document.get("http", {}).get("response", {}).get("status", 0)
    return bool(document.get("fault")) or (isinstance(status, int) and status >= 500)


def _look(xray: XRayClient, settings: Settings, burst: Burst, seen: Observation) -> None:
    """One poll: summaries of the window, then the segments of a few candidate traces."""
    summaries = _summaries(
        xray,
        settings.frontend_service,
        burst.started - WINDOW_SLACK_SECONDS,
        burst.ended + WINDOW_SLACK_SECONDS,
    )
    chain = {settings.frontend_service, settings.backend_service}
    candidates: list[str] = []
    for summary in summaries:
        trace_id = summary["Id"]
        if trace_id not in seen.trace_ids:
            seen.trace_ids.append(trace_id)
        names = {s.get("Name") for s in summary.get("ServiceIds", [])}
        seen.services |= {n for n in names if isinstance(n, str)}
        if summary.get("HasFault"):
            seen.faulted.add(trace_id)
        elif chain <= names and trace_id not in seen.faulted:
            candidates.append(trace_id)
    # The burst's own traces first: other traffic in the window only counts after them.
    candidates.sort(key=lambda tid: tid not in burst.trace_ids)
    if not candidates:
        return
    traces = xray.batch_get_traces(TraceIds=candidates[:TRACES_TO_FETCH]).get("Traces", [])
    for trace in traces:
        documents = list(_segment_documents(trace))
        names = {d.get("name") for d in documents}
        seen.services |= {n for n in names if isinstance(n, str)}
        on_chain = [d for d in documents if d.get("name") in chain]
        if any(_faulted(d) for d in on_chain):
            seen.faulted.add(trace["Id"])
        elif chain <= names and seen.passing is None:
            seen.passing = trace["Id"]


def find_chain_trace(
    xray: XRayClient,
    settings: Settings,
    burst: Burst,
    *,
    deadline: float,
    clock: Clock = time.time,
    sleep: Sleep = time.sleep,
) -> Observation:
    """Poll X-Ray with growing delays until a passing trace shows up or ``deadline``
    (a ``clock`` value) would pass; throttled calls count as empty polls."""
    seen = Observation()
    delay = FIRST_DELAY_SECONDS
    while True:
        seen.polls += 1
        try:
            _look(xray, settings, burst, seen)
        except Exception as error:
            if not _throttled(error):
                raise
            seen.throttled += 1
        if seen.passing is not None or clock() + delay > deadline:
            return seen
        sleep(delay)
        delay = min(delay * 2, MAX_DELAY_SECONDS)


# --- the report --------------------------------------------------------------------------


def console_link(region: str, trace_id: str | None) -> str:
    base = f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}"
    return f"{base}#xray:traces/{trace_id}" if trace_id else f"{base}#xray:traces/query"


def report(settings: Settings, burst: Burst, seen: Observation, elapsed: float) -> dict[str, Any]:
    passed = seen.passing is not None
    if passed:
        reason = "a trace holds the frontend and the backend with no fault"
    elif burst.non_2xx == burst.requests:
        reason = "no request of the burst got a 2xx answer"
    elif not seen.trace_ids:
        reason = f"no trace of {settings.frontend_service} in the burst's window"
    elif seen.faulted:
        reason = (
            f"no clean trace: {len(seen.faulted)} of {len(seen.trace_ids)} have a fault "
            "on the chain"
        )
    else:
        missing = sorted({settings.frontend_service, settings.backend_service} - seen.services)
        reason = f"no trace holds both services; missing: {', '.join(missing) or 'none'}"
    first = seen.passing or (seen.trace_ids[0] if seen.trace_ids else None)
    return {
        "passed": passed,
        "mode": settings.mode,
        "reason": reason,
        "url": settings.chain_url,
        "requests": burst.requests,
        "non_2xx": burst.non_2xx,
        "statuses": dict(sorted(burst.statuses.items())),
        "traces_found": len(seen.trace_ids),
        "faulted_traces": len(seen.faulted),
        "services_seen": sorted(seen.services),
        "first_trace_id": first,
        "console_link": console_link(settings.region, first),
        "polls": seen.polls,
        "throttled": seen.throttled,
        "elapsed_seconds": round(elapsed, 1),
    }


def run(
    settings: Settings,
    xray: XRayClient,
    *,
    budget_seconds: float,
    clock: Clock = time.time,
    sleep: Sleep = time.sleep,
) -> dict[str, Any]:
    """The whole check within ``budget_seconds``; returns the report (pass or not)."""
    started = clock()
    deadline = started + budget_seconds
    # The burst may take half the budget at most: the rest is for X-Ray to index and answer.
    burst = send_burst(
        settings.chain_url,
        settings.requests,
        settings.concurrency,
        clock=clock,
        deadline=started + budget_seconds / 2,
    )
    seen = find_chain_trace(xray, settings, burst, deadline=deadline, clock=clock, sleep=sleep)
    return report(settings, burst, seen, clock() - started)


def outcome(result: Mapping[str, Any]) -> dict[str, Any]:
    """What the function returns: the report, or :class:`TraceCheckError` in fail mode."""
    text = json.dumps(result, separators=(",", ":"))
    print(text)
    if not result["passed"] and result["mode"] == "fail":
        raise TraceCheckError(text)
    return dict(result)


def rolling_back(cloudformation: Any, stack_id: str | None) -> str | None:
    """The stack's status if it is rolling back, else None.

    CloudFormation rolls a failed update back by updating the trigger again with its old
    properties: checking then would test the services that just failed and fail the
    rollback too (UPDATE_ROLLBACK_FAILED). A rollback is let through unchecked.
    """
    if not stack_id:
        return None
    (stack,) = cloudformation.describe_stacks(StackName=stack_id)["Stacks"]
    status = str(stack["StackStatus"])
    return status if "ROLLBACK" in status else None


def skipped(settings: Settings, status: str) -> dict[str, Any]:
    """The report of a check not run because the stack is rolling back."""
    return {
        "passed": True,
        "mode": settings.mode,
        "reason": f"not checked: the stack is in {status}",
    }


def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    import boto3  # noqa: PLC0415 - in the Lambda runtime; tests pass their own client
    from botocore.config import Config  # noqa: PLC0415

    settings = Settings.read(os.environ, event or {})
    budget = context.get_remaining_time_in_millis() / 1000 - SAFETY_MARGIN_SECONDS
    cloudformation = boto3.client("cloudformation", region_name=settings.region)
    status = rolling_back(cloudformation, os.environ.get("STACK_ID"))
    if status is not None:
        return outcome(skipped(settings, status))
    xray = boto3.client(
        "xray", region_name=settings.region, config=Config(retries={"mode": "standard"})
    )
    try:
        result = run(settings, xray, budget_seconds=budget)
    except Exception as error:
        if settings.mode == "fail":
            raise
        result = {"passed": False, "mode": "report", "reason": f"check error: {error!r}"}
    return outcome(result)
