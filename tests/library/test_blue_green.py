"""BlueGreenDeployment as a consumer composes it, on a bare App under cdk-nag: a service
with a load balancer of its own and one on a shared listener, both on ECS native
blue/green. What the template must get right for deploys that no test here reaches:

- nothing CloudFormation re-applies names the forward action ECS owns (aws-cdk#36649);
- switching an existing service to blue/green never leaves its listener without a route;
- ECS's traffic-shift role and the rule function hold only what they use, inline;
- the role exists, with its policy, before the service that ECS deploys with it;
- scaling and alarms do not watch one target group of the two.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from aws_cdk import Duration, Environment, Stack, Validations
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from cdk_nag import AwsSolutionsChecks

from tests.conftest import bare_app
from traced_fargate import (
    BlueGreenDeployment,
    ClosedVpc,
    InternalLoadBalancer,
    InvalidPropsError,
    RollingDeployment,
    ServiceDiscovery,
    SharedListener,
    TracedFargateService,
    TracedTaskDefinition,
    XRayDaemon,
)
from traced_fargate.production_listener_rule import READ_ACTIONS
from traced_fargate.production_listener_rule.handler.index import contract

ENV = Environment(account="111111111111", region="eu-west-1")
APP_IMAGE = "public.ecr.aws/docker/library/python:3.13-slim"
RULE_TYPE = contract.RESOURCE_TYPE


@dataclass(frozen=True)
class Built:
    stack: Stack
    own: TracedFargateService
    shared: TracedFargateService
    resources: dict[str, Any]

    def id_of(self, construct: Any) -> str:
        target = construct
        while not hasattr(target, "logical_id"):
            target = target.node.default_child
        return str(self.stack.resolve(target.logical_id))

    def resource(self, construct: Any) -> dict[str, Any]:
        return dict(self.resources[self.id_of(construct)])

    def of_type(self, cfn_type: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.resources.items() if v["Type"] == cfn_type}


def _task(stack: Stack, construct_id: str) -> TracedTaskDefinition:
    return TracedTaskDefinition(
        stack,
        construct_id,
        app_image=ecs.ContainerImage.from_registry(APP_IMAGE),
        tracing=XRayDaemon(),
    )


@pytest.fixture(scope="module")
def built() -> Built:
    app = bare_app()
    stack = Stack(app, "BlueGreen", env=ENV)
    vpc = ClosedVpc(stack, "Vpc")
    own = TracedFargateService(
        stack,
        "Own",
        task_definition=_task(stack, "OwnTask"),
        vpc=vpc,
        deployment=BlueGreenDeployment(bake_time=Duration.minutes(10)),
    )
    platform = InternalLoadBalancer(stack, "Platform", vpc=vpc)
    shared = TracedFargateService(
        stack,
        "Shared",
        task_definition=_task(stack, "SharedTask"),
        vpc=vpc,
        ingress=SharedListener(
            listener=platform.listener,
            priority=20,
            conditions=[elbv2.ListenerCondition.host_headers(["api.example.internal"])],
        ),
        deployment=BlueGreenDeployment(),
    )
    # An open finding makes synth raise: reaching the tests means there is none.
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    template = app.synth().get_stack_by_name("BlueGreen").template
    return Built(stack, own, shared, template["Resources"])


@pytest.fixture(params=["own", "shared"])
def service(request: pytest.FixtureRequest, built: Built) -> TracedFargateService:
    return getattr(built, str(request.param))


def _walk(value: Any) -> Iterator[Any]:
    yield value
    if isinstance(value, dict):
        for item in value.values():
            yield from _walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item)


def _names_group(value: Any, group_id: str) -> bool:
    return any(v == {"Ref": group_id} for v in _walk(value))


def test_no_template_resource_carries_a_forward_action_to_the_services_groups(
    built: Built, service: TracedFargateService
) -> None:
    groups = [built.id_of(service.target_group), built.id_of(service.alternate_target_group)]
    rules = built.of_type("AWS::ElasticLoadBalancingV2::ListenerRule")
    assert not [k for k, r in rules.items() if any(_names_group(r, g) for g in groups)]
    rule = built.resource(service.production_rule)
    assert rule["Type"] == RULE_TYPE
    # Conditions, priority and listener only: a change to any of them reaches the function,
    # which keeps the live action; there is no action in the template to write back.
    assert set(rule["Properties"]) == {
        "ServiceToken",
        contract.LISTENER_ARN,
        contract.PRIORITY,
        contract.CONDITIONS,
        contract.TARGET_GROUP_ARNS,
    }
    assert rule["Properties"][contract.TARGET_GROUP_ARNS] == [{"Ref": g} for g in groups]


def test_the_rules_conditions_are_in_the_load_balancing_api_shape(built: Built) -> None:
    own = built.resource(built.own.production_rule)["Properties"]
    assert own[contract.PRIORITY] == 1
    assert own[contract.CONDITIONS] == [
        {"Field": "path-pattern", "PathPatternConfig": {"Values": ["/*"]}}
    ]
    shared = built.resource(built.shared.production_rule)["Properties"]
    assert shared[contract.PRIORITY] == 20
    assert shared[contract.CONDITIONS] == [
        {"Field": "host-header", "HostHeaderConfig": {"Values": ["api.example.internal"]}}
    ]
    assert shared[contract.LISTENER_ARN] == {"Ref": built.id_of(built.shared.listener)}


def test_the_own_listener_still_forwards_to_the_first_group(built: Built) -> None:
    # As before the switch: turning blue/green on changes nothing the listener answers
    # while CloudFormation creates the rule that ECS then owns.
    listener = built.resource(built.own.listener)["Properties"]
    assert listener["DefaultActions"] == [
        {"Type": "forward", "TargetGroupArn": {"Ref": built.id_of(built.own.target_group)}}
    ]


def test_the_service_deploys_blue_green_with_its_bake_time(built: Built) -> None:
    own = built.resource(built.own.service)["Properties"]
    assert own["DeploymentConfiguration"]["Strategy"] == "BLUE_GREEN"
    assert own["DeploymentConfiguration"]["BakeTimeInMinutes"] == 10
    assert own["DeploymentConfiguration"]["DeploymentCircuitBreaker"] == {
        "Enable": True,
        "Rollback": True,
    }
    shared = built.resource(built.shared.service)["Properties"]
    assert shared["DeploymentConfiguration"]["BakeTimeInMinutes"] == 5


def test_the_target_group_alarms_roll_a_deployment_back(
    built: Built, service: TracedFargateService
) -> None:
    alarms = built.resource(service.service)["Properties"]["DeploymentConfiguration"]["Alarms"]
    assert alarms == {
        "AlarmNames": [{"Ref": built.id_of(a)} for a in service.alarms.target_group_alarms],
        "Enable": True,
        "Rollback": True,
    }
    names = {a.node.id for a in service.alarms.target_group_alarms}
    # Not the CPU alarm: it names the service, which would then depend on itself.
    assert names == {"Target5xxAlarm", "UnhealthyHostsAlarm"}


def test_the_service_names_both_groups_the_rule_and_the_role(
    built: Built, service: TracedFargateService
) -> None:
    role = built.id_of(service.node.find_child("TrafficShiftRole"))
    (balancer,) = built.resource(service.service)["Properties"]["LoadBalancers"]
    assert balancer["TargetGroupArn"] == {"Ref": built.id_of(service.target_group)}
    assert balancer["AdvancedConfiguration"] == {
        "AlternateTargetGroupArn": {"Ref": built.id_of(service.alternate_target_group)},
        "ProductionListenerRule": {
            "Fn::GetAtt": [built.id_of(service.production_rule), contract.RULE_ARN]
        },
        "RoleArn": {"Fn::GetAtt": [role, "Arn"]},
    }


def test_the_role_and_its_policy_exist_before_the_service(
    built: Built, service: TracedFargateService
) -> None:
    role = service.node.find_child("TrafficShiftRole")
    policy = role.node.find_child("DefaultPolicy")
    depends = built.resource(service.service)["DependsOn"]
    assert {built.id_of(role), built.id_of(policy)} <= set(depends)


def _statements(built: Built, policy: Any) -> list[dict[str, Any]]:
    statements = built.resource(policy)["Properties"]["PolicyDocument"]["Statement"]
    return [
        {**s, "Action": sorted(s["Action"]) if isinstance(s["Action"], list) else [s["Action"]]}
        for s in statements
    ]


def test_ecs_role_is_inline_and_scoped_to_the_services_groups_and_rule(
    built: Built, service: TracedFargateService
) -> None:
    role = service.node.find_child("TrafficShiftRole")
    properties = built.resource(role)["Properties"]
    assert "ManagedPolicyArns" not in properties
    assert properties["AssumeRolePolicyDocument"]["Statement"] == [
        {
            "Action": "sts:AssumeRole",
            "Effect": "Allow",
            "Principal": {"Service": "ecs.amazonaws.com"},
        }
    ]
    by_sid = {
        s.get("Sid", ""): s for s in _statements(built, role.node.find_child("DefaultPolicy"))
    }
    assert by_sid["ReadLoadBalancing"]["Action"] == sorted(READ_ACTIONS)
    assert by_sid["ReadLoadBalancing"]["Resource"] == "*"
    register = by_sid["RegisterInTheServiceTargetGroups"]
    assert register["Resource"] == [
        {"Ref": built.id_of(service.target_group)},
        {"Ref": built.id_of(service.alternate_target_group)},
    ]
    (shift,) = [
        s
        for sid, s in by_sid.items()
        if sid not in {"ReadLoadBalancing", *register} and s is not register
    ]
    assert shift["Action"] == ["elasticloadbalancing:ModifyRule"]
    assert shift["Resource"] == {
        "Fn::GetAtt": [built.id_of(service.production_rule), contract.RULE_ARN]
    }
    wildcards = [s for s in by_sid.values() if s["Resource"] == "*"]
    assert [a for s in wildcards for a in s["Action"]] == sorted(READ_ACTIONS)


def test_the_rule_function_is_outside_the_vpc_with_its_own_calls_only(
    built: Built, service: TracedFargateService
) -> None:
    rule = service.production_rule
    assert rule is not None
    function = built.resource(rule.function)["Properties"]
    assert "VpcConfig" not in function
    assert "ManagedPolicyArns" not in built.resource(rule.function.role)["Properties"]
    statements = _statements(built, rule.function.role.node.find_child("DefaultPolicy"))
    on_any = sorted(a for s in statements if s["Resource"] == "*" for a in s["Action"])
    assert on_any == ["elasticloadbalancing:DescribeRules"]
    (create,) = [s for s in statements if "elasticloadbalancing:CreateRule" in s["Action"]]
    assert create["Action"] == ["elasticloadbalancing:CreateRule"]
    assert create["Resource"] == {"Ref": built.id_of(service.listener)}
    (change,) = [s for s in statements if "elasticloadbalancing:ModifyRule" in s["Action"]]
    assert change["Action"] == [
        "elasticloadbalancing:DeleteRule",
        "elasticloadbalancing:ModifyRule",
        "elasticloadbalancing:SetRulePriorities",
    ]
    rendered = json.dumps(change["Resource"])
    assert ":listener-rule/app/" in rendered and rendered.endswith('"/*"]]}')


def test_the_rule_function_logs_with_the_tasks_key(
    built: Built, service: TracedFargateService
) -> None:
    rule = service.production_rule
    assert rule is not None
    logs = built.resource(rule.node.find_child("Logs"))["Properties"]
    key = built.id_of(service.task_definition.log_encryption_key)
    assert logs["KmsKeyId"] == {"Fn::GetAtt": [key, "Arn"]}
    assert logs["RetentionInDays"] == 30
    assert rule.node.try_find_child("LogKey") is None


def test_the_alternate_group_has_no_targets_and_the_same_health_check(
    built: Built, service: TracedFargateService
) -> None:
    first = built.resource(service.target_group)["Properties"]
    alternate = built.resource(service.alternate_target_group)["Properties"]
    assert "Targets" not in alternate
    health = {k: v for k, v in first.items() if k.startswith("HealthCheck")}
    assert health and {k: alternate[k] for k in health} == health
    assert alternate["TargetGroupAttributes"] == first["TargetGroupAttributes"]


def test_scaling_tracks_cpu_only(built: Built, service: TracedFargateService) -> None:
    policies = built.of_type("AWS::ApplicationAutoScaling::ScalingPolicy")
    mine = [p for k, p in policies.items() if k.startswith(service.node.id)]
    metrics = sorted(
        p["Properties"]["TargetTrackingScalingPolicyConfiguration"][
            "PredefinedMetricSpecification"
        ]["PredefinedMetricType"]
        for p in mine
    )
    assert metrics == ["ECSServiceAverageCPUUtilization"]


def test_target_alarms_watch_both_groups(built: Built, service: TracedFargateService) -> None:
    alarms = service.alarms
    for name, expression in (
        ("Target5xxAlarm", "FILL(m0, 0) + FILL(m1, 0)"),
        ("UnhealthyHostsAlarm", "MAX([FILL(m0, 0), FILL(m1, 0)])"),
    ):
        metrics = built.resource(alarms.node.find_child(name))["Properties"]["Metrics"]
        assert [m["Expression"] for m in metrics if "Expression" in m] == [expression]
        dimensions = [
            d["Value"]
            for m in metrics
            if "MetricStat" in m
            for d in m["MetricStat"]["Metric"]["Dimensions"]
            if d["Name"] == "TargetGroup"
        ]
        assert [json.dumps(d) for d in dimensions] == [
            json.dumps({"Fn::GetAtt": [built.id_of(g), "TargetGroupFullName"]})
            for g in (service.target_group, service.alternate_target_group)
        ]


def _problems(**props: Any) -> str:
    app = bare_app()
    stack = Stack(app, "Probe", env=ENV)
    vpc = ClosedVpc(stack, "Vpc")
    task = _task(stack, "Task")
    with pytest.raises(InvalidPropsError) as error:
        TracedFargateService(stack, "Svc", task_definition=task, vpc=vpc, **props)
    return str(error.value)


@pytest.mark.parametrize(
    ("props", "expected"),
    [
        (
            {"ingress": ServiceDiscovery(name="api"), "deployment": BlueGreenDeployment()},
            "deployment: BlueGreenDeployment needs a load balancer",
        ),
        (
            {"deployment": BlueGreenDeployment(bake_time=Duration.seconds(90))},
            "deployment.bake_time: 90 s is not allowed; expected whole minutes from 0 to 1440",
        ),
        (
            {"deployment": BlueGreenDeployment(bake_time=Duration.minutes(1441))},
            "deployment.bake_time: 86460 s is not allowed",
        ),
        ({"deployment": "blue-green"}, "deployment: 'blue-green' is not allowed"),
    ],
)
def test_a_wrong_deployment_is_named(props: dict[str, Any], expected: str) -> None:
    assert expected in _problems(**props)


def test_rolling_stays_the_default_with_no_rule_or_second_group() -> None:
    app = bare_app()
    stack = Stack(app, "Rolling", env=ENV)
    explicit = TracedFargateService(
        stack,
        "Svc",
        task_definition=_task(stack, "Task"),
        vpc=ClosedVpc(stack, "Vpc"),
        deployment=RollingDeployment(),
    )
    assert explicit.alternate_target_group is None
    assert explicit.production_rule is None
    resources = app.synth().get_stack_by_name("Rolling").template["Resources"]
    assert not [r for r in resources.values() if r["Type"] == RULE_TYPE]
    (service,) = [r for r in resources.values() if r["Type"] == "AWS::ECS::Service"]
    assert "Strategy" not in service["Properties"]["DeploymentConfiguration"]
    assert service["Properties"]["DeploymentConfiguration"]["Alarms"]["Enable"] is False
    assert "AdvancedConfiguration" not in service["Properties"]["LoadBalancers"][0]
