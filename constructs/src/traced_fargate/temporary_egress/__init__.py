"""Setup-time internet egress for a closed VPC, opened and closed by custom resources."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from aws_cdk import (
    Acknowledgment,
    ArnFormat,
    CustomResource,
    Duration,
    RemovalPolicy,
    Stack,
    Validations,
)
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import custom_resources as cr
from constructs import Construct, IDependable

from traced_fargate._functions import handler_code, python_function
from traced_fargate._log_encryption import log_encryption_key
from traced_fargate._nag import acknowledge_provider_framework, nag_resource_text
from traced_fargate._trust import restrict_trust
from traced_fargate.closed_vpc import ClosedVpc, closed_vpc_problems
from traced_fargate.errors import raise_if_problems
from traced_fargate.temporary_egress._scanners import skip_checkov
from traced_fargate.temporary_egress.handler.index import contract

HANDLER_DIR = Path(__file__).resolve().parent / "handler"
OWNER_TAG_KEY = contract.OWNER_TAG_KEY
EGRESS_ATTRIBUTES = contract.DATA_KEYS
# CloudFormation gives up on a custom resource after its service timeout (at most an hour);
# the provider must give up first so that its own error, not a timeout, reaches the stack.
SERVICE_TIMEOUT = Duration.minutes(60)
_CREATED_TYPES = contract.PART_RESOURCE_TYPES
_CREATE_ACTIONS = contract.CREATE_ACTIONS


class TemporaryEgress(Construct):
    """An internet path for a :class:`ClosedVpc`'s isolated subnets during setup.

    A custom resource creates an internet gateway, a public subnet in the VPC's spare
    block, an Elastic IP and a NAT gateway, and routes ``0.0.0.0/0`` from the isolated
    subnets to the NAT. :meth:`add_teardown` adds a second custom resource, in any later
    stack, that removes all of it once the resources it waits for exist. Everything removed
    was created by the custom resources, never by CloudFormation, so nothing drifts;
    deleting the stack removes whatever is left.

    The handlers run outside the VPC: their replies to CloudFormation go to S3 presigned
    URLs that the closed VPC's S3 endpoint policy would block.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        network: ClosedVpc,
        generation: str = "1",
        query_interval: Duration | None = None,
        total_timeout: Duration | None = None,
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH,
        log_encryption_key: kms.IKey | None = None,
    ) -> None:
        """
        :param network: the closed VPC to open; the public subnet takes its spare block.
        :param generation: changing it re-opens the egress on the next deploy (a new NAT
            and Elastic IP); the teardown added with :meth:`add_teardown` carries the same
            generation, so the same deploy closes it again. Default: "1".
        :param query_interval: how often the provider polls for completion. Default: 15 s.
        :param total_timeout: when the provider gives up; at most the custom resources'
            service timeout of 60 minutes. Default: 45 minutes.
        :param log_retention: retention of the handler's logs. Default: one month.
        :param log_encryption_key: KMS key of the log group that the handlers, the
            provider's functions and its waiter state machine write to. Default: a new
            rotated key that only CloudWatch Logs of this account and region may use.
        """
        super().__init__(scope, construct_id)
        total = total_timeout or Duration.minutes(45)
        problems = closed_vpc_problems("network", network)
        if not total.is_unresolved() and total.to_seconds() > SERVICE_TIMEOUT.to_seconds():
            problems.append(
                f"total_timeout: {total.to_seconds()} s is not allowed; at most "
                f"{SERVICE_TIMEOUT.to_seconds()} s, the custom resources' service timeout"
            )
        raise_if_problems(self.node.path, problems)

        self.network = network
        """The closed VPC the egress opens."""
        self.owner_tag = self.node.path
        """The owner tag value on everything the handler creates: the construct path."""
        self.generation = generation
        """Changing it re-opens the egress on the next deploy."""
        stack = Stack.of(self)
        self.vpc_arn = stack.format_arn(
            service="ec2", resource="vpc", resource_name=network.vpc.vpc_id
        )
        """The VPC's ARN, which scopes the handler's EC2 grants."""
        self.log_encryption_key: kms.IKey = log_encryption_key or _new_log_key(self)
        """The KMS key of :attr:`log_group`."""
        self.log_group = logs.LogGroup(
            self,
            "HandlerLogs",
            retention=log_retention,
            encryption_key=self.log_encryption_key,
            removal_policy=RemovalPolicy.DESTROY,
        )
        """The encrypted log group of the handlers, the provider functions and its waiter."""
        self.handler_role = iam.Role(
            self,
            "HandlerRole",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="Creates and removes the temporary egress of one VPC",
        )
        """The role of both handler functions."""
        self.log_group.grant_write(self.handler_role)
        self._grant_ec2(self.handler_role)

        common = {
            "code": handler_code(HANDLER_DIR),
            "role": self.handler_role,
            "timeout": Duration.minutes(2),
            "log_group": self.log_group,
        }
        self.on_event_function = python_function(
            self, "OnEvent", handler="index.on_event", **common
        )
        """The handler that starts each request (``on_event``)."""
        self.is_complete_function = python_function(
            self, "IsComplete", handler="index.is_complete", **common
        )
        """The handler the provider polls until a request is done (``is_complete``)."""
        self.provider = cr.Provider(
            self,
            "Provider",
            on_event_handler=self.on_event_function,
            is_complete_handler=self.is_complete_function,
            query_interval=query_interval or Duration.seconds(15),
            total_timeout=total,
            log_group=self.log_group,
            disable_waiter_state_machine_logging=False,
            waiter_state_machine_log_options=cr.LogOptions(
                destination=self.log_group, level=sfn.LogLevel.ALL, include_execution_data=False
            ),
        )
        """The custom-resource provider (``on_event`` + ``is_complete``)."""
        self._restrict_waiter_trust()
        self.resource = CustomResource(
            self,
            "Egress",
            service_token=self.provider.service_token,
            resource_type=contract.EGRESS_RESOURCE_TYPE,
            service_timeout=SERVICE_TIMEOUT,
            properties={
                contract.VPC_ID: network.vpc.vpc_id,
                contract.OWNER_TAG: self.owner_tag,
                contract.PUBLIC_SUBNET_CIDR: network.spare_cidr,
                contract.AVAILABILITY_ZONE: network.vpc.availability_zones[0],
                contract.ROUTE_TABLE_IDS: network.workload_route_table_ids,
                contract.GENERATION: generation,
            },
        )
        """The ``Custom::TemporaryEgress`` resource: its attributes name what it opened."""
        self._acknowledge()
        skip_checkov(self, self.provider)

    def _restrict_waiter_trust(self) -> None:
        # The provider's waiter state machine assumes its role through Step Functions, which
        # passes the source account and state machine ARN: trust only this account's.
        # https://docs.aws.amazon.com/step-functions/latest/dg/procedure-create-iam-role.html
        stack = Stack.of(self)
        waiter = self.provider.node.try_find_child("waiter-state-machine")
        role = waiter.node.try_find_child("Role") if waiter is not None else None
        if not isinstance(role, iam.Role):
            return
        restrict_trust(
            role,
            iam.ServicePrincipal(
                "states.amazonaws.com",
                conditions={
                    "StringEquals": {"aws:SourceAccount": stack.account},
                    "ArnLike": {
                        "aws:SourceArn": stack.format_arn(
                            service="states",
                            resource="stateMachine",
                            resource_name="*",
                            arn_format=ArnFormat.COLON_RESOURCE_NAME,
                        )
                    },
                },
            ),
        )

    def attribute(self, name: str) -> str:
        """An id the egress reports: one of :data:`EGRESS_ATTRIBUTES`."""
        return self.resource.get_att_string(name)

    def required_by(self, *constructs: Construct) -> None:
        """Create ``constructs`` only once the egress is open (e.g. a service whose first
        image pull goes through the pull-through cache, an instance that installs packages).
        """
        for construct in constructs:
            construct.node.add_dependency(self.resource)

    def add_teardown(
        self, scope: Construct, construct_id: str, *, after: Sequence[IDependable]
    ) -> CustomResource:
        """Remove the egress once everything in ``after`` is created.

        ``scope`` may be in a later stack than this construct (e.g. with the resources
        that needed the egress: a service that pulled through the cache, an instance that
        signalled the end of its setup).
        """
        teardown = CustomResource(
            scope,
            construct_id,
            service_token=self.provider.service_token,
            resource_type=contract.TEARDOWN_RESOURCE_TYPE,
            service_timeout=SERVICE_TIMEOUT,
            properties={
                contract.VPC_ID: self.network.vpc.vpc_id,
                contract.OWNER_TAG: self.owner_tag,
                contract.ROUTE_TABLE_IDS: self.network.workload_route_table_ids,
                # Cross-stack references are resolved at deploy time: without the generation
                # in its own properties, the teardown would not see a reopened egress.
                contract.GENERATION: self.generation,
                **{name: self.attribute(name) for name in EGRESS_ATTRIBUTES},
            },
        )
        for dependency in after:
            teardown.node.add_dependency(dependency)
        return teardown

    def _grant_ec2(self, role: iam.Role) -> None:
        stack = Stack.of(self)
        owned = [
            stack.format_arn(service="ec2", resource=t, resource_name="*") for t in _CREATED_TYPES
        ]
        owner_condition = {f"aws:ResourceTag/{OWNER_TAG_KEY}": self.owner_tag}
        role.add_to_policy(
            iam.PolicyStatement(
                sid="DescribeEgressParts",
                actions=[
                    "ec2:DescribeAddresses",
                    "ec2:DescribeInternetGateways",
                    "ec2:DescribeNatGateways",
                    "ec2:DescribeRouteTables",
                    "ec2:DescribeSubnets",
                ],
                resources=["*"],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="CreateOnlyTaggedAsOurs",
                actions=list(_CREATE_ACTIONS),
                resources=owned,
                conditions={"StringEquals": {f"aws:RequestTag/{OWNER_TAG_KEY}": self.owner_tag}},
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="TagOnlyWhileCreating",
                actions=["ec2:CreateTags"],
                resources=owned,
                # The condition names the API call without the service prefix.
                conditions={
                    "StringEquals": {
                        "ec2:CreateAction": [a.removeprefix("ec2:") for a in _CREATE_ACTIONS]
                    }
                },
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="CreateInThisVpc",
                actions=[
                    "ec2:AttachInternetGateway",
                    "ec2:CreateNatGateway",
                    "ec2:CreateRouteTable",
                    "ec2:CreateSubnet",
                    "ec2:DetachInternetGateway",
                ],
                resources=[self.vpc_arn],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ChangeOnlyOurs",
                actions=[
                    "ec2:AssociateRouteTable",
                    "ec2:AttachInternetGateway",
                    "ec2:CreateNatGateway",
                    "ec2:CreateRoute",
                    "ec2:DeleteInternetGateway",
                    "ec2:DeleteNatGateway",
                    "ec2:DeleteRoute",
                    "ec2:DeleteRouteTable",
                    "ec2:DeleteSubnet",
                    "ec2:DetachInternetGateway",
                    "ec2:DisassociateRouteTable",
                    "ec2:ReleaseAddress",
                ],
                resources=owned,
                conditions={"StringEquals": owner_condition},
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="RouteTheWorkloadTables",
                actions=["ec2:CreateRoute", "ec2:DeleteRoute"],
                resources=[
                    stack.format_arn(service="ec2", resource="route-table", resource_name=table)
                    for table in self.network.workload_route_table_ids
                ],
            )
        )

    def _acknowledge(self) -> None:
        Validations.of(self.handler_role).acknowledge(
            Acknowledgment(
                id="AwsSolutions-IAM5[Resource::*]",
                reason="EC2 Describe* calls support no resource-level permissions; they "
                "are read-only and the only actions on '*'.",
            )
        )
        stack = Stack.of(self)
        for resource_type in _CREATED_TYPES:
            arn = nag_resource_text(
                stack, stack.format_arn(service="ec2", resource=resource_type, resource_name="*")
            )
            Validations.of(self.handler_role).acknowledge(
                Acknowledgment(
                    id=f"AwsSolutions-IAM5[Resource::{arn}]",
                    reason="Ids of the egress parts are unknown before they exist; every "
                    "statement on them requires the owner tag of this egress (request tag "
                    "on create, resource tag after).",
                )
            )
        invoked = [
            self.on_event_function,
            self.is_complete_function,
            *(
                child
                for child in self.provider.node.find_all()
                if isinstance(child, lambda_.Function) and "onEvent" not in child.node.id
            ),
        ]
        acknowledge_provider_framework(self.provider, invoked)
        Validations.of(self.provider.node.find_child("waiter-state-machine")).acknowledge(
            Acknowledgment(
                id="AwsSolutions-IAM5[Resource::*]",
                reason="Step Functions log delivery (logs:CreateLogDelivery and related) "
                "supports no resource-level permissions.",
            )
        )
        Validations.of(self.provider).acknowledge(
            Acknowledgment(
                id="AwsSolutions-SF2",
                reason="The provider framework's waiter state machine offers no tracing "
                "setting; it only polls the is_complete function, whose logs are kept.",
            )
        )


def _new_log_key(egress: TemporaryEgress) -> kms.Key:
    return log_encryption_key(
        egress,
        "HandlerLogKey",
        description="Encrypts the logs of the temporary egress handlers",
        removal_policy=RemovalPolicy.DESTROY,
    )
