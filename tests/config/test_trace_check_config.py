"""The trace_check section of an environment: one line per bad value, naming its key."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from stacks.config import ConfigError, TraceCheckConfig, load_environments
from tests.conftest import cdk_json_context

WHERE = "cdk.json: context.environments.dev.trace_check"


def _problems(section: Any) -> list[str]:
    raw = copy.deepcopy(cdk_json_context()["environments"])
    raw["dev"]["trace_check"] = section
    with pytest.raises(ConfigError) as caught:
        load_environments(raw)
    return caught.value.problems


def test_the_defaults_and_cdk_json() -> None:
    assert TraceCheckConfig() == TraceCheckConfig(
        mode="fail", requests=20, concurrency=4, timeout_seconds=180, log_retention_days=30
    )
    envs = {e.name: e for e in load_environments(cdk_json_context()["environments"])}
    assert envs["dev"].trace_check.mode == "fail"
    assert envs["prod"].trace_check.mode == "report"
    (qa,) = load_environments({"qa": {}})
    assert qa.trace_check == TraceCheckConfig()


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ({"mode": "warn"}, f"{WHERE}.mode: 'warn' is not allowed; expected one of \"fail\""),
        ({"requests": 0}, f"{WHERE}.requests: 0 is not allowed; expected an integer from 1 to 200"),
        ({"requests": True}, f"{WHERE}.requests: True is not allowed; expected an integer"),
        ({"concurrency": 21}, f"{WHERE}.concurrency: 21 is not allowed; expected an integer from"),
        (
            {"timeout_seconds": 30},
            f"{WHERE}.timeout_seconds: 30 is not allowed; expected an integer from 60 to 600",
        ),
        ({"log_retention_days": 2}, f"{WHERE}.log_retention_days: 2 is not allowed; expected one"),
        (
            {"count": 5},
            f"{WHERE}.count: unknown key; allowed keys: concurrency, log_retention_days,",
        ),
        (
            {"requests": 3, "concurrency": 5},
            f"{WHERE}.concurrency: 5 is not allowed; expected at most trace_check.requests (3)",
        ),
        ("fail", f"{WHERE}: expected an object, got 'fail'"),
    ],
)
def test_a_bad_value_is_one_line_naming_its_key(section: Any, expected: str) -> None:
    problems = _problems(section)
    assert len(problems) == 1, problems
    assert problems[0].startswith(expected), problems


def test_an_invalid_value_is_not_compared_again() -> None:
    # concurrency 30 is reported once; its default is not compared with requests 2.
    problems = _problems({"requests": 2, "concurrency": 30})
    assert len(problems) == 1
    assert ".concurrency: 30 is not allowed" in problems[0]
