"""ClosedVpc with every optional prop set: subnet layout and the spare block, the extra
interface endpoint and S3 objects, who may reach the endpoints, flow log retention."""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from typing import Any

import pytest
from aws_cdk import Environment, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from aws_cdk.assertions import Template

from tests.conftest import new_app
from traced_fargate.closed_vpc import ClosedVpc
from traced_fargate.errors import InvalidPropsError

ACCOUNT = "111111111111"
REGION = "eu-west-1"
CIDR = "10.1.0.0/24"
EXTRA_OBJECTS = "arn:aws:s3:::my-bucket/*"
INTERFACE_SERVICES = {
    "ecr.api",
    "ecr.dkr",
    "logs",
    "xray",
    "ssm",
    "ssmmessages",
    "ec2messages",
    "cloudformation",
    "secretsmanager",
}


@dataclass(frozen=True)
class Built:
    stack: Stack
    network: ClosedVpc
    workload: ec2.SecurityGroup
    template: Template


@pytest.fixture(scope="module")
def built() -> Built:
    app = new_app()
    stack = Stack(app, "Net", env=Environment(account=ACCOUNT, region=REGION))
    network = ClosedVpc(
        stack,
        "Network",
        cidr=CIDR,
        max_azs=3,
        additional_interface_endpoints=[ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER],
        additional_s3_object_arns=[EXTRA_OBJECTS],
        flow_log_retention=logs.RetentionDays.ONE_WEEK,
    )
    workload = ec2.SecurityGroup(stack, "Workload", vpc=network.vpc, allow_all_outbound=False)
    network.allow_endpoints_from(workload)
    assembly = app.synth()
    return Built(
        stack=stack,
        network=network,
        workload=workload,
        template=Template.from_json(assembly.get_stack_by_name("Net").template),
    )


def _properties(built: Built, cfn_type: str) -> list[dict[str, Any]]:
    return [r["Properties"] for r in built.template.find_resources(cfn_type).values()]


def _group_id(built: Built, group: Any) -> dict[str, Any]:
    return {"Fn::GetAtt": [built.stack.resolve(group.node.default_child.logical_id), "GroupId"]}


def test_one_isolated_subnet_per_az_inside_the_range(built: Built) -> None:
    subnets = _properties(built, "AWS::EC2::Subnet")
    vpc = ipaddress.IPv4Network(CIDR)
    blocks = [ipaddress.IPv4Network(s["CidrBlock"]) for s in subnets]
    assert len(blocks) == 3
    assert len({s["AvailabilityZone"] for s in subnets}) == 3
    for subnet, block in zip(subnets, blocks, strict=True):
        assert block.subnet_of(vpc)
        assert subnet["MapPublicIpOnLaunch"] is False
        assert {"Key": "aws-cdk:subnet-type", "Value": "Isolated"} in subnet["Tags"]
    assert not any(a.overlaps(b) for i, a in enumerate(blocks) for b in blocks[i + 1 :])
    built.template.resource_count_is("AWS::EC2::InternetGateway", 0)
    built.template.resource_count_is("AWS::EC2::NatGateway", 0)
    built.template.resource_count_is("AWS::EC2::Route", 0)


def test_spare_cidr_is_the_last_28_and_free_of_subnets(built: Built) -> None:
    assert built.network.spare_cidr == "10.1.0.240/28"
    spare = ipaddress.IPv4Network(built.network.spare_cidr)
    for subnet in _properties(built, "AWS::EC2::Subnet"):
        assert not ipaddress.IPv4Network(subnet["CidrBlock"]).overlaps(spare)


def test_default_and_additional_interface_endpoints(built: Built) -> None:
    endpoints = [
        e
        for e in _properties(built, "AWS::EC2::VPCEndpoint")
        if e["VpcEndpointType"] == "Interface"
    ]
    assert len(endpoints) == 9
    assert sorted(e["ServiceName"] for e in endpoints) == sorted(
        f"com.amazonaws.{REGION}.{name}" for name in INTERFACE_SERVICES
    )
    assert set(built.network.interface_endpoints) == INTERFACE_SERVICES
    group = _group_id(built, built.network.endpoint_security_group)
    for endpoint in endpoints:
        assert endpoint["PrivateDnsEnabled"] is True
        assert endpoint["SecurityGroupIds"] == [group]
        assert len(endpoint["SubnetIds"]) == 3


