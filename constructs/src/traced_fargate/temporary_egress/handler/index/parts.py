"""The calls that create the egress parts and link them, each tagged with its owner, request
and VPC (``ec2.tag_specifications``); ``opening`` decides which of them a poll makes."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .ec2 import (
    ALREADY_ASSOCIATED,
    DEFAULT_ROUTE,
    ROUTE_EXISTS,
    Outcome,
    attempt,
    default_route,
    delete_route,
    tag_specifications,
)

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_ec2.type_defs import (
        InternetGatewayTypeDef,
        NatGatewayTypeDef,
        RouteTableTypeDef,
    )

    from .model import EgressSpec, Scope

logger = logging.getLogger(__name__)


def create_gateway(ec2: EC2Client, scope: Scope, request: str) -> InternetGatewayTypeDef:
    gateway = ec2.create_internet_gateway(
        TagSpecifications=tag_specifications("internet-gateway", scope, request, "igw")
    )["InternetGateway"]
    logger.info("CreateInternetGateway %s", gateway.get("InternetGatewayId"))
    return gateway


def attach(ec2: EC2Client, gateway_id: str, vpc_id: str) -> bool:
    attached = attempt(
        f"AttachInternetGateway {gateway_id} to {vpc_id}",
        lambda: ec2.attach_internet_gateway(InternetGatewayId=gateway_id, VpcId=vpc_id),
        retry=ALREADY_ASSOCIATED,
    )
    return attached is not Outcome.RETRY


def create_subnet(ec2: EC2Client, spec: EgressSpec, request: str) -> str:
    subnet_id = ec2.create_subnet(
        VpcId=spec.scope.vpc_id,
        CidrBlock=spec.public_subnet_cidr,
        AvailabilityZone=spec.availability_zone,
        TagSpecifications=tag_specifications("subnet", spec.scope, request, "public-subnet"),
    )["Subnet"]["SubnetId"]
    logger.info("CreateSubnet %s (%s)", subnet_id, spec.public_subnet_cidr)
    return subnet_id


def create_route_table(ec2: EC2Client, scope: Scope, request: str) -> RouteTableTypeDef:
    table = ec2.create_route_table(
        VpcId=scope.vpc_id,
        TagSpecifications=tag_specifications("route-table", scope, request, "public"),
    )["RouteTable"]
    logger.info("CreateRouteTable %s", table.get("RouteTableId"))
    return table


def route_to_gateway(ec2: EC2Client, table: RouteTableTypeDef, gateway_id: str) -> bool:
    table_id = table.get("RouteTableId", "")
    route = default_route(table)
    if route is not None and route.get("GatewayId") == gateway_id:
        return True
    if route is not None:  # to a gateway removed as a duplicate: replace it
        delete_route(ec2, table_id, route)
    created = attempt(
        f"CreateRoute {DEFAULT_ROUTE} -> {gateway_id} in {table_id}",
        lambda: ec2.create_route(
            RouteTableId=table_id, DestinationCidrBlock=DEFAULT_ROUTE, GatewayId=gateway_id
        ),
        retry=ROUTE_EXISTS,
    )
    return created is not Outcome.RETRY


def associate(ec2: EC2Client, table_id: str, subnet_id: str) -> bool:
    associated = attempt(
        f"AssociateRouteTable {table_id} with {subnet_id}",
        lambda: ec2.associate_route_table(RouteTableId=table_id, SubnetId=subnet_id),
        retry=ALREADY_ASSOCIATED,
    )
    return associated is not Outcome.RETRY


def allocate(ec2: EC2Client, scope: Scope, request: str) -> str:
    allocation_id = ec2.allocate_address(
        Domain="vpc", TagSpecifications=tag_specifications("elastic-ip", scope, request, "eip")
    )["AllocationId"]
    logger.info("AllocateAddress %s", allocation_id)
    return allocation_id


def create_nat(
    ec2: EC2Client, scope: Scope, request: str, subnet_id: str, allocation_id: str
) -> NatGatewayTypeDef:
    nat = ec2.create_nat_gateway(
        SubnetId=subnet_id,
        AllocationId=allocation_id,
        ConnectivityType="public",
        # Idempotent per request: a repeated call returns the same NAT gateway.
        ClientToken=request,
        TagSpecifications=tag_specifications("natgateway", scope, request, "nat"),
    )["NatGateway"]
    logger.info("CreateNatGateway %s in %s", nat.get("NatGatewayId"), subnet_id)
    return nat


def route_to_nat(ec2: EC2Client, table_id: str, nat_id: str) -> bool:
    # Someone else's route appearing since the describe: the next poll reports the conflict.
    created = attempt(
        f"CreateRoute {DEFAULT_ROUTE} -> {nat_id} in {table_id}",
        lambda: ec2.create_route(
            RouteTableId=table_id, DestinationCidrBlock=DEFAULT_ROUTE, NatGatewayId=nat_id
        ),
        retry=ROUTE_EXISTS,
    )
    return created is not Outcome.RETRY
