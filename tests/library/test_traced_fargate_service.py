"""TracedFargateService as a consumer composes it, on a bare App (no project feature flags):
the three ingress choices, a shared cluster, HTTPS, a plain IVpc, an environment-agnostic
stack, a client in another stack, deploy ordering, alarms, prop validation, cdk-nag.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import Duration, Environment, Stack, Validations, cx_api
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk.assertions import Annotations, Match, Template
from cdk_nag import AwsSolutionsChecks

from tests.conftest import bare_app
from traced_fargate import (
    AlarmTopic,
    ClosedVpc,
    InternalLoadBalancer,
    InvalidPropsError,
    NewLoadBalancer,
    PullThroughCache,
    ServiceDiscovery,
    SharedListener,
    TracedFargateService,
    TracedTaskDefinition,
    XRayDaemon,
)

ACCOUNT = "111111111111"
REGION = "eu-west-1"
ENV = Environment(account=ACCOUNT, region=REGION)
APP_IMAGE = "public.ecr.aws/docker/library/python:3.13-slim"
CERTIFICATE_ARN = f"arn:aws:acm:{REGION}:{ACCOUNT}:certificate/0e4c0d6a-1111-2222-3333-444455556666"
HEALTH_CHECK = ecs.HealthCheck(command=["CMD", "/app/probe"])


def _task(stack: Stack, construct_id: str, cache: PullThroughCache | None, **props: Any) -> Any:
    return TracedTaskDefinition(
        stack,
        construct_id,
        app_image=ecs.ContainerImage.from_registry(APP_IMAGE),
        tracing=XRayDaemon(pull_through_cache=cache),
        **props,
    )


@dataclass(frozen=True)
class Built:
    stack: Stack
    web: TracedFargateService
    api: TracedFargateService
    backend: TracedFargateService
    shared: InternalLoadBalancer
    topic: AlarmTopic
    template: Template
    client: Template
    agnostic: Template
    agnostic_stack: Stack
    plain: Template
    plain_service: TracedFargateService
    assembly: cx_api.CloudAssembly

    def logical_id(self, construct: Any, stack: Stack | None = None) -> str:
        target = construct.node.default_child if construct.node.default_child else construct
        return str((stack or self.stack).resolve(target.logical_id))

    def group(self, group: Any) -> dict[str, Any]:
        return {"Fn::GetAtt": [self.logical_id(group), "GroupId"]}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    app = bare_app(str(tmp_path_factory.mktemp("service")))
    stack = Stack(app, "Lib", env=ENV)
    network = ClosedVpc(stack, "Network")
    cache = PullThroughCache(stack, "Cache", repository_prefix="lib-cache")
    topic = AlarmTopic(stack, "Alarms")
    certificate = acm.Certificate.from_certificate_arn(stack, "Certificate", CERTIFICATE_ARN)
    web = TracedFargateService(
        stack,
        "Web",
        task_definition=_task(stack, "WebTask", cache),
        vpc=network,
        ingress=NewLoadBalancer(certificate=certificate),
        spot_weight=2,
        alarm_topic=topic.topic,
    )
    web.cluster.add_default_cloud_map_namespace(name="internal.example", vpc=network.vpc)
    shared = InternalLoadBalancer(stack, "Shared", vpc=network)
    api = TracedFargateService(
        stack,
        "Api",
        task_definition=_task(stack, "ApiTask", cache, app_port=9000),
        vpc=network,
        cluster=web.cluster,
        ingress=SharedListener(
            listener=shared.listener,
            priority=10,
            conditions=[elbv2.ListenerCondition.path_patterns(["/api/*"])],
        ),
        health_check_path="/api/health",
        alarm_topic=topic.topic,
    )
    backend = TracedFargateService(
        stack,
        "Backend",
        task_definition=_task(stack, "BackendTask", cache, app_health_check=HEALTH_CHECK),
        vpc=network,
        cluster=web.cluster,
        ingress=ServiceDiscovery(name="backend"),
        alarm_topic=topic.topic,
    )
    backend.connections.allow_from(web, backend.connections.default_port, "Web to backend")

    client_stack = Stack(app, "Client", env=ENV)
    client_stack.add_stack_dependency(stack)
    peer = ec2.SecurityGroup(client_stack, "Peer", vpc=network.vpc, allow_all_outbound=False)
    web.allow_http_from(peer)

    agnostic_stack = Stack(app, "Agnostic")
    agnostic_network = ClosedVpc(agnostic_stack, "Network")
    TracedFargateService(
        agnostic_stack,
        "Service",
        task_definition=_task(agnostic_stack, "Task", None),
        vpc=agnostic_network,
    )

    plain_stack = Stack(app, "Plain", env=ENV)
    plain_vpc = ec2.Vpc(
        plain_stack,
        "Vpc",
        nat_gateways=0,
        max_azs=2,
        subnet_configuration=[
            ec2.SubnetConfiguration(name="App", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)
        ],
        flow_logs={"All": ec2.FlowLogOptions()},
    )
    plain_service = TracedFargateService(
        plain_stack,
        "Service",
        task_definition=_task(plain_stack, "Task", None),
        vpc=plain_vpc,
    )

    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    # Raises on a dependency cycle and on any unacknowledged cdk-nag finding.
    assembly = app.synth()
    return Built(
        stack=stack,
        web=web,
        api=api,
        backend=backend,
        shared=shared,
        topic=topic,
        template=Template.from_json(assembly.get_stack_by_name("Lib").template),
        client=Template.from_json(assembly.get_stack_by_name("Client").template),
        agnostic=Template.from_json(assembly.get_stack_by_name("Agnostic").template),
        agnostic_stack=agnostic_stack,
        plain=Template.from_json(assembly.get_stack_by_name("Plain").template),
        plain_service=plain_service,
        assembly=assembly,
    )


def _service(built: Built, service: TracedFargateService) -> dict[str, Any]:
    resource: dict[str, Any] = built.template.to_json()["Resources"][
        built.logical_id(service.service)
    ]
    return resource


def _ingress_rules(template: Template) -> list[dict[str, Any]]:
    rules = [
        rule
        for group in template.find_resources("AWS::EC2::SecurityGroup").values()
        for rule in group["Properties"].get("SecurityGroupIngress", [])
    ]
    rules += [
        r["Properties"] for r in template.find_resources("AWS::EC2::SecurityGroupIngress").values()
    ]
    return rules


# --- deploy semantics ---------------------------------------------------------


def test_no_service_sets_a_desired_count_that_deploys_would_reapply(built: Built) -> None:
    for template in (built.template, built.agnostic, built.plain):
        for service in template.find_resources("AWS::ECS::Service").values():
            assert "DesiredCount" not in service["Properties"]


def test_a_given_desired_count_is_rendered() -> None:
    stack = Stack(bare_app(), "Counted", env=ENV)
    TracedFargateService(
        stack,
        "Service",
        task_definition=_task(stack, "Task", None),
        vpc=ClosedVpc(stack, "Network"),
        desired_count=2,
    )
    Template.from_stack(stack).has_resource_properties("AWS::ECS::Service", {"DesiredCount": 2})


def test_every_service_is_deleted_before_the_clusters_capacity_provider_association(
    built: Built,
) -> None:
    (association,) = built.template.find_resources("AWS::ECS::ClusterCapacityProviderAssociations")
    services = built.template.find_resources("AWS::ECS::Service")
    assert len(services) == 3
    for service in services.values():
        assert association in service["DependsOn"]


def test_services_share_the_cluster(built: Built) -> None:
    assert len(built.template.find_resources("AWS::ECS::Cluster")) == 1
    assert built.api.cluster is built.web.cluster is built.backend.cluster


# --- ingress: a new load balancer with HTTPS -----------------------------------


def _listeners(template: Template) -> list[dict[str, Any]]:
    return [
        listener["Properties"]
        for listener in template.find_resources("AWS::ElasticLoadBalancingV2::Listener").values()
    ]


def test_https_listener_uses_the_certificate_and_a_tls12_plus_policy(built: Built) -> None:
    web_balancer = built.logical_id(built.web.load_balancer.load_balancer)  # type: ignore[union-attr]
    listeners = {
        p["Port"]: p
        for p in _listeners(built.template)
        if p["LoadBalancerArn"] == {"Ref": web_balancer}
    }
    assert sorted(listeners) == [80, 443]
    https = listeners[443]
    assert https["Protocol"] == "HTTPS"
    assert https["SslPolicy"] == "ELBSecurityPolicy-TLS13-1-2-2021-06"
    assert https["Certificates"] == [{"CertificateArn": CERTIFICATE_ARN}]
    assert https["DefaultActions"] == [
        {"TargetGroupArn": {"Ref": built.logical_id(built.web.target_group)}, "Type": "forward"}
    ]
    assert listeners[80]["DefaultActions"] == [
        {
            "RedirectConfig": {"Port": "443", "Protocol": "HTTPS", "StatusCode": "HTTP_301"},
            "Type": "redirect",
        }
    ]
    assert built.web.url.startswith("https://")


def test_http_grant_opens_both_listener_ports_from_the_peer_stack(built: Built) -> None:
    ingress = built.client.find_resources("AWS::EC2::SecurityGroupIngress").values()
    assert sorted(r["Properties"]["FromPort"] for r in ingress) == [80, 443]
    load_balancer_group = built.logical_id(built.web.load_balancer.security_group)  # type: ignore[union-attr]
    for rule in ingress:
        # A reference to the service stack's export: the rule lives in the peer's stack.
        assert load_balancer_group in json.dumps(rule["Properties"]["GroupId"])
    rendered = json.dumps(built.template.to_json())
    assert "Fn::ImportValue" not in rendered
    assert "Fn::GetStackOutput" not in rendered


# --- ingress: a shared listener -------------------------------------------------


def test_shared_listener_routes_by_the_rule_to_the_services_target_group(built: Built) -> None:
    (rule,) = built.template.find_resources("AWS::ElasticLoadBalancingV2::ListenerRule").values()
    props = rule["Properties"]
    assert props["Priority"] == 10
    assert props["Conditions"] == [
        {"Field": "path-pattern", "PathPatternConfig": {"Values": ["/api/*"]}}
    ]
    assert props["ListenerArn"] == {"Ref": built.logical_id(built.shared.listener)}
    assert props["Actions"] == [
        {"TargetGroupArn": {"Ref": built.logical_id(built.api.target_group)}, "Type": "forward"}
    ]
    target_group = built.template.to_json()["Resources"][built.logical_id(built.api.target_group)]
    assert target_group["Properties"]["HealthCheckPath"] == "/api/health"
    assert target_group["Properties"]["Port"] == 9000
    assert target_group["Properties"]["TargetType"] == "ip"


def test_shared_listener_answers_404_when_no_rule_matches(built: Built) -> None:
    shared = built.logical_id(built.shared.load_balancer)
    (listener,) = [p for p in _listeners(built.template) if p["LoadBalancerArn"] == {"Ref": shared}]
    assert listener["Protocol"] == "HTTP"
    assert listener["DefaultActions"][0]["FixedResponseConfig"]["StatusCode"] == "404"


def test_shared_load_balancer_reaches_the_api_tasks_on_their_port_only(built: Built) -> None:
    api_group = built.group(built.api.security_group)
    rules = [r for r in _ingress_rules(built.template) if r["GroupId"] == api_group]
    assert rules == [
        {
            "Description": "Load balancer to target",
            "FromPort": 9000,
            "GroupId": api_group,
            "IpProtocol": "tcp",
            "SourceSecurityGroupId": built.group(built.shared.security_group),
            "ToPort": 9000,
        }
    ]


# --- ingress: service discovery, no load balancer -------------------------------


def test_backend_registers_dns_a_records_and_has_no_load_balancer(built: Built) -> None:
    props = _service(built, built.backend)["Properties"]
    assert "LoadBalancers" not in props
    assert "HealthCheckGracePeriodSeconds" not in props
    (registry,) = props["ServiceRegistries"]
    discovery = built.template.to_json()["Resources"][registry["RegistryArn"]["Fn::GetAtt"][0]]
    assert discovery["Properties"]["Name"] == "backend"
    assert discovery["Properties"]["DnsConfig"]["DnsRecords"] == [{"TTL": 10, "Type": "A"}]
    assert built.backend.url == "http://backend.internal.example:8080"
    assert built.backend.target_group is None
    assert built.backend.listener is None


def test_backend_admits_only_the_frontend_on_the_app_port(built: Built) -> None:
    backend_group = built.group(built.backend.security_group)
    rules = [r for r in _ingress_rules(built.template) if r["GroupId"] == backend_group]
    assert rules == [
        {
            "Description": "Web to backend",
            "FromPort": 8080,
            "GroupId": backend_group,
            "IpProtocol": "tcp",
            "SourceSecurityGroupId": built.group(built.web.security_group),
            "ToPort": 8080,
        }
    ]


def test_no_ingress_from_anywhere(built: Built) -> None:
    for template in (built.template, built.client, built.agnostic, built.plain):
        for rule in _ingress_rules(template):
            assert rule.get("CidrIp") != "0.0.0.0/0"
            assert rule.get("CidrIpv6") != "::/0"


# --- bring your own VPC, and no region ----------------------------------------------


def test_a_plain_vpc_gets_no_grant_on_endpoints_the_construct_does_not_know(built: Built) -> None:
    service_group = {
        "Fn::GetAtt": [
            built.logical_id(built.plain_service.security_group, built.plain_service.service.stack),
            "GroupId",
        ]
    }
    egress = [
        r["Properties"]
        for r in built.plain.find_resources("AWS::EC2::SecurityGroupEgress").values()
        if r["Properties"]["GroupId"] == service_group
    ]
    assert all(r["FromPort"] != 443 for r in egress)
    assert built.plain.find_resources("AWS::EC2::VPCEndpoint") == {}


def test_an_environment_agnostic_stack_synthesizes_with_access_logs_off_and_a_warning(
    built: Built,
) -> None:
    (balancer,) = built.agnostic.find_resources(
        "AWS::ElasticLoadBalancingV2::LoadBalancer"
    ).values()
    attributes = {a["Key"]: a["Value"] for a in balancer["Properties"]["LoadBalancerAttributes"]}
    assert "access_logs.s3.enabled" not in attributes
    warnings = Annotations.from_stack(built.agnostic_stack).find_warning(
        "*", Match.string_like_regexp("Access logs are off")
    )
    assert len(warnings) == 1


def test_access_logs_go_to_a_private_ssl_only_bucket_when_the_region_is_known(
    built: Built,
) -> None:
    bucket = built.web.load_balancer.access_logs_bucket  # type: ignore[union-attr]
    bucket_id = built.logical_id(bucket)
    web_balancer = built.template.to_json()["Resources"][
        built.logical_id(built.web.load_balancer.load_balancer)  # type: ignore[union-attr]
    ]
    attributes = {
        a["Key"]: a["Value"] for a in web_balancer["Properties"]["LoadBalancerAttributes"]
    }
    assert attributes["access_logs.s3.enabled"] == "true"
    assert attributes["access_logs.s3.bucket"] == {"Ref": bucket_id}
    assert web_balancer["Properties"]["Scheme"] == "internal"
    props = built.template.to_json()["Resources"][bucket_id]["Properties"]
    assert props["PublicAccessBlockConfiguration"]["RestrictPublicBuckets"] is True


# --- alarms and their topic ---------------------------------------------------------


def _topic_statements(template: Template) -> list[list[dict[str, Any]]]:
    return [
        p["Properties"]["PolicyDocument"]["Statement"]
        for p in template.find_resources("AWS::SNS::TopicPolicy").values()
    ]


def _cloudwatch_may_publish(statements: list[dict[str, Any]]) -> bool:
    for statement in statements:
        if (
            statement["Effect"] == "Allow"
            and statement.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}
            and statement["Action"] == "sns:Publish"
        ):
            assert statement["Condition"] == {
                "StringEquals": {"aws:SourceAccount": ACCOUNT},
                "ArnLike": {
                    "aws:SourceArn": {
                        "Fn::Join": [
                            "",
                            [
                                "arn:",
                                {"Ref": "AWS::Partition"},
                                f":cloudwatch:{REGION}:{ACCOUNT}:alarm:*",
                            ],
                        ]
                    }
                },
            }
            return True
    return False


def test_alarm_topic_lets_cloudwatch_alarms_of_this_account_publish(built: Built) -> None:
    (statements,) = _topic_statements(built.template)
    assert _cloudwatch_may_publish(statements)
    assert any(
        s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        for s in statements
    )
    key = built.template.to_json()["Resources"][built.logical_id(built.topic.key)]
    assert any(
        s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}
        and set(s["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}
        for s in key["Properties"]["KeyPolicy"]["Statement"]
    )


def test_a_service_without_a_topic_gets_one_cloudwatch_can_publish_to(built: Built) -> None:
    (statements,) = _topic_statements(built.agnostic)
    (alarm, *_) = built.agnostic.find_resources("AWS::CloudWatch::Alarm").values()
    (topic_id,) = built.agnostic.find_resources("AWS::SNS::Topic")
    assert alarm["Properties"]["AlarmActions"] == [{"Ref": topic_id}]
    conditions = next(s for s in statements if s["Effect"] == "Allow")["Condition"]
    assert conditions["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    assert "alarm:*" in json.dumps(conditions["ArnLike"])


def test_alarms_notify_on_alarm_and_ok_and_only_load_balanced_services_watch_5xx(
    built: Built,
) -> None:
    assert len(built.web.alarms.alarms) == 3
    assert len(built.api.alarms.alarms) == 3
    assert [a.node.id for a in built.backend.alarms.alarms] == ["CpuHighAlarm"]
    topic = [{"Ref": built.logical_id(built.topic.topic)}]
    alarms = built.template.find_resources("AWS::CloudWatch::Alarm").values()
    assert len(alarms) == 7
    for alarm in alarms:
        assert alarm["Properties"]["AlarmActions"] == topic
        assert alarm["Properties"]["OKActions"] == topic


def test_scaling_tracks_cpu_everywhere_and_requests_behind_a_load_balancer(built: Built) -> None:
    policies = built.template.find_resources("AWS::ApplicationAutoScaling::ScalingPolicy").values()
    metrics = sorted(
        p["Properties"]["TargetTrackingScalingPolicyConfiguration"][
            "PredefinedMetricSpecification"
        ]["PredefinedMetricType"]
        for p in policies
    )
    assert metrics == [
        "ALBRequestCountPerTarget",
        "ALBRequestCountPerTarget",
        "ECSServiceAverageCPUUtilization",
        "ECSServiceAverageCPUUtilization",
        "ECSServiceAverageCPUUtilization",
    ]


def test_spot_takes_two_shares_above_one_on_demand_base(built: Built) -> None:
    assert _service(built, built.web)["Properties"]["CapacityProviderStrategy"] == [
        {"Base": 1, "CapacityProvider": "FARGATE", "Weight": 1},
        {"CapacityProvider": "FARGATE_SPOT", "Weight": 2},
    ]


# --- cdk-nag --------------------------------------------------------------------


def test_nag_passes_with_only_narrow_acknowledgments(built: Built) -> None:
    report = json.loads((Path(built.assembly.directory) / "validation-report.json").read_text())
    assert report["pluginReports"] == []
    key = Validations.ACKNOWLEDGED_RULES_METADATA_KEY
    acknowledged = {
        (c.node.path, rule_id.removeprefix("Annotation::")): reason
        for stack in (built.stack, built.agnostic_stack)
        for c in stack.node.find_all()
        for m in c.node.metadata
        if m.type == key
        for rule_id, reason in m.data.items()
        if rule_id.startswith("Annotation::AwsSolutions-")
    }
    assert all(acknowledged.values()), "every acknowledgment gives a reason"
    # A bare app renders the partition as a pseudo parameter.
    cache_arn = f"arn:<AWS::Partition>:ecr:{REGION}:{ACCOUNT}:repository/lib-cache/*"
    expected = {("Agnostic/Service/LoadBalancer/LoadBalancer", "AwsSolutions-ELB2")}
    for task in ("WebTask", "ApiTask", "BackendTask"):
        expected |= {
            (f"Lib/{task}/TracingPolicy", "AwsSolutions-IAM5[Resource::*]"),
            (f"Lib/{task}/TaskDefinition", "AwsSolutions-ECS2"),
            (f"Lib/{task}/TaskDefinition/ExecutionRole", "AwsSolutions-IAM5[Resource::*]"),
            (
                f"Lib/{task}/TaskDefinition/ExecutionRole",
                f"AwsSolutions-IAM5[Resource::{cache_arn}]",
            ),
        }
    expected |= {
        ("Lib/Web/LoadBalancer/AccessLogsBucket", "AwsSolutions-S1"),
        ("Lib/Shared/AccessLogsBucket", "AwsSolutions-S1"),
        ("Agnostic/Task/TracingPolicy", "AwsSolutions-IAM5[Resource::*]"),
        ("Agnostic/Task/TaskDefinition", "AwsSolutions-ECS2"),
    }
    for stack in ("Lib", "Agnostic"):  # the ClosedVpc's S3 prefix list lookup
        expected |= {
            (f"{stack}/Network/S3PrefixList", "AwsSolutions-IAM5[Resource::*]"),
            (
                f"{stack}/AWS679f53fac002430cb0da5b7982bd2287/ServiceRole",
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/"
                "service-role/AWSLambdaBasicExecutionRole]",
            ),
        }
    assert set(acknowledged) == expected


# --- validation -------------------------------------------------------------------


def _problems(**props: Any) -> tuple[str, ...]:
    stack = Stack(bare_app(), "Invalid", env=ENV)
    defaults: dict[str, Any] = {
        "task_definition": _task(stack, "Task", None),
        "vpc": ClosedVpc(stack, "Network"),
    }
    with pytest.raises(InvalidPropsError) as error:
        TracedFargateService(stack, "Service", **{**defaults, **props})
    assert all(line.startswith("Invalid/Service: ") for line in str(error.value).splitlines())
    return error.value.problems


def test_a_wrong_vpc_is_named_not_an_attribute_error() -> None:
    assert _problems(vpc="vpc-0123") == ("vpc: expected a ClosedVpc or an ec2.IVpc, got str",)


@pytest.mark.parametrize(
    ("props", "expected"),
    [
        ({"cluster": "default"}, "cluster: expected an ecs.ICluster, got str"),
        (
            {"ingress": "alb"},
            "ingress: expected NewLoadBalancer(...), SharedListener(...) or "
            "ServiceDiscovery(...), got str",
        ),
        (
            {"min_count": "1"},
            "min_count: '1' is not an integer; allowed: a whole number from 1 to 5000",
        ),
        ({"min_count": 3}, "min_count: 3 is above max_count 2"),
        (
            {"desired_count": 3},
            "desired_count: 3 must lie within min_count 1 and max_count 2",
        ),
        (
            {"fargate_weight": 0, "spot_weight": 0},
            "fargate_weight / spot_weight: both 0; at least one must be above 0",
        ),
        (
            {"cpu_target_percent": 120},
            "cpu_target_percent: 120 is not allowed; allowed: a whole number from 1 to 100",
        ),
        ({"health_check_path": "healthz"}, "health_check_path: 'healthz' must start with '/'"),
        (
            {"ingress": ServiceDiscovery(name="Back_End")},
            "ingress.name: 'Back_End' is not a DNS label; allowed: 1-63 lowercase letters, "
            "digits and inner hyphens",
        ),
    ],
)
def test_invalid_props_are_rejected_naming_the_prop(props: dict[str, Any], expected: str) -> None:
    assert _problems(**props) == (expected,)


def test_a_shared_listener_needs_a_condition_and_a_valid_priority() -> None:
    stack = Stack(bare_app(), "Invalid", env=ENV)
    network = ClosedVpc(stack, "Network")
    shared = InternalLoadBalancer(stack, "Shared", vpc=network)
    with pytest.raises(InvalidPropsError) as error:
        TracedFargateService(
            stack,
            "Service",
            task_definition=_task(stack, "Task", None),
            vpc=network,
            ingress=SharedListener(listener=shared.listener, priority=0),
        )
    assert error.value.problems == (
        "ingress.priority: 0 is not allowed; allowed: a whole number from 1 to 50000",
        "ingress.conditions: a shared listener needs at least one condition, e.g. "
        "ListenerCondition.path_patterns(['/api/*']) or host_headers([...])",
    )


def test_arm64_tasks_are_not_placed_on_spot() -> None:
    stack = Stack(bare_app(), "Invalid", env=ENV)
    arm = _task(stack, "Task", None, cpu_architecture=ecs.CpuArchitecture.ARM64)
    with pytest.raises(InvalidPropsError) as error:
        TracedFargateService(
            stack, "Service", task_definition=arm, vpc=ClosedVpc(stack, "Network"), spot_weight=1
        )
    assert error.value.problems == (
        "spot_weight: 1 places ARM64 tasks on FARGATE_SPOT, which does not run ARM64; use "
        "spot_weight 0 or cpu_architecture X86_64",
    )


def _shared_service(port: int | None) -> tuple[Stack, TracedFargateService, ClosedVpc]:
    stack = Stack(bare_app(), "Shared", env=ENV)
    network = ClosedVpc(stack, "Network")
    shared = InternalLoadBalancer(stack, "Balancer", vpc=network)
    service = TracedFargateService(
        stack,
        "Service",
        task_definition=_task(stack, "Task", None),
        vpc=network,
        ingress=SharedListener(
            listener=shared.listener,
            priority=5,
            conditions=[elbv2.ListenerCondition.path_patterns(["/a/*"])],
            port=port,
        ),
    )
    return stack, service, network


def test_http_grant_behind_a_shared_listener_opens_its_port_only() -> None:
    stack, service, network = _shared_service(80)
    peer = ec2.SecurityGroup(stack, "Peer", vpc=network.vpc)
    service.allow_http_from(peer)
    rules = Template.from_stack(stack).find_resources("AWS::EC2::SecurityGroupIngress")
    ports = sorted(
        (r["Properties"]["FromPort"], r["Properties"]["ToPort"])
        for r in rules.values()
        if "Peer" in json.dumps(r["Properties"].get("SourceSecurityGroupId"))
    )
    assert ports == [(80, 80)]


def test_http_grant_behind_a_shared_listener_without_a_port_is_refused() -> None:
    stack, service, network = _shared_service(None)
    peer = ec2.SecurityGroup(stack, "Peer", vpc=network.vpc)
    with pytest.raises(InvalidPropsError, match="allow_http_from: the SharedListener has no port"):
        service.allow_http_from(peer)


def test_service_discovery_needs_a_namespace() -> None:
    (problem,) = _problems(ingress=ServiceDiscovery(name="backend"))
    assert problem.startswith("ingress.namespace: none given and the cluster has no default")


def test_every_problem_is_reported_on_its_own_line() -> None:
    problems = _problems(vpc=42, min_count=0, cpu_target_percent=0)
    assert [p.split(":")[0] for p in problems] == ["vpc", "min_count", "cpu_target_percent"]


def test_the_stop_timeout_bound_is_the_task_definitions() -> None:
    stack = Stack(bare_app(), "Timeout", env=ENV)
    with pytest.raises(InvalidPropsError, match="stop_timeout: 121 s is not allowed"):
        _task(stack, "Task", None, stop_timeout=Duration.seconds(121))


def test_constructs_that_need_a_closed_vpc_name_the_prop_for_a_plain_one() -> None:
    from traced_fargate import LoadClient, TemporaryEgress

    stack = Stack(bare_app(), "Plain", env=ENV)
    plain = ec2.Vpc(stack, "Vpc")
    with pytest.raises(InvalidPropsError, match=r"network: expected a ClosedVpc, got Vpc"):
        LoadClient(stack, "Client", network=plain, target_url="http://10.0.0.1")
    with pytest.raises(InvalidPropsError, match=r"network: expected a ClosedVpc, got Vpc"):
        TemporaryEgress(stack, "Egress", network=plain)
    with pytest.raises(InvalidPropsError, match=r"repository_prefix: 5 is not a string"):
        PullThroughCache(stack, "Cache", repository_prefix=5)  # type: ignore[arg-type]