def test_endpoints_accept_exactly_https_from_the_granted_workload(built: Built) -> None:
    endpoint_group = _group_id(built, built.network.endpoint_security_group)
    groups = built.template.find_resources("AWS::EC2::SecurityGroup")
    for group in groups.values():
        assert "SecurityGroupIngress" not in group["Properties"]
    assert _properties(built, "AWS::EC2::SecurityGroupIngress") == [
        {
            "Description": "HTTPS to the interface endpoints",
            "FromPort": 443,
            "GroupId": endpoint_group,
            "IpProtocol": "tcp",
            "SourceSecurityGroupId": _group_id(built, built.workload),
            "ToPort": 443,
        }
    ]
    # allow_all_outbound=False on the workload: the grant also opens its way out, to the
    # endpoints and to the S3 gateway by the region's S3 prefix list, nowhere else.
    (workload,) = [
        g["Properties"]
        for k, g in groups.items()
        if _group_id(built, built.workload) == {"Fn::GetAtt": [k, "GroupId"]}
    ]
    assert "SecurityGroupEgress" not in workload
    (lookup,) = built.template.find_resources("Custom::S3PrefixList")
    assert _properties(built, "AWS::EC2::SecurityGroupEgress") == [
        {
            "Description": "HTTPS to the interface endpoints",
            "DestinationSecurityGroupId": endpoint_group,
            "FromPort": 443,
            "GroupId": _group_id(built, built.workload),
            "IpProtocol": "tcp",
            "ToPort": 443,
        },
        {
            "Description": "HTTPS to the S3 gateway",
            "DestinationPrefixListId": {"Fn::GetAtt": [lookup, "PrefixLists.0.PrefixListId"]},
            "FromPort": 443,
            "GroupId": _group_id(built, built.workload),
            "IpProtocol": "tcp",
            "ToPort": 443,
        },
    ]


def test_s3_gateway_reads_ecr_layers_os_packages_and_the_extra_objects(built: Built) -> None:
    (gateway,) = [
        e for e in _properties(built, "AWS::EC2::VPCEndpoint") if e["VpcEndpointType"] == "Gateway"
    ]
    assert gateway["PolicyDocument"]["Statement"] == [
        {
            "Action": "s3:GetObject",
            "Effect": "Allow",
            "Principal": {"AWS": "*"},
            "Resource": [
                f"arn:aws:s3:::al2023-repos-{REGION}-de612dc2/*",
                EXTRA_OBJECTS,
                f"arn:aws:s3:::prod-{REGION}-starport-layer-bucket/*",
            ],
            "Sid": "ReadImageLayersAndOsPackages",
        },
        {
            "Action": "s3:GetObject",
            "Effect": "Allow",
            "Principal": {"AWS": "*"},
            "Resource": [
                f"arn:aws:s3:::amazon-ssm-{REGION}/*",
                f"arn:aws:s3:::aws-patch-manager-{REGION}-5522fb710/*",
                f"arn:aws:s3:::aws-ssm-{REGION}/*",
                f"arn:aws:s3:::patch-baseline-snapshot-{REGION}/*",
            ],
            "Sid": "ReadSsmAgentUpdatesAndPatches",
        },
    ]
    assert sorted(gateway["RouteTableIds"], key=json.dumps) == sorted(
        built.stack.resolve(built.network.workload_route_table_ids), key=json.dumps
    )


def test_flow_logs_kept_one_week(built: Built) -> None:
    # The flow logs' group and the S3 prefix list lookup's, under the same key and retention.
    groups = _properties(built, "AWS::Logs::LogGroup")
    assert len(groups) == 2
    key = built.stack.resolve(built.network.encryption_key.node.default_child.logical_id)
    for group in groups:
        assert group["RetentionInDays"] == 7
        assert group["KmsKeyId"] == {"Fn::GetAtt": [key, "Arn"]}


def test_workload_route_table_ids_one_per_subnet(built: Built) -> None:
    route_tables = built.stack.resolve(built.network.workload_route_table_ids)
    associations = _properties(built, "AWS::EC2::SubnetRouteTableAssociation")
    assert len(route_tables) == len(set(map(json.dumps, route_tables))) == 3
    assert sorted(route_tables, key=json.dumps) == sorted(
        (a["RouteTableId"] for a in associations), key=json.dumps
    )


