"""Security groups that stay closed outbound when all their egress rules are separate
resources (rules to groups in other stacks, prefix lists from a lookup)."""

from __future__ import annotations

import jsii
from aws_cdk import Aspects, IAspect, Stack
from aws_cdk import aws_ec2 as ec2
from constructs import IConstruct


def _no_traffic_rule() -> ec2.CfnSecurityGroup.EgressProperty:
    # What aws-cdk-lib writes for a group with no outbound traffic: a rule matching nothing.
    return ec2.CfnSecurityGroup.EgressProperty(
        ip_protocol="icmp",
        cidr_ip="255.255.255.255/32",
        description="Disallow all traffic",
        from_port=252,
        to_port=86,
    )


@jsii.implements(IAspect)
class _KeepClosed:
    def visit(self, node: IConstruct) -> None:
        if isinstance(node, ec2.CfnSecurityGroup) and not Stack.of(node).resolve(
            node.security_group_egress
        ):
            # A group created without inline egress gets EC2's allow-all rule, and a separate
            # egress resource added later does not remove it.
            node.security_group_egress = [_no_traffic_rule()]


def keep_closed(group: ec2.SecurityGroup) -> None:
    """Give ``group`` (created with ``allow_all_outbound=False``) the no-traffic rule inline
    whenever it would otherwise have no inline egress at all."""
    Aspects.of(group).add(_KeepClosed())
