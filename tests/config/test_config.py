"""The environment config model: every bad value stops synth with one line naming it."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from typing import Any

import pytest

from stacks.config import ConfigError, load_environments
from tests.conftest import ROOT, cdk_json_context
from traced_fargate.pull_through_cache import repository_prefix_problems


@pytest.fixture
def raw() -> dict[str, Any]:
    return copy.deepcopy(cdk_json_context()["environments"])


def problems_for(raw: dict[str, Any], selected: str | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_environments(raw, selected)
    return caught.value.problems


def test_cdk_json_environments_are_valid_and_differ() -> None:
    envs = {e.name: e for e in load_environments(cdk_json_context()["environments"])}
    assert {"dev", "prod"} <= set(envs)
    assert envs["dev"].frontend != envs["prod"].frontend
    assert envs["prod"].frontend.memory_mib > envs["dev"].frontend.memory_mib


def test_select_one_environment() -> None:
    (only,) = load_environments(cdk_json_context()["environments"], "prod")
    assert only.name == "prod"


def test_defaults_fill_omitted_sections(raw: dict[str, Any]) -> None:
    (env,) = load_environments({"qa": {}})
    assert env.account is None and env.region is None
    assert env.network.max_azs == 2
    assert env.tracing.mode == "xray-daemon"
    assert env.egress.mode == "temporary"
    assert env.registry.pull_through_cache_prefix == "qa-ecr-public"


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (("bogus",), 1, "dev.bogus: unknown key; allowed keys: account, backend, egress,"),
        (("network", "colour"), "red", "dev.network.colour: unknown key; allowed keys: "),
        (("network", "max_azs"), "2", "dev.network.max_azs: '2' is not allowed; expected an int"),
        (
            ("network", "max_azs"),
            1,
            "dev.network.max_azs: 1 is not allowed; allowed: a whole number from 2 to 6",
        ),
        (("network", "max_azs"), True, "dev.network.max_azs: True is not allowed; expected an int"),
        (("network", "vpc_cidr"), "10.0.0.0/33", "dev.network.vpc_cidr: '10.0.0.0/33' is not al"),
        (("network", "vpc_cidr"), "10.0.0.1/16", "dev.network.vpc_cidr: '10.0.0.1/16' is not al"),
        (
            ("network", "vpc_cidr"),
            "10.0.0.0/8",
            "'10.0.0.0/8' is not allowed; expected a prefix length from /16 to /24",
        ),
        (("network", "flow_log_retention_days"), 2, "flow_log_retention_days: 2 is not allowed"),
        (("account",), "12345", "dev.account: '12345' is not allowed; expected a 12-digit AWS"),
        (("region",), "moon-east-1", "dev.region: 'moon-east-1' is not allowed; expected a kn"),
        (("tracing", "mode"), "zipkin", "dev.tracing.mode: 'zipkin' is not allowed; expected one"),
        (
            ("tracing", "xray_daemon_tag"),
            "a b",
            "dev.tracing.xray_daemon_tag: 'a b' is not a valid image tag",
        ),
        (
            ("tracing", "adot_collector_tag"),
            "latest",
            "adot_collector_tag: 'latest' is a floating tag and is not allowed",
        ),
        (("egress", "mode"), "always", "dev.egress.mode: 'always' is not allowed; expected one of"),
        (("frontend",), [], "dev.frontend: expected an object, got []"),
        (("frontend", "cpu"), 300, "dev.frontend: cpu 300 / memory_mib 1024: cpu must be one of"),
        (("frontend", "memory_mib"), 8192, "memory must be one of: 1024, 2048, 3072, 4096 MiB"),
        (
            ("frontend", "app_image_tag"),
            "latest",
            "dev.frontend.app_image_tag: 'latest' is a floating tag",
        ),
        (("frontend", "min_count"), 5, "dev.frontend.min_count: 5 is above max_count 2"),
        (("frontend", "desired_count"), 2, "desired_count: unknown key; allowed keys: app_image_t"),
        (("frontend", "cpu_architecture"), "arm", "cpu_architecture: 'arm' is not allowed; expe"),
        (
            ("frontend", "cpu_architecture"),
            "ARM64",
            "dev.frontend.spot_weight: 1 places ARM64 task",
        ),
        (("backend", "tracing_sdk"), "zipkin", "dev.backend.tracing_sdk: 'zipkin' is not allowed"),
        (
            ("frontend", "deployment"),
            "canary",
            "dev.frontend.deployment: 'canary' is not allowed; expected one of \"rolling\", "
            '"blue-green"',
        ),
        (
            ("frontend", "bake_time_minutes"),
            1441,
            "dev.frontend.bake_time_minutes: 1441 is not allowed; expected an integer from 0 to "
            "1440",
        ),
        (
            ("backend", "deployment"),
            "blue-green",
            "dev.backend.deployment: 'blue-green' is not allowed; the backend has no load balancer",
        ),
        (("registry", "pull_through_cache_prefix"), "Ab", "pull_through_cache_prefix: 'Ab' is no"),
        (("load_client", "instance_type"), "big", "dev.load_client.instance_type: 'big' is no"),
    ],
)
def test_each_bad_value_is_named(
    raw: dict[str, Any], path: tuple[str, ...], value: Any, expected: str
) -> None:
    target = raw["dev"]
    for key in path[:-1]:
        target = target.setdefault(key, {})
    target[path[-1]] = value
    problems = problems_for(raw)
    assert len(problems) == 1, problems
    assert expected in problems[0]
    assert problems[0].startswith("cdk.json: context.environments.dev")


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("account",), "123456789012\n"),
        (("registry", "pull_through_cache_prefix"), "dev-ecr\n"),
        (("load_client", "instance_type"), "t3.micro\n"),
        (("tracing", "xray_daemon_tag"), "3.3.15\n"),
        (("tracing", "adot_collector_tag"), "v0.49.0\n"),
        (("frontend", "app_image_tag"), "1.4.2\n"),
        (("egress", "generation"), "2\n"),
        (("network", "vpc_cidr"), "10.20.0.0/16\n"),
    ],
)
def test_a_trailing_newline_is_not_part_of_a_valid_value(
    raw: dict[str, Any], path: tuple[str, ...], value: str
) -> None:
    target = raw["dev"]
    for key in path[:-1]:
        target = target.setdefault(key, {})
    target[path[-1]] = value
    (problem,) = problems_for(raw)
    assert problem.startswith(f"cdk.json: context.environments.dev.{'.'.join(path)}: {value!r} ")


def test_an_environment_name_with_a_trailing_newline_is_rejected(raw: dict[str, Any]) -> None:
    raw["dev\n"] = raw.pop("dev")
    (problem,) = problems_for(raw)
    assert "environment name 'dev\\n' is not allowed" in problem


KEY = "cdk.json: context.environments.{}.registry.pull_through_cache_prefix"
SET_IT = "set registry.pull_through_cache_prefix"


def test_long_environment_name_needs_explicit_cache_prefix() -> None:
    name = "a-very-long-environment-name"
    (problem,) = problems_for({name: {}})
    assert problem.startswith(
        f"{KEY.format(name)}: '{name}-ecr-public' has 39 characters; allowed: 2-30"
    )
    assert f"the default for environment {name!r}" in problem
    assert SET_IT in problem
    assert load_environments({name: {"registry": {"pull_through_cache_prefix": "long-ecr"}}})


def test_environment_name_that_derives_an_invalid_prefix_says_why(raw: dict[str, Any]) -> None:
    (problem,) = problems_for({"dev-": {}})
    assert problem.startswith(
        f"{KEY.format('dev-')}: 'dev--ecr-public' is not a valid repository prefix; allowed: "
        "lowercase letters and digits, separated by single . _ or -"
    )
    assert "too long" not in problem
    assert "the default for environment 'dev-'" in problem
    assert SET_IT in problem
    (env,) = load_environments({"dev-": {"registry": {"pull_through_cache_prefix": "dev-ecr"}}})
    assert env.registry.pull_through_cache_prefix == "dev-ecr"


@pytest.mark.parametrize(
    "prefix", ["e", "e" * 31, "ecr--public", "ecr/", "ecr//public", "Ecr", "ROOT", "a b"]
)
def test_explicit_prefix_follows_the_library_rule(raw: dict[str, Any], prefix: str) -> None:
    raw["dev"]["registry"]["pull_through_cache_prefix"] = prefix
    key = KEY.format("dev")
    assert problems_for(raw) == repository_prefix_problems(key, prefix)
    assert all(p.startswith(f"{key}: {prefix!r} ") for p in problems_for(raw))


@pytest.mark.parametrize("prefix", ["ec", "e" * 30, "team.a/ecr_public", "root"])
def test_explicit_prefix_the_library_accepts_is_accepted(raw: dict[str, Any], prefix: str) -> None:
    raw["dev"]["registry"]["pull_through_cache_prefix"] = prefix
    envs = {e.name: e for e in load_environments(raw)}
    assert envs["dev"].registry.pull_through_cache_prefix == prefix


def test_environment_name_must_be_lowercase(raw: dict[str, Any]) -> None:
    raw["Prod_2"] = raw.pop("prod")
    (problem,) = problems_for(raw)
    assert "environment name 'Prod_2' is not allowed; expected lowercase [a-z][a-z0-9-]*" in problem


def test_three_azs_need_a_concrete_environment(raw: dict[str, Any]) -> None:
    raw["dev"]["network"]["max_azs"] = 3
    (problem,) = problems_for(raw)
    assert "max_azs: 3 needs account and region set" in problem
    raw["dev"].update(account="111111111111", region="eu-west-1")
    assert load_environments(raw)


def test_cache_prefix_unique_per_account_and_region(raw: dict[str, Any]) -> None:
    raw["prod"]["registry"]["pull_through_cache_prefix"] = "dev-ecr-public"
    (problem,) = problems_for(raw)
    assert "'dev-ecr-public' is already used by 'dev'" in problem


def test_all_problems_reported_at_once(raw: dict[str, Any]) -> None:
    raw["dev"]["network"]["max_azs"] = 0
    raw["dev"]["region"] = "nowhere"
    raw["prod"]["egress"]["mode"] = "sometimes"
    assert len(problems_for(raw)) == 3


def test_unknown_selected_environment(raw: dict[str, Any]) -> None:
    (problem,) = problems_for(raw, "staging")
    assert problem == "-c env=staging: unknown environment; defined: dev, prod"


def test_empty_environments() -> None:
    (problem,) = problems_for({})
    assert "expected an object with at least one environment" in problem


def test_app_prints_problems_without_traceback(tmp_path: Any) -> None:
    """The real entry point, as `cdk synth` runs it: exit 1, one line per problem."""
    import json

    context = cdk_json_context()
    context["environments"]["dev"]["network"]["max_azs"] = 1
    context["environments"]["prod"]["tracing"]["mode"] = "jaeger"
    env = {
        **os.environ,
        "CDK_CONTEXT_JSON": json.dumps(context),
        "CDK_OUTDIR": str(tmp_path),
    }
    result = subprocess.run(
        [sys.executable, "app.py"], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("cdk.json")]
    assert len(lines) == 2
    assert "dev.network.max_azs: 1" in lines[0]
    assert "prod.tracing.mode: 'jaeger'" in lines[1]


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("frontend", "cpu_target_percent"), 95),
        (("frontend", "max_count"), 500),
        (("tracing", "xray_daemon_tag"), "sha256:" + "a" * 64),
        (("frontend", "app_image_tag"), "sha256:" + "b" * 64),
    ],
)
def test_config_accepts_what_the_library_accepts(
    raw: dict[str, Any], path: tuple[str, ...], value: Any
) -> None:
    target = raw["dev"]
    for key in path[:-1]:
        target = target.setdefault(key, {})
    target[path[-1]] = value
    (dev,) = load_environments(raw, "dev")
    assert dev.name == "dev"


def test_config_reports_the_librarys_own_message_under_the_key_path(raw: dict[str, Any]) -> None:
    from traced_fargate.service_scaling import target_problems

    raw["dev"].setdefault("frontend", {})["cpu_target_percent"] = 0
    where = "cdk.json: context.environments.dev.frontend."
    assert problems_for(raw) == target_problems(0, 500, prefix=where)


def test_cost_knobs_default_to_every_az_and_a_load_client() -> None:
    (env,) = load_environments({"qa": {}})
    assert env.network.endpoint_azs is None
    assert env.load_client.enabled is True


def test_cdk_json_dev_keeps_its_endpoints_in_one_az() -> None:
    envs = {e.name: e for e in load_environments(cdk_json_context()["environments"])}
    assert envs["dev"].network.endpoint_azs == 1
    assert envs["prod"].network.endpoint_azs is None


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (
            ("network", "endpoint_azs"),
            3,
            "dev.network.endpoint_azs: 3 is not allowed; allowed: a whole number from 1 to 2 "
            "(max_azs is 2)",
        ),
        (("network", "endpoint_azs"), 0, "dev.network.endpoint_azs: 0 is not allowed; allowed"),
        (("network", "endpoint_azs"), "1", "dev.network.endpoint_azs: '1' is not allowed; exp"),
        (("network", "endpoint_azs"), True, "dev.network.endpoint_azs: True is not allowed; ex"),
        (
            ("load_client", "enabled"),
            "no",
            "dev.load_client.enabled: 'no' is not allowed; expected true or false",
        ),
    ],
)
def test_each_bad_cost_knob_is_named_once(
    raw: dict[str, Any], path: tuple[str, ...], value: Any, expected: str
) -> None:
    raw["dev"].setdefault(path[0], {})[path[1]] = value
    (problem,) = problems_for(raw)
    assert problem.startswith("cdk.json: context.environments.dev")
    assert expected in problem


def test_endpoint_azs_follows_the_library_rule_and_max_azs(raw: dict[str, Any]) -> None:
    from traced_fargate.rules import endpoint_azs_problems

    raw["dev"]["network"]["endpoint_azs"] = 3
    key = "cdk.json: context.environments.dev.network.endpoint_azs"
    assert problems_for(raw) == endpoint_azs_problems(key, 3, 2)
    raw["dev"].update(account="111111111111", region="eu-west-1")
    raw["dev"]["network"]["max_azs"] = 3
    (dev,) = load_environments(raw, "dev")
    assert dev.network.endpoint_azs == 3


def test_load_client_can_be_left_out(raw: dict[str, Any]) -> None:
    raw["dev"]["load_client"]["enabled"] = False
    (dev,) = load_environments(raw, "dev")
    assert dev.load_client.enabled is False


def test_opentelemetry_needs_the_collector(raw: dict[str, Any]) -> None:
    raw["dev"]["tracing"] = {"mode": "xray-daemon"}
    raw["dev"]["frontend"]["tracing_sdk"] = "opentelemetry"
    raw["dev"]["backend"]["tracing_sdk"] = "opentelemetry"
    assert problems_for(raw) == [
        f"cdk.json: context.environments.dev.{role}.tracing_sdk: 'opentelemetry' sends OTLP, "
        "which the X-Ray daemon does not receive; set tracing.mode to 'adot-collector' or "
        "tracing_sdk to 'xray-sdk'"
        for role in ("frontend", "backend")
    ]


def test_a_mixed_fleet_on_the_collector_is_valid(raw: dict[str, Any]) -> None:
    raw["dev"]["tracing"] = {"mode": "adot-collector"}
    raw["dev"]["frontend"]["tracing_sdk"] = "xray-sdk"
    raw["dev"]["backend"]["tracing_sdk"] = "opentelemetry"
    (dev,) = load_environments(raw, "dev")
    assert (dev.frontend.tracing_sdk, dev.backend.tracing_sdk) == ("xray-sdk", "opentelemetry")


def test_logging_and_exec_default_to_awslogs_and_off() -> None:
    (env,) = load_environments({"qa": {}})
    assert env.logging == "awslogs"
    assert not env.frontend.enable_exec and not env.backend.enable_exec


def test_cdk_json_dev_has_exec_on_and_prod_off() -> None:
    envs = {e.name: e for e in load_environments(cdk_json_context()["environments"])}
    assert envs["dev"].frontend.enable_exec and envs["dev"].backend.enable_exec
    assert not envs["prod"].frontend.enable_exec and not envs["prod"].backend.enable_exec
    assert envs["dev"].logging == envs["prod"].logging == "awslogs"


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (
            ("logging",),
            "fluentd",
            'dev.logging: \'fluentd\' is not allowed; expected one of "awslogs", "firelens"',
        ),
        (
            ("frontend", "enable_exec"),
            "yes",
            "dev.frontend.enable_exec: 'yes' is not allowed; expected true or false",
        ),
        (
            ("backend", "enable_exec"),
            1,
            "dev.backend.enable_exec: 1 is not allowed; expected true or false",
        ),
    ],
)
def test_bad_logging_and_exec_values_are_named(
    raw: dict[str, Any], path: tuple[str, ...], value: Any, expected: str
) -> None:
    section = raw["dev"]
    for key in path[:-1]:
        section = section[key]
    section[path[-1]] = value
    (problem,) = problems_for(raw)
    assert expected in problem
