"""The setup egress: owned by custom resources, handlers outside the VPC, closed after setup."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import pytest
from aws_cdk.assertions import Template

from stacks.app_builder import build_app
from stacks.config import EnvironmentConfig, egress_generation, load_environments
from tests.conftest import ENV_NAMES, Synthesized, cdk_json_context, new_app

SERVICE_TIMEOUT = 3600


@pytest.fixture(scope="module", params=ENV_NAMES)
def network(request: pytest.FixtureRequest, synthesized: Synthesized) -> Template:
    return synthesized.template(request.param, "Network")


@pytest.fixture(scope="module")
def load_test(synthesized: Synthesized) -> Template:
    return synthesized.template("dev", "LoadTest")


def handler_functions(template: Template) -> dict[str, Any]:
    return {
        k: v
        for k, v in template.find_resources("AWS::Lambda::Function").items()
        if v["Properties"].get("Runtime", "").startswith("python")
    }


def test_nothing_routes_to_the_internet_in_cloudformation(network: Template) -> None:
    for cfn_type in (
        "AWS::EC2::InternetGateway",
        "AWS::EC2::NatGateway",
        "AWS::EC2::EIP",
        "AWS::EC2::Route",
        "AWS::EC2::VPCGatewayAttachment",
    ):
        assert network.find_resources(cfn_type) == {}, f"{cfn_type} would drift when removed"


def test_egress_custom_resource_opens_the_spare_block(network: Template) -> None:
    (egress,) = network.find_resources("Custom::TemporaryEgress").values()
    props = egress["Properties"]
    assert props["PublicSubnetCidr"].endswith("/28")
    assert len(props["RouteTableIds"]) == 2
    assert props["OwnerTag"].endswith("/Network/TemporaryEgress")
    assert int(props["ServiceTimeout"]) == SERVICE_TIMEOUT


def test_handlers_run_outside_the_vpc_on_latest_python(network: Template) -> None:
    functions = handler_functions(network)
    assert {f["Properties"]["Handler"] for f in functions.values()} == {
        "index.on_event",
        "index.is_complete",
    }
    for function in network.find_resources("AWS::Lambda::Function").values():
        assert "VpcConfig" not in function["Properties"]
    for function in functions.values():
        props = function["Properties"]
        assert props["Runtime"] == "python3.14"
        assert props["Timeout"] == 120
        assert props["MemorySize"] == 256


def test_provider_gives_up_before_cloudformation_does(network: Template) -> None:
    (machine,) = network.find_resources("AWS::StepFunctions::StateMachine").values()
    definition = "".join(
        p if isinstance(p, str) else ""
        for p in machine["Properties"]["DefinitionString"]["Fn::Join"][1]
    )
    interval = int(definition.split('"IntervalSeconds":')[1].split(",")[0])
    attempts = int(definition.split('"MaxAttempts":')[1].split(",")[0])
    assert interval * attempts <= SERVICE_TIMEOUT
    for function in handler_functions(network).values():
        assert function["Properties"]["Timeout"] < interval * attempts


def test_handler_may_only_change_what_it_owns(network: Template) -> None:
    policies = network.find_resources("AWS::IAM::Policy")
    (policy,) = [p for k, p in policies.items() if k.startswith("TemporaryEgressHandlerRole")]
    statements = {
        s["Sid"]: s for s in policy["Properties"]["PolicyDocument"]["Statement"] if "Sid" in s
    }
    assert statements["DescribeEgressParts"]["Resource"] == "*"
    assert all(a.startswith("ec2:Describe") for a in statements["DescribeEgressParts"]["Action"])
    owner = "aws:ResourceTag/traced-fargate:egress-owner"
    assert owner in statements["ChangeOnlyOurs"]["Condition"]["StringEquals"]
    assert {"ec2:DeleteNatGateway", "ec2:ReleaseAddress", "ec2:DeleteInternetGateway"} <= set(
        statements["ChangeOnlyOurs"]["Action"]
    )
    request = "aws:RequestTag/traced-fargate:egress-owner"
    assert request in statements["CreateOnlyTaggedAsOurs"]["Condition"]["StringEquals"]
    workload_tables = statements["RouteTheWorkloadTables"]
    assert workload_tables["Action"] == ["ec2:CreateRoute", "ec2:DeleteRoute"]
    assert len(workload_tables["Resource"]) == 2
    for arn in workload_tables["Resource"]:
        assert "WorkloadSubnet" in str(arn), "only the isolated subnets' own route tables"
    tagging = statements["TagOnlyWhileCreating"]
    assert tagging["Action"] == "ec2:CreateTags"
    assert sorted(tagging["Condition"]["StringEquals"]["ec2:CreateAction"]) == [
        "AllocateAddress",
        "CreateInternetGateway",
        "CreateNatGateway",
        "CreateRouteTable",
        "CreateSubnet",
    ]
    assert "ec2:CreateTags" not in statements["ChangeOnlyOurs"]["Action"]
    for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
        if statement["Resource"] == "*":
            assert statement.get("Sid") == "DescribeEgressParts" or all(
                a.startswith(("logs:", "xray:")) for a in _actions(statement)
            )


def _actions(statement: dict[str, Any]) -> list[str]:
    action = statement["Action"]
    return action if isinstance(action, list) else [action]


def test_teardown_waits_for_the_service_and_the_client_signal(
    load_test: Template, synthesized: Synthesized
) -> None:
    ((_, teardown),) = load_test.find_resources("Custom::TemporaryEgressTeardown").items()
    ((instance_id, instance),) = load_test.find_resources("AWS::EC2::Instance").items()
    assert instance_id in teardown["DependsOn"]
    assert instance["CreationPolicy"]["ResourceSignal"]["Count"] == 1
    # The service is in an earlier stack: its stack must be complete (steady state) first.
    stage = synthesized.stages["dev"]
    assert stage.load_test is not None
    dependencies = {d.node.id for d in stage.load_test.dependencies}
    assert {"Service", "Network"} <= dependencies
    for name in ("NatGatewayId", "AllocationId", "InternetGatewayId", "PublicSubnetId"):
        assert name in teardown["Properties"]
    # A reopened egress changes this template, so the same deploy closes it again.
    network = synthesized.template_json("dev", "Network")["Resources"]
    (egress,) = [r for r in network.values() if r["Type"] == "Custom::TemporaryEgress"]
    assert teardown["Properties"]["Generation"] == egress["Properties"]["Generation"]
    assert teardown["Properties"]["Generation"].startswith("1-")
    assert int(teardown["Properties"]["ServiceTimeout"]) == SERVICE_TIMEOUT


def test_egress_mode_none_never_opens_anything() -> None:
    raw = copy.deepcopy(cdk_json_context()["environments"])
    raw["dev"]["egress"] = {"mode": "none"}
    (dev,) = load_environments({"dev": raw["dev"]})
    app = new_app()
    (stage,) = build_app(app, [dev])
    assembly = app.synth().get_nested_assembly("assembly-dev")
    assert stage.load_test is not None
    for stack in (stage.network, stage.load_test):
        template = assembly.get_stack_artifact(stack.artifact_id).template
        types = {r["Type"] for r in template["Resources"].values()}
        assert "Custom::TemporaryEgress" not in types
        assert "Custom::TemporaryEgressTeardown" not in types
        assert "AWS::Lambda::Function" not in types or stack is stage.network


def test_load_balancer_accepts_the_load_client_and_nothing_else(
    load_test: Template, synthesized: Synthesized
) -> None:
    service = synthesized.template("dev", "Service")
    balancer_group = next(
        k for k in service.find_resources("AWS::EC2::SecurityGroup") if "LoadBalancer" in k
    )
    (group,) = [
        g
        for k, g in service.find_resources("AWS::EC2::SecurityGroup").items()
        if k == balancer_group
    ]
    assert "SecurityGroupIngress" not in group["Properties"]
    in_service = [
        r["Properties"]
        for r in service.find_resources("AWS::EC2::SecurityGroupIngress").values()
        if r["Properties"]["GroupId"] == {"Fn::GetAtt": [balancer_group, "GroupId"]}
    ]
    assert in_service == []
    (rule,) = [
        r["Properties"]
        for r in load_test.find_resources("AWS::EC2::SecurityGroupIngress").values()
        if r["Properties"]["FromPort"] == 80
    ]
    assert rule["ToPort"] == 80
    assert balancer_group in str(rule["GroupId"])
    assert "LoadClient" in rule["SourceSecurityGroupId"]["Fn::GetAtt"][0]


def test_service_and_client_wait_for_the_open_egress(synthesized: Synthesized) -> None:
    stage = synthesized.stages["dev"]
    assert stage.network in stage.service.dependencies
    service = synthesized.template("dev", "Service")
    services = service.find_resources("AWS::ECS::Service").values()
    assert len(services) == 2
    for ecs_service in services:
        # No DesiredCount: ECS starts one task on create (pulling through the cache while
        # the egress is open), and auto scaling owns the count afterwards.
        assert "DesiredCount" not in ecs_service["Properties"]
    load_test = synthesized.template("dev", "LoadTest")
    (instance,) = load_test.find_resources("AWS::EC2::Instance").values()
    assert instance["CreationPolicy"]["ResourceSignal"]["Timeout"] == "PT20M"


def _generation(environments: list[EnvironmentConfig], **changes: Any) -> str:
    dev = next(e for e in environments if e.name == "dev")
    for section, values in changes.items():
        dev = dataclasses.replace(
            dev, **{section: dataclasses.replace(getattr(dev, section), **values)}
        )
    return egress_generation(dev)


def test_a_new_image_through_the_cache_reopens_the_egress_for_its_first_pull(
    environments: list[EnvironmentConfig],
) -> None:
    today = _generation(environments)
    assert _generation(environments) == today  # the same settings: nothing reopens
    assert _generation(environments, tracing={"adot_collector_tag": "v0.50.0"}) != today
    assert _generation(environments, tracing={"mode": "xray-daemon"}) != today
    assert _generation(environments, egress={"generation": "2"}).startswith("2-")
    # A setting that needs no new pull keeps the egress closed.
    assert _generation(environments, frontend={"min_count": 2}) == today
