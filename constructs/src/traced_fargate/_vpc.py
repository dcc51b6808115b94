"""The two kinds of network a construct accepts: a ClosedVpc, or any ec2.IVpc."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import aws_ec2 as ec2

from traced_fargate._props import has_attributes
from traced_fargate.closed_vpc import ClosedVpc

_is_ivpc = has_attributes("vpc_id", "select_subnets", "isolated_subnets")


@dataclass(frozen=True)
class ResolvedVpc:
    """What a workload needs of its network."""

    vpc: ec2.IVpc
    subnets: ec2.SubnetSelection
    closed_vpc: ClosedVpc | None
    """Set when the endpoints are known: the workload is then granted them."""

    def allow_endpoints_from(
        self, peer: ec2.IConnectable, description: str, *, setup_internet: bool = False
    ) -> None:
        """Open the ClosedVpc's endpoints to ``peer`` (see
        :meth:`ClosedVpc.allow_endpoints_from`); a plain VPC's are the owner's to open."""
        if self.closed_vpc is not None:
            self.closed_vpc.allow_endpoints_from(peer, description, setup_internet=setup_internet)


def vpc_problems(prop: str, value: object) -> list[str]:
    if isinstance(value, ClosedVpc) or _is_ivpc(value):
        return []
    return [f"{prop}: expected a ClosedVpc or an ec2.IVpc, got {type(value).__name__}"]


def resolve_vpc(value: ec2.IVpc | ClosedVpc, subnets: ec2.SubnetSelection | None) -> ResolvedVpc:
    """The VPC, the subnets (default: the workload subnets, or the isolated subnets of a
    plain VPC) and the known endpoints of a prop checked by :func:`vpc_problems`."""
    if isinstance(value, ClosedVpc):
        return ResolvedVpc(value.vpc, subnets or value.workload_subnets, value)
    default = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)
    return ResolvedVpc(value, subnets or default, None)
