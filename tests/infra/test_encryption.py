"""Encryption and logs across the whole synthesized app, and every checkov skip in it.

Every log group is KMS-encrypted with a retention; every repository is KMS-encrypted; every
SNS topic is under a customer managed key whose policy, like the topic policy, lets the
alarms that publish to it in. The checkov skips are listed here, each with its reason, so
that a new one is a reviewed change.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest
from aws_cdk import CfnResource, Stack, Token

from tests.conftest import ENV_NAMES, Synthesized
from tests.encryption_checks import (
    log_group_problems,
    of_type,
    sns_topic_problems,
    topic_publishers,
)
from traced_fargate._checkov import CHECK_ID


def _templates(synthesized: Synthesized) -> list[tuple[str, Stack, dict[str, Any]]]:
    return [
        (
            f"{env}/{stack_id}",
            synthesized.stack(env, stack_id),
            synthesized.template_json(env, stack_id),
        )
        for env in ENV_NAMES
        for stack_id in synthesized.stack_ids(env)
    ]


def _literal(value: str) -> str | None:
    return None if Token.is_unresolved(value) else value


def test_every_log_group_is_kms_encrypted_with_retention(synthesized: Synthesized) -> None:
    problems = []
    groups = 0
    for where, _, template in _templates(synthesized):
        groups += len(of_type(template["Resources"], "AWS::Logs::LogGroup"))
        problems += [f"{where}: {p}" for p in log_group_problems(template["Resources"])]
    assert problems == []
    assert groups >= 2 * len(ENV_NAMES)  # flow logs, egress handlers, containers


def test_the_egress_handler_logs_are_encrypted(synthesized: Synthesized) -> None:
    for env in ENV_NAMES:
        egress = synthesized.stages[env].network.egress
        if egress is None:
            continue
        group = egress.log_group.node.default_child
        assert isinstance(group, CfnResource)
        resolved = Stack.of(egress).resolve(egress.log_encryption_key.key_arn)
        template = synthesized.template_json(env, "Network")
        logical_id = Stack.of(egress).get_logical_id(group)
        assert template["Resources"][logical_id]["Properties"]["KmsKeyId"] == resolved


def test_every_topic_lets_its_publishers_in(synthesized: Synthesized) -> None:
    problems = []
    publishers = 0
    for where, stack, template in _templates(synthesized):
        account, region = _literal(stack.account), _literal(stack.region)
        resources = template["Resources"]
        publishers += sum(map(len, topic_publishers(resources, account, region).values()))
        problems += [f"{where}: {p}" for p in sns_topic_problems(resources, account, region)]
    assert problems == []
    assert publishers > 0, "no alarm publishes to a topic: the check proved nothing"


def test_every_repository_is_kms_encrypted(synthesized: Synthesized) -> None:
    unencrypted = [
        f"{where}: {logical_id}"
        for where, _, template in _templates(synthesized)
        for logical_id, repository in of_type(template["Resources"], "AWS::ECR::Repository").items()
        if repository["Properties"].get("EncryptionConfiguration", {}).get("EncryptionType")
        != "KMS"
    ]
    assert unencrypted == []


# Every checkov skip in a stack, by construct path under the stack: a reviewed list.
_CUSTOM_RESOURCE_FUNCTION = {"CKV_AWS_115", "CKV_AWS_116", "CKV_AWS_117"}
_PROVIDER_FUNCTION = {*_CUSTOM_RESOURCE_FUNCTION, "CKV_AWS_173"}
EXPECTED_SKIPS: dict[str, dict[str, set[str]]] = {
    "Network": {
        "Custom::VpcRestrictDefaultSGCustomResourceProvider/Handler": _CUSTOM_RESOURCE_FUNCTION,
        # The function of the ClosedVpc's S3 prefix list lookup (AwsCustomResource).
        "AWS679f53fac002430cb0da5b7982bd2287/Resource": _CUSTOM_RESOURCE_FUNCTION,
        "TemporaryEgress/OnEvent/Resource": _CUSTOM_RESOURCE_FUNCTION,
        "TemporaryEgress/IsComplete/Resource": _CUSTOM_RESOURCE_FUNCTION,
        "TemporaryEgress/Provider/framework-onEvent/Resource": _PROVIDER_FUNCTION,
        "TemporaryEgress/Provider/framework-isComplete/Resource": _PROVIDER_FUNCTION,
        "TemporaryEgress/Provider/framework-onTimeout/Resource": _PROVIDER_FUNCTION,
        "TemporaryEgress/Provider/waiter-state-machine/Role/DefaultPolicy/Resource": {
            "CKV_AWS_111"
        },
    },
    "Registry": {
        "PullThroughCache/xray--aws-xray-daemon/Resource": {"CKV_AWS_51"},
        "PullThroughCache/aws-observability--aws-otel-collector/Resource": {"CKV_AWS_51"},
        "PullThroughCache/aws-observability--aws-for-fluent-bit/Resource": {"CKV_AWS_51"},
    },
    "Service": {
        "Frontend/LoadBalancer/LoadBalancer/Http/Resource": {"CKV_AWS_2", "CKV_AWS_103"},
        "Frontend/LoadBalancer/AccessLogsBucket/Resource": {"CKV_AWS_18"},
    },
    "TraceCheck": {
        # ENI actions for the VPC attachment on '*'; a once-per-deploy function.
        "Role/Resource": {"CKV_AWS_111"},
        "Function/Resource": {"CKV_AWS_115", "CKV_AWS_116", "CKV_AWS_173"},
        "AWSCDK.TriggerCustomResourceProviderCustomResourceProvider/Handler": (
            _CUSTOM_RESOURCE_FUNCTION
        ),
    },
}


def _skips(stack: Stack) -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = {}
    for child in stack.node.find_all():
        if isinstance(child, CfnResource) and Stack.of(child) is stack:
            metadata = child.get_metadata("checkov")
            if metadata:
                path = child.node.path.removeprefix(stack.node.path + "/")
                found[path] = {s["id"]: s["comment"] for s in metadata["skip"]}
    return found


@pytest.mark.parametrize("env", ENV_NAMES)
def test_checkov_skips_are_the_reviewed_ones_each_with_a_reason(
    synthesized: Synthesized, env: str
) -> None:
    for stack_id in synthesized.stack_ids(env):
        skips = _skips(synthesized.stack(env, stack_id))
        for path, by_id in skips.items():
            for check_id, comment in by_id.items():
                assert CHECK_ID.fullmatch(check_id), (path, check_id)
                assert len(comment) > 40 and re.search(r"[a-z]{3}", comment), (path, check_id)
        actual = {path: set(by_id) for path, by_id in skips.items()}
        assert actual == EXPECTED_SKIPS.get(stack_id, {}), stack_id


# --- the checks catch what they are for -------------------------------------------------


def _service_resources(synthesized: Synthesized) -> dict[str, Any]:
    resources: dict[str, Any] = copy.deepcopy(synthesized.template_json("dev", "Service"))[
        "Resources"
    ]
    return resources


def _topic_problems(synthesized: Synthesized, resources: dict[str, Any]) -> list[str]:
    stack = synthesized.stack("dev", "Service")
    return sns_topic_problems(resources, _literal(stack.account), _literal(stack.region))


def _without_cloudwatch(statements: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [s for s in statements if "cloudwatch.amazonaws.com" not in json.dumps(s)]


def test_a_topic_policy_without_the_alarms_allow_is_caught(synthesized: Synthesized) -> None:
    resources = _service_resources(synthesized)
    for policy in of_type(resources, "AWS::SNS::TopicPolicy").values():
        document = policy["Properties"]["PolicyDocument"]
        document["Statement"] = _without_cloudwatch(document["Statement"])
    problems = _topic_problems(synthesized, resources)
    assert problems and all("topic policy" in p and "no statement allows" in p for p in problems)


def test_a_key_policy_without_cloudwatch_is_caught(synthesized: Synthesized) -> None:
    resources = _service_resources(synthesized)
    for key in of_type(resources, "AWS::KMS::Key").values():
        document = key["Properties"]["KeyPolicy"]
        document["Statement"] = _without_cloudwatch(document["Statement"])
    problems = _topic_problems(synthesized, resources)
    assert {p.split(", ")[-1] for p in problems} == {
        "kms:GenerateDataKey: no statement allows it",
        "kms:Decrypt: no statement allows it",
    }


def test_a_deny_that_matches_the_alarms_is_caught(synthesized: Synthesized) -> None:
    resources = _service_resources(synthesized)
    for policy in of_type(resources, "AWS::SNS::TopicPolicy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if statement["Effect"] == "Deny":
                statement.pop("Condition")
    problems = _topic_problems(synthesized, resources)
    assert problems and all("denied by" in p for p in problems)


def test_an_unencrypted_or_unlimited_log_group_is_caught(synthesized: Synthesized) -> None:
    resources = _service_resources(synthesized)
    first, second, *_ = of_type(resources, "AWS::Logs::LogGroup")
    del resources[first]["Properties"]["KmsKeyId"]
    del resources[second]["Properties"]["RetentionInDays"]
    assert log_group_problems(resources) == [
        f"{first}: no KmsKeyId",
        f"{second}: no RetentionInDays (logs are kept forever)",
    ]
