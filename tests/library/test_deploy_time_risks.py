"""The deploy-time settings of the library in a stack with no environment (the region and
account are deploy-time pseudo parameters) and in a region the patching table lacks: the S3
prefix list lookup, SSM Agent's buckets, trust policies, and the load client's target."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import pytest
from aws_cdk import Environment, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk.assertions import Template

from tests.conftest import bare_app, render
from traced_fargate import ClosedVpc, LoadClient, TracedTaskDefinition, XRayDaemon
from traced_fargate._ssm_agent_buckets import PATCH_BUCKETS, ssm_agent_buckets


@dataclass(frozen=True)
class Built:
    stack: Stack
    network: ClosedVpc
    client: LoadClient
    task: TracedTaskDefinition
    template: dict[str, Any]

    def resource(self, construct: Any) -> dict[str, Any]:
        child = getattr(construct.node, "default_child", None) or construct
        return dict(self.template["Resources"][self.stack.resolve(child.logical_id)])

    def of_type(self, cfn_type: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.template["Resources"].items() if v["Type"] == cfn_type}


@pytest.fixture(scope="module")
def agnostic() -> Built:
    app = bare_app()
    stack = Stack(app, "Agnostic")
    network = ClosedVpc(stack, "Network")
    task = TracedTaskDefinition(
        stack,
        "Task",
        app_image=ecs.ContainerImage.from_registry("public.ecr.aws/docker/library/busybox:1.37"),
        tracing=XRayDaemon(),
    )
    target = f"http://{network.vpc.vpc_id}.internal"  # any deploy-time token
    client = LoadClient(stack, "Client", network=network, target_url=target)
    template = Template.from_stack(stack).to_json()
    return Built(stack, network, client, task, template)


def _gateway_statements(built: Built) -> dict[str, dict[str, Any]]:
    (gateway,) = [
        e["Properties"]
        for e in built.of_type("AWS::EC2::VPCEndpoint").values()
        if e["Properties"]["VpcEndpointType"] == "Gateway"
    ]
    return {s["Sid"]: s for s in gateway["PolicyDocument"]["Statement"]}


def test_without_a_region_ssm_agent_gets_its_two_region_named_buckets(agnostic: Built) -> None:
    ssm = _gateway_statements(agnostic)["ReadSsmAgentUpdatesAndPatches"]
    assert sorted(render(r) for r in ssm["Resource"]) == [
        "arn:<AWS::Partition>:s3:::amazon-ssm-<AWS::Region>/*",
        "arn:<AWS::Partition>:s3:::aws-ssm-<AWS::Region>/*",
    ]


def test_a_region_missing_from_the_patching_table_gets_the_two_as_well() -> None:
    stack = Stack(bare_app(), "Elsewhere", env=Environment(region="xx-nowhere-1"))
    assert ssm_agent_buckets(stack) == ["amazon-ssm-xx-nowhere-1", "aws-ssm-xx-nowhere-1"]


def test_the_patching_table_names_each_regions_own_buckets() -> None:
    assert len(PATCH_BUCKETS) == 29
    for region, (patch_manager, snapshots) in PATCH_BUCKETS.items():
        assert re.fullmatch(rf"aws-patch-manager-{region}-[0-9a-f]{{9}}", patch_manager)
        assert re.fullmatch(rf"patch-baseline-snapshot-{region}(-[0-9a-z]{{8}})?", snapshots)


def test_without_the_ssm_endpoint_no_ssm_bucket_is_allowed() -> None:
    stack = Stack(bare_app(), "NoSsm")
    ClosedVpc(stack, "Network", interface_endpoints=[ec2.InterfaceVpcEndpointAwsService.ECR])
    template = Template.from_stack(stack)
    rendered = json.dumps(template.find_resources("AWS::EC2::VPCEndpoint"))
    assert "ReadSsmAgentUpdatesAndPatches" not in rendered
    assert "amazon-ssm-" not in rendered


def test_the_prefix_list_lookup_names_the_deploy_time_region(agnostic: Built) -> None:
    ((_, lookup),) = agnostic.of_type("Custom::S3PrefixList").items()
    create = render(lookup["Properties"]["Create"])
    assert '"Values":["com.amazonaws.<AWS::Region>.s3"]' in create
    assert '"responsePath":"PrefixLists.0.PrefixListId"' in create


def test_workloads_reach_s3_by_the_looked_up_prefix_list_only(agnostic: Built) -> None:
    group = agnostic.client.security_group
    # Inline only the rule that matches no traffic: the group stays closed outbound.
    assert agnostic.resource(group)["Properties"]["SecurityGroupEgress"] == [
        {
            "CidrIp": "255.255.255.255/32",
            "Description": "Disallow all traffic",
            "FromPort": 252,
            "IpProtocol": "icmp",
            "ToPort": 86,
        }
    ]
    group_id = {
        "Fn::GetAtt": [agnostic.stack.resolve(group.node.default_child.logical_id), "GroupId"]
    }
    rules = [
        r["Properties"]
        for r in agnostic.of_type("AWS::EC2::SecurityGroupEgress").values()
        if r["Properties"]["GroupId"] == group_id
    ]
    (s3,) = [r for r in rules if "DestinationPrefixListId" in r]
    assert s3["DestinationPrefixListId"] == agnostic.stack.resolve(
        agnostic.network.s3_prefix_list_id
    )
    assert not [r for r in rules if "CidrIp" in r]


def _trust(built: Built, role: Any) -> dict[str, Any]:
    (statement,) = built.resource(role)["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    return dict(statement)


def test_flow_logs_and_tasks_assume_their_roles_for_this_account_only(agnostic: Built) -> None:
    for role, service, source_arn in [
        (
            agnostic.network.flow_log_role,
            "vpc-flow-logs.amazonaws.com",
            "arn:<AWS::Partition>:ec2:<AWS::Region>:<AWS::AccountId>:vpc-flow-log/*",
        ),
        (
            agnostic.task.task_role,
            "ecs-tasks.amazonaws.com",
            "arn:<AWS::Partition>:ecs:<AWS::Region>:<AWS::AccountId>:*",
        ),
        (
            agnostic.task.execution_role,
            "ecs-tasks.amazonaws.com",
            "arn:<AWS::Partition>:ecs:<AWS::Region>:<AWS::AccountId>:*",
        ),
    ]:
        statement = _trust(agnostic, role)
        assert statement["Principal"] == {"Service": service}
        assert statement["Action"] == "sts:AssumeRole"
        assert statement["Condition"]["StringEquals"] == {
            "aws:SourceAccount": {"Ref": "AWS::AccountId"}
        }
        assert render(statement["Condition"]["ArnLike"]["aws:SourceArn"]) == source_arn


def test_the_flow_log_delivers_with_the_conditioned_role(agnostic: Built) -> None:
    (flow_log,) = agnostic.of_type("AWS::EC2::FlowLog").values()
    role_id = agnostic.stack.resolve(agnostic.network.flow_log_role.node.default_child.logical_id)
    assert flow_log["Properties"]["DeliverLogsPermissionArn"] == {"Fn::GetAtt": [role_id, "Arn"]}
    trusting_flow_logs = [
        r
        for r in agnostic.of_type("AWS::IAM::Role").values()
        if "vpc-flow-logs" in json.dumps(r["Properties"]["AssumeRolePolicyDocument"])
    ]
    assert len(trusting_flow_logs) == 1, "no second, unconditioned flow log role"


def test_a_token_target_goes_through_a_parameter_and_a_literal_one_does_not(
    agnostic: Built,
) -> None:
    parameter = agnostic.client.target_parameter
    assert parameter is not None
    assert render(agnostic.resource(parameter)["Properties"]["Value"]).startswith("http://")
    metadata = json.dumps(agnostic.resource(agnostic.client.instance)["Metadata"])
    assert "Fn::GetAtt" in metadata
    literal = LoadClient(
        Stack(bare_app(), "Literal"),
        "Client",
        network=ClosedVpc(Stack(bare_app(), "Net"), "Network"),
        target_url="http://service.internal",
    )
    assert literal.target_parameter is None
