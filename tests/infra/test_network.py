"""The closed network: what can reach what, and nothing reaching the internet."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from aws_cdk.assertions import Match

from stacks.config import EnvironmentConfig, any_exec
from tests.conftest import ENV_NAMES, Synthesized, render

INTERFACE_SERVICES = {
    "ecr.api",
    "ecr.dkr",
    "logs",
    "xray",
    "ssm",
    "ssmmessages",
    "ec2messages",
    "cloudformation",
}


def resources(template: dict[str, Any], cfn_type: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == cfn_type}


def service_short_name(service_name: Any) -> str:
    """`com.amazonaws.<region>.<name>`; return <name>."""
    return render(service_name).split(".", 3)[3]


@pytest.fixture(scope="module", params=ENV_NAMES)
def env(request: pytest.FixtureRequest, environments: list[EnvironmentConfig]) -> EnvironmentConfig:
    return next(e for e in environments if e.name == request.param)


@pytest.fixture(scope="module")
def network(env: EnvironmentConfig, synthesized: Synthesized) -> dict[str, Any]:
    return synthesized.template_json(env.name, "Network")


def test_only_isolated_subnets_and_no_internet_route(network: dict[str, Any]) -> None:
    assert not resources(network, "AWS::EC2::InternetGateway")
    assert not resources(network, "AWS::EC2::NatGateway")
    assert not resources(network, "AWS::EC2::VPCGatewayAttachment")
    assert not resources(network, "AWS::EC2::EgressOnlyInternetGateway")
    assert not resources(network, "AWS::EC2::Route")
    for subnet in resources(network, "AWS::EC2::Subnet").values():
        assert subnet["Properties"]["MapPublicIpOnLaunch"] is False
        tags = {t["Key"]: t["Value"] for t in subnet["Properties"]["Tags"]}
        assert tags["aws-cdk:subnet-type"] == "Isolated"


def test_subnets_span_configured_azs(synthesized: Synthesized, environments: Any) -> None:
    for env in environments:
        template = synthesized.template_json(env.name, "Network")
        subnets = resources(template, "AWS::EC2::Subnet").values()
        assert len(subnets) == env.network.max_azs
        vpc_net = ipaddress.IPv4Network(env.network.vpc_cidr)
        for subnet in subnets:
            assert ipaddress.IPv4Network(subnet["Properties"]["CidrBlock"]).subnet_of(vpc_net)


def test_interface_endpoints_private_dns_behind_closed_group(
    network: dict[str, Any], env: EnvironmentConfig
) -> None:
    endpoints = [
        e["Properties"]
        for e in resources(network, "AWS::EC2::VPCEndpoint").values()
        if e["Properties"].get("VpcEndpointType") == "Interface"
    ]
    # ECS Exec: the SSM agent in the task decrypts the session key through KMS.
    expected = INTERFACE_SERVICES | ({"kms"} if any_exec(env) else set())
    assert {service_short_name(e["ServiceName"]) for e in endpoints} == expected
    groups = {str(e["SecurityGroupIds"]) for e in endpoints}
    assert len(groups) == 1, "all interface endpoints share the one endpoint security group"
    for endpoint in endpoints:
        assert endpoint["PrivateDnsEnabled"] is True


def test_endpoint_group_never_open_to_the_world(network: dict[str, Any]) -> None:
    for group in resources(network, "AWS::EC2::SecurityGroup").values():
        for rule in group["Properties"].get("SecurityGroupIngress", []):
            assert rule.get("CidrIp") not in ("0.0.0.0/0",)
            assert rule.get("CidrIpv6") not in ("::/0",)
    for rule in resources(network, "AWS::EC2::SecurityGroupIngress").values():
        props = rule["Properties"]
        assert "CidrIp" not in props, "ingress only from granted security groups"
        assert props["FromPort"] == props["ToPort"] == 443


def test_s3_gateway_endpoint_policy_is_narrow(
    network: dict[str, Any], env: EnvironmentConfig
) -> None:
    (gateway,) = [
        e["Properties"]
        for e in resources(network, "AWS::EC2::VPCEndpoint").values()
        if e["Properties"].get("VpcEndpointType") == "Gateway"
    ]
    statements = {s["Sid"]: s for s in gateway["PolicyDocument"]["Statement"]}
    # SSM Agent's own buckets: tests/infra/test_deploy_time_risks.py.
    assert set(statements) == {"ReadImageLayersAndOsPackages", "ReadSsmAgentUpdatesAndPatches"}
    statement = statements["ReadImageLayersAndOsPackages"]
    assert statement["Effect"] == "Allow"
    assert statement["Action"] == "s3:GetObject"
    assert sorted(render(r) for r in statement["Resource"]) == [
        f"arn:aws:s3:::al2023-repos-{env.region}-de612dc2/*",
        f"arn:aws:s3:::prod-{env.region}-starport-layer-bucket/*",
    ]


def test_flow_logs_to_encrypted_log_group_with_retention(
    synthesized: Synthesized, environments: Any
) -> None:
    for env in environments:
        template = synthesized.template(env.name, "Network")
        template.has_resource_properties(
            "AWS::EC2::FlowLog",
            {"ResourceType": "VPC", "TrafficType": "ALL", "LogDestinationType": "cloud-watch-logs"},
        )
        template.has_resource(
            "AWS::Logs::LogGroup",
            {
                "Properties": {
                    "RetentionInDays": env.network.flow_log_retention_days,
                    "KmsKeyId": {"Fn::GetAtt": [Match.string_like_regexp("FlowLogKey"), "Arn"]},
                },
                "DeletionPolicy": "Retain",
            },
        )
        template.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})


def test_default_security_group_is_restricted(network: dict[str, Any]) -> None:
    assert len(resources(network, "Custom::VpcRestrictDefaultSG")) == 1