@pytest.mark.parametrize(
    ("props", "expected"),
    [
        (
            {"cidr": "10.0.0.0/8"},
            "cidr: '10.0.0.0/8' is not allowed; expected a prefix length from /16 to /24",
        ),
        ({"cidr": "not-a-cidr"}, "cidr: 'not-a-cidr' is not allowed; expected an IPv4 CIDR block"),
        (
            {"cidr": "10.0.0.1/24"},
            "cidr: '10.0.0.1/24' is not allowed; host bits are set, did you mean 10.0.0.0/24?",
        ),
        ({"max_azs": 1}, "max_azs: 1 is not allowed; allowed: a whole number from 2 to 6"),
        ({"max_azs": 7}, "max_azs: 7 is not allowed; allowed: a whole number from 2 to 6"),
    ],
)
def test_invalid_props_are_rejected(props: dict[str, Any], expected: str) -> None:
    with pytest.raises(InvalidPropsError) as error:
        ClosedVpc(Stack(new_app(), "Invalid"), "Network", **props)
    assert error.value.problems == (expected,)
    assert str(error.value) == f"Invalid/Network: {expected}"


def test_every_problem_is_reported() -> None:
    with pytest.raises(InvalidPropsError) as error:
        ClosedVpc(Stack(new_app(), "Invalid"), "Network", cidr="10.0.0.0/25", max_azs=0)
    assert [p.split(":")[0] for p in error.value.problems] == ["cidr", "max_azs"]


@pytest.fixture(scope="module")
def one_az_endpoints() -> tuple[Stack, ClosedVpc, Template]:
    app = new_app()
    stack = Stack(app, "OneAz", env=Environment(account=ACCOUNT, region=REGION))
    network = ClosedVpc(stack, "Network", cidr=CIDR, max_azs=3, endpoint_azs=1)
    template = Template.from_json(app.synth().get_stack_by_name("OneAz").template)
    return stack, network, template


def test_endpoint_azs_puts_the_interface_endpoints_in_the_first_subnets_only(
    one_az_endpoints: tuple[Stack, ClosedVpc, Template],
) -> None:
    stack, network, template = one_az_endpoints
    first = stack.resolve(network.vpc.isolated_subnets[0].subnet_id)
    endpoints = [e["Properties"] for e in template.find_resources("AWS::EC2::VPCEndpoint").values()]
    interface = [e for e in endpoints if e["VpcEndpointType"] == "Interface"]
    assert len(interface) == 8
    for endpoint in interface:
        assert endpoint["SubnetIds"] == [first]
        assert endpoint["PrivateDnsEnabled"] is True  # resolves VPC-wide, from every AZ
    # Only the endpoints move: the workloads keep every AZ, the S3 gateway every route table.
    assert len(template.find_resources("AWS::EC2::Subnet")) == 3
    (gateway,) = [e for e in endpoints if e["VpcEndpointType"] == "Gateway"]
    assert len(gateway["RouteTableIds"]) == 3


def test_endpoint_azs_of_every_az_is_the_default(built: Built) -> None:
    app = new_app()
    stack = Stack(app, "AllAzs", env=Environment(account=ACCOUNT, region=REGION))
    network = ClosedVpc(stack, "Network", cidr=CIDR, max_azs=3, endpoint_azs=3)
    assert network.endpoint_subnets is network.workload_subnets
    assert built.network.endpoint_subnets is built.network.workload_subnets


@pytest.mark.parametrize(
    ("props", "expected"),
    [
        (
            {"endpoint_azs": 0},
            "endpoint_azs: 0 is not allowed; allowed: a whole number from 1 to 2 (max_azs is 2)",
        ),
        (
            {"max_azs": 3, "endpoint_azs": 4},
            "endpoint_azs: 4 is not allowed; allowed: a whole number from 1 to 3 (max_azs is 3)",
        ),
        (
            {"endpoint_azs": "1"},
            "endpoint_azs: '1' is not an integer; allowed: a whole number from 1 to 2 "
            "(max_azs is 2)",
        ),
    ],
)
def test_endpoint_azs_must_be_one_to_max_azs(props: dict[str, Any], expected: str) -> None:
    with pytest.raises(InvalidPropsError) as error:
        ClosedVpc(Stack(new_app(), "Invalid"), "Network", **props)
    assert error.value.problems == (expected,)
