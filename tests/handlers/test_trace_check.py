"""The trace check's handler (lambda/trace_check/index.py, loaded by path): the burst against
a local HTTP server on 127.0.0.1, X-Ray through botocore's Stubber, time through a fake clock
whose sleep only moves the clock, so a whole budget of polls takes milliseconds.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

ROOT = Path(__file__).resolve().parents[2]
HANDLER = ROOT / "lambda" / "trace_check" / "index.py"
REGION = "ap-northeast-1"
FRONTEND = "traced-fargate-dev-frontend"
BACKEND = "traced-fargate-dev-backend"
TRACE = "1-6a0e3c00-0123456789abcdef01234567"
OTHER_TRACE = "1-6a0e3c00-fedcba9876543210fedcba98"


def _load() -> ModuleType:
    # `lambda` is a keyword: the handler is a file, not a package module.
    spec = importlib.util.spec_from_file_location("trace_check_index", HANDLER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


tc = _load()


# --- a local frontend --------------------------------------------------------------------


class Frontend:
    """Answers every GET with ``status``; records paths, trace headers and the peak of
    requests in flight."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.paths: list[str] = []
        self.trace_headers: list[str] = []
        self.in_flight = 0
        self.peak = 0
        self.lock = threading.Lock()
        self.release = threading.Event()
        self.release.set()


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[list[Frontend], str]]:
    """One server for the module; each test gets a fresh :class:`Frontend` state."""
    current = [Frontend()]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state = current[0]
            with state.lock:
                state.paths.append(self.path)
                state.trace_headers.append(self.headers.get("X-Amzn-Trace-Id", ""))
                state.in_flight += 1
                state.peak = max(state.peak, state.in_flight)
            state.release.wait(timeout=2)
            with state.lock:
                state.in_flight -= 1
            body = b'{"ok": true}'
            self.send_response(state.status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield current, f"http://127.0.0.1:{httpd.server_port}"
    finally:
        current[0].release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture
def frontend(server: tuple[list[Frontend], str]) -> Iterator[tuple[Frontend, str]]:
    current, url = server
    current[0] = state = Frontend()
    yield state, url
    state.release.set()


# --- fakes -------------------------------------------------------------------------------


class FakeClock:
    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def xray() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client(
        "xray", region_name=REGION, aws_access_key_id="test", aws_secret_access_key="test"
    )
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def settings(url: str, **overrides: Any) -> Any:
    values = {
        "url": url,
        "frontend_service": FRONTEND,
        "backend_service": BACKEND,
        "region": REGION,
        "requests": 5,
        "concurrency": 2,
        **overrides,
    }
    return tc.Settings(**values)


def summary(trace_id: str = TRACE, *, services: tuple[str, ...] = (FRONTEND, BACKEND),
            fault: bool = False) -> dict[str, Any]:  # fmt: skip
    return {
        "Id": trace_id,
        "HasFault": fault,
        "HasError": False,
        "ServiceIds": [{"Name": s, "Type": "AWS::ECS::Container"} for s in services],
    }


def segment(name: str, *, fault: bool = False, status: int = 200) -> dict[str, Any]:
    document = {
        "name": name,
        "id": "0123456789abcdef",
        "trace_id": TRACE,
        "fault": fault,
        "http": {"response": {"status": status}},
    }
    return {"Id": "0123456789abcdef", "Document": json.dumps(document)}


def trace(trace_id: str = TRACE, *segments: dict[str, Any]) -> dict[str, Any]:
    return {"Id": trace_id, "Segments": list(segments or (segment(FRONTEND), segment(BACKEND)))}


SUMMARIES_PARAMS = {
    "StartTime": ANY,
    "EndTime": ANY,
    "FilterExpression": f'service("{FRONTEND}")',
    "Sampling": False,
}


def expect_summaries(stubber: Stubber, *summaries: dict[str, Any]) -> None:
    stubber.add_response(
        "get_trace_summaries", {"TraceSummaries": list(summaries)}, SUMMARIES_PARAMS
    )


def expect_traces(stubber: Stubber, ids: list[str], *traces: dict[str, Any]) -> None:
    stubber.add_response("batch_get_traces", {"Traces": list(traces)}, {"TraceIds": ids})


# --- the cases ---------------------------------------------------------------------------


def test_traces_found_at_once_pass(frontend: tuple[Frontend, str], xray: Any) -> None:
    state, url = frontend
    client, stubber = xray
    expect_summaries(stubber, summary())
    expect_traces(stubber, [TRACE], trace())
    clock = FakeClock()

    result = tc.run(settings(url), client, budget_seconds=60, clock=clock, sleep=clock.sleep)

    assert result["passed"] is True
    assert result["requests"] == 5
    assert result["non_2xx"] == 0
    assert result["traces_found"] == 1
    assert result["services_seen"] == [BACKEND, FRONTEND]
    assert result["first_trace_id"] == TRACE
    assert result["console_link"] == (
        f"https://{REGION}.console.aws.amazon.com/cloudwatch/home?region={REGION}"
        f"#xray:traces/{TRACE}"
    )
    assert clock.sleeps == []
    assert state.paths == ["/chain"] * 5
    # Each request carries a sampled trace id of its own.
    roots = {h.split(";")[0] for h in state.trace_headers}
    assert len(roots) == 5
    assert all(h.startswith("Root=1-") and h.endswith(";Sampled=1") for h in state.trace_headers)


def test_the_summaries_cover_the_bursts_window(frontend: tuple[Frontend, str], xray: Any) -> None:
    _, url = frontend
    client, stubber = xray
    clock = FakeClock()
    start = clock.now
    params = dict(SUMMARIES_PARAMS)
    params["StartTime"] = tc.datetime.fromtimestamp(start - tc.WINDOW_SLACK_SECONDS, tc.UTC)
    params["EndTime"] = tc.datetime.fromtimestamp(start + tc.WINDOW_SLACK_SECONDS, tc.UTC)
    stubber.add_response("get_trace_summaries", {"TraceSummaries": [summary()]}, params)
    expect_traces(stubber, [TRACE], trace())

    result = tc.run(settings(url), client, budget_seconds=60, clock=clock, sleep=clock.sleep)

    assert result["passed"] is True


def test_the_burst_is_bounded_by_its_concurrency(frontend: tuple[Frontend, str]) -> None:
    state, url = frontend
    state.release.clear()
    timer = threading.Timer(0.2, state.release.set)
    timer.start()
    burst = tc.send_burst(url + "/chain", 6, 2)
    timer.join()
    assert burst.requests == 6
    assert state.peak == 2


def test_no_request_starts_after_the_bursts_deadline(frontend: tuple[Frontend, str]) -> None:
    state, url = frontend
    ticks = itertools.count()
    # Each reading of the clock is a second later: requests read it at 1 s, 2 s, 3 s...
    burst = tc.send_burst(url + "/chain", 5, 1, clock=lambda: float(next(ticks)), deadline=3.0)
    assert burst.requests == 2
    assert len(burst.trace_ids) == 2
    assert len(state.paths) == 2


def test_indexing_delay_then_found(frontend: tuple[Frontend, str], xray: Any) -> None:
    _, url = frontend
    client, stubber = xray
    expect_summaries(stubber)
    expect_summaries(stubber)
    expect_summaries(stubber, summary())
    expect_traces(stubber, [TRACE], trace())
    clock = FakeClock()

    result = tc.run(settings(url), client, budget_seconds=60, clock=clock, sleep=clock.sleep)

    assert result["passed"] is True
    assert result["polls"] == 3
    assert clock.sleeps == [2.0, 4.0]


def test_never_found_fails_clearly_within_the_budget(
    frontend: tuple[Frontend, str], xray: Any
) -> None:
    _, url = frontend
    client, stubber = xray
    # Polls at 0, 2, 6, 14, 29 and 44 s; waiting 15 s more would pass the 50 s budget.
    for _ in range(6):
        expect_summaries(stubber)
    clock = FakeClock()
    start = clock.now

    result = tc.run(settings(url), client, budget_seconds=50, clock=clock, sleep=clock.sleep)

    assert result["passed"] is False
    assert result["reason"] == f"no trace of {FRONTEND} in the burst's window"
    assert result["traces_found"] == 0
    assert result["first_trace_id"] is None
    assert result["console_link"].endswith("#xray:traces/query")
    assert result["polls"] == 6
    assert clock.sleeps == [2.0, 4.0, 8.0, 15.0, 15.0]
    assert clock.now - start <= 50
    with pytest.raises(tc.TraceCheckError) as failed:
        tc.outcome(result)
    assert json.loads(str(failed.value)) == result


def test_a_fault_on_the_backend_fails(frontend: tuple[Frontend, str], xray: Any) -> None:
    _, url = frontend
    client, stubber = xray
    expect_summaries(stubber, summary())
    expect_traces(
        stubber, [TRACE], trace(TRACE, segment(FRONTEND), segment(BACKEND, fault=True, status=500))
    )
    clock = FakeClock()

    result = tc.run(settings(url), client, budget_seconds=1, clock=clock, sleep=clock.sleep)

    assert result["passed"] is False
    assert result["reason"] == "no clean trace: 1 of 1 have a fault on the chain"
    assert result["faulted_traces"] == 1
    assert result["first_trace_id"] == TRACE


def test_a_faulted_trace_is_not_fetched_again(frontend: tuple[Frontend, str], xray: Any) -> None:
    _, url = frontend
    client, stubber = xray
    expect_summaries(stubber, summary(TRACE))
    expect_traces(stubber, [TRACE], trace(TRACE, segment(FRONTEND), segment(BACKEND, fault=True)))
    expect_summaries(stubber, summary(TRACE), summary(OTHER_TRACE))
    expect_traces(stubber, [OTHER_TRACE], trace(OTHER_TRACE))
    clock = FakeClock()

    result = tc.run(settings(url), client, budget_seconds=60, clock=clock, sleep=clock.sleep)

    assert result["passed"] is True
    assert result["first_trace_id"] == OTHER_TRACE
    assert result["faulted_traces"] == 1


def test_a_faulted_summary_is_not_fetched(frontend: tuple[Frontend, str], xray: Any) -> None:
    _, url = frontend
    client, stubber = xray
    expect_summaries(stubber, summary(fault=True))
    clock = FakeClock()

    result = tc.run(settings(url), client, budget_seconds=1, clock=clock, sleep=clock.sleep)

    assert result["passed"] is False
    assert result["faulted_traces"] == 1


def test_one_clean_trace_beside_a_faulted_one_passes(
    frontend: tuple[Frontend, str], xray: Any
) -> None:
    _, url = frontend
    client, stubber = xray
    expect_summaries(stubber, summary(OTHER_TRACE, fault=True), summary(TRACE))
    expect_traces(stubber, [TRACE], trace(TRACE))
    clock = FakeClock()

    result = tc.run(settings(url), client, budget_seconds=1, clock=clock, sleep=clock.sleep)

    assert result["passed"] is True
    assert result["first_trace_id"] == TRACE
    assert result["traces_found"] == 2


def test_only_the_frontend_fails_naming_the_backend(
    frontend: tuple[Frontend, str], xray: Any
) -> None:
    _, url = frontend
    client, stubber = xray
    expect_summaries(stubber, summary(services=(FRONTEND,)))
    clock = FakeClock()

    result = tc.run(settings(url), client, budget_seconds=1, clock=clock, sleep=clock.sleep)

    assert result["passed"] is False
    assert result["reason"] == f"no trace holds both services; missing: {BACKEND}"
    assert result["services_seen"] == [FRONTEND]


def test_throttling_is_retried(frontend: tuple[Frontend, str], xray: Any) -> None:
    _, url = frontend
    client, stubber = xray
    stubber.add_client_error(
        "get_trace_summaries",
        service_error_code="ThrottledException",
        http_status_code=429,
        expected_params=SUMMARIES_PARAMS,
    )
    expect_summaries(stubber, summary())
    expect_traces(stubber, [TRACE], trace())
    clock = FakeClock()

    result = tc.run(settings(url), client, budget_seconds=60, clock=clock, sleep=clock.sleep)

    assert result["passed"] is True
    assert result["throttled"] == 1
    assert result["polls"] == 2


def test_another_error_is_not_retried(frontend: tuple[Frontend, str], xray: Any) -> None:
    _, url = frontend
    client, stubber = xray
    stubber.add_client_error(
        "get_trace_summaries", service_error_code="AccessDeniedException", http_status_code=403
    )
    clock = FakeClock()
    with pytest.raises(Exception, match="AccessDenied"):
        tc.run(settings(url), client, budget_seconds=60, clock=clock, sleep=clock.sleep)


def test_non_2xx_and_unreachable_answers_are_counted(frontend: tuple[Frontend, str]) -> None:
    state, url = frontend
    state.status = 502
    burst = tc.send_burst(url + "/chain", 3, 3)
    assert burst.statuses == {"502": 3}
    assert burst.non_2xx == 3
    # A closed port on the loopback: refused at once.
    unreachable = tc.send_burst("http://127.0.0.1:9/chain", 2, 2, timeout=1)
    assert unreachable.statuses == {"error": 2}


def test_paged_summaries_are_all_read(frontend: tuple[Frontend, str], xray: Any) -> None:
    _, url = frontend
    client, stubber = xray
    stubber.add_response(
        "get_trace_summaries",
        {"TraceSummaries": [summary(OTHER_TRACE, services=(FRONTEND,))], "NextToken": "page-2"},
        SUMMARIES_PARAMS,
    )
    stubber.add_response(
        "get_trace_summaries",
        {"TraceSummaries": [summary(TRACE)]},
        {**SUMMARIES_PARAMS, "NextToken": "page-2"},
    )
    expect_traces(stubber, [TRACE], trace())
    clock = FakeClock()

    result = tc.run(settings(url), client, budget_seconds=1, clock=clock, sleep=clock.sleep)

    assert result["passed"] is True
    assert result["traces_found"] == 2


# --- settings and the handler --------------------------------------------------------------

ENV = {
    "TARGET_URL": "http://internal-alb.example",
    "FRONTEND_SERVICE": FRONTEND,
    "BACKEND_SERVICE": BACKEND,
    "AWS_REGION": REGION,
    "MODE": "fail",
    "REQUESTS": "20",
    "CONCURRENCY": "4",
}


def test_settings_come_from_the_environment_and_the_event() -> None:
    read = tc.Settings.read(ENV, {})
    assert (read.requests, read.concurrency, read.mode) == (20, 4, "fail")
    assert read.chain_url == "http://internal-alb.example/chain"
    overridden = tc.Settings.read(ENV, {"requests": 3, "concurrency": 10})
    assert (overridden.requests, overridden.concurrency) == (3, 3)


@pytest.mark.parametrize(
    ("env", "event", "message"),
    [
        ({"MODE": "off"}, {}, "MODE: 'off' is not allowed"),
        ({}, {"requests": 0}, "requests: 0 is not allowed; expected 1 to 200"),
        ({}, {"requests": 201}, "requests: 201 is not allowed"),
        ({"CONCURRENCY": "21"}, {}, "concurrency: 21 is not allowed; expected 1 to 20"),
        ({}, {"requests": "many"}, "requests: 'many' is not an integer"),
    ],
)
def test_settings_out_of_bounds_are_refused(
    env: dict[str, str], event: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        tc.Settings.read({**ENV, **env}, event)


class Context:
    def __init__(self, remaining_ms: int) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def _handler_env(monkeypatch: pytest.MonkeyPatch, url: str, mode: str, client: Any) -> None:
    for key, value in {**ENV, "TARGET_URL": url, "MODE": mode, "REQUESTS": "2"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(boto3, "client", lambda *_, **__: client)


def test_fail_mode_raises_with_the_report(
    frontend: tuple[Frontend, str], xray: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, url = frontend
    client, stubber = xray
    expect_summaries(stubber)
    _handler_env(monkeypatch, url, "fail", client)
    # 10.5 s left, 10 s kept for the answer: one poll, no wait.
    with pytest.raises(tc.TraceCheckError) as failed:
        tc.handler({}, Context(10_500))
    report = json.loads(str(failed.value))
    assert report["passed"] is False
    assert report["requests"] == 2
    assert report["polls"] == 1


def test_report_mode_never_fails(
    frontend: tuple[Frontend, str], xray: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, url = frontend
    client, stubber = xray
    expect_summaries(stubber)
    _handler_env(monkeypatch, url, "report", client)
    report = tc.handler({}, Context(10_500))
    assert report["passed"] is False
    assert report["mode"] == "report"


def test_report_mode_survives_an_error(
    frontend: tuple[Frontend, str], xray: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, url = frontend
    client, stubber = xray
    stubber.add_client_error(
        "get_trace_summaries", service_error_code="AccessDeniedException", http_status_code=403
    )
    _handler_env(monkeypatch, url, "report", client)
    report = tc.handler({}, Context(10_500))
    assert report["passed"] is False
    assert "AccessDenied" in report["reason"]


def test_fail_mode_passes_on_a_good_trace(
    frontend: tuple[Frontend, str], xray: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, url = frontend
    client, stubber = xray
    expect_summaries(stubber, summary())
    expect_traces(stubber, [TRACE], trace())
    _handler_env(monkeypatch, url, "fail", client)
    report = tc.handler({}, Context(10_500))
    assert report["passed"] is True


# --- a rollback re-runs the trigger: not checked ------------------------------------------

STACK_ID = "arn:aws:cloudformation:ap-northeast-1:111111111111:stack/dev-TraceCheck/abc"


def _cloudformation(status: str) -> tuple[Any, Stubber]:
    client = boto3.client(
        "cloudformation",
        region_name="ap-northeast-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )
    stubber = Stubber(client)
    stubber.add_response(
        "describe_stacks",
        {
            "Stacks": [
                {
                    "StackName": "dev-TraceCheck",
                    "StackId": STACK_ID,
                    "CreationTime": "2026-12-01T00:00:00Z",
                    "StackStatus": status,
                }
            ]
        },
        {"StackName": STACK_ID},
    )
    stubber.activate()
    return client, stubber


@pytest.mark.parametrize(
    ("status", "rolling"),
    [
        ("UPDATE_IN_PROGRESS", False),
        ("CREATE_IN_PROGRESS", False),
        ("UPDATE_ROLLBACK_IN_PROGRESS", True),
        ("ROLLBACK_IN_PROGRESS", True),
    ],
)
def test_a_rolling_back_stack_is_not_checked(status: str, rolling: bool) -> None:
    client, stubber = _cloudformation(status)
    assert tc.rolling_back(client, STACK_ID) == (status if rolling else None)
    stubber.assert_no_pending_responses()


def test_the_skipped_report_passes_and_says_why() -> None:
    settings = tc.Settings.read(
        {
            "TARGET_URL": "http://127.0.0.1:1",
            "FRONTEND_SERVICE": "f",
            "BACKEND_SERVICE": "b",
            "MODE": "fail",
            "AWS_REGION": "ap-northeast-1",
        },
        {},
    )
    result = tc.outcome(tc.skipped(settings, "UPDATE_ROLLBACK_IN_PROGRESS"))
    assert result["passed"] is True
    assert result["reason"] == "not checked: the stack is in UPDATE_ROLLBACK_IN_PROGRESS"


def test_no_stack_id_means_no_rollback_check() -> None:
    assert tc.rolling_back(None, None) is None
