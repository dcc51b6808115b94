"""FireLensLogRouter and ECS Exec as a library consumer uses them, on a bare App: the
router container, the app's awsfirelens driver, the grants, start order and log group
encryption; a service with ``enable_exec``, its cluster's session configuration, the
ssmmessages grant and the SSM agent's writable volumes; prop validation and cdk-nag.

Every construct of the module lives in one stack, synthesized once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from aws_cdk import Environment, Stack, Validations
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from cdk_nag import AwsSolutionsChecks

from tests.conftest import bare_app
from tests.encryption_checks import log_group_problems
from traced_fargate import (
    ClosedVpc,
    ExecuteCommandSessions,
    FireLensLogRouter,
    InvalidPropsError,
    PullThroughCache,
    TracedFargateService,
    TracedTaskDefinition,
    XRayDaemon,
)
from traced_fargate.ecs_exec import AGENT_PATHS, SSM_MESSAGES_ACTIONS

ACCOUNT = "111111111111"
REGION = "eu-west-1"
ENV = Environment(account=ACCOUNT, region=REGION)
PREFIX = "lib-cache"
APP_IMAGE = "public.ecr.aws/docker/library/python:3.13-slim"
FLUENT_BIT = "aws-observability/aws-for-fluent-bit"


@dataclass(frozen=True)
class Built:
    stack: Stack
    routed: TracedTaskDefinition
    public: TracedTaskDefinition
    service: TracedFargateService
    template: dict[str, Any]


@pytest.fixture(scope="module")
def built() -> Built:
    app = bare_app()
    stack = Stack(app, "Lib", env=ENV)
    cache = PullThroughCache(stack, "Cache", repository_prefix=PREFIX)
    vpc = ClosedVpc(
        stack, "Vpc", additional_interface_endpoints=[ec2.InterfaceVpcEndpointAwsService.KMS]
    )
    image = ecs.ContainerImage.from_registry(APP_IMAGE)
    routed = TracedTaskDefinition(
        stack,
        "Routed",
        app_image=image,
        tracing=XRayDaemon(pull_through_cache=cache),
        extensions=[FireLensLogRouter(pull_through_cache=cache)],
    )
    public = TracedTaskDefinition(
        stack,
        "Public",
        app_image=image,
        tracing=XRayDaemon(),
        extensions=[FireLensLogRouter(log_stream_prefix="orders/", memory_reservation_mib=64)],
    )
    service = TracedFargateService(stack, "Svc", task_definition=routed, vpc=vpc, enable_exec=True)
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    # Raises on any unacknowledged nag finding.
    assembly = app.synth()
    return Built(
        stack=stack,
        routed=routed,
        public=public,
        service=service,
        template=assembly.get_stack_by_name("Lib").template,
    )


def _id(built: Built, construct: Any) -> str:
    element = construct.node.default_child or construct
    return str(built.stack.resolve(element.logical_id))


def _resources(built: Built, kind: str) -> dict[str, dict[str, Any]]:
    return {k: r for k, r in built.template["Resources"].items() if r["Type"] == kind}


def _containers(built: Built, task: TracedTaskDefinition) -> dict[str, dict[str, Any]]:
    resource = built.template["Resources"][_id(built, task.task_definition)]
    return {c["Name"]: c for c in resource["Properties"]["ContainerDefinitions"]}


def _task_role_statements(built: Built, task: TracedTaskDefinition) -> list[dict[str, Any]]:
    policy = task.task_role.node.find_child("DefaultPolicy")
    resource = built.template["Resources"][_id(built, policy)]
    statements: list[dict[str, Any]] = resource["Properties"]["PolicyDocument"]["Statement"]
    return statements


def _cached(path: str) -> dict[str, Any]:
    return {
        "Fn::Join": [
            "",
            [f"{ACCOUNT}.dkr.ecr.{REGION}.", {"Ref": "AWS::URLSuffix"}, f"/{PREFIX}/{path}"],
        ]
    }


# --- FireLens -------------------------------------------------------------------


def test_router_comes_through_the_cache_at_the_pinned_tag(built: Built) -> None:
    router = _containers(built, built.routed)["log-router"]
    assert router["Image"] == _cached(f"{FLUENT_BIT}:{FireLensLogRouter.DEFAULT_TAG}")
    assert FireLensLogRouter.DEFAULT_TAG.startswith("3.")
    public = _containers(built, built.public)["log-router"]
    assert public["Image"] == f"public.ecr.aws/{FLUENT_BIT}:{FireLensLogRouter.DEFAULT_TAG}"


def test_router_is_essential_fluent_bit_with_ecs_metadata_on_a_read_only_root(
    built: Built,
) -> None:
    router = _containers(built, built.routed)["log-router"]
    assert router["Essential"] is True
    assert router["FirelensConfiguration"] == {
        "Type": "fluentbit",
        "Options": {"enable-ecs-log-metadata": "true"},
    }
    assert router["ReadonlyRootFilesystem"] is True
    assert router["MountPoints"] == [
        {"ContainerPath": "/tmp", "ReadOnly": False, "SourceVolume": "log-router-tmp"}
    ]
    # No config file: on Fargate it could not come from S3 through the task definition.
    assert "config-file-type" not in router["FirelensConfiguration"]["Options"]


def test_router_reservations_count_in_the_task_size(built: Built) -> None:
    containers = _containers(built, built.routed)
    assert containers["log-router"]["Cpu"] == 32
    assert containers["log-router"]["MemoryReservation"] == 128
    # 1024 MiB less the daemon's 256 and the router's 128; 512 cpu less 32 + 32.
    assert containers["app"]["MemoryReservation"] == 1024 - 256 - 128
    assert containers["app"]["Cpu"] == 512 - 32 - 32
    public = _containers(built, built.public)
    assert public["log-router"]["MemoryReservation"] == 64
    assert public["app"]["MemoryReservation"] == 1024 - 256 - 64


def test_only_our_router_is_in_the_task(built: Built) -> None:
    for task in (built.routed, built.public):
        names = list(_containers(built, task))
        assert names == ["tracing", "log-router", "app"]
        assert sum("FirelensConfiguration" in c for c in _containers(built, task).values()) == 1


def test_app_logs_through_fluent_bits_cloudwatch_output_to_its_log_group(built: Built) -> None:
    app = _containers(built, built.routed)["app"]
    assert app["LogConfiguration"] == {
        "LogDriver": "awsfirelens",
        "Options": {
            "Name": "cloudwatch_logs",
            "region": REGION,
            "log_group_name": {"Ref": _id(built, built.routed.app_log_group)},
            "log_stream_prefix": "firelens/",
            "auto_create_group": "false",
        },
    }
    public = _containers(built, built.public)["app"]
    assert public["LogConfiguration"]["Options"]["log_stream_prefix"] == "orders/"


def test_router_logs_through_awslogs_to_its_own_log_group(built: Built) -> None:
    router = _containers(built, built.routed)["log-router"]
    group = built.routed.node.find_child("LogRouterLogGroup")
    assert router["LogConfiguration"]["LogDriver"] == "awslogs"
    assert router["LogConfiguration"]["Options"]["awslogs-group"] == {"Ref": _id(built, group)}
    assert router["LogConfiguration"]["Options"]["mode"] == "non-blocking"


def test_app_starts_after_the_router(built: Built) -> None:
    app = _containers(built, built.public)["app"]
    assert {"Condition": "START", "ContainerName": "log-router"} in app["DependsOn"]


def test_task_role_writes_only_the_app_log_group_for_the_router(built: Built) -> None:
    statements = _task_role_statements(built, built.public)
    assert statements == [
        {
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Effect": "Allow",
            "Resource": {"Fn::GetAtt": [_id(built, built.public.app_log_group), "Arn"]},
        }
    ]


def test_every_log_group_is_encrypted_with_retention(built: Built) -> None:
    assert log_group_problems(built.template["Resources"]) == []
    # The app's, the router's and the daemon's for each task, and the session log group.
    assert len(_resources(built, "AWS::Logs::LogGroup")) >= 7


# --- ECS Exec -------------------------------------------------------------------


def test_exec_is_enabled_on_the_service(built: Built) -> None:
    service = built.template["Resources"][_id(built, built.service.service)]
    assert service["Properties"]["EnableExecuteCommand"] is True


def test_default_cluster_encrypts_and_logs_sessions(built: Built) -> None:
    sessions = built.service.exec_sessions
    assert sessions is not None
    cluster = built.template["Resources"][_id(built, built.service.cluster)]
    assert cluster["Properties"]["Configuration"] == {
        "ExecuteCommandConfiguration": {
            "KmsKeyId": {"Fn::GetAtt": [_id(built, sessions.key), "Arn"]},
            "LogConfiguration": {
                "CloudWatchEncryptionEnabled": True,
                "CloudWatchLogGroupName": {"Ref": _id(built, sessions.log_group)},
            },
            "Logging": "OVERRIDE",
        }
    }
    group = built.template["Resources"][_id(built, sessions.log_group)]
    assert group["Properties"]["KmsKeyId"] == {"Fn::GetAtt": [_id(built, sessions.key), "Arn"]}
    assert group["Properties"]["RetentionInDays"] == 365
    key = built.template["Resources"][_id(built, sessions.key)]
    assert key["Properties"]["EnableKeyRotation"] is True


def test_task_role_holds_exactly_the_router_and_exec_statements(built: Built) -> None:
    sessions = built.service.exec_sessions
    assert sessions is not None
    statements = _task_role_statements(built, built.routed)
    assert statements == [
        {
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Effect": "Allow",
            "Resource": {"Fn::GetAtt": [_id(built, built.routed.app_log_group), "Arn"]},
        },
        {"Action": list(SSM_MESSAGES_ACTIONS), "Effect": "Allow", "Resource": "*"},
        {
            "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
            "Effect": "Allow",
            "Resource": {"Fn::GetAtt": [_id(built, sessions.key), "Arn"]},
        },
        {"Action": "logs:DescribeLogGroups", "Effect": "Allow", "Resource": "*"},
        {
            "Action": ["logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"],
            "Effect": "Allow",
            "Resource": {
                "Fn::Join": [
                    "",
                    [
                        "arn:",
                        {"Ref": "AWS::Partition"},
                        f":logs:{REGION}:{ACCOUNT}:log-group:",
                        {"Ref": _id(built, sessions.log_group)},
                        ":*",
                    ],
                ]
            },
        },
    ]


def test_the_ssm_agent_gets_writable_volumes_in_the_app_container(built: Built) -> None:
    app = _containers(built, built.routed)["app"]
    assert app["ReadonlyRootFilesystem"] is True
    mounts = {m["ContainerPath"]: m for m in app["MountPoints"]}
    for path in AGENT_PATHS:
        assert mounts[path]["ReadOnly"] is False
    resource = built.template["Resources"][_id(built, built.routed.task_definition)]
    volumes = {v["Name"] for v in resource["Properties"]["Volumes"]}
    assert {"app-var-lib-amazon", "app-var-log-amazon"} <= volumes
    # A task without exec keeps only /tmp writable.
    public = _containers(built, built.public)["app"]
    assert [m["ContainerPath"] for m in public["MountPoints"]] == ["/tmp"]


def test_nag_acknowledges_the_exec_grants_only_on_the_exec_task_role(built: Built) -> None:
    # The synth ran with AwsSolutionsChecks: an open finding would have failed it.
    key = Validations.ACKNOWLEDGED_RULES_METADATA_KEY
    acknowledged = {
        (c.node.path, rule_id.removeprefix("Annotation::")): reason
        for c in built.stack.node.find_all()
        for m in c.node.metadata
        if m.type == key
        for rule_id, reason in m.data.items()
        if rule_id.startswith("Annotation::AwsSolutions-IAM5")
        and c.node.path.endswith("TaskRole/DefaultPolicy")
    }
    assert all(acknowledged.values()), "every acknowledgment gives a reason"
    sessions = built.service.exec_sessions
    assert sessions is not None
    group = _id(built, sessions.log_group)
    streams = f"arn:<AWS::Partition>:logs:{REGION}:{ACCOUNT}:log-group:<{group}>:*"
    assert set(acknowledged) == {
        ("Lib/Routed/TaskRole/DefaultPolicy", "AwsSolutions-IAM5[Resource::*]"),
        ("Lib/Routed/TaskRole/DefaultPolicy", f"AwsSolutions-IAM5[Resource::{streams}]"),
    }


# --- validation -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("props", "expected"),
    [
        ({"tag": "latest"}, "tag"),
        ({"tag": 3}, "tag: 3 is not a string"),
        ({"log_stream_prefix": "a:b"}, "log_stream_prefix: 'a:b' is not allowed"),
        ({"log_stream_prefix": ""}, "log_stream_prefix: '' is not allowed"),
        ({"memory_reservation_mib": 0}, "memory_reservation_mib: 0 is not allowed"),
        ({"cpu": "32"}, "cpu: '32' is not an integer"),
        ({"pull_through_cache": "cache"}, "pull_through_cache: expected a PullThroughCache"),
    ],
)
def test_router_props_are_checked_naming_the_prop(props: dict[str, Any], expected: str) -> None:
    with pytest.raises(InvalidPropsError, match="FireLensLogRouter") as raised:
        FireLensLogRouter(**props)
    assert expected in str(raised.value)


def _exec_service(**kwargs: Any) -> None:
    app = bare_app()
    stack = Stack(app, "Bad", env=ENV)
    vpc = kwargs.pop("vpc", None) or ClosedVpc(stack, "Vpc")
    task = TracedTaskDefinition(
        stack, "Task", app_image=ecs.ContainerImage.from_registry(APP_IMAGE), tracing=XRayDaemon()
    )
    cluster = kwargs.pop("cluster", None)
    if cluster == "plain":
        cluster = ecs.Cluster(stack, "Cluster", vpc=vpc.vpc)
    elif cluster == "sessions":
        sessions = ExecuteCommandSessions(stack, "Sessions")
        cluster = ecs.Cluster(
            stack, "Cluster", vpc=vpc.vpc, execute_command_configuration=sessions.configuration
        )
    TracedFargateService(stack, "Svc", task_definition=task, vpc=vpc, cluster=cluster, **kwargs)


def test_exec_in_a_closed_vpc_without_the_kms_endpoint_is_rejected() -> None:
    with pytest.raises(InvalidPropsError) as raised:
        _exec_service(enable_exec=True, cluster="sessions")
    message = str(raised.value)
    assert "enable_exec: the ClosedVpc has no 'kms' interface endpoint" in message
    assert "InterfaceVpcEndpointAwsService.KMS" in message
    assert "'ssmmessages'" not in message


def test_exec_on_a_cluster_without_session_configuration_is_rejected() -> None:
    with pytest.raises(InvalidPropsError) as raised:
        _exec_service(enable_exec=True, cluster="plain")
    assert "enable_exec: the cluster has no execute_command_configuration" in str(raised.value)


def test_enable_exec_must_be_a_bool() -> None:
    with pytest.raises(InvalidPropsError, match="enable_exec: 'yes' is not allowed"):
        _exec_service(enable_exec="yes")


def test_exec_off_adds_nothing() -> None:
    # A plain cluster and a ClosedVpc without KMS are fine while exec is off.
    _exec_service(cluster="plain")
