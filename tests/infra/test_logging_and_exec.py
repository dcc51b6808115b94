"""`logging: firelens` and `<service>.enable_exec` as the app composes them.

cdk.json's environments log through awslogs, so FireLens is checked on the session's
opt-in variant of dev (``opt_in_variant`` in conftest: logging firelens, exec on the
frontend only), which cfn-lint and checkov scan too. ECS Exec as dev has it comes from the
session's synth.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from aws_cdk import Stack
from aws_cdk.assertions import Template

from stacks.config import EnvironmentConfig
from stacks.service_stack import ServiceStack
from tests.conftest import OptInVariant, Synthesized
from tests.encryption_checks import log_group_problems
from traced_fargate.ecs_exec import AGENT_PATHS
from traced_fargate.firelens import FireLensLogRouter
from traced_fargate.traced_task_definition import TracedTaskDefinition

ROUTER = "log-router"


@dataclasses.dataclass(frozen=True)
class Variant:
    config: EnvironmentConfig
    stack: ServiceStack
    template: dict[str, Any]
    registry: dict[str, Any]

    def logical_id(self, construct: Any) -> str:
        child = construct.node.default_child or construct
        return str(Stack.of(construct).resolve(child.logical_id))

    def task(self, role: str) -> TracedTaskDefinition:
        service = self.stack.frontend if role == "frontend" else self.stack.backend
        return service.task_definition

    def containers(self, role: str) -> dict[str, dict[str, Any]]:
        resource = self.template["Resources"][self.logical_id(self.task(role).task_definition)]
        return {c["Name"]: c for c in resource["Properties"]["ContainerDefinitions"]}


@pytest.fixture(scope="module")
def variant(opt_in_variant: OptInVariant) -> Variant:
    return Variant(
        config=opt_in_variant.config,
        stack=opt_in_variant.stage.service,
        template=opt_in_variant.service,
        registry=opt_in_variant.registry,
    )


@pytest.fixture(params=["frontend", "backend"])
def role(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_each_task_has_the_router_through_the_cache_pinned(variant: Variant, role: str) -> None:
    router = variant.containers(role)[ROUTER]
    image = json.dumps(router["Image"])
    prefix = variant.config.registry.pull_through_cache_prefix
    assert f"/{prefix}/{FireLensLogRouter.UPSTREAM_PATH}:{FireLensLogRouter.DEFAULT_TAG}" in image
    assert router["Essential"] is True
    assert router["MemoryReservation"] == 128
    assert router["FirelensConfiguration"] == {
        "Type": "fluentbit",
        "Options": {"enable-ecs-log-metadata": "true"},
    }
    assert router["LogConfiguration"]["LogDriver"] == "awslogs"


def test_the_router_counts_in_the_task_size(variant: Variant, role: str) -> None:
    containers = variant.containers(role)
    reserved = sum(c.get("MemoryReservation", 0) for c in containers.values())
    assert reserved == int(variant.task(role).task_definition.node.default_child.memory)


def test_the_app_logs_through_the_router_to_its_log_group(variant: Variant, role: str) -> None:
    task = variant.task(role)
    app = variant.containers(role)["app"]
    assert app["LogConfiguration"] == {
        "LogDriver": "awsfirelens",
        "Options": {
            "Name": "cloudwatch_logs",
            "region": variant.config.region,
            "log_group_name": {"Ref": variant.logical_id(task.app_log_group)},
            "log_stream_prefix": "firelens/",
            "auto_create_group": "false",
        },
    }
    assert {"Condition": "START", "ContainerName": ROUTER} in app["DependsOn"]


def test_the_task_role_writes_only_its_app_log_group(variant: Variant, role: str) -> None:
    task = variant.task(role)
    policy = task.task_role.node.find_child("DefaultPolicy")
    statements = variant.template["Resources"][variant.logical_id(policy)]["Properties"][
        "PolicyDocument"
    ]["Statement"]
    write = {
        "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
        "Effect": "Allow",
        "Resource": {"Fn::GetAtt": [variant.logical_id(task.app_log_group), "Arn"]},
    }
    assert statements[0] == write
    if role == "backend":
        assert statements == [write]
    else:
        # The exec statements follow; no other '*' than the acknowledged exec actions.
        for statement in statements[1:]:
            if statement["Resource"] == "*":
                actions = statement["Action"]
                actions = [actions] if isinstance(actions, str) else actions
                assert all(
                    a.startswith("ssmmessages:") or a == "logs:DescribeLogGroups" for a in actions
                )


def test_exec_volumes_only_where_exec_is_on(variant: Variant, role: str) -> None:
    paths = {m["ContainerPath"] for m in variant.containers(role)["app"]["MountPoints"]}
    assert (set(AGENT_PATHS) <= paths) is (role == "frontend")
    service = variant.template["Resources"][
        variant.logical_id(
            (variant.stack.frontend if role == "frontend" else variant.stack.backend).service
        )
    ]
    assert service["Properties"].get("EnableExecuteCommand", False) is (role == "frontend")


def test_every_log_group_is_encrypted_with_retention(variant: Variant) -> None:
    assert log_group_problems(variant.template["Resources"]) == []
    groups = Template.from_json(variant.template).find_resources("AWS::Logs::LogGroup")
    # app, tracing and router per service, the exec session log, and the function of the
    # frontend's blue/green production rule.
    assert len(groups) == 8


def test_the_registry_owns_the_fluent_bit_cache_repository(synthesized: Synthesized) -> None:
    for env in ("dev", "prod"):
        repositories = synthesized.template(env, "Registry").find_resources("AWS::ECR::Repository")
        names = {json.dumps(r["Properties"].get("RepositoryName")) for r in repositories.values()}
        assert any(FireLensLogRouter.UPSTREAM_PATH in n for n in names), names


# --- ECS Exec as dev has it -------------------------------------------------------


def test_dev_cluster_encrypts_and_logs_exec_sessions(synthesized: Synthesized) -> None:
    stack = synthesized.stack("dev", "Service")
    assert isinstance(stack, ServiceStack)
    sessions = stack.exec_sessions
    assert sessions is not None
    template = synthesized.template_json("dev", "Service")

    def logical_id(construct: Any) -> str:
        child = construct.node.default_child or construct
        return str(stack.resolve(child.logical_id))

    cluster = template["Resources"][logical_id(stack.cluster)]
    assert cluster["Properties"]["Configuration"]["ExecuteCommandConfiguration"] == {
        "KmsKeyId": {"Fn::GetAtt": [logical_id(sessions.key), "Arn"]},
        "LogConfiguration": {
            "CloudWatchEncryptionEnabled": True,
            "CloudWatchLogGroupName": {"Ref": logical_id(sessions.log_group)},
        },
        "Logging": "OVERRIDE",
    }
    for service in (stack.frontend, stack.backend):
        resource = template["Resources"][logical_id(service.service)]
        assert resource["Properties"]["EnableExecuteCommand"] is True


def test_prod_has_no_exec(synthesized: Synthesized) -> None:
    stack = synthesized.stack("prod", "Service")
    assert isinstance(stack, ServiceStack)
    assert stack.exec_sessions is None
    template = synthesized.template("prod", "Service")
    for service in template.find_resources("AWS::ECS::Service").values():
        assert "EnableExecuteCommand" not in service["Properties"]
    for cluster in template.find_resources("AWS::ECS::Cluster").values():
        assert "Configuration" not in cluster["Properties"]
