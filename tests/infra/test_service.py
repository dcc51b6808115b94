"""The two traced services as each environment composes them from cdk.json: a frontend
behind the internal load balancer and a backend reached through Cloud Map DNS."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from aws_cdk import App, Stack
from aws_cdk.assertions import Match, Template

from stacks.app_builder import build_app
from stacks.config import EnvironmentConfig, ServiceConfig
from stacks.service_stack import ServiceStack
from tests.conftest import ENV_NAMES, Synthesized, new_app, render
from traced_fargate.ecs_exec import SSM_MESSAGES_ACTIONS
from traced_fargate.traced_fargate_service import TracedFargateService
from traced_fargate.tracing import AdotCollector, XRayDaemon

ROLES = ["frontend", "backend"]
XRAY_WRITE = [
    "xray:GetSamplingRules",
    "xray:GetSamplingStatisticSummaries",
    "xray:GetSamplingTargets",
    "xray:PutTelemetryRecords",
    "xray:PutTraceSegments",
]


@pytest.fixture(scope="module", params=ENV_NAMES)
def env(request: pytest.FixtureRequest, environments: list[EnvironmentConfig]) -> EnvironmentConfig:
    return next(e for e in environments if e.name == request.param)


@pytest.fixture(params=ROLES)
def role(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@dataclasses.dataclass(frozen=True)
class Built:
    stack: ServiceStack
    template: Template

    @property
    def resources(self) -> dict[str, Any]:
        return dict(self.template.to_json()["Resources"])

    def logical_id(self, construct: Any) -> str:
        child = construct.node.default_child or construct
        return str(Stack.of(construct).resolve(child.logical_id))

    def of(self, construct: Any) -> dict[str, Any]:
        return dict(self.resources[self.logical_id(construct)])

    def service(self, role: str) -> TracedFargateService:
        return self.stack.frontend if role == "frontend" else self.stack.backend

    def ecs_service(self, role: str) -> dict[str, Any]:
        return self.of(self.service(role).service)

    def task(self, role: str) -> dict[str, Any]:
        return self.of(self.service(role).task_definition.task_definition)

    def containers(self, role: str) -> dict[str, dict[str, Any]]:
        definitions = self.task(role)["Properties"]["ContainerDefinitions"]
        return {c["Name"]: c for c in definitions}

    def group_id(self, group: Any) -> dict[str, Any]:
        return {"Fn::GetAtt": [self.logical_id(group), "GroupId"]}


@pytest.fixture(scope="module")
def built(synthesized: Synthesized, env: EnvironmentConfig) -> Built:
    stack = synthesized.stack(env.name, "Service")
    assert isinstance(stack, ServiceStack)
    return Built(stack, synthesized.template(env.name, "Service"))


def settings(env: EnvironmentConfig, role: str) -> ServiceConfig:
    return env.frontend if role == "frontend" else env.backend


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {e["Name"]: e["Value"] for e in container["Environment"]}


def _ingress(built: Built, group: Any) -> list[dict[str, Any]]:
    group_id = built.group_id(group)
    return [
        r["Properties"]
        for r in built.template.find_resources("AWS::EC2::SecurityGroupIngress").values()
        if r["Properties"]["GroupId"] == group_id
    ]


# --- two task definitions ---------------------------------------------------------


def test_two_services_each_with_its_own_task_definition(built: Built) -> None:
    assert len(built.template.find_resources("AWS::ECS::Service")) == 2
    assert len(built.template.find_resources("AWS::ECS::TaskDefinition")) == 2
    assert len(built.template.find_resources("AWS::ECS::Cluster")) == 1
    cluster = {"Ref": next(iter(built.template.find_resources("AWS::ECS::Cluster")))}
    for role in ROLES:
        assert built.ecs_service(role)["Properties"]["Cluster"] == cluster


def test_task_size_from_config(built: Built, env: EnvironmentConfig, role: str) -> None:
    svc = settings(env, role)
    task = built.task(role)["Properties"]
    assert (task["Cpu"], task["Memory"]) == (str(svc.cpu), str(svc.memory_mib))
    assert task["NetworkMode"] == "awsvpc"
    assert task["RequiresCompatibilities"] == ["FARGATE"]
    assert task["RuntimePlatform"]["CpuArchitecture"] == svc.cpu_architecture
    containers = built.containers(role).values()
    assert sum(c["Cpu"] for c in containers) <= svc.cpu
    assert sum(c["MemoryReservation"] for c in containers) <= svc.memory_mib


def test_sidecar_of_the_mode_comes_through_the_pull_through_cache(
    built: Built, env: EnvironmentConfig, role: str
) -> None:
    sidecar = built.containers(role)["tracing"]
    prefix = env.registry.pull_through_cache_prefix
    if env.tracing.mode == "xray-daemon":
        path, tag, health = XRayDaemon.UPSTREAM_PATH, env.tracing.xray_daemon_tag, "/xray"
    else:
        path, tag, health = AdotCollector.UPSTREAM_PATH, env.tracing.adot_collector_tag, ""
    assert render(sidecar["Image"]) == (
        f"<AWS::AccountId>.dkr.ecr.{env.region}.<AWS::URLSuffix>/{prefix}/{path}:{tag}"
    )
    assert sidecar["Essential"] is True
    assert {"Name": "AWS_REGION", "Value": env.region} in sidecar["Environment"]
    assert {"ContainerPort": 2000, "Protocol": "udp"} in sidecar["PortMappings"]
    if health:
        assert sidecar["HealthCheck"]["Command"] == ["CMD", health, "--version"]
    else:
        assert sidecar["HealthCheck"]["Command"] == ["CMD", "/healthcheck"]
        assert _env(sidecar)["AOT_CONFIG_CONTENT"] == AdotCollector.DEFAULT_CONFIG


def test_app_container(built: Built, env: EnvironmentConfig, role: str) -> None:
    app = built.containers(role)["app"]
    environment = _env(app)
    assert environment["ROLE"] == role
    assert environment["TRACING_SDK"] == settings(env, role).tracing_sdk
    assert environment["SERVICE_NAME"] == f"traced-fargate-{env.name}-{role}"
    assert environment["AWS_XRAY_DAEMON_ADDRESS"] == "127.0.0.1:2000"
    assert environment["PORT"] == "8080"
    if env.tracing.mode == "adot-collector":
        assert environment["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://127.0.0.1:4318"
    assert app["PortMappings"] == [{"ContainerPort": 8080, "Name": "app", "Protocol": "tcp"}]
    assert app["User"] == "10001"
    assert app["ReadonlyRootFilesystem"] is True
    mounts = [{"ContainerPath": "/tmp", "ReadOnly": False, "SourceVolume": "app-tmp"}]
    if settings(env, role).enable_exec:
        mounts += [
            {
                "ContainerPath": f"/var/{p}/amazon",
                "ReadOnly": False,
                "SourceVolume": f"app-var-{p}-amazon",
            }
            for p in ("lib", "log")
        ]
    assert app["MountPoints"] == mounts
    assert app["DependsOn"] == [{"Condition": "START", "ContainerName": "tracing"}]
    assert app["HealthCheck"]["Command"] == ["CMD", "python", "-m", "traced_app.healthcheck"]
    assert app["StopTimeout"] == 30
    # The image is the sample app, staged as an asset (never built at synth).
    assert "container-assets" in app["Image"]["Fn::Sub"]


def test_frontend_calls_the_backend_by_its_cloud_map_name(
    built: Built, env: EnvironmentConfig
) -> None:
    frontend = _env(built.containers("frontend")["app"])
    assert frontend["BACKEND_URL"] == f"http://backend.{env.name}.traced-fargate.internal:8080"
    assert "BACKEND_URL" not in _env(built.containers("backend")["app"])


def test_every_container_logs_non_blocking_with_a_buffer(built: Built, role: str) -> None:
    for container in built.containers(role).values():
        log = container["LogConfiguration"]
        assert log["LogDriver"] == "awslogs"
        assert log["Options"]["mode"] == "non-blocking"
        assert log["Options"]["max-buffer-size"] == "26214400b"


def test_log_groups_encrypted_with_retention(built: Built, env: EnvironmentConfig) -> None:
    groups = built.template.find_resources("AWS::Logs::LogGroup")
    # app and tracing per service, and the cluster's ECS Exec session log (one year).
    sessions = built.stack.exec_sessions
    assert len(groups) == 4 + (sessions is not None)
    retentions = {env.frontend.log_retention_days, env.backend.log_retention_days}
    if sessions is not None:
        session_group = groups.pop(built.logical_id(sessions.log_group))
        assert session_group["Properties"]["RetentionInDays"] == 365
        assert session_group["Properties"]["KmsKeyId"] == {
            "Fn::GetAtt": [built.logical_id(sessions.key), "Arn"]
        }
    for group in groups.values():
        assert group["Properties"]["RetentionInDays"] in retentions
        assert "KmsKeyId" in group["Properties"]
        assert group["DeletionPolicy"] == "Retain"


# --- IAM ------------------------------------------------------------------------------


def test_task_role_may_only_write_traces_and_with_exec_open_sessions(
    built: Built, env: EnvironmentConfig, role: str
) -> None:
    task = built.service(role).task_definition
    role_id = built.logical_id(task.task_role)
    properties = built.resources[role_id]["Properties"]
    assert "Policies" not in properties
    assert "ManagedPolicyArns" not in properties
    policies = [
        p
        for p in built.template.find_resources("AWS::IAM::Policy").values()
        if {"Ref": role_id} in p["Properties"]["Roles"]
    ]
    expected: list[list[dict[str, Any]]] = [
        [{"Action": XRAY_WRITE, "Effect": "Allow", "Resource": "*"}]
    ]
    sessions = built.stack.exec_sessions
    if settings(env, role).enable_exec:
        assert sessions is not None
        log_group = built.logical_id(sessions.log_group)
        expected.insert(
            0,
            [
                {
                    "Action": ["logs:DescribeLogGroups", *SSM_MESSAGES_ACTIONS],
                    "Effect": "Allow",
                    "Resource": "*",
                },
                {
                    "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                    "Effect": "Allow",
                    "Resource": {"Fn::GetAtt": [built.logical_id(sessions.key), "Arn"]},
                },
                {
                    "Action": [
                        "logs:CreateLogStream",
                        "logs:DescribeLogStreams",
                        "logs:PutLogEvents",
                    ],
                    "Effect": "Allow",
                    "Resource": {
                        "Fn::Join": [
                            "",
                            [
                                f"arn:aws:logs:{env.region}:",
                                {"Ref": "AWS::AccountId"},
                                ":log-group:",
                                {"Ref": log_group},
                                ":*",
                            ],
                        ]
                    },
                },
            ],
        )
    assert [p["Properties"]["PolicyDocument"]["Statement"] for p in policies] == expected


def test_execution_role_pulls_and_logs_only(
    built: Built, env: EnvironmentConfig, role: str
) -> None:
    execution_id = built.logical_id(built.service(role).task_definition.execution_role)
    (execution,) = [
        p
        for p in built.template.find_resources("AWS::IAM::Policy").values()
        if {"Ref": execution_id} in p["Properties"]["Roles"]
    ]
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


# --- deployment, capacity, scaling ---------------------------------------------------


def test_service_deploys_safely_in_isolated_subnets(
    built: Built, env: EnvironmentConfig, role: str
) -> None:
    props = built.ecs_service(role)["Properties"]
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


def test_capacity_provider_strategy_from_config(
    built: Built, env: EnvironmentConfig, role: str
) -> None:
    svc = settings(env, role)
    expected = [
        {"Base": svc.fargate_base, "CapacityProvider": "FARGATE", "Weight": svc.fargate_weight}
    ]
    if svc.spot_weight:
        expected.append({"CapacityProvider": "FARGATE_SPOT", "Weight": svc.spot_weight})
    assert built.ecs_service(role)["Properties"]["CapacityProviderStrategy"] == expected


def test_every_service_is_deleted_before_the_capacity_provider_association(
    built: Built, role: str
) -> None:
    (association,) = built.template.find_resources("AWS::ECS::ClusterCapacityProviderAssociations")
    assert association in built.ecs_service(role)["DependsOn"]


def test_cluster_has_container_insights_and_a_private_dns_namespace(
    built: Built, env: EnvironmentConfig
) -> None:
    built.template.has_resource_properties(
        "AWS::ECS::Cluster",
        {"ClusterSettings": [{"Name": "containerInsights", "Value": "enabled"}]},
    )
    built.template.has_resource_properties(
        "AWS::ServiceDiscovery::PrivateDnsNamespace",
        {"Name": f"{env.name}.traced-fargate.internal"},
    )


def test_scaling_from_config(built: Built, env: EnvironmentConfig, role: str) -> None:
    svc = settings(env, role)
    service_name = {"Fn::GetAtt": [built.logical_id(built.service(role).service), "Name"]}
    (target_id, target) = next(
        (k, t)
        for k, t in built.template.find_resources(
            "AWS::ApplicationAutoScaling::ScalableTarget"
        ).items()
        if service_name in t["Properties"]["ResourceId"]["Fn::Join"][1]
    )
    assert (target["Properties"]["MinCapacity"], target["Properties"]["MaxCapacity"]) == (
        svc.min_count,
        svc.max_count,
    )
    configs = {
        p["Properties"]["TargetTrackingScalingPolicyConfiguration"][
            "PredefinedMetricSpecification"
        ]["PredefinedMetricType"]: p["Properties"]["TargetTrackingScalingPolicyConfiguration"]
        for p in built.template.find_resources(
            "AWS::ApplicationAutoScaling::ScalingPolicy"
        ).values()
        if p["Properties"]["ScalingTargetId"] == {"Ref": target_id}
    }
    assert configs["ECSServiceAverageCPUUtilization"]["TargetValue"] == svc.cpu_target_percent
    if role == "frontend":
        assert configs["ALBRequestCountPerTarget"]["TargetValue"] == svc.requests_per_target
    else:
        assert set(configs) == {"ECSServiceAverageCPUUtilization"}


# --- ingress -------------------------------------------------------------------------


def test_internal_load_balancer_in_front_of_the_frontend_only(built: Built) -> None:
    built.template.has_resource_properties(
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
    assert len(built.template.find_resources("AWS::ElasticLoadBalancingV2::LoadBalancer")) == 1
    built.template.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::Listener", {"Port": 80, "Protocol": "HTTP"}
    )
    (target_group,) = built.template.find_resources(
        "AWS::ElasticLoadBalancingV2::TargetGroup"
    ).values()
    assert target_group["Properties"]["Port"] == 8080
    assert target_group["Properties"]["HealthCheckPath"] == "/healthz"
    assert {"Key": "deregistration_delay.timeout_seconds", "Value": "20"} in target_group[
        "Properties"
    ]["TargetGroupAttributes"]
    assert built.ecs_service("frontend")["Properties"]["LoadBalancers"]
    assert not built.ecs_service("backend")["Properties"].get("LoadBalancers")


def test_backend_registers_a_records_in_cloud_map(built: Built) -> None:
    (registry,) = built.ecs_service("backend")["Properties"]["ServiceRegistries"]
    discovery = built.resources[registry["RegistryArn"]["Fn::GetAtt"][0]]
    assert discovery["Type"] == "AWS::ServiceDiscovery::Service"
    assert discovery["Properties"]["Name"] == "backend"
    assert discovery["Properties"]["DnsConfig"]["DnsRecords"] == [{"TTL": 10, "Type": "A"}]
    assert "ServiceRegistries" not in built.ecs_service("frontend")["Properties"]


def test_backend_admits_only_the_frontend(built: Built) -> None:
    backend, frontend = built.stack.backend, built.stack.frontend
    assert [
        (r["FromPort"], r["ToPort"], r["SourceSecurityGroupId"])
        for r in _ingress(built, backend.security_group)
    ] == [(8080, 8080, built.group_id(frontend.security_group))]


def test_frontend_admits_only_its_load_balancer(built: Built) -> None:
    frontend = built.stack.frontend
    assert frontend.load_balancer is not None
    assert [
        (r["FromPort"], r["ToPort"], r["SourceSecurityGroupId"])
        for r in _ingress(built, frontend.security_group)
    ] == [(8080, 8080, built.group_id(frontend.load_balancer.security_group))]


def test_security_groups_never_open_to_the_world(built: Built) -> None:
    for group in built.template.find_resources("AWS::EC2::SecurityGroup").values():
        for rule in group["Properties"].get("SecurityGroupIngress", []):
            assert rule.get("CidrIp") != "0.0.0.0/0"
    for rule in built.template.find_resources("AWS::EC2::SecurityGroupIngress").values():
        assert "CidrIp" not in rule["Properties"]


def test_both_services_reach_the_endpoints(built: Built) -> None:
    https = [
        r["Properties"]
        for r in built.template.find_resources("AWS::EC2::SecurityGroupIngress").values()
        if r["Properties"]["FromPort"] == 443
    ]
    assert sorted(str(r["SourceSecurityGroupId"]) for r in https) == sorted(
        str(built.group_id(s.security_group)) for s in built.stack.services
    )
    for rule in https:
        assert "EndpointSecurityGroup" in str(rule["GroupId"])


# --- alarms ----------------------------------------------------------------------------


def test_alarms_notify_the_topic(built: Built) -> None:
    alarms = built.template.find_resources("AWS::CloudWatch::Alarm")
    metrics = sorted(a["Properties"]["MetricName"] for a in alarms.values())
    assert metrics == [
        "CPUUtilization",
        "CPUUtilization",
        "HTTPCode_Target_5XX_Count",
        "UnHealthyHostCount",
    ]
    (topic_id,) = built.template.find_resources("AWS::SNS::Topic")
    for alarm in alarms.values():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": topic_id}]
        assert alarm["Properties"]["OKActions"] == [{"Ref": topic_id}]
    built.template.has_resource_properties("AWS::SNS::Topic", {"KmsMasterKeyId": Match.any_value()})


def test_cloudwatch_alarms_of_this_account_may_publish_to_the_alarm_topic(
    built: Built, env: EnvironmentConfig
) -> None:
    # The topic policy replaces SNS's default policy: without this Allow no alarm notifies.
    (topic_id,) = built.template.find_resources("AWS::SNS::Topic")
    (policy,) = built.template.find_resources("AWS::SNS::TopicPolicy").values()
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


# --- CI-built images ----------------------------------------------------------------


def test_app_image_from_the_repository_when_a_tag_is_configured(
    environments: list[EnvironmentConfig], synthesized: Synthesized
) -> None:
    """The seam for CI-built images: `app_image_tag` deploys from the app repository."""
    dev = next(e for e in environments if e.name == "dev")
    tagged = dataclasses.replace(
        dev,
        frontend=dataclasses.replace(dev.frontend, app_image_tag="dev-1.4.2"),
        backend=dataclasses.replace(dev.backend, app_image_tag="dev-1.4.2"),
    )
    app: App = new_app()
    (stage,) = build_app(app, [tagged])
    template = Template.from_stack(stage.service)
    # What the services run changed: so does the revision the trace check re-runs on.
    assert stage.service.revision != synthesized.stages["dev"].service.revision
    for task in template.find_resources("AWS::ECS::TaskDefinition").values():
        (app_container,) = [
            c for c in task["Properties"]["ContainerDefinitions"] if c["Name"] == "app"
        ]
        parts = app_container["Image"]["Fn::Join"][1]
        assert parts[-1] == ":dev-1.4.2"
        assert "AppRepository" in str(parts)
        assert "container-assets" not in str(parts)
