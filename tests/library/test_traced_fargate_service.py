"""TracedFargateService as a library user composes it: the ADOT collector sidecar, Spot,
alarm actions, secrets, a client in another stack, IAM boundaries, prop validation, cdk-nag.

The app-level tests cover the default X-Ray daemon mode as cdk.json composes it; these
cover the contract for everything the app leaves out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import Duration, Environment, Stack, Validations
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_ssm as ssm
from aws_cdk.assertions import Template
from cdk_nag import AwsSolutionsChecks

from tests.conftest import new_app
from traced_fargate.closed_vpc import ClosedVpc
from traced_fargate.errors import InvalidPropsError
from traced_fargate.pull_through_cache import PullThroughCache
from traced_fargate.traced_fargate_service import SIDECARS, TracedFargateService

ACCOUNT = "111111111111"
REGION = "eu-west-1"
ENV = Environment(account=ACCOUNT, region=REGION)
PREFIX = "lib-cache"
APP_IMAGE = "public.ecr.aws/docker/library/python:3.13-slim"
PARAMETER = "/lib/db-password"
PARAMETER_ARN = f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter{PARAMETER}"
ADOT = SIDECARS["adot-collector"]
TASK_CPU = 512
TASK_MEMORY_MIB = 1024


@dataclass(frozen=True)
class Built:
    stack: Stack
    network: ClosedVpc
    service: TracedFargateService
    topic: sns.Topic
    peer: ec2.SecurityGroup
    template: Template
    peer_template: Template
    assembly_dir: Path


@pytest.fixture(scope="module")
def built() -> Built:
    app = new_app()
    stack = Stack(app, "Lib", env=ENV)
    network = ClosedVpc(stack, "Network")
    cache = PullThroughCache(stack, "Cache", repository_prefix=PREFIX)
    # CloudWatch cannot publish to a topic under the AWS-managed key, and nag wants SSE.
    topic_key = kms.Key(stack, "TopicKey", enable_key_rotation=True)
    topic = sns.Topic(stack, "Alarms", master_key=topic_key, enforce_ssl=True)
    parameter = ssm.StringParameter.from_secure_string_parameter_attributes(
        stack, "DbPassword", parameter_name=PARAMETER
    )
    service = TracedFargateService(
        stack,
        "Service",
        network=network,
        app_image=ecs.ContainerImage.from_registry(APP_IMAGE),
        pull_through_cache=cache,
        tracing_mode="adot-collector",
        spot_weight=2,
        fargate_weight=1,
        fargate_base=1,
        alarm_topic=topic,
        app_secrets={"DB_PASSWORD": ecs.Secret.from_ssm_parameter(parameter)},
    )

    client_stack = Stack(app, "Client", env=ENV)
    client_stack.add_stack_dependency(stack)
    peer = ec2.SecurityGroup(client_stack, "Peer", vpc=network.vpc, allow_all_outbound=False)
    service.allow_http_from(peer)

    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    # Raises on a dependency cycle and on any unacknowledged nag finding.
    assembly = app.synth()
    return Built(
        stack=stack,
        network=network,
        service=service,
        topic=topic,
        peer=peer,
        template=Template.from_json(assembly.get_stack_by_name("Lib").template),
        peer_template=Template.from_json(assembly.get_stack_by_name("Client").template),
        assembly_dir=Path(assembly.directory),
    )


def _ref_id(built: Built, construct: Any) -> str:
    return _logical_id(built.stack, construct)


def _logical_id(stack: Stack, construct: Any) -> str:
    return str(stack.resolve(construct.node.default_child.logical_id))


def _group_id(group: Any) -> dict[str, Any]:
    return {"Fn::GetAtt": [_logical_id(Stack.of(group), group), "GroupId"]}


def _containers(built: Built) -> dict[str, dict[str, Any]]:
    (task,) = built.template.find_resources("AWS::ECS::TaskDefinition").values()
    return {c["Name"]: c for c in task["Properties"]["ContainerDefinitions"]}


def _role_policy_statements(built: Built, role: Any) -> list[dict[str, Any]]:
    role_ref = {"Ref": _ref_id(built, role)}
    policies = [
        p
        for p in built.template.find_resources("AWS::IAM::Policy").values()
        if role_ref in p["Properties"]["Roles"]
    ]
    assert len(policies) == 1
    statements: list[dict[str, Any]] = policies[0]["Properties"]["PolicyDocument"]["Statement"]
    return statements


def _ingress_rules(template: Template) -> list[dict[str, Any]]:
    """Every ingress rule, inline in a group or standalone."""
    rules = [
        rule
        for group in template.find_resources("AWS::EC2::SecurityGroup").values()
        for rule in group["Properties"].get("SecurityGroupIngress", [])
    ]
    rules += [
        r["Properties"] for r in template.find_resources("AWS::EC2::SecurityGroupIngress").values()
    ]
    return rules


# --- the ADOT collector sidecar ---------------------------------------------


def test_collector_image_comes_through_the_cache_at_the_pinned_default_tag(built: Built) -> None:
    assert _containers(built)["tracing"]["Image"] == {
        "Fn::Join": [
            "",
            [
                f"{ACCOUNT}.dkr.ecr.{REGION}.",
                {"Ref": "AWS::URLSuffix"},
                f"/{PREFIX}/aws-observability/aws-otel-collector:{ADOT.default_tag}",
            ],
        ]
    }


def test_collector_runs_the_ecs_default_config_and_its_own_health_check(built: Built) -> None:
    tracing = _containers(built)["tracing"]
    assert tracing["Command"] == ["--config=/etc/ecs/ecs-default-config.yaml"]
    assert tracing["HealthCheck"]["Command"] == ["CMD", "/healthcheck"]
    assert tracing["Essential"] is True
    assert tracing["Environment"] == [{"Name": "AWS_REGION", "Value": REGION}]


def test_collector_listens_for_xray_segments_sampling_and_otlp(built: Built) -> None:
    assert _containers(built)["tracing"]["PortMappings"] == [
        {"ContainerPort": 2000, "Protocol": "udp"},
        {"ContainerPort": 2000, "Protocol": "tcp"},
        {"ContainerPort": 4317, "Protocol": "tcp"},
        {"ContainerPort": 4318, "Protocol": "tcp"},
    ]


def test_app_gets_what_the_collector_leaves_of_the_task_size(built: Built) -> None:
    containers = _containers(built)
    assert containers["tracing"]["Cpu"] == ADOT.cpu
    assert containers["tracing"]["MemoryReservation"] == ADOT.memory_reservation_mib
    assert containers["app"]["Cpu"] == TASK_CPU - ADOT.cpu
    assert containers["app"]["MemoryReservation"] == TASK_MEMORY_MIB - ADOT.memory_reservation_mib
    built.template.has_resource_properties(
        "AWS::ECS::TaskDefinition", {"Cpu": str(TASK_CPU), "Memory": str(TASK_MEMORY_MIB)}
    )


def test_switching_the_sidecar_leaves_the_app_container_unchanged(built: Built) -> None:
    app = _containers(built)["app"]
    assert app["Image"] == APP_IMAGE
    assert {"Name": "AWS_XRAY_DAEMON_ADDRESS", "Value": "127.0.0.1:2000"} in app["Environment"]
    assert app["DependsOn"] == [{"Condition": "START", "ContainerName": "tracing"}]


# --- secrets and IAM ----------------------------------------------------------


def test_secrets_are_rendered_from_the_parameter(built: Built) -> None:
    app = _containers(built)["app"]
    assert app["Secrets"] == [{"Name": "DB_PASSWORD", "ValueFrom": PARAMETER_ARN}]
    assert "DB_PASSWORD" not in {e["Name"] for e in app["Environment"]}


def test_execution_role_holds_exactly_pull_logs_and_the_parameter(built: Built) -> None:
    service = built.service
    role = service.task_definition.obtain_execution_role()
    assert _role_policy_statements(built, role) == [
        {
            "Action": [
                "ecr:BatchCheckLayerAvailability",
                "ecr:BatchGetImage",
                "ecr:BatchImportUpstreamImage",
                "ecr:CreateRepository",
                "ecr:GetDownloadUrlForLayer",
            ],
            "Effect": "Allow",
            "Resource": f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/{PREFIX}/*",
        },
        {"Action": "ecr:GetAuthorizationToken", "Effect": "Allow", "Resource": "*"},
        {
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Effect": "Allow",
            "Resource": [
                {"Fn::GetAtt": [_ref_id(built, service.app_log_group), "Arn"]},
                {"Fn::GetAtt": [_ref_id(built, service.tracing_log_group), "Arn"]},
            ],
        },
        {
            "Action": [
                "ssm:DescribeParameters",
                "ssm:GetParameter",
                "ssm:GetParameterHistory",
                "ssm:GetParameters",
            ],
            "Effect": "Allow",
            "Resource": PARAMETER_ARN,
        },
    ]
    roles = built.template.find_resources("AWS::IAM::Role")
    assert "ManagedPolicyArns" not in roles[_ref_id(built, role)]["Properties"]
    assert "Policies" not in roles[_ref_id(built, role)]["Properties"]


def test_task_role_may_only_write_traces(built: Built) -> None:
    task_role_id = _ref_id(built, built.service.task_role)
    properties = built.template.find_resources("AWS::IAM::Role")[task_role_id]["Properties"]
    assert properties["Policies"] == [
        {
            "PolicyName": "TracingWrite",
            "PolicyDocument": {
                "Statement": [
                    {
                        "Action": [
                            "xray:GetSamplingRules",
                            "xray:GetSamplingStatisticSummaries",
                            "xray:GetSamplingTargets",
                            "xray:PutTelemetryRecords",
                            "xray:PutTraceSegments",
                        ],
                        "Effect": "Allow",
                        "Resource": "*",
                    }
                ],
                "Version": "2012-10-17",
            },
        }
    ]
    assert "ManagedPolicyArns" not in properties
    for policy in built.template.find_resources("AWS::IAM::Policy").values():
        assert {"Ref": task_role_id} not in policy["Properties"]["Roles"]


# --- capacity and alarms ------------------------------------------------------


def test_spot_takes_two_shares_above_one_on_demand_base(built: Built) -> None:
    built.template.has_resource_properties(
        "AWS::ECS::Service",
        {
            "CapacityProviderStrategy": [
                {"CapacityProvider": "FARGATE", "Base": 1, "Weight": 1},
                {"CapacityProvider": "FARGATE_SPOT", "Weight": 2},
            ]
        },
    )
    built.template.has_resource_properties(
        "AWS::ECS::ClusterCapacityProviderAssociations",
        {"CapacityProviders": ["FARGATE", "FARGATE_SPOT"]},
    )


def test_every_alarm_notifies_the_topic_on_alarm_and_on_ok(built: Built) -> None:
    alarms = built.template.find_resources("AWS::CloudWatch::Alarm")
    assert len(alarms) == len(built.service.alarms) == 3
    topic = [{"Ref": _ref_id(built, built.topic)}]
    for alarm in alarms.values():
        assert alarm["Properties"]["AlarmActions"] == topic
        assert alarm["Properties"]["OKActions"] == topic


# --- network access -----------------------------------------------------------


def test_http_grant_lands_in_the_peer_stack(built: Built) -> None:
    lb_group = _group_id(built.service.load_balancer_security_group)
    (ingress,) = built.peer_template.find_resources("AWS::EC2::SecurityGroupIngress").values()
    reference = ingress["Properties"]["GroupId"]["Fn::GetStackOutput"]
    assert reference["StackName"] == "Lib"
    outputs = built.template.to_json()["Outputs"]
    assert outputs[reference["OutputName"]]["Value"] == lb_group
    assert {k: v for k, v in ingress["Properties"].items() if k != "GroupId"} == {
        "Description": "HTTP to the internal load balancer",
        "FromPort": 80,
        "IpProtocol": "tcp",
        "SourceSecurityGroupId": _group_id(built.peer),
        "ToPort": 80,
    }
    # The service stack never refers back to the peer's stack: no cycle.
    rendered = json.dumps(built.template.to_json())
    assert "Fn::GetStackOutput" not in rendered
    assert "Fn::ImportValue" not in rendered
    assert built.stack.dependencies == []


def test_service_stack_ingress_is_only_between_its_own_groups(built: Built) -> None:
    service = built.service
    endpoints = built.network.endpoint_security_group
    rules = sorted(
        (
            (r["GroupId"], r["FromPort"], r["ToPort"], r["IpProtocol"], r["SourceSecurityGroupId"])
            for r in _ingress_rules(built.template)
        ),
        key=json.dumps,
    )
    assert rules == sorted(
        [
            (
                _group_id(endpoints),
                443,
                443,
                "tcp",
                _group_id(service.security_group),
            ),
            (
                _group_id(service.security_group),
                service.app_port,
                service.app_port,
                "tcp",
                _group_id(service.load_balancer_security_group),
            ),
        ],
        key=json.dumps,
    )
    for rule in _ingress_rules(built.template):
        assert rule.get("CidrIp") != "0.0.0.0/0"
        assert rule.get("CidrIpv6") != "::/0"


def test_load_balancer_writes_access_logs_to_a_private_ssl_only_bucket(built: Built) -> None:
    bucket_id = _ref_id(built, built.service.access_logs_bucket)
    (balancer,) = built.template.find_resources(
        "AWS::ElasticLoadBalancingV2::LoadBalancer"
    ).values()
    attributes = {a["Key"]: a["Value"] for a in balancer["Properties"]["LoadBalancerAttributes"]}
    assert attributes["access_logs.s3.enabled"] == "true"
    assert attributes["access_logs.s3.bucket"] == {"Ref": bucket_id}
    assert balancer["Properties"]["Scheme"] == "internal"

    bucket = built.template.find_resources("AWS::S3::Bucket")[bucket_id]
    assert bucket["Properties"]["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    (policy,) = [
        p["Properties"]["PolicyDocument"]["Statement"]
        for p in built.template.find_resources("AWS::S3::BucketPolicy").values()
        if p["Properties"]["Bucket"] == {"Ref": bucket_id}
    ]
    assert {
        "Action": "s3:*",
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        "Effect": "Deny",
        "Principal": {"AWS": "*"},
        "Resource": [
            {"Fn::GetAtt": [bucket_id, "Arn"]},
            {"Fn::Join": ["", [{"Fn::GetAtt": [bucket_id, "Arn"]}, "/*"]]},
        ],
    } in policy


# --- cdk-nag ------------------------------------------------------------------


def test_nag_passes_with_only_the_constructs_narrow_acknowledgments(built: Built) -> None:
    # The module's synth ran with AwsSolutionsChecks registered: an open finding would
    # have failed it. What remains to check is that nothing was waved through broadly.
    report = json.loads((built.assembly_dir / "validation-report.json").read_text())
    assert report["pluginReports"] == []
    key = Validations.ACKNOWLEDGED_RULES_METADATA_KEY
    acknowledged = {
        (c.node.path, rule_id.removeprefix("Annotation::")): reason
        for c in built.stack.node.find_all()
        for m in c.node.metadata
        if m.type == key
        for rule_id, reason in m.data.items()
        # aws-cdk acknowledges its own CloudFormation-Validate rules.
        if rule_id.startswith("Annotation::AwsSolutions-")
    }
    assert all(acknowledged.values()), "every acknowledgment gives a reason"
    assert set(acknowledged) == {
        ("Lib/Service/TaskRole", "AwsSolutions-IAM5[Resource::*]"),
        ("Lib/Service/TaskDefinition", "AwsSolutions-ECS2"),
        ("Lib/Service/TaskDefinition/ExecutionRole", "AwsSolutions-IAM5[Resource::*]"),
        (
            "Lib/Service/TaskDefinition/ExecutionRole",
            f"AwsSolutions-IAM5[Resource::arn:aws:ecr:{REGION}:{ACCOUNT}:repository/{PREFIX}/*]",
        ),
        ("Lib/Service/AccessLogsBucket", "AwsSolutions-S1"),
    }


# --- validation ---------------------------------------------------------------


def _service(env: Environment | None = ENV, **props: Any) -> TracedFargateService:
    stack = Stack(new_app(), "Invalid", env=env)
    return TracedFargateService(
        stack,
        "Service",
        network=ClosedVpc(stack, "Network"),
        app_image=ecs.ContainerImage.from_registry(APP_IMAGE),
        pull_through_cache=PullThroughCache(stack, "Cache", repository_prefix=PREFIX),
        **props,
    )


def _problems(**props: Any) -> tuple[str, ...]:
    with pytest.raises(InvalidPropsError) as error:
        _service(**props)
    assert all(line.startswith("Invalid/Service: ") for line in str(error.value).splitlines())
    return error.value.problems


@pytest.mark.parametrize(
    ("props", "expected"),
    [
        (
            {"cpu": 512, "memory_mib": 8192},
            "cpu 512 / memory_mib 8192: not a Fargate task size; with cpu 512, memory must be "
            "one of: 1024, 2048, 3072, 4096 MiB",
        ),
        (
            {"cpu": 300},
            "cpu 300 / memory_mib 1024: not a Fargate task size; cpu must be one of 256, 512, "
            "1024, 2048, 4096, 8192, 16384",
        ),
        (
            {"app_cpu": 500},
            "app_cpu: 500 plus the sidecar's 32 must fit the task's cpu 512",
        ),
        (
            {"tracing_mode": "adot-collector", "app_cpu": 400},
            "app_cpu: 400 plus the sidecar's 128 must fit the task's cpu 512",
        ),
        (
            {"app_memory_reservation_mib": 800},
            "app_memory_reservation_mib: 800 plus the sidecar's 256 must fit the task's "
            "memory_mib 1024",
        ),
        (
            {"tracing_mode": "zipkin"},
            "tracing_mode: 'zipkin' is not allowed; expected one of xray-daemon, adot-collector",
        ),
        (
            {"desired_count": 3},
            "desired_count: 3 must lie within min_count 1 and max_count 2, with min_count >= 1",
        ),
        (
            {"desired_count": 0, "min_count": 0},
            "desired_count: 0 must lie within min_count 0 and max_count 2, with min_count >= 1",
        ),
        (
            {"fargate_weight": 0, "spot_weight": 0},
            "fargate_weight 0 / spot_weight 0: not negative, and at least one above 0",
        ),
        (
            {"stop_timeout": Duration.seconds(121)},
            "stop_timeout: 121 s is not allowed; Fargate accepts 2 to 120 s",
        ),
        ({"fargate_base": -1}, "fargate_base: -1 is not allowed; expected 0 or more"),
        (
            {"cpu_target_percent": 120},
            "cpu_target_percent: 120 is not allowed; expected 1 to 100",
        ),
        (
            {"requests_per_target": 0},
            "requests_per_target: 0 is not allowed; expected 1 or more",
        ),
    ],
)
def test_invalid_props_are_rejected_naming_the_prop_and_what_is_allowed(
    props: dict[str, Any], expected: str
) -> None:
    assert _problems(**props) == (expected,)


@pytest.mark.parametrize("tag", ["latest", "LATEST"])
def test_floating_sidecar_tag_is_rejected_under_the_services_prop(tag: str) -> None:
    (problem,) = _problems(sidecar_image_tag=tag)
    assert problem.startswith(f"sidecar_image_tag: {tag!r} is a floating tag and is not allowed")
    assert "pin a version tag" in problem


def test_access_logs_need_a_region() -> None:
    assert _problems(env=None) == (
        "access_logs: the stack has no region; give the stack an env with a region, "
        "or pass access_logs=False",
    )
    service = _service(env=None, access_logs=False)
    assert service.access_logs_bucket is None


def test_boundary_values_are_accepted() -> None:
    service = _service(
        app_cpu=TASK_CPU - SIDECARS["xray-daemon"].cpu,
        app_memory_reservation_mib=TASK_MEMORY_MIB - SIDECARS["xray-daemon"].memory_reservation_mib,
        stop_timeout=Duration.seconds(120),
        fargate_weight=0,
        spot_weight=1,
        desired_count=2,
    )
    assert service.tracing_mode == "xray-daemon"


def test_every_problem_is_reported_on_its_own_line() -> None:
    problems = _problems(
        cpu=300,
        desired_count=5,
        fargate_weight=0,
        stop_timeout=Duration.seconds(121),
        sidecar_image_tag="latest",
    )
    assert [p.split(" ")[0].rstrip(":") for p in problems] == [
        "cpu",
        "desired_count",
        "fargate_weight",
        "stop_timeout",
        "sidecar_image_tag",
    ]
