"""The routes' answers, through the whole WSGI stack (webtest)."""

from __future__ import annotations

from typing import Any

import pytest

from sample_app.traced_app.app import MAX_N, count_primes, parse_n


def test_root_says_hello(app: Any) -> None:
    response = app.get("/")
    assert response.status_int == 200
    assert response.text == "Hello X-Ray!"
    assert response.content_type == "text/plain"


def test_health_answers_ok_without_a_trace_header(app: Any) -> None:
    response = app.get("/healthz")
    assert response.text == "ok"
    assert "X-Amzn-Trace-Id" not in response.headers


def test_traced_routes_return_their_trace_id(app: Any) -> None:
    response = app.get("/")
    assert response.headers["X-Amzn-Trace-Id"].startswith("Root=1-")


def test_work_counts_primes(app: Any) -> None:
    response = app.get("/work", {"n": "100"})
    assert response.json == {"n": 100, "primes": 25, "largest_prime": 97}


def test_work_accepts_the_bounds(app: Any) -> None:
    assert app.get("/work", {"n": "2"}).json == {"n": 2, "primes": 0, "largest_prime": 0}
    assert app.get("/work", {"n": str(MAX_N)}).json["primes"] == 78498


@pytest.mark.parametrize("raw", ["", "abc", "-5", "+5", "1", "0", " 7", "7.0", "1e3", "1000001"])
def test_work_rejects_bad_input_with_400(app: Any, raw: str) -> None:
    response = app.get("/work", {"n": raw}, status=400)
    assert "n must be an integer" in response.json["error"]


def test_work_without_n_is_400(app: Any) -> None:
    app.get("/work", status=400)


def test_unknown_route_is_404(app: Any) -> None:
    app.get("/nope", status=404)


@pytest.mark.parametrize(
    ("n", "expected"),
    [(2, (0, 0)), (3, (1, 2)), (10, (4, 7)), (11, (4, 7)), (12, (5, 11)), (7920, (1000, 7919))],
)
def test_count_primes(n: int, expected: tuple[int, int]) -> None:
    assert count_primes(n) == expected


def test_parse_n_takes_plain_digits_in_range() -> None:
    assert parse_n("42") == 42
    assert parse_n("0042") == 42
    assert parse_n("٤٢") is None  # Arabic-Indic digits: int() takes them, the route does not
    assert parse_n(str(MAX_N + 1)) is None


def test_unsampled_requests_still_get_a_real_trace_id(app: Any) -> None:
    # The access log names every request by it, and a backend is told "not sampled" about a
    # valid trace (the SDK's default would be Root=1-00000000-000000000000000000000000).
    header = app.get("/", headers={"X-Amzn-Trace-Id": "Sampled=0"}).headers["X-Amzn-Trace-Id"]
    assert header.startswith("Root=1-")
    assert "00000000-000000000000000000000000" not in header


def test_errors_are_plain_text(app: Any) -> None:
    assert app.get("/nope", status=404).text == "404 Not Found\n"
    assert app.post("/", status=405).text == "405 Method Not Allowed\n"
