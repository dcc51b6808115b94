"""The traced service as each environment composes it from cdk.json."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk.assertions import Match, Template

from stacks.config import EnvironmentConfig
from tests.conftest import ENV_NAMES, Synthesized, render


def only(template: Template, cfn_type: str) -> dict[str, Any]:
    found = template.find_resources(cfn_type)
    assert len(found) == 1, f"expected one {cfn_type}, found {len(found)}"
    return dict(next(iter(found.values())))


def containers(template: Template) -> dict[str, dict[str, Any]]:
    task = only(template, "AWS::ECS::TaskDefinition")["Properties"]
    return {c["Name"]: c for c in task["ContainerDefinitions"]}


@pytest.fixture(scope="module", params=ENV_NAMES)
def env(request: pytest.FixtureRequest, environments: list[EnvironmentConfig]) -> EnvironmentConfig:
    return next(e for e in environments if e.name == request.param)


@pytest.fixture(scope="module")
def service(synthesized: Synthesized, env: EnvironmentConfig) -> Template:
    return synthesized.template(env.name, "Service")


def test_task_size_from_config(service: Template, env: EnvironmentConfig) -> None:
    task = only(service, "AWS::ECS::TaskDefinition")["Properties"]
    assert task["Cpu"] == str(env.service.cpu)
    assert task["Memory"] == str(env.service.memory_mib)
    assert task["NetworkMode"] == "awsvpc"
    assert task["RequiresCompatibilities"] == ["FARGATE"]
    reserved_cpu = sum(c["Cpu"] for c in containers(service).values())
    reserved_memory = sum(c["MemoryReservation"] for c in containers(service).values())
    assert reserved_cpu <= env.service.cpu
    assert reserved_memory <= env.service.memory_mib


def test_sidecar_comes_through_the_pull_through_cache(
    service: Template, env: EnvironmentConfig
) -> None:
    sidecar = containers(service)["tracing"]
    prefix = env.registry.pull_through_cache_prefix
    assert render(sidecar["Image"]) == (
        f"<AWS::AccountId>.dkr.ecr.{env.region}.<AWS::URLSuffix>/"
        f"{prefix}/xray/aws-xray-daemon:{env.tracing.xray_daemon_tag}"
    )
    assert sidecar["Cpu"] == 32
    assert sidecar["MemoryReservation"] == 256
    assert sidecar["PortMappings"] == [
        {"ContainerPort": 2000, "Protocol": "udp"},
        {"ContainerPort": 2000, "Protocol": "tcp"},
    ]
    assert sidecar["HealthCheck"]["Command"] == ["CMD", "/xray", "--version"]
    assert {"Name": "AWS_REGION", "Value": env.region} in sidecar["Environment"]
    assert sidecar["Essential"] is True


def test_app_container(service: Template, env: EnvironmentConfig) -> None:
    app = containers(service)["app"]
    environment = {e["Name"]: e["Value"] for e in app["Environment"]}
    assert environment["AWS_XRAY_DAEMON_ADDRESS"] == "127.0.0.1:2000"
    assert environment["SERVICE_NAME"] == f"traced-fargate-{env.name}"
    assert environment["PORT"] == "8080"
    assert app["PortMappings"] == [{"ContainerPort": 8080, "Name": "app", "Protocol": "tcp"}]
    assert app["User"] == "10001"
    assert app["ReadonlyRootFilesystem"] is True
    assert app["MountPoints"] == [
        {"ContainerPath": "/tmp", "ReadOnly": False, "SourceVolume": "app-tmp"}
    ]
    assert app["DependsOn"] == [{"Condition": "START", "ContainerName": "tracing"}]
    assert app["HealthCheck"]["Command"] == ["CMD", "python", "-m", "traced_app.healthcheck"]
    assert app["StopTimeout"] == 30
    # The image is the sample app, staged as an asset (never built at synth).
    assert "container-assets" in app["Image"]["Fn::Sub"]


def test_every_container_logs_non_blocking_with_a_buffer(service: Template) -> None:
    for container in containers(service).values():
        log = container["LogConfiguration"]
        assert log["LogDriver"] == "awslogs"
        assert log["Options"]["mode"] == "non-blocking"
        assert log["Options"]["max-buffer-size"] == "26214400b"


def test_log_groups_encrypted_with_retention(service: Template, env: EnvironmentConfig) -> None:
    groups = service.find_resources("AWS::Logs::LogGroup")
    assert len(groups) == 2
    for group in groups.values():
        assert group["Properties"]["RetentionInDays"] == env.service.log_retention_days
        assert "KmsKeyId" in group["Properties"]
        assert group["DeletionPolicy"] == "Retain"


def test_task_role_may_only_write_traces(service: Template) -> None:
    (task_role_id,) = [
        k for k, r in service.find_resources("AWS::IAM::Role").items() if "TaskRole" in k
    ]
    role = service.find_resources("AWS::IAM::Role")[task_role_id]
    assert "Policies" not in role["Properties"]
    assert "ManagedPolicyArns" not in role["Properties"]
    (policy,) = [
        p
        for p in service.find_resources("AWS::IAM::Policy").values()
        if {"Ref": task_role_id} in p["Properties"]["Roles"]
    ]
    assert policy["Properties"]["PolicyDocument"]["Statement"] == [
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
    ]


def test_execution_role_pulls_and_logs_only(service: Template, env: EnvironmentConfig) -> None:
    policies = service.find_resources("AWS::IAM::Policy")
    (execution,) = [p for k, p in policies.items() if "ExecutionRole" in k]
    statements = execution["Properties"]["PolicyDocument"]["Statement"]
    by_actions = {
        tuple(s["Action"]) if isinstance(s["Action"], list) else (s["Action"],): s
        for s in statements
    }
    cache_pull = (
        "ecr:BatchCheckLayerAvailability",
        "ecr:BatchGetImage",
        "ecr:BatchImportUpstreamImage",
        "ecr:CreateRepository",
        "ecr:GetDownloadUrlForLayer",
    )
    asset_pull = (
        "ecr:BatchCheckLayerAvailability",
        "ecr:BatchGetImage",
        "ecr:GetDownloadUrlForLayer",
    )
    assert set(by_actions) == {
        cache_pull,
        asset_pull,
        ("ecr:GetAuthorizationToken",),
        ("logs:CreateLogStream", "logs:PutLogEvents"),
    }
    assert render(by_actions[cache_pull]["Resource"]) == (
        f"arn:aws:ecr:{env.region}:<AWS::AccountId>:repository/"
        f"{env.registry.pull_through_cache_prefix}/*"
    )
    assert by_actions[("ecr:GetAuthorizationToken",)]["Resource"] == "*"
    assert "container-assets" in str(by_actions[asset_pull]["Resource"])
    assert len(by_actions[("logs:CreateLogStream", "logs:PutLogEvents")]["Resource"]) == 2


def test_service_deploys_safely_in_isolated_subnets(
    service: Template, env: EnvironmentConfig
) -> None:
    props = only(service, "AWS::ECS::Service")["Properties"]
    # Auto scaling owns the count: a DesiredCount would be re-applied on every deploy.
    assert "DesiredCount" not in props
    assert props["DeploymentConfiguration"] == {
        "DeploymentCircuitBreaker": {"Enable": True, "Rollback": True},
        "MaximumPercent": 200,
        "MinimumHealthyPercent": 100,
    }
    network = props["NetworkConfiguration"]["AwsvpcConfiguration"]
    assert network["AssignPublicIp"] == "DISABLED"
    assert len(network["Subnets"]) == env.network.max_azs
    assert "LaunchType" not in props


def test_capacity_provider_strategy_from_config(service: Template, env: EnvironmentConfig) -> None:
    strategy = only(service, "AWS::ECS::Service")["Properties"]["CapacityProviderStrategy"]
    expected = [
        {
            "Base": env.service.fargate_base,
            "CapacityProvider": "FARGATE",
            "Weight": env.service.fargate_weight,
        }
    ]
    if env.service.spot_weight:
        expected.append({"CapacityProvider": "FARGATE_SPOT", "Weight": env.service.spot_weight})
    assert strategy == expected


def test_cluster_has_container_insights(service: Template) -> None:
    service.has_resource_properties(
        "AWS::ECS::Cluster",
        {"ClusterSettings": [{"Name": "containerInsights", "Value": "enabled"}]},
    )


def test_internal_load_balancer_in_front(service: Template) -> None:
    service.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::LoadBalancer",
        {
            "Scheme": "internal",
            "LoadBalancerAttributes": Match.array_with(
                [
                    {"Key": "routing.http.drop_invalid_header_fields.enabled", "Value": "true"},
                    {"Key": "access_logs.s3.enabled", "Value": "true"},
                ]
            ),
        },
    )
    service.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::Listener", {"Port": 80, "Protocol": "HTTP"}
    )
    service.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::TargetGroup",
        {
            "Port": 8080,
            "Protocol": "HTTP",
            "TargetType": "ip",
            "HealthCheckPath": "/healthz",
            "Matcher": {"HttpCode": "200"},
            "TargetGroupAttributes": Match.array_with(
                [{"Key": "deregistration_delay.timeout_seconds", "Value": "20"}]
            ),
        },
    )


def test_security_groups_never_open_to_the_world(service: Template) -> None:
    for group in service.find_resources("AWS::EC2::SecurityGroup").values():
        for rule in group["Properties"].get("SecurityGroupIngress", []):
            assert rule.get("CidrIp") != "0.0.0.0/0"
    ingress = service.find_resources("AWS::EC2::SecurityGroupIngress")
    for rule in ingress.values():
        assert "CidrIp" not in rule["Properties"]
    app_port = [r["Properties"] for r in ingress.values() if r["Properties"]["FromPort"] == 8080]
    (rule,) = app_port
    assert "LoadBalancerSecurityGroup" in rule["SourceSecurityGroupId"]["Fn::GetAtt"][0]


def test_service_reaches_the_endpoints(service: Template) -> None:
    ingress = service.find_resources("AWS::EC2::SecurityGroupIngress")
    https = [r["Properties"] for r in ingress.values() if r["Properties"]["FromPort"] == 443]
    (rule,) = https
    assert "EndpointSecurityGroup" in str(rule["GroupId"])
    assert "ServiceSecurityGroup" in rule["SourceSecurityGroupId"]["Fn::GetAtt"][0]


def test_scaling_from_config(service: Template, env: EnvironmentConfig) -> None:
    service.has_resource_properties(
        "AWS::ApplicationAutoScaling::ScalableTarget",
        {"MinCapacity": env.service.min_count, "MaxCapacity": env.service.max_count},
    )
    policies = service.find_resources("AWS::ApplicationAutoScaling::ScalingPolicy")
    configs = {
        p["Properties"]["TargetTrackingScalingPolicyConfiguration"][
            "PredefinedMetricSpecification"
        ]["PredefinedMetricType"]: p["Properties"]["TargetTrackingScalingPolicyConfiguration"]
        for p in policies.values()
    }
    assert set(configs) == {"ECSServiceAverageCPUUtilization", "ALBRequestCountPerTarget"}
    assert configs["ECSServiceAverageCPUUtilization"]["TargetValue"] == (
        env.service.cpu_target_percent
    )
    assert configs["ALBRequestCountPerTarget"]["TargetValue"] == env.service.requests_per_target


def test_alarms_notify_the_topic(service: Template) -> None:
    alarms = service.find_resources("AWS::CloudWatch::Alarm")
    metrics = {a["Properties"]["MetricName"] for a in alarms.values()}
    assert metrics == {"HTTPCode_Target_5XX_Count", "UnHealthyHostCount", "CPUUtilization"}
    topic_id = next(iter(service.find_resources("AWS::SNS::Topic")))
    for alarm in alarms.values():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": topic_id}]
    service.has_resource_properties("AWS::SNS::Topic", {"KmsMasterKeyId": Match.any_value()})


def test_app_image_from_the_repository_when_a_tag_is_configured(
    environments: list[EnvironmentConfig],
) -> None:
    """The seam for CI-built images: `service.app_image_tag` deploys from the app repository."""
    import dataclasses

    from aws_cdk import App

    from stacks.app_builder import build_app
    from tests.conftest import new_app

    dev = next(e for e in environments if e.name == "dev")
    tagged = dataclasses.replace(
        dev, service=dataclasses.replace(dev.service, app_image_tag="dev-1.4.2")
    )
    app: App = new_app()
    (stage,) = build_app(app, [tagged])
    template = Template.from_stack(stage.service)
    app_container = containers(template)["app"]
    parts = app_container["Image"]["Fn::Join"][1]
    assert parts[-1] == ":dev-1.4.2"
    assert "AppRepository" in str(parts)
    assert "container-assets" not in str(parts)
    policies = template.find_resources("AWS::IAM::Policy")
    (execution,) = [p for k, p in policies.items() if "ExecutionRole" in k]
    resources = str(execution["Properties"]["PolicyDocument"]["Statement"])
    assert "AppRepository" in resources


def test_service_is_deleted_before_the_capacity_provider_association(service: Template) -> None:
    (association,) = service.find_resources("AWS::ECS::ClusterCapacityProviderAssociations")
    ecs_service = only(service, "AWS::ECS::Service")
    assert association in ecs_service["DependsOn"]


def test_cloudwatch_alarms_of_this_account_may_publish_to_the_alarm_topic(
    service: Template, env: EnvironmentConfig
) -> None:
    # The topic policy replaces SNS's default policy: without this Allow no alarm notifies.
    (topic_id,) = service.find_resources("AWS::SNS::Topic")
    (policy,) = service.find_resources("AWS::SNS::TopicPolicy").values()
    assert policy["Properties"]["Topics"] == [{"Ref": topic_id}]
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    (allow,) = [s for s in statements if s["Effect"] == "Allow"]
    assert allow["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert allow["Action"] == "sns:Publish"
    assert allow["Resource"] == {"Ref": topic_id}
    assert allow["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    assert render(allow["Condition"]["ArnLike"]["aws:SourceArn"]) == (
        f"arn:aws:cloudwatch:{env.region}:<AWS::AccountId>:alarm:*"
    )
    (deny,) = [s for s in statements if s["Effect"] == "Deny"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
